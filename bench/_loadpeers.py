"""The peers of ``load.py`` and the sustained ``peer_message`` load they carry.

Peers are :class:`~_wsload.RawWS` connections (raw frames, little work per
message) in this process. Peer ``i`` joins room ``i % rooms`` on server
``i % servers`` (round-robin) with the room's real token, and talks to one
partner in its room, ``i ± rooms`` (so with three servers a partner is always
on another process: every message crosses Redis).

The load: ``rate`` messages per second in all, for ``duration`` seconds, sent
round-robin by every peer to its partner (far below the per-peer rate limit),
each carrying a sequence number. Every delivery is checked (right recipient,
a sequence number still outstanding) and timed send → delivery on one clock
(both ends are in this process: one server hop, or two plus Redis). After the
last send the bench waits a bounded time for the stragglers; what never came
is lost. Anything else the peers receive is ignored except ``error`` frames,
which are counted.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from _wsload import RawWS, connect, masked_frame

__all__ = ["LoadResult", "Peer", "connect_peers", "run_load"]


@dataclass
class Peer:
    """One bench peer.

    Attributes:
        index: Its number; its peer id is ``load-<index>``.
        ws: Its connection.
        partner: The index of the peer it sends to.
        server: The index of the server it is connected to.
    """

    index: int
    ws: RawWS
    partner: int
    server: int

    @property
    def peer_id(self) -> str:
        """``load-<index>``."""
        return f"load-{self.index:05d}"


async def _register(ws: RawWS, peer_id: str, room_id: str, token: str) -> None:
    ws.send_json(
        {
            "type": "register",
            "peer_id": peer_id,
            "role": "worker" if int(peer_id[-5:]) % 2 else "client",
            "room_id": room_id,
            "token": token,
            "metadata": {"tags": ["sleap-rtc", "load"], "properties": {}},
        }
    )
    while True:
        kind = json.loads(await ws.recv(30.0)).get("type")
        if kind == "registered_auth":
            return
        if kind == "error":
            raise RuntimeError(f"register {peer_id} refused")


async def connect_peers(
    ports: list[int],
    rooms: list[tuple[str, str]],
    n: int,
    concurrency: int = 32,
) -> list[Peer]:
    """Connect and register ``n`` peers, round-robin over ``ports`` and ``rooms``.

    Raises:
        ValueError: ``n`` is not a multiple of twice the number of rooms.
        RuntimeError, ConnectionError, TimeoutError: a peer could not register.
    """
    if n % (2 * len(rooms)):
        raise ValueError(f"peers ({n}) must be a multiple of 2 x rooms")
    slots = asyncio.Semaphore(concurrency)
    k = len(rooms)

    async def one(i: int) -> Peer:
        async with slots:
            server = i % len(ports)
            ws = await connect(ports[server], timeout=30.0)
            room_id, token = rooms[i % k]
            partner = i + k if (i // k) % 2 == 0 else i - k
            peer = Peer(i, ws, partner, server)
            await _register(ws, peer.peer_id, room_id, token)
            return peer

    peers = await asyncio.gather(*(one(i) for i in range(n)))
    return list(peers)


@dataclass
class LoadResult:
    """What one sustained load gave.

    Attributes:
        sent: Messages sent.
        delivered: Messages delivered to their addressee, once.
        errors: ``error`` frames the peers received.
        misrouted: Deliveries to the wrong peer, or of an unknown/duplicate seq.
        latencies_ms: Send → delivery of each delivered message.
        send_seconds: How long sending took (``sent`` / this = offered rate).
        error_samples: The first few error frames, for the report.
    """

    sent: int = 0
    delivered: int = 0
    errors: int = 0
    misrouted: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    send_seconds: float = 0.0
    error_samples: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        """Messages sent and never delivered."""
        return self.sent - self.delivered


def _template(peer: Peer, size: int) -> tuple[bytes, bytes]:
    """The frame text around the sequence number: ``head + seq + tail``."""
    obj: dict[str, Any] = {
        "type": "peer_message",
        "from_peer_id": peer.peer_id,
        "to_peer_id": f"load-{peer.partner:05d}",
        "payload": {"app": "load", "seq": 1234567890, "pad": ""},
    }
    base = len(json.dumps(obj, separators=(",", ":")))
    obj["payload"]["pad"] = "x" * max(0, size - base)
    head, tail = json.dumps(obj, separators=(",", ":")).split("1234567890")
    return head.encode(), tail.encode()


async def run_load(
    peers: list[Peer],
    rate: float,
    duration: float,
    size: int = 256,
    drain_timeout: float = 10.0,
) -> LoadResult:
    """Send ``rate`` msg/s for ``duration`` s; wait for the deliveries; count."""
    result = LoadResult()
    sent_at: dict[int, float] = {}

    def receiver(peer: Peer) -> Any:
        me = peer.peer_id

        def on_text(payload: bytes) -> None:
            msg = json.loads(payload)
            kind = msg.get("type")
            if kind == "peer_message":
                now = time.perf_counter()
                seq = msg.get("payload", {}).get("seq")
                t = sent_at.pop(seq, None)
                if t is None or msg.get("to_peer_id") != me:
                    result.misrouted += 1
                    return
                result.delivered += 1
                result.latencies_ms.append((now - t) * 1e3)
            elif kind == "error":
                result.errors += 1
                if len(result.error_samples) < 3:
                    result.error_samples.append(payload[:200].decode(errors="replace"))

        return on_text

    for peer in peers:
        peer.ws.inbox.clear()
        peer.ws.on_count = None
        peer.ws.on_text = receiver(peer)
    templates = [_template(p, size) for p in peers]
    total = int(rate * duration)
    n = len(peers)
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    seq = 0
    t0 = time.perf_counter()
    while seq < total:
        due = min(total, int((loop.time() - start) * rate) + 1)
        while seq < due:
            i = seq % n
            head, tail = templates[i]
            frame = masked_frame(head + str(seq).encode() + tail)
            sent_at[seq] = time.perf_counter()
            peers[i].ws.write(frame)
            seq += 1
        await asyncio.sleep(max(0.0, start + seq / rate - loop.time()))
    result.send_seconds = time.perf_counter() - t0
    result.sent = seq
    for _ in range(max(1, int(drain_timeout / 0.01))):
        if not sent_at:
            break
        await asyncio.sleep(0.01)
    return result
