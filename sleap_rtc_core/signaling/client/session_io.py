"""The signaling client: one reader task, requests, subscriptions, reconnects.

Exactly one task (the connection loop) reads the socket; it hands every frame to
the sans-I/O :class:`~.session.ClientSession` and dispatches what comes
out: replies to the request awaiting them, everything else to subscribers. When
the socket drops, the loop reconnects with exponential backoff and jitter,
registers again with the same peer id and the current metadata, and re-sends the
requests still unanswered; callers only see :class:`~sleap_rtc_core.errors.
ConnectionLost` once ``give_up_after`` seconds pass without a connection.

Given several URLs (processes of one deployment sharing a Redis), the loop
moves to the next one, round-robin, whenever a connection is lost or cannot be
made, with the same backoff: a peer whose process died registers again, with
the same id, on another one.

    async with SignalingClient(url, Register(...)) as client:
        workers = await client.discover({"role": "worker"})
        async with client.subscribe("peer_message") as inbox:
            msg = await inbox.get()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from ...aio import wait_for
from ...errors import AuthError, ConnectionLost, SleapRTCError
from ...protocol import signaling as sig
from .session import (
    ClientSession,
    ClientState,
    Incoming,
    Registered,
    RegisterFailed,
    Replied,
    RequestFailed,
)

__all__ = ["Backoff", "SignalingClient", "Subscription", "split_urls"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnect delays: ``min(cap, initial * factor**attempt)``, jittered."""

    initial: float = 1.0
    """First delay in seconds."""

    factor: float = 2.0
    """Growth per failed attempt."""

    cap: float = 60.0
    """Longest delay in seconds."""

    jitter: float = 0.5
    """Each delay is scaled by a random factor in ``[1 - jitter, 1]``."""

    def delay(self, attempt: int) -> float:
        """The delay before reconnect attempt ``attempt`` (0-based)."""
        base = min(self.cap, self.initial * self.factor**attempt)
        return base * (1.0 - self.jitter * random.random())


