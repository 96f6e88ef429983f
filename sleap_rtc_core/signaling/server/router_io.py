"""The signaling server: WebSocket and HTTP on one port, one asyncio loop.

Each TCP connection is an :class:`asyncio.Protocol` that first reads the request
head. A WebSocket upgrade goes to websockets' sans-I/O ``ServerProtocol`` and then
frame by frame to the :class:`~.router.Router`, synchronously inside
``data_received``: no task and no queue per connection, so an idle peer costs a
few kilobytes and a relayed message costs one parse. Any other request is plain
HTTP: ``/health`` and ``/metrics`` are answered here, the rest goes to the auth
API when one is configured.

Timers live here and nowhere else: the application ping every ``ping_interval``
(reference workers expect ``{"type":"ping"}``), dropping peers silent for two
intervals, and polling the store for credentials revoked by another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from ... import __version__
from ...aio import wait_for
from ...errors import SleapRTCError
from ...protocol import signaling as sig
from ...protocol.json_text import dumps_bytes
from ..http.wire import (
    MAX_HEAD_BYTES,
    HttpRequest,
    HttpResponse,
    parse_head,
    serialize_response,
)
from .claims import Claim, Verdict
from .limits import Limits
from .metrics import local_metrics, metrics_json, metrics_prometheus
from .registry import PeerRecord
from .router import Router
from .session import CLOSE_POLICY, Commit, RegisterRequest, Session

__all__ = [
    "Authenticator",
    "Backend",
    "HttpHandler",
    "ServerConfig",
    "SignalingServer",
]

logger = logging.getLogger(__name__)
_ws_logger = logging.getLogger("sleap_rtc_core.signaling.ws")
_ws_logger.setLevel(logging.WARNING)

VERSION = __version__
WRITE_BUFFER_LIMIT = 8 << 20
"""A peer that lets this much output pile up is presumed dead and dropped."""


class Authenticator(Protocol):
    """Checks ``register`` credentials (blocking; run in a thread)."""

    def authenticate(self, message: sig.Register) -> Any: ...


HttpHandler = Callable[[HttpRequest], Awaitable[HttpResponse]]


class Backend(Protocol):
    """Shares the router's registry with other server processes (e.g. Redis)."""

    async def start(self, router: Router) -> None: ...
    async def stop(self) -> None: ...

    async def commit(self, record: PeerRecord) -> None:
        """Return once every process can find ``record`` (bounded; never raises),
        so that its ``registered_auth`` goes out only then."""
        ...

    async def claim(self, claim: Claim) -> Verdict | None:
        """Decide a registration's credential count and admin claim for every
        process (bounded; never raises; ``None``: it cannot say now)."""
        ...

    def unclaim(self, claim: Claim) -> None:
        """Give back what an admitted claim took that no registration holds."""
        ...


@dataclass(slots=True)
class ServerConfig:
    """How to run a signaling server."""

    host: str = "127.0.0.1"
    """Address to listen on."""

    port: int = 8080
    """TCP port (0 picks a free one; read it back from ``server.port``)."""

    ping_interval: float = 20.0
    """Seconds between application pings; peers silent for two are dropped."""

    ice_servers: list[dict[str, Any]] = field(default_factory=list)
    """Sent to peers in ``registered_auth`` (``urls``, ``username``,
    ``credential``)."""

    limits: Limits = field(default_factory=Limits)
    """Frame, metadata, rate, room and connection bounds."""

    tls_cert: str | None = None
    """PEM certificate chain; with ``tls_key`` the server speaks wss/https."""

    tls_key: str | None = None
    """PEM private key for ``tls_cert``."""

    revocation_poll: float = 5.0
    """Seconds between checks for credentials revoked by another process."""

    announce_default: str = "all"
    """What a peer that sends no ``subscribe`` hears: ``"all"`` (every role's
    joins, leaves and updates, as 0.0.7 peers expect) or ``"none"`` (only the
    ``peer_left`` of its contacts)."""

    announce_interval: float = 0.05
    """Seconds between flushes of the coalesced room announcements: changes
    within one tick reach a subscriber as at most one frame per peer."""


