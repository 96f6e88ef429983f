"""The load generator's WebSocket client: raw frames, as little work as possible.

A Python client built on ``websockets`` costs about as much per message as the
server it drives, so the generator would saturate first and every server would
look alike. :class:`RawWS` is an :class:`asyncio.Protocol` that does the
handshake by hand, writes pre-encoded masked frames, and in counting mode reads
only frame headers. The helpers around it (``connect``, ``register``, a one-shot
HTTP request, quantiles, CPU time) are what every bench phase shares.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import resource
from collections import deque
from collections.abc import Callable
from typing import Any, cast

__all__ = [
    "HOST",
    "TOKEN",
    "RawWS",
    "connect",
    "discard",
    "gen_cpu_seconds",
    "http_request",
    "masked_frame",
    "pct",
    "poll_until",
    "register",
]

HOST = "127.0.0.1"
"""Every bench socket is on loopback."""

TOKEN = "bench-token"
"""Any non-empty token passes the bench authenticator."""

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def masked_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One complete client frame (FIN set, masked as RFC 6455 requires)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 1 << 16:
        head = bytes((0x80 | opcode, 0xFE)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0xFF)) + n.to_bytes(8, "big")
    key = os.urandom(4)
    mask = (key * (n // 4 + 1))[:n]
    masked = int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")
    return head + key + masked.to_bytes(n, "big")


def discard(n: int) -> None:
    """An ``on_count`` that reads frames and drops them (idle peers)."""


class RawWS(asyncio.Protocol):
    """A WebSocket client connection that does as little as possible per frame.

    Modes: with ``on_count`` set, text frames are only counted (header parsing
    only) and ``on_count(n)`` is called once per read; otherwise each text
    payload goes to ``on_text`` (by default into ``inbox``). Pings are answered;
    nothing is buffered without bound (a reader drains every read).

    Attributes:
        on_count: Counting mode when set.
        on_text: Called with each text payload outside counting mode.
        inbox: Payloads collected by the default ``on_text``.
        text_frames: Text frames received so far.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance.
        self.transport: asyncio.WriteTransport | None = None
        self.is_open = False
        self.closed = False
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._key = base64.b64encode(os.urandom(16))
        self._head = b""
        self._tail = b""
        self.on_count: Callable[[int], None] | None = None
        self.on_text: Callable[[bytes], None] = self._collect
        self.inbox: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.text_frames = 0

    # --- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.WriteTransport, transport)
        self.transport.write(
            b"GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n" % (HOST.encode(), self.port, self._key)
        )

    def data_received(self, data: bytes) -> None:
        if self.is_open:
            self._frames(data)
            return
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            return
        head, rest = self._head[:end], self._head[end + 4 :]
        self._head = b""
        accept = base64.b64encode(hashlib.sha1(self._key + _WS_GUID).digest())
        if not head.startswith(b"HTTP/1.1 101") or accept not in head:
            if not self.opened.done():
                self.opened.set_exception(
                    ConnectionError(f"handshake refused: {head[:80]!r}")
                )
            self.abort()
            return
        self.is_open = True
        if not self.opened.done():
            self.opened.set_result(None)
        if rest:
            self._frames(rest)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("connection lost"))
        self._wake()

    # --- frames

    def _frames(self, data: bytes) -> None:
        if self._tail:
            data = self._tail + data
        n = len(data)
        i = 0
        count = 0
        counting = self.on_count is not None
        while i + 2 <= n:
            ln = data[i + 1]  # server frames are never masked
            if ln < 126:
                start = i + 2
            elif ln == 126:
                if i + 4 > n:
                    break
                ln = (data[i + 2] << 8) | data[i + 3]
                start = i + 4
            else:
                if i + 10 > n:
                    break
                ln = int.from_bytes(data[i + 2 : i + 10], "big")
                start = i + 10
            end = start + ln
            if end > n:
                break
            b0 = data[i]
            if b0 == 0x81:
                if counting:
                    count += 1
                else:
                    self.on_text(data[start:end])
            else:
                self._control(b0 & 0x0F, data[start:end])
            i = end
        self._tail = data[i:] if i < n else b""
        if count and self.on_count is not None:
            self.text_frames += count
            self.on_count(count)

    def _control(self, opcode: int, payload: bytes) -> None:
        if opcode == 0x9:  # ping
            self.write(masked_frame(payload, 0xA))
        elif opcode == 0x8:  # close: answer and let the server close TCP
            self.write(masked_frame(payload[:2], 0x8))
            self.closed = True
            self._wake()
        elif opcode in (0x1, 0x0):
            raise RuntimeError("fragmented frames are not expected from servers")

    def _collect(self, payload: bytes) -> None:
        self.text_frames += 1
        self.inbox.append(payload)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # --- API

    def write(self, data: bytes) -> None:
        """Write raw bytes (one or more complete frames)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def send_json(self, obj: Any) -> None:
        """Send ``obj`` as one compact JSON text frame."""
        self.write(masked_frame(json.dumps(obj, separators=(",", ":")).encode()))

    async def recv(self, timeout: float = 10.0) -> bytes:
        """The next text payload (collect mode).

        Raises:
            ConnectionError: The connection closed first.
            TimeoutError: Nothing arrived within ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.inbox:
            if self.closed:
                raise ConnectionError("connection closed")
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError("no message")
            self._waiter = loop.create_future()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._waiter, left)
            self._waiter = None
        return self.inbox.popleft()

    async def recv_type(self, type_: str, timeout: float = 10.0) -> bytes:
        """The next payload whose ``type`` is ``type_`` (others are dropped)."""
        prefix = b'{"type":"%s"' % type_.encode()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            payload = await self.recv(max(0.001, deadline - loop.time()))
            if payload.startswith(prefix) or json.loads(payload).get("type") == type_:
                return payload

    def abort(self) -> None:
        """Drop the TCP connection without a closing handshake."""
        if self.transport is not None:
            self.transport.abort()