class Subscription:
    """Messages of some types, queued for one consumer (bounded).

    When the connection ends for good (refused credentials, or given up),
    :meth:`get` and iteration raise why instead of waiting for ever.
    """

    def __init__(self, types: frozenset[str], maxsize: int) -> None:
        self.types = types
        self.queue: asyncio.Queue[sig.Message] = asyncio.Queue(maxsize)
        self.dropped = 0
        self.error: SleapRTCError | None = None
        self._ended = asyncio.Event()

    def wants(self, message: sig.Message) -> bool:
        return not self.types or message.TYPE.value in self.types

    def put(self, message: sig.Message) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped += 1
            logger.warning("! subscriber queue full, dropped %s", message.TYPE.value)

    def fail(self, error: SleapRTCError) -> None:
        """No more messages will come: the next wait raises ``error``."""
        self.error = error
        self._ended.set()

    async def get(self, timeout: float | None = None) -> sig.Message:
        """The next message (waits at most ``timeout`` seconds).

        Raises:
            SleapRTCError: the connection ended for good (and nothing is queued).
            TimeoutError: nothing within ``timeout``.
        """
        if not self.queue.empty():
            return self.queue.get_nowait()
        if self.error is not None:
            raise self.error
        getter = asyncio.ensure_future(self.queue.get())
        ended = asyncio.ensure_future(self._ended.wait())
        try:
            done, _ = await asyncio.wait(
                {getter, ended}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            ended.cancel()
            if not getter.done():
                getter.cancel()
        if getter in done:
            return getter.result()
        if self.error is not None:
            raise self.error
        raise TimeoutError

    def __aiter__(self) -> AsyncIterator[sig.Message]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[sig.Message]:
        while True:
            yield await self.get()


Connector = Callable[[], Awaitable[ClientConnection]]


def split_urls(urls: str | Sequence[str]) -> tuple[str, ...]:
    """Server URLs from one URL, a comma-separated list, or a sequence of
    either (so flags, environment and config files may all name several).

    Raises:
        ValueError: No URL at all.
    """
    items = [urls] if isinstance(urls, str) else list(urls)
    out = tuple(u.strip() for item in items for u in item.split(",") if u.strip())
    if not out:
        raise ValueError("no signaling server URL given")
    return out


class SignalingClient:
    """A registered peer of a signaling server that survives disconnects.

    Args:
        url: ``ws://`` or ``wss://`` address of the server, or several (a
            sequence, or one comma-separated string): processes of one
            deployment, tried in turn when a connection is lost.
        register: The ``register`` message (credentials, role, metadata).
        backoff: Reconnect delays.
        give_up_after: Seconds without a connection after which every waiter
            gets :class:`ConnectionLost`; ``None`` retries for ever.
        request_timeout: Default seconds to wait for a reply.
        ssl_context: For ``wss://`` with a private CA.
    """

    def __init__(
        self,
        url: str | Sequence[str],
        register: sig.Register,
        *,
        backoff: Backoff | None = None,
        give_up_after: float | None = 300.0,
        request_timeout: float = 15.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.urls = split_urls(url)
        self._index = 0
        self.session = ClientSession(register)
        self.backoff = backoff or Backoff()
        self.give_up_after = give_up_after
        self.request_timeout = request_timeout
        self.ssl_context = ssl_context
        self.reconnects = 0
        self.on_registered: list[Callable[[sig.RegisteredAuth, bool], None]] = []
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._waiters: dict[str, asyncio.Future[sig.Message]] = {}
        self._subs: list[Subscription] = []
        self._registered = asyncio.Event()
        self._first: asyncio.Future[sig.RegisteredAuth] | None = None
        self._failure: SleapRTCError | None = None
        self._send_lock = asyncio.Lock()

    # --- lifecycle

    @property
    def url(self) -> str:
        """The URL in use (or tried next)."""
        return self.urls[self._index]

    def _next_url(self) -> None:
        """Move to the next URL, round-robin (a no-op with one)."""
        self._index = (self._index + 1) % len(self.urls)

    @property
    def peer_id(self) -> str:
        """Our registered peer id."""
        peer_id = self.session.peer_id
        if peer_id is None:
            raise ConnectionLost("not registered yet")
        return peer_id

    @property
    def registration(self) -> sig.RegisteredAuth:
        """The last ``registered_auth`` (room, peers, ICE servers)."""
        if self.session.reply is None:
            raise ConnectionLost("not registered yet")
        return self.session.reply

    @property
    def connected(self) -> bool:
        """Registered and the socket is open."""
        return self.session.state is ClientState.REGISTERED

    async def start(self, timeout: float | None = None) -> sig.RegisteredAuth:
        """Connect and register (retrying with backoff).

        Raises:
            AuthError: the server refused the credentials.
            ConnectionLost: no connection within ``give_up_after`` (or ``timeout``).
        """
        if self._task is not None:
            raise RuntimeError("client already started")
        self._first = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run(), name=f"signaling {self.url}")
        try:
            return await wait_for(asyncio.shield(self._first), timeout)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Disconnect for good; pending requests get :class:`ConnectionLost`."""
        for rid in self.session.close():
            self._fail(rid, ConnectionLost("client closed"))
        # Take the socket first: the reader's cleanup forgets it when cancelled.
        ws, self._ws = self._ws, None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if ws is not None:
            await ws.close()
        self._registered.clear()

    async def __aenter__(self) -> SignalingClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def wait_registered(self, timeout: float | None = None) -> None:
        """Wait until registered (again, after a reconnect)."""
        if self._failure is not None:
            raise self._failure
        await wait_for(self._registered.wait(), timeout)
        if self._failure is not None:
            raise self._failure

    # --- requests and messages

    async def discover(
        self, filters: Mapping[str, Any] | None = None, timeout: float | None = None
    ) -> list[dict[str, Any]]:
        """``discover_peers``: the matching peers of our room.

        Raises:
            ServerError: e.g. ``INVALID_MESSAGE`` for a malformed filter, or
                ``UNKNOWN_MESSAGE_TYPE`` from servers without discovery.
            TimeoutError: no reply in time.
        """
        reply = await self._request(
            sig.DiscoverPeers(filters=dict(filters or {})), timeout
        )
        assert isinstance(reply, sig.PeerList)
        return list(reply.peers)

    async def update_metadata(
        self, metadata: Mapping[str, Any], timeout: float | None = None
    ) -> dict[str, Any]:
        """``update_metadata`` (deep merge); returns the stored metadata.

        Raises:
            ServerError: the server refused the update.
            TimeoutError: no reply in time.
        """
        reply = await self._request(
            sig.UpdateMetadata(metadata=dict(metadata)), timeout
        )
        assert isinstance(reply, sig.MetadataUpdated)
        return dict(reply.metadata)

    async def send(self, message: sig.Message, timeout: float | None = None) -> None:
        """Send a message that has no reply (waits for a connection if needed).

        Raises:
            ConnectionLost: not connected within ``timeout`` (or give-up).
        """
        frame = self.session.send(message)
        deadline = time.monotonic() + (timeout or self.request_timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConnectionLost("not connected to the signaling server")
            try:
                await self.wait_registered(remaining)
            except TimeoutError:
                raise ConnectionLost("not connected to the signaling server") from None
            if await self._write(frame):
                return

    async def send_peer_message(self, to_peer_id: str, payload: Any) -> None:
        """Send an application payload to a peer of our room."""
        await self.send(
            sig.PeerMessage(
                from_peer_id=self.peer_id, to_peer_id=to_peer_id, payload=payload
            )
        )

    @contextlib.asynccontextmanager
    async def subscribe(
        self, *types: str, maxsize: int = 1000
    ) -> AsyncIterator[Subscription]:
        """Receive messages of ``types`` (all non-reply messages if none) while
        the context is open."""
        sub = Subscription(frozenset(types), maxsize)
        self._subs.append(sub)
        try:
            yield sub
        finally:
            self._subs.remove(sub)

    async def _request(self, message: Any, timeout: float | None) -> sig.Message:
        if self._failure is not None:
            raise self._failure
        rid = self.session.request(message)
        future: asyncio.Future[sig.Message] = asyncio.get_running_loop().create_future()
        self._waiters[rid] = future
        try:
            await self._flush()
            return await wait_for(future, timeout or self.request_timeout)
        finally:
            self._waiters.pop(rid, None)
            self.session.cancel(rid)

    # --- the connection loop (the only reader)

    async def _run(self) -> None:
        attempt = 0
        down_since = time.monotonic()
        while True:
            try:
                ws = await self._connect()
            except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
                if self._give_up(down_since):
                    self._lost(f"cannot reach {', '.join(self.urls)}: {exc}")
                    return
                delay = self._within_give_up(self.backoff.delay(attempt), down_since)
                attempt += 1
                failed = self.url
                self._next_url()
                logger.info(
                    "! cannot reach %s (%s); trying %s in %.1fs",
                    failed,
                    exc,
                    self.url,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            self._ws = ws
            if attempt or self.reconnects:
                # Losing the server is logged, so getting it back is too.
                logger.info("= signaling connection back: %s", self.url)
            self.session.connected()
            try:
                await self._flush()
                async for frame in ws:
                    self.session.receive(frame)
                    await self._flush()
                    if self._dispatch():
                        attempt = 0
            except ConnectionClosed:
                pass
            except AuthError as exc:
                for sub in self._subs:
                    sub.fail(exc)
                await ws.close()
                return
            finally:
                self._ws = None
                self.session.disconnected()
                self._registered.clear()
            if self.session.state is ClientState.CLOSED:
                return
            down_since = time.monotonic()
            self.reconnects += 1
            delay = self.backoff.delay(attempt)
            attempt += 1
            self._next_url()  # the process may have died: another one may not
            logger.info(
                "! signaling connection lost; reconnecting to %s in %.1fs",
                self.url,
                delay,
            )
            await asyncio.sleep(delay)

    async def _connect(self) -> ClientConnection:
        return await connect(
            self.url,
            ssl=self.ssl_context,
            open_timeout=10,
            max_size=4 << 20,
            compression=None,
            ping_interval=20,
            ping_timeout=20,
        )

    def _within_give_up(self, delay: float, down_since: float) -> float:
        """``delay``, but not past the give-up moment (plus a hair, so that the
        next failure is the last): waiting longer would only hide the end."""
        if self.give_up_after is None:
            return delay
        left = down_since + self.give_up_after - time.monotonic()
        return max(0.0, min(delay, left + 0.05))

    def _give_up(self, down_since: float) -> bool:
        return (
            self.give_up_after is not None
            and time.monotonic() - down_since > self.give_up_after
        )

    def _lost(self, reason: str) -> None:
        error = ConnectionLost(reason)
        self._failure = error
        self._registered.set()  # wake waiters so they see the failure
        if self._first is not None and not self._first.done():
            self._first.set_exception(error)
        for rid in self.session.close():
            self._fail(rid, error)
        for sub in self._subs:
            sub.fail(error)

    def _dispatch(self) -> bool:
        """Route the session's events; True when a registration succeeded."""
        registered = False
        for event in self.session.events():
            if isinstance(event, Registered):
                registered = True
                self._registered.set()
                if self._first is not None and not self._first.done():
                    self._first.set_result(event.reply)
                for callback in self.on_registered:
                    callback(event.reply, event.reconnect)
                logger.debug("= registered as %s", event.reply.peer_id)
            elif isinstance(event, RegisterFailed):
                self._failure = event.error
                self._registered.set()
                if self._first is not None and not self._first.done():
                    self._first.set_exception(event.error)
                for rid in self.session.close():
                    self._fail(rid, event.error)
                raise (
                    event.error
                    if isinstance(event.error, AuthError)
                    else AuthError(event.error.message, code=event.error.code)
                )
            elif isinstance(event, Replied):
                future = self._waiters.get(event.request_id)
                if future is not None and not future.done():
                    future.set_result(event.reply)
            elif isinstance(event, RequestFailed):
                self._fail(event.request_id, event.error)
            elif isinstance(event, Incoming):
                for sub in self._subs:
                    if sub.wants(event.message):
                        sub.put(event.message)
        return registered

    def _fail(self, request_id: str, error: SleapRTCError) -> None:
        future = self._waiters.get(request_id)
        if future is not None and not future.done():
            future.set_exception(error)

    async def _flush(self) -> None:
        """Send the session's queued frames, in order (drained under the lock)."""
        async with self._send_lock:
            frames = self.session.outgoing()
            ws = self._ws
            if ws is None:
                return  # unanswered requests are re-sent after the reconnect
            try:
                for frame in frames:
                    await ws.send(frame)
            except ConnectionClosed:
                logger.debug("! socket closed while sending")

    async def _write(self, frame: str) -> bool:
        """Send one frame now; False when there is no open socket."""
        async with self._send_lock:
            ws = self._ws
            if ws is None or not self.connected:
                return False
            try:
                await ws.send(frame)
            except ConnectionClosed:
                return False
            return True