class SignalingServer:
    """A running (or startable) signaling server.

    Args:
        config: Where and how to listen.
        authenticator: Checks credentials at ``register``.
        http: Handles HTTP requests other than ``/health`` and ``/metrics``.
        revocations: Returns credential ids revoked since a time (epoch s),
            polled every ``revocation_poll`` seconds; optional.
        router: Use this router (e.g. one wired to a replicating backend).
        backend: Started (and wired to the router) before the port is bound,
            stopped after the connections are closed.
    """

    def __init__(
        self,
        config: ServerConfig,
        authenticator: Authenticator,
        *,
        http: HttpHandler | None = None,
        revocations: Callable[[float], list[str]] | None = None,
        router: Router | None = None,
        backend: Backend | None = None,
    ) -> None:
        self.config = config
        self.authenticator = authenticator
        self.http = http
        self.revocations = revocations
        self.backend = backend
        self.router = router or Router(
            limits=config.limits,
            ice_servers=config.ice_servers,
            announce_default=config.announce_default,
        )
        self.started_at = time.time()
        self.connections: set[_Connection] = set()
        self.per_address: Counter[str] = Counter()
        """Open WebSocket connections per IP address."""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timers: list[asyncio.Task[None]] = []
        self._unflushed: list[_Connection] = []
        """Connections with frames queued this loop turn (written together)."""
        self._flush_handle: asyncio.Handle | None = None

    # --- lifecycle

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("server is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        """``ws://host:port`` (``wss`` with TLS)."""
        scheme = "wss" if self.config.tls_cert else "ws"
        return f"{scheme}://{self.config.host}:{self.port}"

    async def start(self) -> None:
        """Start the backend (if any), bind the port and start the timers."""
        loop = asyncio.get_running_loop()
        ssl_ctx = None
        if self.config.tls_cert:
            ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_ctx.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        if self.backend is not None:
            if hasattr(self.backend, "metrics_source"):
                self.backend.metrics_source = lambda: local_metrics(self)
            await self.backend.start(self.router)
        try:
            self._server = await loop.create_server(
                lambda: _Connection(self),
                self.config.host,
                self.config.port,
                ssl=ssl_ctx,
                reuse_address=True,
            )
        except BaseException:
            if self.backend is not None:
                await self.backend.stop()
            raise
        self._timers.append(asyncio.create_task(self._ping_loop()))
        self._timers.append(asyncio.create_task(self._announce_loop()))
        if self.revocations is not None:
            self._timers.append(asyncio.create_task(self._revocation_loop()))
        logger.info("listening on %s", self.url)

    async def stop(self) -> None:
        """Close every connection, stop the timers, release the port."""
        for timer in self._timers:
            timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._timers, *self._tasks, return_exceptions=True)
        self._timers.clear()
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.shutdown(1001, "server shutting down")
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await wait_for(self._server.wait_closed(), 5)
            self._server = None
        if self.backend is not None:
            await self.backend.stop()

    async def __aenter__(self) -> SignalingServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        """Run a task the server owns (cancelled at stop)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("! server task failed", exc_info=task.exception())

    # --- batched writes

    def flush_later(self, conn: _Connection) -> None:
        """Write ``conn``'s queued frames at the end of this loop turn, with
        every other connection's: one ``send`` per peer per turn, not per frame."""
        self._unflushed.append(conn)
        if self._flush_handle is None:
            loop = asyncio.get_running_loop()
            self._flush_handle = loop.call_soon(self._flush_all)

    def _flush_all(self) -> None:
        self._flush_handle = None
        conns, self._unflushed = self._unflushed, []
        for conn in conns:
            conn._flush()

    # --- timers

    async def _ping_loop(self) -> None:
        interval = self.config.ping_interval
        while True:
            await asyncio.sleep(interval)
            self.router.ping_all()
            for conn in list(self.connections):
                conn.send_ws_ping()
            self.router.drop_silent(2 * interval + 1)

    async def _announce_loop(self) -> None:
        interval = self.config.announce_interval
        while True:
            await asyncio.sleep(interval)
            self.router.flush_announcements()

    async def _revocation_loop(self) -> None:
        assert self.revocations is not None
        since = time.time()
        while True:
            await asyncio.sleep(self.config.revocation_poll)
            now = time.time()
            try:
                revoked = await asyncio.to_thread(self.revocations, since)
            except Exception:
                logger.exception("! could not poll revocations")
                continue
            since = now
            for credential_id in revoked:
                self.router.disconnect_credential(credential_id, "credential revoked")

    # --- register

    async def authenticate(self, request: RegisterRequest) -> None:
        """Check a ``register``'s credentials off the loop, then complete it
        (after the backend committed it, when the router asks for that)."""
        step: RegisterRequest | Claim | Commit | None = request
        while step is not None:
            if isinstance(step, Commit):
                if self.backend is not None:
                    await self.backend.commit(step.record)
                step = self.router.committed(step)
                continue
            if isinstance(step, Claim):
                claim = step
                verdict = None
                if self.backend is not None:
                    verdict = await self.backend.claim(claim)
                step = self.router.claimed(claim, verdict)
                admitted = verdict is not None and verdict.admitted
                if admitted and self.backend and self.router.claim_lapsed(claim):
                    self.backend.unclaim(claim)
                continue
            try:
                result = await asyncio.to_thread(
                    self.authenticator.authenticate, step.message
                )
            except SleapRTCError as exc:
                result = exc
            step = self.router.complete_register(step, result)

    # --- HTTP

    async def handle_http(self, request: HttpRequest) -> HttpResponse:
        """Answer one plain HTTP request."""
        if request.method == "GET" and request.path == "/health":
            return _json(200, self.health())
        if request.method == "GET" and request.path == "/metrics":
            if "text/plain" in request.headers.get("accept", ""):
                body = metrics_prometheus(self)
                return HttpResponse(200, body.encode(), "text/plain; version=0.0.4")
            return _json(200, metrics_json(self))
        if self.http is not None:
            return await self.http(request)
        return _json(404, {"detail": "Not Found"})

    def health(self) -> dict[str, Any]:
        """The ``/health`` body (reference keys)."""
        return {
            "status": "healthy",
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "version": VERSION,
        }