async def connect(port: int, timeout: float = 10.0) -> RawWS:
    """Open a WebSocket connection to 127.0.0.1:``port``."""
    loop = asyncio.get_running_loop()
    _, proto = await asyncio.wait_for(
        loop.create_connection(lambda: RawWS(port), HOST, port), timeout
    )
    await asyncio.wait_for(proto.opened, timeout)
    return proto


async def register(
    ws: RawWS,
    peer_id: str,
    room_id: str,
    role: str = "peer",
    metadata: dict[str, Any] | None = None,
    timeout: float = 15.0,
    subscribe: dict[str, Any] | None = None,
) -> bytes:
    """Register and wait for ``registered_auth``; returns its payload.

    Raises:
        RuntimeError: The server answered with an ``error``.
    """
    ws.send_json(
        {
            "type": "register",
            "peer_id": peer_id,
            "role": role,
            "room_id": room_id,
            "token": TOKEN,
            "metadata": metadata or {},
            **({} if subscribe is None else {"subscribe": subscribe}),
        }
    )
    while True:
        payload = await ws.recv(timeout)
        kind = json.loads(payload).get("type")
        if kind == "registered_auth":
            return payload
        if kind == "error":
            raise RuntimeError(f"register {peer_id} failed: {payload[:200]!r}")


async def http_request(
    port: int, method: str, path: str, body: Any = None, timeout: float = 30.0
) -> tuple[int, bytes]:
    """One plain HTTP/1.1 request to a server child; returns (status, body)."""

    async def go() -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection(HOST, port)
        data = b"" if body is None else json.dumps(body).encode()
        writer.write(
            b"%s %s HTTP/1.1\r\nHost: %s\r\nAccept: application/json\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s"
            % (method.encode(), path.encode(), HOST.encode(), len(data), data)
        )
        raw = await reader.read()
        writer.close()
        head, _, rest = raw.partition(b"\r\n\r\n")
        return int(head.split()[1]), rest

    return await asyncio.wait_for(go(), timeout)


async def poll_until(done: Callable[[], bool], timeout: float) -> bool:
    """Check ``done`` every 10 ms for at most ``timeout`` seconds."""
    for _ in range(max(1, int(timeout / 0.01))):
        if done():
            return True
        await asyncio.sleep(0.01)
    return done()


def gen_cpu_seconds() -> float:
    """CPU time of this (load generator) process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pct(values: list[float], q: float) -> float:
    """The ``q``-quantile (0..1) of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]
