"""The data channel: typed messages, file bytes and flow control over aiortc.

:class:`Channel` wraps one aiortc ``RTCDataChannel`` (and owns its
``RTCPeerConnection`` when given one) and speaks the vocabulary of PROTOCOL.md
B §4 (A.3):

* **One reader.** aiortc hands every received frame to one ``message``
  callback; that callback is the only place frames enter. It drops
  :data:`~sleap_rtc_core.protocol.channel.KEEP_ALIVE` (binary, or the same
  word as a text frame: never data), decodes text frames with
  :func:`~sleap_rtc_core.protocol.channel.decode_text`, hands replies to the
  :meth:`Channel.request` awaiting them and messages of subscribed types to
  their :meth:`Channel.subscribe` queue, and queues the rest for
  :meth:`Channel.recv`. A frame the peer got wrong is logged and answered
  (``FS_ERROR::INVALID_REQUEST::…`` for an ``FS_*`` request, else
  ``ERROR::{code}: {message}``), never raised into aiortc.
* **Bounded buffering.** The receive queue holds at most ``max_queue`` frames;
  a peer that outruns its consumer that far gets the channel closed (logged
  with ``!``) rather than our memory. Sends wait while aiortc's
  ``bufferedAmount`` is above ``high_water`` and resume on the
  ``bufferedamountlow`` event (``bufferedAmountLowThreshold`` =
  ``low_water``): no polling, and nothing piles up in the send buffer.
* **Keep-alive.** Every ``keepalive_interval`` seconds an owned task sends the
  binary ``KEEP_ALIVE`` (the reference worker and CLI do; receivers drop it).
* **Close.** :meth:`Channel.close` flushes what is buffered (bounded), closes
  the data channel and the peer connection, cancels the keep-alive task and
  wakes every waiter with :class:`~sleap_rtc_core.errors.ChannelClosed`. The
  channel also closes itself when aiortc reports the data channel closed or
  the connection failed; :attr:`Channel.closed` is set either way.

Logging follows the house style: ``<`` received, ``>`` sent, ``!`` errors,
``=`` state, on this module's logger with the peer id in every line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import Any

from aiortc import RTCDataChannel, RTCPeerConnection

from ..aio import wait_for
from ..errors import ChannelClosed, ErrorCode, RemoteProtocolError
from ..protocol.channel import (
    KEEP_ALIVE,
    ChannelMessage,
    chunk_frames,
    decode_text,
    encode_text,
    is_keepalive,
)
from ..protocol.channel_fs import FsErrorCode, FsErrorMsg
from ..protocol.channel_legacy import ErrorMsg

__all__ = [
    "DEFAULT_HIGH_WATER",
    "DEFAULT_LOW_WATER",
    "DEFAULT_MAX_QUEUE",
    "KEEPALIVE_INTERVAL",
    "PC_CLOSE_TIMEOUT",
    "Channel",
    "ChannelSubscription",
    "Received",
    "close_peer_connection",
]

logger = logging.getLogger(__name__)

Received = ChannelMessage | bytes
"""What :meth:`Channel.recv` returns: a typed text message or file bytes."""

DEFAULT_HIGH_WATER = 1 << 20
"""Sends wait while more than this many bytes sit in aiortc's send buffer."""

DEFAULT_LOW_WATER = 256 << 10
"""…and resume when it drains to this many (``bufferedAmountLowThreshold``)."""

DEFAULT_MAX_QUEUE = 4096
"""Received frames held for :meth:`Channel.recv` before the channel gives up."""

KEEPALIVE_INTERVAL = 15.0
"""Seconds between binary keep-alives (the reference's interval)."""

_CLOSE_FLUSH_TIMEOUT = 2.0
_MAX_ERROR_REPLIES = 100
_CLOSED = object()


PC_CLOSE_TIMEOUT = 5.0
"""Seconds a peer connection may take to close. aiortc's close can wait on a
transport that never finished setting up; nothing should hang on that."""


async def close_peer_connection(pc: Any) -> None:
    """Close an ``RTCPeerConnection``, giving up after :data:`PC_CLOSE_TIMEOUT`
    (errors and time-outs are swallowed: the connection is being dropped)."""
    with contextlib.suppress(Exception):
        await wait_for(pc.close(), PC_CLOSE_TIMEOUT)


