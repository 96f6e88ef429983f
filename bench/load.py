"""Load: many peers in rooms, on one server process and on three behind Redis.

Usage from the repository root::

    .venv/bin/python bench/load.py            # 1,000 peers, 10 rooms, 20 s
    .venv/bin/python bench/load.py --quick    # 200 peers, 10 rooms, 5 s
    .venv/bin/python bench/load.py --peers 2000 --rate 4000 --duration 30

Two topologies, one after the other, each with fresh processes:

1. **one process**: ``sleap-rtc server`` (in-memory registry, the default);
2. **three processes + Redis**: a ``redis-server`` and three ``sleap-rtc server
   --redis`` processes sharing it and one data folder; peers connect to the
   three round-robin, as behind a TCP load balancer.

The servers are the real command (real room tokens in SQLite, default limits,
uvloop when installed), not the signaling bench's child with shortcuts. Peers
register in their room (see ``_loadpeers.py``), then carry a sustained
``peer_message`` load at a fixed rate for a bounded time. Figures: messages
sent and delivered (lost = the difference), misrouted, error frames, send →
delivery p50/p99, server CPU during the load, and each server's RSS before the
peers, with them, and after the load. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from _loadpeers import LoadResult, Peer, connect_peers, run_load  # noqa: E402
from _loadsetup import Proc, create_rooms, start_redis, start_server  # noqa: E402
from _servers import raise_fd_limit  # noqa: E402
from _wsload import gen_cpu_seconds, pct  # noqa: E402

__all__ = ["BENCHMARK", "main"]

BENCHMARK = "Load: 1,000 peers in 10 rooms, one server process and three on Redis"


@dataclass
class TopologyResult:
    """One topology's figures.

    Attributes:
        name: Its label.
        servers: Server labels, in peer round-robin order.
        rss_kb: Per server: RSS before peers, with peers, after the load.
        cpu: Per server: CPU seconds per second during the load.
        idle_cpu: Per server: the same while the peers sit idle (settling).
        load_seconds: How long the load (sending + draining) lasted.
        peers_per_server: Per server: how many peers it holds.
        redis_rss_kb: Redis RSS after the load (0 without Redis).
        redis_cpu: Redis CPU seconds per second during the load.
        gen_cpu: This (load generator) process's CPU during the load.
        connect_seconds: Connecting and registering every peer.
        load: The load's counts and latencies.
        stderr_lines: Per server: lines written to stderr over the whole run.
    """

    name: str
    servers: list[str] = field(default_factory=list)
    rss_kb: list[tuple[int, int, int]] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    idle_cpu: list[float] = field(default_factory=list)
    load_seconds: float = 0.0
    peers_per_server: list[int] = field(default_factory=list)
    redis_rss_kb: int = 0
    redis_cpu: float = 0.0
    gen_cpu: float = 0.0
    connect_seconds: float = 0.0
    load: LoadResult = field(default_factory=LoadResult)
    stderr_lines: list[int] = field(default_factory=list)


async def run_topology(
    name: str, processes: int, use_redis: bool, args: argparse.Namespace
) -> TopologyResult:
    """Start the processes, load them, stop them (always, bounded)."""
    out = TopologyResult(name)
    redis: Proc | None = None
    servers: list[Proc] = []
    peers: list[Peer] = []
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        data_dir = Path(tmp) / "data"
        rooms = await asyncio.to_thread(create_rooms, data_dir, args.rooms)
        try:
            if use_redis:
                redis = await start_redis(Path(tmp))
            for k in range(processes):
                # One after another: the first creates the shared JWT keys.
                servers.append(
                    await start_server(
                        f"server-{k + 1}", data_dir, redis.url if redis else None
                    )
                )
            out.servers = [s.name for s in servers]
            await asyncio.sleep(1.0)
            before = [s.rss_kb() for s in servers]
            t0 = time.perf_counter()
            peers = await asyncio.wait_for(
                connect_peers([s.port for s in servers], rooms, args.peers),
                args.connect_timeout,
            )
            out.connect_seconds = time.perf_counter() - t0
            print(
                f"  {name}: {len(peers):,} peers registered in "
                f"{out.connect_seconds:.1f} s",
                flush=True,
            )
            out.peers_per_server = [
                sum(p.server == k for p in peers) for k in range(processes)
            ]
            await asyncio.sleep(1.0)  # peer_joined fan-out done
            idle0, t_idle = [s.cpu_seconds() for s in servers], time.perf_counter()
            await asyncio.sleep(args.settle)
            idle_s = time.perf_counter() - t_idle
            out.idle_cpu = [
                (s.cpu_seconds() - c) / idle_s
                for s, c in zip(servers, idle0, strict=True)
            ]
            with_peers = [s.rss_kb() for s in servers]
            cpu0 = [s.cpu_seconds() for s in servers]
            redis0 = redis.cpu_seconds() if redis else 0.0
            gen0 = gen_cpu_seconds()
            t1 = time.perf_counter()
            out.load = await run_load(peers, args.rate, args.duration, args.size)
            elapsed = out.load_seconds = time.perf_counter() - t1
            out.cpu = [
                (s.cpu_seconds() - c) / elapsed
                for s, c in zip(servers, cpu0, strict=True)
            ]
            out.gen_cpu = (gen_cpu_seconds() - gen0) / elapsed
            if redis is not None:
                out.redis_cpu = (redis.cpu_seconds() - redis0) / elapsed
            after = [s.rss_kb() for s in servers]
            out.rss_kb = list(zip(before, with_peers, after, strict=True))
            out.redis_rss_kb = redis.rss_kb() if redis else 0
        finally:
            for peer in peers:
                peer.ws.abort()
            await asyncio.sleep(0.5)
            for server in servers:
                out.stderr_lines.append(await server.stop())
            if redis is not None:
                await redis.stop()
        _print_stderr(servers)
    return out


def _print_stderr(servers: list[Proc]) -> None:
    for s in servers:
        total = sum(s.stderr_lines.values())
        if total:
            print(f"   ({s.name} wrote {total:,} lines to stderr; most frequent:")
            for line, n in s.stderr_lines.most_common(3):
                print(f"      {n:>7,} x {line!r}")
            print("   )", flush=True)


def _print_topology(r: TopologyResult, args: argparse.Namespace) -> None:
    ld = r.load
    lat = ld.latencies_ms
    print(f"\n{r.name}:")
    print(
        f"  sent {ld.sent:,} in {ld.send_seconds:.1f} s "
        f"({ld.sent / max(ld.send_seconds, 1e-9):,.0f} msg/s offered), "
        f"delivered {ld.delivered:,}, lost {ld.lost:,}, misrouted "
        f"{ld.misrouted:,}, error frames {ld.errors:,}"
    )
    for sample in ld.error_samples:
        print(f"    error: {sample}")
    print(
        f"  latency send → delivery p50 {pct(lat, 0.5) if lat else float('nan'):.2f}"
        f" ms, p99 {pct(lat, 0.99) if lat else float('nan'):.2f} ms, "
        f"max {max(lat, default=float('nan')):.2f} ms"
    )
    rows = zip(r.servers, r.rss_kb, r.cpu, r.idle_cpu, r.peers_per_server, strict=True)
    for name, (b, w, a), cpu, idle, n in rows:
        print(
            f"  {name}: RSS {b / 1024:.1f} MiB idle → {w / 1024:.1f} MiB with "
            f"{n:,} peers ({(w - b) / max(n, 1):.1f} KB/peer) → "
            f"{a / 1024:.1f} MiB after the load; CPU {idle:.0%} with idle peers, "
            f"{cpu:.0%} during the load"
        )
    if r.redis_rss_kb:
        print(
            f"  redis-server: RSS {r.redis_rss_kb / 1024:.1f} MiB, "
            f"CPU {r.redis_cpu:.0%} during the load"
        )
    print(f"  load generator (this process): CPU {r.gen_cpu:.0%} during the load")


def _p50_p99(lat: list[float]) -> str:
    if not lat:
        return "—"
    return f"{pct(lat, 0.5):.2f} / {pct(lat, 0.99):.2f} ms"


def _ratio(r: TopologyResult, base: TopologyResult) -> float:
    """``r``'s delivered/sent over ``base``'s (1.000: loses no more than one
    process does)."""
    mine = r.load.delivered / max(r.load.sent, 1)
    theirs = base.load.delivered / max(base.load.sent, 1)
    return mine / theirs if theirs else float("nan")


def _summary(results: list[TopologyResult], args: argparse.Namespace) -> None:
    print(
        f"\n### Figures ({args.peers:,} peers, {args.rooms} rooms, "
        f"{args.rate:,.0f} msg/s for {args.duration:g} s, {args.size} B messages)\n"
    )
    print("| Figure | " + " | ".join(r.name for r in results) + " |")
    print("|---|" + "---|" * len(results))

    def row(label: str, cells: list[str]) -> None:
        print(f"| {label} | " + " | ".join(cells) + " |")

    row("Peers connected + registered", [f"{r.connect_seconds:.1f} s" for r in results])
    row(
        "`peer_message`s sent / delivered",
        [f"{r.load.sent:,} / {r.load.delivered:,}" for r in results],
    )
    row(
        "Lost / misrouted / error frames",
        [f"{r.load.lost} / {r.load.misrouted} / {r.load.errors}" for r in results],
    )
    row(
        "Delivered / sent",
        [f"{r.load.delivered / max(r.load.sent, 1):.2%}" for r in results],
    )
    row(
        "Delivery ratio vs 1 process",
        [
            f"{_ratio(r, results[0]):.3f}" if results[0].load.sent else "—"
            for r in results
        ],
    )
    rates = [r.load.delivered / max(r.load_seconds, 1e-9) for r in results]
    row("Deliveries/s during the load", [f"{x:,.0f}" for x in rates])
    row(
        "Deliveries/s vs 1 process (target ≥ 0.50 at saturation)",
        [f"{x / rates[0]:.2f}" if rates[0] else "—" for x in rates],
    )
    row(
        "Latency send → delivery p50 / p99",
        [_p50_p99(r.load.latencies_ms) for r in results],
    )
    row(
        "Server RSS with peers (each process)",
        [
            " + ".join(f"{w / 1024:.0f}" for _, w, _ in r.rss_kb) + " MiB"
            for r in results
        ],
    )
    row(
        "Server RSS growth per connected peer",
        [f"{sum(w - b for b, w, _ in r.rss_kb) / args.peers:.1f} KB" for r in results],
    )
    row(
        "Server CPU during the load (each process)",
        [" + ".join(f"{c:.0%}" for c in r.cpu) for r in results],
    )
    row(
        "Server CPU with the peers idle (each process)",
        [" + ".join(f"{c:.0%}" for c in r.idle_cpu) for r in results],
    )
    row(
        "Server CPU per delivered message (all processes)",
        [
            f"{1e6 * sum(r.cpu) * r.load_seconds / max(r.load.delivered, 1):.0f} µs"
            for r in results
        ],
    )
    row(
        "Redis RSS",
        [
            f"{r.redis_rss_kb / 1024:.1f} MiB" if r.redis_rss_kb else "—"
            for r in results
        ],
    )


async def run(args: argparse.Namespace) -> None:
    """Both topologies, one after the other."""
    raise_fd_limit(2 * args.peers + 512)
    print(
        f"{args.peers:,} peers in {args.rooms} rooms; {args.rate:,.0f} msg/s of "
        f"{args.size} B peer_messages for {args.duration:g} s, each peer to one "
        "partner in its room",
        flush=True,
    )
    results = [await run_topology("1 process", 1, False, args)]
    _print_topology(results[-1], args)
    results.append(
        await run_topology(
            f"{args.processes} processes + Redis", args.processes, True, args
        )
    )
    _print_topology(results[-1], args)
    _summary(results, args)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=BENCHMARK)
    parser.add_argument("--quick", action="store_true", help="200 peers, 5 s")
    parser.add_argument("--peers", type=int, default=None, help="peers (1000)")
    parser.add_argument("--rooms", type=int, default=10, help="rooms (10)")
    parser.add_argument("--processes", type=int, default=3, help="behind Redis (3)")
    parser.add_argument("--rate", type=float, default=None, help="msg/s in all")
    parser.add_argument("--duration", type=float, default=None, help="seconds")
    parser.add_argument("--size", type=int, default=256, help="bytes per message")
    parser.add_argument("--settle", type=float, default=2.0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--connect-timeout", type=float, default=300.0, help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.peers is None:
        args.peers = 200 if args.quick else 1000
    if args.duration is None:
        args.duration = 5.0 if args.quick else 20.0
    if args.rate is None:
        args.rate = 1000.0 if args.quick else 2000.0
    if args.peers % (2 * args.rooms) or args.peers < 2 * args.rooms:
        parser.error("--peers must be a positive multiple of 2 x --rooms")
    if min(args.rate, args.duration, args.processes) <= 0:
        parser.error("--rate, --duration and --processes must be positive")
    try:
        import uvloop
    except ImportError:
        asyncio.run(run(args))
    else:
        uvloop.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
