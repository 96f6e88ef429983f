"""Phase 1: ``peer_message`` deliveries/s at saturation, then round-trip latency.

Saturation: ``pairs`` sender → receiver flows, each pair alone in its room, each
sender keeping at most ``window`` messages in flight and writing ``batch`` frames
per write; a receiver counts frames by their headers and refills its sender.
The rate is deliveries counted at the receivers over ``duration`` seconds after
``warmup``; server and generator CPU are read over the same interval.

Latency: on the same connections, messages are sent at a fixed moderate rate
(far below saturation) and each one's send → delivery time is taken; both ends
are in this process, so it is one server hop plus two loopback hops.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from _servers import Child
from _wsload import RawWS, connect, gen_cpu_seconds, masked_frame, poll_until, register

__all__ = ["LoadSettings", "ThroughputResult", "message_body", "run_throughput"]


@dataclass(frozen=True)
class LoadSettings:
    """How hard and how long phase 1 drives a server."""

    pairs: int = 32
    """Sender/receiver pairs, one room each."""

    window: int = 64
    """Messages in flight per sender."""

    batch: int = 16
    """Frames per write."""

    msg_bytes: int = 256
    """Size of one ``peer_message`` frame's JSON."""

    warmup: float = 1.5
    """Seconds of load before measuring."""

    duration: float = 5.0
    """Seconds measured."""

    latency_rate: float = 1000.0
    """Messages per second in the latency run."""

    latency_duration: float = 3.0
    """Seconds of the latency run."""


@dataclass
class _Counters:
    """Counters shared by the pairs of one run."""

    delivered: int = 0
    errors: int = 0
    stopping: bool = False

    def on_error(self, n: int) -> None:
        # Anything a sender receives during the run is an error reply.
        self.errors += n


@dataclass
class _Pair:
    """One sender → receiver flow with a bounded window of messages in flight."""

    sender: RawWS
    receiver: RawWS
    batch_bytes: bytes
    batch: int
    window: int
    counters: _Counters
    sent: int = 0
    received: int = 0

    def pump(self) -> None:
        if self.counters.stopping:
            return
        while self.sent - self.received <= self.window - self.batch:
            self.sender.write(self.batch_bytes)
            self.sent += self.batch

    def on_delivered(self, n: int) -> None:
        self.received += n
        self.counters.delivered += n
        self.pump()


@dataclass
class ThroughputResult:
    """Figures of one saturation run plus the latency run on the same server.

    Attributes:
        target: The server's label.
        rate: Deliveries per second at saturation.
        server_cpu: Server CPU seconds per second (1.0 = one core busy).
        gen_cpu: Load generator CPU seconds per second.
        errors: Frames the senders received (error replies).
        latencies_ms: Round trips of the latency run.
        latency_lost: Latency-run messages never delivered.
    """

    target: str
    rate: float
    server_cpu: float
    gen_cpu: float
    errors: int
    latencies_ms: list[float] = field(default_factory=list)
    latency_lost: int = 0

    @property
    def server_us_per_msg(self) -> float:
        """Server CPU microseconds per delivered message."""
        return 1e6 * self.server_cpu / max(1.0, self.rate)

    @property
    def gen_us_per_msg(self) -> float:
        """Generator CPU microseconds per delivered message."""
        return 1e6 * self.gen_cpu / max(1.0, self.rate)


def message_body(i: int, size: int, seq: int = -1) -> bytes:
    """A ``peer_message`` from ``s<i>`` to ``r<i>`` of about ``size`` bytes."""
    payload: dict[str, Any] = {
        "app": "job_status",
        "job_id": f"job-{i:04d}",
        "seq": seq,
        "pad": "",
    }
    obj = {
        "type": "peer_message",
        "from_peer_id": f"s{i:04d}",
        "to_peer_id": f"r{i:04d}",
        "payload": payload,
    }
    base = len(json.dumps(obj, separators=(",", ":")))
    payload["pad"] = "x" * max(0, size - base)
    return json.dumps(obj, separators=(",", ":")).encode()


async def _open_pairs(port: int, n: int) -> list[tuple[RawWS, RawWS]]:
    """Connect and register ``n`` (sender, receiver) pairs, each in its own room."""
    out = []
    for i in range(n):
        receiver = await connect(port)
        await register(receiver, f"r{i:04d}", f"tp{i:04d}")
        sender = await connect(port)
        await register(sender, f"s{i:04d}", f"tp{i:04d}")
        out.append((sender, receiver))
    await asyncio.sleep(0.3)  # let peer_joined frames arrive before counting
    for sender, receiver in out:
        sender.inbox.clear()
        receiver.inbox.clear()
    return out


async def run_throughput(
    child: Child, load: LoadSettings, latency: bool = True
) -> ThroughputResult:
    """Saturate ``child`` with peer_messages, then measure latency at a fixed rate."""
    conns = await _open_pairs(child.port, load.pairs)
    counters = _Counters()
    pairs = []
    for i, (sender, receiver) in enumerate(conns):
        frame = masked_frame(message_body(i, load.msg_bytes))
        pair = _Pair(
            sender, receiver, frame * load.batch, load.batch, load.window, counters
        )
        receiver.on_count = pair.on_delivered
        sender.on_count = counters.on_error
        pairs.append(pair)
    try:
        for pair in pairs:
            pair.pump()
        await asyncio.sleep(load.warmup)
        d0, c0, g0 = counters.delivered, child.cpu_seconds(), gen_cpu_seconds()
        t0 = time.perf_counter()
        await asyncio.sleep(load.duration)
        d1, c1, g1 = counters.delivered, child.cpu_seconds(), gen_cpu_seconds()
        elapsed = time.perf_counter() - t0
        counters.stopping = True
        await poll_until(lambda: all(p.received >= p.sent for p in pairs), 5.0)
        result = ThroughputResult(
            target=child.name,
            rate=(d1 - d0) / elapsed,
            server_cpu=(c1 - c0) / elapsed,
            gen_cpu=(g1 - g0) / elapsed,
            errors=counters.errors,
        )
        if latency:
            for sender, receiver in conns:
                sender.on_count = None
                receiver.on_count = None
                sender.inbox.clear()
            result.latencies_ms, result.latency_lost = await _run_latency(
                conns, load.latency_rate, load.latency_duration, load.msg_bytes
            )
        return result
    finally:
        for sender, receiver in conns:
            sender.abort()
            receiver.abort()


async def _run_latency(
    conns: list[tuple[RawWS, RawWS]], rate: float, duration: float, size: int
) -> tuple[list[float], int]:
    """Round trip of peer_messages sent at ``rate``/s, spread over the pairs."""
    total = int(rate * duration)
    sent_at: dict[int, float] = {}
    latencies: list[float] = []

    def on_text(payload: bytes) -> None:
        seq = json.loads(payload)["payload"]["seq"]
        t = sent_at.pop(seq, None)
        if t is not None:
            latencies.append((time.perf_counter() - t) * 1e3)

    for _, receiver in conns:
        receiver.on_text = on_text
    # Pre-build the frames so that the send side costs the same at any rate.
    frames = [
        masked_frame(message_body(seq % len(conns), size, seq)) for seq in range(total)
    ]
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    seq = 0
    while seq < total:
        due = min(total, int((loop.time() - start) * rate) + 1)
        while seq < due:
            sender = conns[seq % len(conns)][0]
            sent_at[seq] = time.perf_counter()
            sender.write(frames[seq])
            seq += 1
        await asyncio.sleep(max(0.0, start + seq / rate - loop.time()))
    await poll_until(lambda: not sent_at, 3.0)
    return latencies, len(sent_at)