class ChannelSubscription:
    """Messages of some types, diverted from :meth:`Channel.recv` to one
    consumer while the subscription is open.

    Attributes:
        types: The message classes it takes.
    """

    def __init__(self, types: tuple[type[ChannelMessage], ...]) -> None:
        self.types = types
        self._queue: asyncio.Queue[object] = asyncio.Queue()

    def wants(self, message: ChannelMessage) -> bool:
        """Whether ``message`` goes to this subscription."""
        return isinstance(message, self.types)

    def _put(self, item: object) -> None:
        self._queue.put_nowait(item)

    async def get(self, timeout: float | None = None) -> ChannelMessage:
        """The next message (waits at most ``timeout`` seconds).

        Raises:
            TimeoutError: nothing came in time.
            ChannelClosed: the channel closed.
        """
        item = await wait_for(self._queue.get(), timeout)
        if item is _CLOSED:
            self._queue.put_nowait(_CLOSED)
            raise ChannelClosed("the data channel closed")
        assert isinstance(item, ChannelMessage)
        return item


class Channel:
    """One data channel to a peer (see the module docstring).

    Args:
        dc: The aiortc data channel (open or still connecting).
        peer_id: The signaling id of the peer at the other end.
        pc: The peer connection, closed with the channel when given.
        high_water: Send-buffer bytes above which sends wait.
        low_water: Send-buffer bytes at which waiting sends resume.
        max_queue: Received frames held before the channel is closed.
        keepalive_interval: Seconds between binary keep-alives; ``None``
            sends none.

    Attributes:
        peer_id: The peer at the other end.
        closed: Set once the channel is closed (by either side).
        authenticated: Set by the AUTH handshake once it succeeded.
        legacy_peer: The peer runs sleap-rtc 0.0.7 (its offer carried no
            version marker; set by the worker's acceptor).
        close_reason: Why the channel closed, for logs and errors.
    """

    def __init__(
        self,
        dc: RTCDataChannel,
        peer_id: str,
        *,
        pc: RTCPeerConnection | None = None,
        high_water: int = DEFAULT_HIGH_WATER,
        low_water: int = DEFAULT_LOW_WATER,
        max_queue: int = DEFAULT_MAX_QUEUE,
        keepalive_interval: float | None = KEEPALIVE_INTERVAL,
    ) -> None:
        if not 0 <= low_water <= high_water:
            raise ValueError("need 0 <= low_water <= high_water")
        self.peer_id = peer_id
        self.closed = asyncio.Event()
        self.authenticated = False
        self.legacy_peer = False
        self.close_reason = ""
        self._dc = dc
        self._pc = pc
        self._high_water = high_water
        self._max_queue = max_queue
        self._keepalive_interval = keepalive_interval
        self._opened = asyncio.Event()
        self._drained = asyncio.Event()
        self._inbox: asyncio.Queue[object] = asyncio.Queue()
        self._queued = 0
        self._waiters: deque[
            tuple[tuple[type[ChannelMessage], ...], asyncio.Future[ChannelMessage]]
        ] = deque()
        self._subs: list[ChannelSubscription] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing: asyncio.Task[None] | None = None
        self._error_replies = 0
        dc.bufferedAmountLowThreshold = low_water
        dc.on("message", self._on_message)
        dc.on("open", self._on_open)
        dc.on("close", self._on_dc_close)
        dc.on("bufferedamountlow", self._drained.set)
        if pc is not None:
            pc.on("connectionstatechange", self._on_connection_state)
        if dc.readyState == "open":
            self._on_open()
        elif dc.readyState == "closed":
            self._mark_closed("the data channel was already closed")

    # ------------------------------------------------------------ state

    @property
    def label(self) -> str:
        """The data channel's label."""
        return self._dc.label

    @property
    def is_open(self) -> bool:
        """The channel is open and not closing."""
        return self._opened.is_set() and not self.closed.is_set()

    @property
    def buffered_amount(self) -> int:
        """Bytes waiting in aiortc's send buffer."""
        return self._dc.bufferedAmount

    async def wait_open(self, timeout: float | None = None) -> None:
        """Wait until the data channel is open.

        Raises:
            ChannelClosed: it closed before opening.
            TimeoutError: it did not open in time.
        """
        async with asyncio.timeout(timeout):
            await _first_of(self._opened, self.closed)
        if not self._opened.is_set() or self.closed.is_set():
            raise ChannelClosed(self.close_reason or "the data channel closed")

    # ------------------------------------------------------------ sending

    async def send(self, message: ChannelMessage | str) -> None:
        """Send a typed message (or a raw text frame, e.g. a log line).

        Raises:
            ChannelClosed: the channel is closed.
            LocalProtocolError: ``message`` cannot be encoded.
        """
        text = message if isinstance(message, str) else encode_text(message)
        await self._send_frame(text)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("> %s %s", self.peer_id, text[:200])

    async def send_bytes(self, data: bytes) -> None:
        """Send file bytes as binary frames, waiting while the send buffer is
        above the high-water mark. A chunk equal to ``KEEP_ALIVE`` goes as two
        frames so that the receiver does not drop it; empty data sends nothing.

        Raises:
            ChannelClosed: the channel is closed.
        """
        for frame in chunk_frames(bytes(data)):
            await self._send_frame(frame)

    async def _send_frame(self, frame: str | bytes) -> None:
        if not self._opened.is_set():
            await self.wait_open()
        while self._dc.bufferedAmount > self._high_water and not self.closed.is_set():
            self._drained.clear()
            # Checked again after clear(): the event fires only when the
            # amount crosses the threshold, which is still to come.
            if self._dc.bufferedAmount > self._high_water:
                await _first_of(self._drained, self.closed)
        if self.closed.is_set() or self._dc.readyState != "open":
            raise ChannelClosed(self.close_reason or "the data channel is closed")
        self._dc.send(frame)

    # ------------------------------------------------------------ receiving

    async def recv(self, timeout: float | None = None) -> Received:
        """The next message or bytes not taken by a request or subscription.

        Frames received before the channel closed are still returned; after
        them this raises.

        Raises:
            ChannelClosed: the channel is closed and nothing is left.
            TimeoutError: nothing came within ``timeout`` seconds.
        """
        item = await wait_for(self._inbox.get(), timeout)
        if item is _CLOSED:
            self._inbox.put_nowait(_CLOSED)
            raise ChannelClosed(self.close_reason or "the data channel closed")
        self._queued -= 1
        assert isinstance(item, ChannelMessage | bytes)
        return item

    def __aiter__(self) -> AsyncIterator[Received]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[Received]:
        while True:
            try:
                yield await self.recv()
            except ChannelClosed:
                return

    async def request(
        self,
        message: ChannelMessage | str,
        reply_types: tuple[type[ChannelMessage], ...],
        timeout: float | None = 30.0,
    ) -> ChannelMessage:
        """Send ``message`` and return the first message of ``reply_types``
        that arrives after it (earlier waiters for the same types go first).

        Raises:
            TimeoutError: no reply within ``timeout`` seconds.
            ChannelClosed: the channel closed first.
        """
        with self.expecting(reply_types) as reply:
            await self.send(message)
            return await wait_for(asyncio.shield(reply), timeout)

    async def expect(
        self, reply_types: tuple[type[ChannelMessage], ...], timeout: float | None
    ) -> ChannelMessage:
        """Wait for the next message of ``reply_types`` without sending.

        Raises:
            TimeoutError: none within ``timeout`` seconds.
            ChannelClosed: the channel closed first.
        """
        with self.expecting(reply_types) as reply:
            return await wait_for(asyncio.shield(reply), timeout)

    @contextlib.contextmanager
    def expecting(
        self, reply_types: tuple[type[ChannelMessage], ...]
    ) -> Iterator[asyncio.Future[ChannelMessage]]:
        """A future for the next message of ``reply_types``, registered now
        (so that a fast reply is not missed) and dropped when the block ends.
        The future fails with :class:`ChannelClosed` if the channel closes.

        Raises:
            ChannelClosed: the channel is already closed.
        """
        if self.closed.is_set():
            raise ChannelClosed(self.close_reason or "the data channel is closed")
        future: asyncio.Future[ChannelMessage] = (
            asyncio.get_running_loop().create_future()
        )
        entry = (tuple(reply_types), future)
        self._waiters.append(entry)
        try:
            yield future
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)
            if not future.done():
                future.cancel()

    @contextlib.contextmanager
    def subscribe(self, *types: type[ChannelMessage]) -> Any:
        """Divert messages of ``types`` to a :class:`ChannelSubscription`
        while the ``with`` block is open::

            with channel.subscribe(ProgressReportMsg) as progress:
                msg = await progress.get(timeout=5)
        """
        sub = ChannelSubscription(tuple(types))
        if self.closed.is_set():
            sub._put(_CLOSED)
        self._subs.append(sub)
        try:
            yield sub
        finally:
            self._subs.remove(sub)

    # ------------------------------------------------------------ the reader

    def _on_message(self, data: str | bytes) -> None:
        """The one reader: every received frame passes here (aiortc callback)."""
        if self.closed.is_set():
            return
        if isinstance(data, bytes | bytearray | memoryview):
            if is_keepalive(data):
                return
            self._enqueue(bytes(data))
            return
        if data == "KEEP_ALIVE":
            return
        try:
            message = decode_text(data)
        except RemoteProtocolError as exc:
            logger.warning(
                "! %s sent a bad frame (%s): %s", self.peer_id, exc.code, exc.message
            )
            self._answer_error(data, exc)
            return
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("< %s %s", self.peer_id, data[:200])
        for types, future in self._waiters:
            if not future.done() and isinstance(message, types):
                self._waiters.remove((types, future))
                future.set_result(message)
                return
        for sub in self._subs:
            if sub.wants(message):
                sub._put(message)
                return
        self._enqueue(message)

    def _enqueue(self, item: Received) -> None:
        if self._queued >= self._max_queue:
            logger.error(
                "! %s: %d frames unread; closing the channel",
                self.peer_id,
                self._queued,
            )
            self._start_close("receive queue overflow")
            return
        self._queued += 1
        self._inbox.put_nowait(item)

    def _answer_error(self, text: str, exc: RemoteProtocolError) -> None:
        """Tell the peer its frame was refused (bounded, never an error for an
        error, so two of us cannot ping-pong)."""
        if text.startswith(("ERROR", "FS_ERROR")) or not self.is_open:
            return
        self._error_replies += 1
        if self._error_replies > _MAX_ERROR_REPLIES:
            return
        reply: ChannelMessage
        if text.startswith("FS_"):
            reply = FsErrorMsg(FsErrorCode.INVALID_REQUEST, exc.message[:500])
        else:
            code = exc.code or ErrorCode.INVALID_MESSAGE.value
            reply = ErrorMsg(f"{code}: {exc.message[:500]}")
        with contextlib.suppress(Exception):
            self._dc.send(encode_text(reply))

    # ------------------------------------------------------------ lifecycle

    def _on_open(self) -> None:
        if self._opened.is_set():
            return
        self._opened.set()
        logger.debug("= %s channel %r open", self.peer_id, self._dc.label)
        if self._keepalive_interval is not None and not self.closed.is_set():
            task = asyncio.get_running_loop().create_task(
                self._keepalive(self._keepalive_interval),
                name=f"keepalive {self.peer_id}",
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _keepalive(self, interval: float) -> None:
        while not self.closed.is_set():
            await asyncio.sleep(interval)
            if self._dc.readyState != "open":
                return
            with contextlib.suppress(Exception):
                self._dc.send(KEEP_ALIVE)

    def _on_dc_close(self) -> None:
        self._start_close("the peer closed the data channel")

    def _on_connection_state(self) -> None:
        if self._pc is not None and self._pc.connectionState in ("failed", "closed"):
            self._start_close(f"the connection {self._pc.connectionState}")

    def _start_close(self, reason: str) -> None:
        """Close from a callback: mark closed now, release aiortc in a task."""
        if self.closed.is_set():
            return
        self._mark_closed(reason)
        self._closing = asyncio.get_running_loop().create_task(
            self._release(flush=False), name=f"close {self.peer_id}"
        )

    def _mark_closed(self, reason: str) -> None:
        if self.closed.is_set():
            return
        self.close_reason = reason
        self.closed.set()
        logger.debug("= %s channel closed: %s", self.peer_id, reason)
        error = ChannelClosed(reason)
        while self._waiters:
            _, future = self._waiters.popleft()
            if not future.done():
                future.set_exception(error)
                future.exception()  # retrieved: the waiter may be gone
        for sub in self._subs:
            sub._put(_CLOSED)
        self._inbox.put_nowait(_CLOSED)

    async def close(self, reason: str = "closed locally") -> None:
        """Close the channel and its peer connection (idempotent).

        What is already buffered is flushed first (for at most 2 s), so that a
        last message (``AUTH_FAILURE``, ``JOB_FAILED``) reaches the peer.
        """
        if not self.closed.is_set():
            self._mark_closed(reason)
            await self._release(flush=True)
        elif self._closing is not None:
            await asyncio.shield(self._closing)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _release(self, *, flush: bool) -> None:
        for task in list(self._tasks):
            task.cancel()
        if flush and self._dc.readyState == "open" and self._dc.bufferedAmount:
            self._dc.bufferedAmountLowThreshold = 0
            self._drained.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CLOSE_FLUSH_TIMEOUT):
                    await self._drained.wait()
        with contextlib.suppress(Exception):
            self._dc.close()
        if self._pc is not None:
            await close_peer_connection(self._pc)

    async def __aenter__(self) -> Channel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def _first_of(*events: asyncio.Event) -> None:
    """Wait until one of ``events`` is set."""
    if any(e.is_set() for e in events):
        return
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
