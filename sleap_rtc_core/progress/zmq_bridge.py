"""Feed SLEAP's LossViewer from a remote job, and carry its stop button back.

SLEAP's LossViewer listens where a local trainer would talk to it: it **binds**
a SUB socket on the publish port (9001 by default) for progress and a PUB socket
on the controller port (9000) for commands. A local sleap-nn trainer connects a
PUB and a SUB to those ports. :class:`ProgressBridge` takes the trainer's place
on the labeler's machine:

* progress events that the worker forwarded (``PROGRESS_REPORT``) are published
  to the LossViewer **exactly as the trainer sent them**: a JSON object text such
  as ``{"what": "", "event": "epoch_end", "logs": {"train/loss": 0.1},
  "epoch": 0}``; events given as mappings are encoded in that same shape;
* commands the LossViewer publishes (``{"command": "stop"}``, jsonpickle's
  encoding of a plain dict is plain JSON) are checked with
  :func:`~.trainer_link.check_command` and handed to ``on_command``, which sends
  them to the worker.

The progress socket is an XPUB connected to the LossViewer's SUB, sent through a
:class:`~.held_xpub.HeldXPub`: until the LossViewer has subscribed, events are
held (bounded, the oldest dropped first) instead of being lost to ZMQ's
slow-joiner gap, so ``train_begin`` reaches a LossViewer that opened a moment
late. One reader task
watches both sockets; it is created by :meth:`ProgressBridge.open` and cancelled
by :meth:`ProgressBridge.close`. Nothing here blocks: sends never wait (a full
socket drops and counts).

    async with ProgressBridge(on_command=send_to_worker) as bridge:
        bridge.publish(raw_progress_text)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import zmq
import zmq.asyncio

from ..errors import InvalidState, RemoteProtocolError
from ..protocol.json_text import dumps, loads_object
from .held_xpub import HeldXPub
from .trainer_link import LOOPBACK, check_command

__all__ = [
    "DEFAULT_CONTROLLER_PORT",
    "DEFAULT_PUBLISH_PORT",
    "CommandCallback",
    "ProgressBridge",
    "encode_event",
]

logger = logging.getLogger(__name__)

DEFAULT_PUBLISH_PORT = 9001
"""SLEAP's LossViewer binds its progress SUB here (``zmq_ports["publish_port"]``)."""

DEFAULT_CONTROLLER_PORT = 9000
"""SLEAP's LossViewer binds its command PUB here (``zmq_ports["controller_port"]``)."""

_MAX_MESSAGE_BYTES = 1 << 20
_SEND_HWM = 10000

CommandCallback = Callable[[dict[str, Any]], object]
"""Receives each accepted LossViewer command, e.g. ``{"command": "stop"}``."""


def encode_event(event: str | bytes | Mapping[str, Any]) -> str:
    """The text to publish for one progress event.

    Args:
        event: The trainer's JSON text (published unchanged once checked to be a
            JSON object), or a mapping (encoded as JSON in its key order:
            ``what``, ``event``, ``logs``, then ``epoch``/``batch``...).

    Raises:
        RemoteProtocolError: A text that is not a JSON object.
        TypeError: Neither text nor a mapping.
    """
    if isinstance(event, bytes):
        event = event.decode("utf-8", errors="replace")
    if isinstance(event, str):
        loads_object(event)  # raises RemoteProtocolError for anything else
        return event
    if isinstance(event, Mapping):
        return dumps(dict(event))
    raise TypeError(f"a progress event is text or a mapping, not {type(event)}")


