"""Phases 2 and 3: memory per idle peer, and ``discover_peers`` in large rooms.

Memory: server RSS after a warm-up and a settle pause, then again after ``n``
peers connected and registered (rooms of 100, metadata like real workers and
clients) and stay idle, answering pings. The difference over ``n`` is the cost
of one idle peer: socket buffers, the WebSocket protocol object, the session and
the registry record with its indexes.

Discovery: one registered client in a room that the server child's seeding hook
fills to 1,000, 5,000, 10,000 peers (registry records without sockets, see
``_server_child.py``); each filter of :data:`DISCOVERY_FILTERS` is timed as the
round trip of ``discover_peers`` → ``peer_list``. Then one more peer registers
into the full room, whose ``registered_auth`` lists every peer.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from _profiles import DISCOVERY_FILTERS, peer_profile
from _servers import Child
from _wsload import RawWS, connect, discard, http_request, masked_frame, register

__all__ = [
    "DiscoveryResult",
    "MemoryResult",
    "RegisterResult",
    "run_discovery",
    "run_memory",
]


@dataclass
class MemoryResult:
    """RSS before/after connecting idle peers.

    Attributes:
        target: The server's label.
        peers: Idle peers connected and registered.
        rss_before_kb: RSS before they connected.
        rss_after_kb: RSS after, once settled.
        connect_s: Wall time to connect and register them all.
        metrics: The server's ``/metrics`` afterwards (ours only).
    """

    target: str
    peers: int
    rss_before_kb: int
    rss_after_kb: int
    connect_s: float
    metrics: dict[str, Any]

    @property
    def per_peer_kb(self) -> float:
        """RSS growth per idle peer, KiB."""
        return (self.rss_after_kb - self.rss_before_kb) / max(1, self.peers)


@dataclass
class DiscoveryResult:
    """Latency of one filter at one room size."""

    room_size: int
    filter_name: str
    latencies_ms: list[float]
    count: int
    reply_bytes: int


@dataclass
class RegisterResult:
    """One peer registering into a populated room."""

    room_size: int
    ms: float
    reply_bytes: int


async def _connect_idle_peers(
    child: Child, n: int, room_size: int, prefix: str
) -> tuple[list[RawWS], float]:
    """Connect and register ``n`` peers (rooms of ``room_size``); they stay idle."""
    sem = asyncio.Semaphore(64)
    peers: list[RawWS] = []

    async def one(i: int) -> None:
        async with sem:
            ws = await connect(child.port, timeout=30)
            peers.append(ws)
            role, metadata = peer_profile(i)
            room = f"{prefix}-room-{i // room_size:03d}"
            await register(ws, f"{prefix}-{i:05d}", room, role, metadata, timeout=60)
            ws.inbox.clear()
            ws.on_count = discard  # later room events are read and dropped

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return peers, time.perf_counter() - t0


async def run_fill(child: Child, n: int) -> float:
    """Seconds for ``n`` peers to connect and register into one room, each
    subscribed to no announcements (as our workers are; the bare relay ignores
    the key and sends none anyway)."""
    sem = asyncio.Semaphore(64)
    peers: list[RawWS] = []

    async def one(i: int) -> None:
        async with sem:
            ws = await connect(child.port, timeout=30)
            peers.append(ws)
            await register(
                ws,
                f"fill-{i:05d}",
                "fill-room",
                "worker",
                timeout=60,
                subscribe={"roles": []},
            )
            ws.inbox.clear()
            ws.on_count = discard

    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(one(i) for i in range(n)))
        return time.perf_counter() - t0
    finally:
        for ws in peers:
            ws.abort()


async def run_memory(
    child: Child, n: int, room_size: int, settle: float
) -> tuple[MemoryResult, list[RawWS]]:
    """RSS of ``child`` before and after ``n`` idle peers connect and register.

    Returns:
        The result, and the idle peers (still connected; the caller aborts them).
    """
    warm, _ = await _connect_idle_peers(child, 32, room_size, prefix="warm")
    for ws in warm:
        ws.abort()
    await asyncio.sleep(settle)
    before = child.rss_kb()
    peers, took = await _connect_idle_peers(child, n, room_size, prefix="idle")
    await asyncio.sleep(settle)
    after = child.rss_kb()
    metrics: dict[str, Any] = {}
    if child.name.startswith("ours"):
        status, body = await http_request(child.port, "GET", "/metrics")
        if status == 200:
            metrics = json.loads(body)
    return MemoryResult(child.name, n, before, after, took, metrics), peers


def _discover_frame(flt: dict[str, Any]) -> bytes:
    msg = {"type": "discover_peers", "from_peer_id": "disc-client", "filters": flt}
    return masked_frame(json.dumps(msg, separators=(",", ":")).encode())


async def _time_filter(
    client: RawWS, flt: dict[str, Any], queries: int
) -> tuple[list[float], bytes]:
    frame = _discover_frame(flt)
    lat: list[float] = []
    reply = b""
    for k in range(queries + 10):
        t0 = time.perf_counter()
        client.write(frame)
        reply = await client.recv_type("peer_list")
        if k >= 10:  # the first few warm the caches
            lat.append((time.perf_counter() - t0) * 1e3)
    return lat, reply


async def run_discovery(
    child: Child, sizes: list[int], queries: int
) -> tuple[list[DiscoveryResult], list[RegisterResult]]:
    """``discover_peers`` round trips from one client in a room of each size.

    Raises:
        RuntimeError: The seeding hook failed.
    """
    room = "disc-room"
    client = await connect(child.port)
    await register(client, "disc-client", room, "client", peer_profile(1)[1])
    results: list[DiscoveryResult] = []
    registers: list[RegisterResult] = []
    seeded = 0
    try:
        for size in sizes:
            status, body = await http_request(
                child.port,
                "POST",
                "/bench/seed",
                {"room_id": room, "start": seeded, "count": size - 1 - seeded},
            )
            if status != 200:
                raise RuntimeError(f"seeding failed: {status} {body[:200]!r}")
            seeded = size - 1
            room_size = json.loads(body)["room_size"]
            for name, flt in DISCOVERY_FILTERS.items():
                lat, reply = await _time_filter(client, flt, queries)
                count = int(reply[reply.rindex(b":") + 1 : -1])
                results.append(DiscoveryResult(room_size, name, lat, count, len(reply)))
            newcomer = await connect(child.port)
            t0 = time.perf_counter()
            auth = await register(newcomer, "disc-newcomer", room, "client")
            ms = (time.perf_counter() - t0) * 1e3
            registers.append(RegisterResult(room_size, ms, len(auth)))
            newcomer.abort()
            await asyncio.sleep(0.05)
            client.inbox.clear()
    finally:
        client.abort()
    return results, registers
