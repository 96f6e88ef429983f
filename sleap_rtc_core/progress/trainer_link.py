"""The worker's end of sleap-nn's ZMQ progress and control link (PROTOCOL.md B §5).

sleap-nn's trainer *connects* two sockets to ports it is given in its config:

* a PUB to ``tcp://127.0.0.1:<trainer_config.zmq.publish_port>`` on which it
  sends one JSON string per event (``train_begin``, ``epoch_begin``,
  ``batch_start``, ``batch_end``, ``epoch_end``, ``train_end``);
* a SUB to ``tcp://127.0.0.1:<trainer_config.zmq.controller_port>`` that it
  polls once per training batch for ``{"command": "stop"}``.

:class:`TrainerLink` binds the other ends on 127.0.0.1 with ports the system
picks (so concurrent jobs never collide): a SUB for progress and an XPUB for
control (a :class:`~.held_xpub.HeldXPub`), so a command sent before the trainer
has connected is held back and delivered when it subscribes, instead of being
lost to ZMQ's "slow joiner" gap::

    async with TrainerLink() as link:
        argv = train_argv(..., publish_port=link.publish_port,
                          controller_port=link.controller_port)
        async for raw in link.messages():
            channel.send(f"PROGRESS_REPORT::{raw}")   # forwarded unchanged

One task reads both sockets (awaiting a poller, never busy-polling). Progress
strings are yielded exactly as received; the buffer between the reader and
:meth:`TrainerLink.messages` is bounded and drops its oldest entries (counted in
:attr:`TrainerLink.dropped`) when nobody keeps up.

Commands are checked before they reach the trainer: sleap-nn decodes them with
``jsonpickle``, which can build arbitrary Python objects from ``"py/..."`` keys,
so only a JSON object without such keys is ever published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncGenerator
from types import TracebackType
from typing import Any

import zmq
import zmq.asyncio

from ..errors import ConcurrencyError, ErrorCode, InvalidState, RemoteProtocolError
from ..protocol.json_text import loads_object
from .held_xpub import HeldXPub, bound_port

__all__ = ["LOOPBACK", "TrainerLink", "check_command"]

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
"""sleap-nn always connects to this address."""

_MAX_MESSAGE_BYTES = 1 << 20
_MAX_PENDING_COMMANDS = 64


def _has_pickle_tags(value: Any) -> bool:
    if isinstance(value, dict):
        return any(
            (isinstance(k, str) and k.startswith("py/")) or _has_pickle_tags(v)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return any(_has_pickle_tags(v) for v in value)
    return False


def check_command(raw: str) -> dict[str, Any]:
    """Check a control string before it goes to the trainer; its parsed form.

    Args:
        raw: The command as a peer sent it, e.g. ``{"command":"stop"}``.

    Returns:
        The decoded object.

    Raises:
        RemoteProtocolError: ``raw`` is not a JSON object, or it carries
            jsonpickle tags (keys starting with ``py/``) that would make the
            trainer build Python objects.
    """
    command = loads_object(raw)
    if _has_pickle_tags(command):
        raise RemoteProtocolError(
            "control commands may not carry jsonpickle 'py/' keys",
            code=ErrorCode.INVALID_MESSAGE,
        )
    return command


def _ready(socket: zmq.asyncio.Socket) -> bool:
    """Whether a message can be received now (a non-blocking check)."""
    events = socket.getsockopt(zmq.EVENTS)
    return isinstance(events, int) and bool(events & zmq.POLLIN)


class TrainerLink:
    """Progress SUB and control XPUB bound on loopback for one job.

    Args:
        context: The ZMQ context; default the process-wide asyncio instance.
        max_buffered: Progress messages held for :meth:`messages` before the
            oldest are dropped.

    Attributes:
        publish_port: Port the trainer's progress PUB connects to (sleap-nn's
            ``trainer_config.zmq.publish_port``).
        controller_port: Port the trainer's control SUB connects to (sleap-nn's
            ``trainer_config.zmq.controller_port``).
        dropped: Progress messages dropped because nobody read them in time.
        received: Progress messages received so far.
    """

    def __init__(
        self,
        *,
        context: zmq.asyncio.Context | None = None,
        max_buffered: int = 10000,
    ) -> None:
        if max_buffered < 1:
            raise ValueError("max_buffered must be positive")
        self._context = context or zmq.asyncio.Context.instance()
        self._max_buffered = max_buffered
        self._progress: zmq.asyncio.Socket | None = None
        self._control: zmq.asyncio.Socket | None = None
        self._commands: HeldXPub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._buffer: deque[str] = deque()
        self._readable = asyncio.Event()
        self._closed = False
        self._reading = False
        self._iterating = False
        self.publish_port = 0
        self.controller_port = 0
        self.dropped = 0
        self.received = 0

    # ------------------------------------------------------------- lifecycle

    def open(self) -> TrainerLink:
        """Bind both sockets and start the reader task (needs a running loop).

        Raises:
            InvalidState: Already opened, or closed.
            zmq.ZMQError: The sockets could not be bound.
        """
        if self._progress is not None or self._closed:
            raise InvalidState("TrainerLink can be opened once")
        progress = self._context.socket(zmq.SUB)
        control = self._context.socket(zmq.XPUB)
        try:
            progress.setsockopt(zmq.LINGER, 0)
            progress.setsockopt(zmq.MAXMSGSIZE, _MAX_MESSAGE_BYTES)
            progress.setsockopt(zmq.SUBSCRIBE, b"")
            commands = HeldXPub(
                control, max_held=_MAX_PENDING_COMMANDS, name="trainer control"
            )
            progress.bind(f"tcp://{LOOPBACK}:0")
            control.bind(f"tcp://{LOOPBACK}:0")
        except BaseException:
            progress.close(linger=0)
            control.close(linger=0)
            raise
        self._progress, self._control = progress, control
        self.publish_port = bound_port(progress)
        self.controller_port = bound_port(control)
        commands.name = f"trainer control :{self.controller_port}"
        self._commands = commands
        self._reading = True
        self._reader = asyncio.get_running_loop().create_task(
            self._read(), name=f"trainer-link-{self.publish_port}"
        )
        logger.debug(
            "= trainer link progress :%d control :%d",
            self.publish_port,
            self.controller_port,
        )
        return self

    async def __aenter__(self) -> TrainerLink:
        if self._progress is None:
            self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the reader, close both sockets; :meth:`messages` then ends."""
        if self._closed:
            return
        self._closed = True
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._commands is not None:
            self._commands.discard()
        for sock in (self._progress, self._control):
            if sock is not None:
                sock.close(linger=0)
        self._readable.set()
        logger.debug("= trainer link :%d closed", self.publish_port)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def controller_connected(self) -> bool:
        """Whether a trainer's control SUB is subscribed right now."""
        return self._commands is not None and self._commands.subscribed

    # ---------------------------------------------------------------- reader

    async def _read(self) -> None:
        progress, control, commands = self._progress, self._control, self._commands
        if progress is None or control is None or commands is None:  # pragma: no cover
            return
        poller = zmq.asyncio.Poller()
        poller.register(progress, zmq.POLLIN)
        poller.register(control, zmq.POLLIN)
        try:
            while True:
                await poller.poll()
                # Take everything that is ready, then wait again.
                while _ready(progress):
                    for frame in await progress.recv_multipart():
                        self._push(frame.decode("utf-8", errors="replace"))
                while _ready(control):
                    commands.on_subscription(await control.recv())
        except zmq.ZMQError as exc:
            logger.error("! trainer link :%d stopped: %s", self.publish_port, exc)
        finally:
            self._reading = False
            self._readable.set()

    def _push(self, raw: str) -> None:
        self.received += 1
        self._buffer.append(raw)
        if len(self._buffer) > self._max_buffered:
            self._buffer.popleft()
            self.dropped += 1
            if self.dropped == 1:
                logger.warning(
                    "! progress of :%d is read too slowly", self.publish_port
                )
        self._readable.set()

    # --------------------------------------------------------------- public

    async def messages(self) -> AsyncGenerator[str, None]:
        """Each progress message as received, until the link is closed.

        Raises:
            InvalidState: The link was never opened.
            ConcurrencyError: Another :meth:`messages` iteration is running.
        """
        if self._progress is None:
            raise InvalidState("TrainerLink is not open")
        if self._iterating:
            raise ConcurrencyError("messages() is already being iterated")
        self._iterating = True
        try:
            while True:
                while self._buffer:
                    yield self._buffer.popleft()
                if self._closed or not self._reading:
                    return
                self._readable.clear()
                await self._readable.wait()
        finally:
            self._iterating = False

    def drain(self) -> int:
        """Discard progress messages not yet read (between pipeline models).

        Returns:
            How many were discarded.
        """
        count = len(self._buffer)
        self._buffer.clear()
        return count

    def send_command(self, raw: str) -> bool:
        """Publish a control string (e.g. ``{"command":"stop"}``) unchanged.

        When no trainer is subscribed yet, the command is held (up to 64) and
        sent the moment one subscribes.

        Args:
            raw: The command text; checked with :func:`check_command`.

        Returns:
            True if published now, False if held for the next subscriber.

        Raises:
            RemoteProtocolError: ``raw`` is not an acceptable command.
            InvalidState: The link is not open.
        """
        check_command(raw)
        if self._commands is None or self._closed:
            raise InvalidState("TrainerLink is not open")
        return self._commands.publish(raw)

    async def settle(self, quiet: float = 0.2, timeout: float = 5.0) -> None:
        """Wait until no progress message has arrived for ``quiet`` seconds.

        Call it after the trainer exits and before :meth:`close`, so that the
        last events (``train_end``), still in flight when the process ended,
        are read. Gives up after ``timeout`` seconds of steady traffic.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last = -1
        while self.received != last and self._reading and loop.time() < deadline:
            last = self.received
            await asyncio.sleep(quiet)

    async def wait_controller(self) -> None:
        """Wait until a trainer's control SUB has subscribed.

        Raises:
            InvalidState: The link is not open.
        """
        if self._commands is None or self._closed:
            raise InvalidState("TrainerLink is not open")
        await self._commands.wait_subscribed()