class ProgressBridge:
    """Publishes progress where SLEAP's LossViewer listens; relays its commands.

    Args:
        publish_port: The LossViewer's progress port (its SUB binds there).
        controller_port: The LossViewer's command port (its PUB binds there);
            ``None`` for a viewer without controls.
        on_command: Called with every accepted command (from the reader task;
            it may return an awaitable, which the bridge awaits in order).
        host: Where the LossViewer runs (loopback).
        max_pending: Events held while no LossViewer has subscribed yet.
        context: The ZMQ context; default the process-wide asyncio instance.

    Attributes:
        commands: Commands accepted so far.
        rejected: Command texts refused (not JSON objects, jsonpickle tags).
    """

    def __init__(
        self,
        publish_port: int = DEFAULT_PUBLISH_PORT,
        controller_port: int | None = DEFAULT_CONTROLLER_PORT,
        *,
        on_command: CommandCallback | None = None,
        host: str = LOOPBACK,
        max_pending: int = 1000,
        context: zmq.asyncio.Context | None = None,
    ) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be positive")
        for port in (publish_port, controller_port):
            if port is not None and not 0 < port < 65536:
                raise ValueError(f"not a port: {port!r}")
        self.publish_port = publish_port
        self.controller_port = controller_port
        self.on_command = on_command
        self.host = host
        self._context = context or zmq.asyncio.Context.instance()
        self._max_pending = max_pending
        self._progress: zmq.asyncio.Socket | None = None
        self._control: zmq.asyncio.Socket | None = None
        self._out: HeldXPub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closed = False
        self.commands = 0
        self.rejected = 0

    def __repr__(self) -> str:
        return (
            f"<ProgressBridge :{self.publish_port}/:{self.controller_port} "
            f"published={self.published}>"
        )

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> ProgressBridge:
        """Connect both sockets and start the reader task (needs a running loop).

        Raises:
            InvalidState: Opened before, or closed.
            zmq.ZMQError: A socket could not be created or connected.
        """
        if self._progress is not None or self._closed:
            raise InvalidState("ProgressBridge can be opened once")
        progress = self._context.socket(zmq.XPUB)
        control = (
            self._context.socket(zmq.SUB) if self.controller_port is not None else None
        )
        try:
            progress.setsockopt(zmq.SNDHWM, _SEND_HWM)
            out = HeldXPub(
                progress,
                max_held=self._max_pending,
                name=f"LossViewer on :{self.publish_port}",
            )
            progress.connect(f"tcp://{self.host}:{self.publish_port}")
            if control is not None:
                control.setsockopt(zmq.LINGER, 0)
                control.setsockopt(zmq.MAXMSGSIZE, _MAX_MESSAGE_BYTES)
                control.setsockopt(zmq.SUBSCRIBE, b"")
                control.connect(f"tcp://{self.host}:{self.controller_port}")
        except BaseException:
            progress.close(linger=0)
            if control is not None:
                control.close(linger=0)
            raise
        self._progress, self._control, self._out = progress, control, out
        self._reader = asyncio.get_running_loop().create_task(
            self._read(), name=f"progress-bridge-{self.publish_port}"
        )
        logger.debug(
            "= progress bridge to :%d, commands from :%s",
            self.publish_port,
            self.controller_port,
        )
        return self

    async def close(self) -> None:
        """Stop the reader and close both sockets (held events are dropped)."""
        if self._closed:
            return
        self._closed = True
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if self._out is not None:
            self._out.discard()
        for sock in (self._progress, self._control):
            if sock is not None:
                sock.close(linger=0)
        logger.debug("= progress bridge :%d closed", self.publish_port)

    async def __aenter__(self) -> ProgressBridge:
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

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def viewer_connected(self) -> bool:
        """Whether a LossViewer is subscribed to the progress right now."""
        return self._out is not None and self._out.subscribed

    @property
    def published(self) -> int:
        """Events handed to ZMQ so far."""
        return self._out.sent if self._out is not None else 0

    @property
    def dropped(self) -> int:
        """Events dropped (held too long, the socket was full, or still held
        when the bridge closed)."""
        return self._out.dropped if self._out is not None else 0

    # ------------------------------------------------------------------ publishing

    def publish(self, event: str | bytes | Mapping[str, Any]) -> bool:
        """Publish one progress event to the LossViewer (never blocks).

        Args:
            event: The trainer's JSON text, or a mapping; see :func:`encode_event`.

        Returns:
            True if handed to ZMQ now, False if held until a LossViewer
            subscribes (or dropped because the socket was full).

        Raises:
            InvalidState: The bridge is not open.
            RemoteProtocolError: A text that is not a JSON object.
        """
        if self._out is None or self._closed:
            raise InvalidState("ProgressBridge is not open")
        return self._out.publish(encode_event(event))

    # ------------------------------------------------------------------ reader

    async def _read(self) -> None:
        progress, control, out = self._progress, self._control, self._out
        if progress is None or out is None:  # pragma: no cover - see open()
            return
        poller = zmq.asyncio.Poller()
        poller.register(progress, zmq.POLLIN)
        if control is not None:
            poller.register(control, zmq.POLLIN)
        try:
            while True:
                ready = dict(await poller.poll())
                if progress in ready:
                    out.on_subscription(await progress.recv())
                if control is not None and control in ready:
                    frames = await control.recv_multipart()
                    for frame in frames:
                        await self._on_command(frame)
        except zmq.ZMQError as exc:
            logger.error("! progress bridge :%d stopped: %s", self.publish_port, exc)

    async def _on_command(self, frame: bytes) -> None:
        text = frame.decode("utf-8", errors="replace")
        try:
            command = check_command(text)
        except RemoteProtocolError as exc:
            self.rejected += 1
            logger.info("! LossViewer command refused: %s", exc.message)
            return
        self.commands += 1
        logger.debug("< command %s", text)
        if self.on_command is None:
            return
        try:
            outcome = self.on_command(command)
            if asyncio.iscoroutine(outcome) or isinstance(outcome, asyncio.Future):
                await outcome
        except Exception:  # the caller's bug must not stop the reader
            logger.exception("! on_command failed for %s", text)
