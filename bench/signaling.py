"""Signaling server benchmark: prints figures; never run as a test.

Run by hand from the repository root::

    .venv/bin/python bench/signaling.py            # about 2 minutes
    .venv/bin/python bench/signaling.py --quick    # about 20 s
    .venv/bin/python bench/signaling.py --profile  # also cProfile our server

One run measures, on 127.0.0.1 only (``bench/README.md`` says what each figure
means and how to read it):

1. ``peer_message`` deliveries/s at saturation through one server process, for
   our server and for the bare relay of ``bench/bare_relay.py``, driven by the
   same load generator (``_throughput.py``); the ratio ours/bare is the figure
   DESIGN.md sets a target for (≥ 1.4x). Then the round-trip latency of
   ``peer_message`` at a moderate fixed rate.
2. Server RSS per idle connected peer, and how many peers were connected.
3. ``discover_peers`` round-trip latency with 1,000, 5,000 and 10,000 peers in
   one room, for several filters (``_capacity.py``).
4. Filling one room with 1,000 and 5,000 peers, ours against the bare relay.

It ends with the three goals of the room-scale issue beside their targets:
throughput ours / bare relay (≥ 1.4x), filling 5,000 peers ours / bare relay
(≤ 2x) and RSS per idle peer (≤ 30 KB).

Servers run in child processes (``_servers.py``, ``_server_child.py``); the load
generator runs here on uvloop (``_wsload.py``). The figures are printed per
phase and then as a Markdown summary (``_report.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from _capacity import (
    DiscoveryResult,
    MemoryResult,
    RegisterResult,
    run_discovery,
    run_fill,
    run_memory,
)
from _cprofile import print_profile, run_profile
from _report import (
    machine_line,
    phase,
    print_discovery,
    print_goals,
    print_memory,
    print_round,
    print_summary,
    print_throughput,
)
from _servers import kill_leftovers, raise_fd_limit, start_target
from _throughput import LoadSettings, ThroughputResult, run_throughput
from _wsload import RawWS

__all__ = ["BENCHMARK", "main"]

BENCHMARK = "signaling server: throughput, latency, discovery, memory"
"""Marks this script as a benchmark for ``bench/run_all.py``."""

MAIN_TARGET = "ours-asyncio"
"""Our server as it ships (the default asyncio loop)."""

T = TypeVar("T")


async def bounded(coro: Awaitable[T], budget: float, what: str) -> T:
    """Await ``coro`` for at most ``budget`` seconds.

    Raises:
        RuntimeError: It did not finish in time.
    """
    try:
        return await asyncio.wait_for(coro, budget)
    except TimeoutError:
        raise RuntimeError(f"{what} did not finish within {budget:.0f} s") from None


async def throughput_round(target: str, load: LoadSettings) -> ThroughputResult:
    """Start ``target``, saturate it, measure latency, stop it."""
    child = await start_target(target, ping_interval=300)
    try:
        return await run_throughput(child, load)
    finally:
        await child.stop()


async def phase_throughput(
    targets: list[str], rounds: int, load: LoadSettings
) -> list[ThroughputResult]:
    """Phase 1 over every target, ``rounds`` times, alternating the order."""
    per_run = load.warmup + load.duration + load.latency_duration + 25
    results: list[ThroughputResult] = []
    budget = len(targets) * rounds * per_run
    with phase("1. peer_message throughput at saturation + latency", budget):
        for rnd in range(rounds):
            # Alternate the order so that drift in machine load hits all alike.
            order = targets if rnd % 2 == 0 else targets[::-1]
            for target in order:
                res = await bounded(
                    throughput_round(target, load), per_run, f"throughput on {target}"
                )
                print_round(rnd, res)
                results.append(res)
        print_throughput(results, load)
    return results


async def memory_of(
    target: str,
    args: argparse.Namespace,
    then: Callable[[Any], Awaitable[T]] | None = None,
) -> tuple[MemoryResult, T | None]:
    """RSS per idle peer of ``target``; ``then(child)`` runs while peers stay."""
    child = await start_target(target, ping_interval=20)
    peers: list[RawWS] = []
    try:
        mem, peers = await bounded(
            run_memory(child, args.idle_peers, 100, args.settle), 120, "memory"
        )
        extra = None if then is None else await then(child)
        return mem, extra
    finally:
        for ws in peers:
            ws.abort()
        await child.stop()


async def amain(args: argparse.Namespace, load: LoadSettings) -> int:
    """Run the phases and print their figures."""
    soft = raise_fd_limit(2 * args.idle_peers + 4 * load.pairs + 1024)
    print(f"signaling bench{' (quick)' if args.quick else ''}: {machine_line()}")
    print(f"RLIMIT_NOFILE soft={soft}; loopback only. On a shared or small machine")
    print("compare ratios within one run, not absolute figures across runs.")

    targets = ["bare", MAIN_TARGET, *(["ours-uvloop"] if args.uvloop else [])]
    throughput = await phase_throughput(targets, args.rounds, load)

    memory: list[MemoryResult] = []
    with phase("2+3. memory per idle peer, then discover_peers latency", 300):

        async def discover(child: Any) -> tuple[list[Any], list[Any]]:
            return await bounded(
                run_discovery(child, args.discovery_sizes, args.queries),
                150,
                "discovery",
            )

        mem, found = await memory_of(MAIN_TARGET, args, discover)
        memory.append(mem)
        disc: list[DiscoveryResult] = found[0] if found else []
        regs: list[RegisterResult] = found[1] if found else []
        if args.bare_memory:
            memory.append((await memory_of("bare", args))[0])
        print_memory(memory)
        print_discovery(disc, regs)

    fills: dict[int, dict[str, float]] = {}
    with phase("4. filling one room: ours vs the bare relay", 300):
        for n in args.fill_sizes:
            took = fills[n] = {}
            for target in ("bare", MAIN_TARGET):
                child = await start_target(target, ping_interval=20)
                try:
                    took[target] = await bounded(
                        run_fill(child, n), 120, f"fill {n} on {target}"
                    )
                finally:
                    await child.stop()
            ratio = took[MAIN_TARGET] / max(took["bare"], 1e-9)
            print(
                f"room fill {n:>6,}: bare {took['bare']:.2f} s, "
                f"{MAIN_TARGET} {took[MAIN_TARGET]:.2f} s ({ratio:.2f}x; target <= 2x)"
            )

    if args.profile:
        with phase(f"profile: {MAIN_TARGET} under cProfile at saturation", 60):
            path = await bounded(run_profile(MAIN_TARGET, load, 3.0), 60, "profile")
            print_profile(path)

    print_summary(throughput, memory, disc, load, MAIN_TARGET)
    print_goals(throughput, memory, fills, MAIN_TARGET)
    return 0


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, LoadSettings]:
    """Options, with ``--quick`` choosing the defaults not given."""
    parser = argparse.ArgumentParser(
        description="Signaling server benchmark (prints figures)."
    )
    parser.add_argument("--quick", action="store_true", help="a ~20 s run")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile our server with cProfile (file under bench/results/)",
    )
    parser.add_argument(
        "--uvloop",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also measure our server on uvloop (full run: on; see README)",
    )
    parser.add_argument("--pairs", type=int, default=32, help="sender/receiver pairs")
    parser.add_argument("--window", type=int, default=64, help="in flight per sender")
    parser.add_argument("--batch", type=int, default=16, help="frames per write")
    parser.add_argument("--msg-bytes", type=int, default=256, help="frame payload")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--duration", type=float, default=None)
    parser.add_argument("--warmup", type=float, default=None)
    parser.add_argument("--latency-rate", type=float, default=1000.0)
    parser.add_argument("--latency-duration", type=float, default=None)
    parser.add_argument("--idle-peers", type=int, default=None)
    parser.add_argument("--queries", type=int, default=None)
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "rounds": 1 if quick else 2,
        "duration": 2.0 if quick else 5.0,
        "warmup": 0.5 if quick else 1.5,
        "latency_duration": 1.5 if quick else 3.0,
        "idle_peers": 1000 if quick else 3000,
        "queries": 60 if quick else 300,
        "uvloop": not quick,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.bare_memory = not quick
    args.settle = 0.5 if quick else 1.5
    args.discovery_sizes = [1000, 5000, 10000]
    args.fill_sizes = [1000, 5000]
    load = LoadSettings(
        pairs=args.pairs,
        window=args.window,
        batch=args.batch,
        msg_bytes=args.msg_bytes,
        warmup=args.warmup,
        duration=args.duration,
        latency_rate=args.latency_rate,
        latency_duration=args.latency_duration,
    )
    return args, load


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args, load = parse_args(argv)
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        factory = None
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(amain(args, load))
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped", file=sys.stderr)
        return 130
    finally:
        kill_leftovers()


if __name__ == "__main__":
    sys.exit(main())