def _json(status: int, obj: Any) -> HttpResponse:
    return HttpResponse(status, dumps_bytes(obj))


class _Connection(asyncio.Protocol):
    """One TCP connection: HTTP request or WebSocket, decided by its first head."""

    __slots__ = (
        "_abort_timer",
        "_address",
        "_buf",
        "_deadline",
        "_resume",
        "_fragments",
        "_http_task",
        "_out",
        "host",
        "protocol",
        "remote",
        "server",
        "session",
        "transport",
    )

    def __init__(self, server: SignalingServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.protocol: ServerProtocol | None = None
        self.session: Session | None = None
        self._buf: bytearray | None = bytearray()
        self._fragments: list[bytes] | None = None
        self._out: list[bytes] | None = None
        """Text frames queued and not yet written (see ``flush_later``)."""
        self._http_task: asyncio.Task[Any] | None = None
        self._abort_timer: asyncio.TimerHandle | None = None
        self._resume: asyncio.TimerHandle | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._address: str | None = None
        """The IP address counted in ``server.per_address`` while open."""
        self.remote = "?"
        self.host = "?"

    # --- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; same API.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.remote = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.host = str(peer[0]) if peer else "?"
        self.server.connections.add(self)
        self._set_deadline(self.server.config.limits.head_timeout, self._head_late)

    def data_received(self, data: bytes) -> None:
        if self.protocol is not None:
            self.protocol.receive_data(data)
            self._process()
        elif self._buf is not None:
            self._sniff(data)

    def eof_received(self) -> bool | None:
        if self.protocol is not None:
            self.protocol.receive_eof()
            self._process()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self._address is not None:
            per_address = self.server.per_address
            per_address[self._address] -= 1
            if per_address[self._address] <= 0:
                del per_address[self._address]
            self._address = None
        if self.session is not None:
            self.server.router.closed(self.session)
            self.session = None
        if self._http_task is not None:
            self._http_task.cancel()
        if self._abort_timer is not None:
            self._abort_timer.cancel()
        if self._resume is not None:
            self._resume.cancel()
        self._set_deadline(None)

    # --- deadlines

    def _set_deadline(
        self, seconds: float | None, callback: Callable[[], None] | None = None
    ) -> None:
        """Replace the connection's one deadline (``None``: no deadline)."""
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if seconds is not None and callback is not None:
            loop = asyncio.get_running_loop()
            self._deadline = loop.call_later(seconds, callback)

    def _head_late(self) -> None:
        """No whole HTTP request in time: drop the connection."""
        self._deadline = None
        self.server.router.counters["timeout_head"] += 1
        logger.info("! %s sent no request within the head timeout", self.remote)
        if self.transport is not None:
            self.transport.abort()

    def _register_late(self) -> None:
        """An open WebSocket that has not registered in time is closed."""
        self._deadline = None
        session = self.session
        if session is None or session.peer is not None:
            return
        self.server.router.counters["timeout_register"] += 1
        seconds = self.server.config.limits.register_timeout
        self.shutdown(CLOSE_POLICY, f"register within {seconds:g} s of connecting")

    # --- sniffing the head

    def _sniff(self, data: bytes) -> None:
        assert self._buf is not None
        assert self.transport is not None
        self._buf += data
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > MAX_HEAD_BYTES:
                self._http_reply(HttpResponse(431, b'{"detail":"head too large"}'))
            return
        try:
            head = parse_head(bytes(self._buf[:end]))
        except SleapRTCError:
            self._http_reply(HttpResponse(400, b'{"detail":"bad request"}'))
            return
        if head.is_websocket:
            self._set_deadline(None)
            self._start_websocket()
            return
        try:
            length = head.content_length
        except SleapRTCError as exc:
            self._http_reply(HttpResponse(400, dumps_bytes({"detail": exc.message})))
            return
        if length > self.server.config.limits.max_http_body_bytes:
            self._http_reply(HttpResponse(413, b'{"detail":"body too large"}'))
            return
        body = bytes(self._buf[end + 4 :])
        if len(body) < length:
            return  # wait for the rest
        self._buf = None
        self._set_deadline(None)
        request = HttpRequest.from_head(head, body[:length], self.remote)
        self._http_task = self.server.spawn(self._serve_http(request))

    async def _serve_http(self, request: HttpRequest) -> None:
        try:
            response = await self.server.handle_http(request)
        except Exception:
            logger.exception("! HTTP handler failed for %s", request.path)
            response = HttpResponse(500, b'{"detail":"internal error"}')
        self._http_reply(response)

    def _http_reply(self, response: HttpResponse) -> None:
        self._buf = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(serialize_response(response))
            self.transport.close()

    # --- WebSocket

    def _start_websocket(self) -> None:
        assert self._buf is not None
        limits = self.server.config.limits
        self.protocol = ServerProtocol(
            max_size=limits.hard_frame_bytes, logger=_ws_logger
        )
        data, self._buf = bytes(self._buf), None
        self.protocol.receive_data(data)
        self._process()

    def _process(self) -> None:
        protocol = self.protocol
        assert protocol is not None
        for event in protocol.events_received():
            if isinstance(event, Request):
                self._handshake(event)
            elif isinstance(event, Frame):
                self._frame(event)
        self._flush()
        session = self.session
        if session is not None and session.throttled and self._resume is None:
            self._throttle(session)

    def _throttle(self, session: Session) -> None:
        """Stop reading a peer over its rate: what it sends meanwhile waits in
        TCP buffers (back-pressure on it), not in our loop's turn."""
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.pause_reading()
        delay = self.server.router.throttle_delay(session)
        self._resume = asyncio.get_running_loop().call_later(delay, self._unthrottle)

    def _unthrottle(self) -> None:
        """The pause is over: handle what was held, then read again (or pause
        once more if the budget does not cover all of it yet)."""
        self._resume = None
        session = self.session
        if session is not None:
            for request in self.server.router.replay(session):
                self.server.spawn(self.server.authenticate(request))
            self._flush()
            if session.throttled and not session.closed:
                self._throttle(session)
                return
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def _handshake(self, request: Request) -> None:
        assert self.protocol is not None
        server = self.server
        limits = server.config.limits
        if len(server.router.sessions) >= limits.max_connections:
            server.router.counters["limit_connections"] += 1
            response = self.protocol.reject(503, "server is full, try again later\n")
        elif server.per_address[self.host] >= limits.max_connections_per_address:
            server.router.counters["limit_connections_per_address"] += 1
            response = self.protocol.reject(
                503, "too many connections from this address, try again later\n"
            )
        else:
            response = self.protocol.accept(request)
        self.protocol.send_response(response)
        if response.status_code == 101:
            self._address = self.host
            server.per_address[self.host] += 1
            self.session = server.router.open(
                self.send_text, self.shutdown, self.remote, self.backlog
            )
            self._set_deadline(
                server.config.limits.register_timeout, self._register_late
            )

    def _frame(self, frame: Frame) -> None:
        session = self.session
        if session is None:
            return
        opcode = frame.opcode
        if opcode is Opcode.PONG or opcode is Opcode.PING:
            session.last_seen = time.monotonic()
            return
        if opcode is Opcode.CLOSE:
            return
        if opcode in (Opcode.TEXT, Opcode.BINARY) and frame.fin:
            self._message(session, frame.data)
            return
        # Fragmented message: collect up to the hard frame size.
        if opcode in (Opcode.TEXT, Opcode.BINARY):
            self._fragments = [bytes(frame.data)]
        elif opcode is Opcode.CONT and self._fragments is not None:
            self._fragments.append(bytes(frame.data))
            if frame.fin:
                data, self._fragments = b"".join(self._fragments), None
                self._message(session, data)

    def _message(self, session: Session, data: bytes | bytearray | memoryview) -> None:
        try:
            text = bytes(data).decode()
        except UnicodeDecodeError:
            text = "\x00"  # not JSON: answered with INVALID_JSON by the router
        request = self.server.router.receive(session, text)
        if request is not None:
            self.server.spawn(self.server.authenticate(request))

    def send_text(self, data: bytes) -> bool:
        """Queue one text frame; False when the connection cannot take it."""
        protocol = self.protocol
        transport = self.transport
        if (
            protocol is None
            or transport is None
            or protocol.state is not State.OPEN
            or transport.is_closing()
        ):
            return False
        if transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
            self.shutdown(CLOSE_POLICY, "too slow to read its messages")
            return False
        # A server's frames are unmasked and we negotiate no extension, so the
        # frame is a header and the data (what websockets would write).
        out = self._out
        if out is None:
            out = self._out = []
            self.server.flush_later(self)
        out.append(_text_header(len(data)))
        out.append(data)
        return True

    def backlog(self) -> int:
        """Bytes written and not yet taken by the kernel (0 once closed)."""
        transport = self.transport
        return 0 if transport is None else transport.get_write_buffer_size()

    def send_ws_ping(self) -> None:
        """A protocol-level ping; clients answer with a pong frame."""
        if self.protocol is not None and self.protocol.state is State.OPEN:
            self.protocol.send_ping(b"")
            self._flush()

    def shutdown(self, code: int, reason: str) -> None:
        """Close the WebSocket (or the raw connection) with ``code``."""
        protocol = self.protocol
        if protocol is not None and protocol.state is State.OPEN:
            protocol.send_close(code, reason[:120])
            self._flush()
        elif self.transport is not None:
            self.transport.close()

    def _flush(self) -> None:
        protocol, transport = self.protocol, self.transport
        if protocol is None or transport is None:
            return
        out = self._out
        if out is not None:
            self._out = None
            if not transport.is_closing():
                transport.write(b"".join(out))
        for chunk in protocol.data_to_send():
            if chunk:
                transport.write(chunk)
            elif transport.can_write_eof():
                transport.write_eof()
            else:
                transport.close()
        if (
            protocol.close_expected()
            and not transport.is_closing()
            and self._abort_timer is None
        ):
            loop = asyncio.get_running_loop()
            self._abort_timer = loop.call_later(2.0, transport.abort)


def _text_header(n: int) -> bytes:
    """The header of an unmasked, final text frame of ``n`` bytes (RFC 6455)."""
    if n < 126:
        return bytes((0x81, n))
    if n < 1 << 16:
        return b"\x81\x7e" + n.to_bytes(2, "big")
    return b"\x81\x7f" + n.to_bytes(8, "big")
