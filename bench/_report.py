"""Printing the signaling bench's figures: per-phase tables and a summary.

The per-phase tables show everything a run measured (CPU per message on both
sides, so that a saturated generator is visible). The summary at the end is a
Markdown table in the shape of the README's performance section, for pasting.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator

from _capacity import DiscoveryResult, MemoryResult, RegisterResult
from _profiles import DISCOVERY_FILTERS
from _throughput import LoadSettings, ThroughputResult
from _wsload import pct

__all__ = [
    "machine_line",
    "median_rates",
    "median_server_us",
    "phase",
    "print_discovery",
    "print_goals",
    "print_memory",
    "print_round",
    "print_summary",
    "print_throughput",
]


def machine_line() -> str:
    """Python, CPU model, core count and load: what the figures depend on."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"python {sys.version.split()[0]}, {model}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}"
    )


@contextlib.contextmanager
def phase(name: str, budget: float) -> Iterator[None]:
    """Print a phase header, then its wall time."""
    print(f"\n== {name} (bounded to {budget:.0f} s)", flush=True)
    t0 = time.perf_counter()
    yield
    print(f"   [{time.perf_counter() - t0:.1f} s]", flush=True)


def print_round(rnd: int, res: ThroughputResult) -> None:
    """One saturation run, as it finishes."""
    print(
        f"   round {rnd + 1} {res.target:<13} {res.rate:>9,.0f} msg/s "
        f"(server CPU {100 * res.server_cpu:.0f}%, generator "
        f"{100 * res.gen_cpu:.0f}%)",
        flush=True,
    )


def _by_target(results: list[ThroughputResult]) -> dict[str, list[ThroughputResult]]:
    by: dict[str, list[ThroughputResult]] = {}
    for r in results:
        by.setdefault(r.target, []).append(r)
    return by


def median_rates(results: list[ThroughputResult]) -> dict[str, float]:
    """Target → median deliveries/s over its rounds."""
    return {
        t: statistics.median(x.rate for x in rs)
        for t, rs in _by_target(results).items()
    }


def median_server_us(results: list[ThroughputResult]) -> dict[str, float]:
    """Target → median server CPU µs per delivered message over its rounds."""
    return {
        t: statistics.median(x.server_us_per_msg for x in rs)
        for t, rs in _by_target(results).items()
    }


def print_throughput(results: list[ThroughputResult], load: LoadSettings) -> None:
    """Saturation table, medians with the ratio to the bare relay, latency."""
    print(
        f"\n  pairs={load.pairs} window={load.window}/sender batch={load.batch} "
        f"frame≈{load.msg_bytes} B; measured {load.duration:.0f} s after "
        f"{load.warmup:.1f} s warm-up"
    )
    print(
        f"  {'target':<14}{'msg/s':>10}{'srv CPU':>9}{'srv µs/msg':>12}"
        f"{'gen CPU':>9}{'gen µs/msg':>12}{'errors':>8}"
    )
    for r in results:
        print(
            f"  {r.target:<14}{r.rate:>10,.0f}{100 * r.server_cpu:>8.0f}%"
            f"{r.server_us_per_msg:>12.1f}{100 * r.gen_cpu:>8.0f}%"
            f"{r.gen_us_per_msg:>12.1f}{r.errors:>8}"
        )
    by = _by_target(results)
    med = median_rates(results)
    cpu = median_server_us(results)
    print("\n  median over rounds:")
    for t in by:
        line = f"  {t:<14}{med[t]:>10,.0f} msg/s  {cpu[t]:6.1f} µs server CPU/msg"
        if t != "bare" and "bare" in med:
            line += (
                f"   ours/bare = {med[t] / med['bare']:.2f}x (target ≥ 1.4x);"
                f" CPU/msg bare/ours = {cpu['bare'] / cpu[t]:.2f}x"
            )
        print(line)
    print(
        f"\n  peer_message round trip at {load.latency_rate:.0f} msg/s "
        f"over {load.pairs} pairs ({load.latency_duration:.0f} s per server):"
    )
    for t, rs in by.items():
        lat = [x for r in rs for x in r.latencies_ms]
        lost = sum(r.latency_lost for r in rs)
        if lat:
            print(
                f"  {t:<14}p50 {pct(lat, 0.5):6.3f} ms   p99 {pct(lat, 0.99):6.3f} ms"
                f"   max {max(lat):6.2f} ms   n={len(lat)} lost={lost}"
            )


def print_memory(results: list[MemoryResult]) -> None:
    """RSS per idle peer for each server measured."""
    for m in results:
        print(
            f"\n  {m.target}: {m.peers} idle peers (rooms of 100, metadata like "
            f"real workers/clients) connected+registered in {m.connect_s:.1f} s "
            f"({m.peers / m.connect_s:,.0f}/s)"
        )
        print(
            f"  RSS {m.rss_before_kb / 1024:.1f} MiB → {m.rss_after_kb / 1024:.1f} MiB"
            f"  =  {m.per_peer_kb:.1f} KB per idle peer"
            + ("  (target ≤ 30 KB)" if m.target.startswith("ours") else "")
        )
        if m.metrics:
            met = m.metrics
            print(
                f"  /metrics: active_connections={met.get('active_connections')} "
                f"peers_by_role={met.get('peers_by_role')} "
                f"active_rooms={met.get('active_rooms')}"
            )


def print_discovery(results: list[DiscoveryResult], regs: list[RegisterResult]) -> None:
    """discover_peers latency per room size and filter; register into big rooms."""
    print(
        "\n  discover_peers round trip from one registered client (the room is"
        " filled\n  through the bench seeding hook; see README), target p50 ≤ 1 ms"
        " at 5,000:"
    )
    for name, flt in DISCOVERY_FILTERS.items():
        print(f"    {name:<10} = {json.dumps(flt)}")
    print(
        f"  {'peers':>6} {'filter':<10} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'results':>8} {'reply B':>9}"
    )
    for r in results:
        print(
            f"  {r.room_size:>6} {r.filter_name:<10} {pct(r.latencies_ms, 0.5):>8.3f}"
            f" {pct(r.latencies_ms, 0.99):>8.3f} {r.count:>8} {r.reply_bytes:>9,}"
        )
    print("\n  one more peer registering into that room (registered_auth lists all):")
    for g in regs:
        print(
            f"  {g.room_size:>6} peers: {g.ms:8.2f} ms, "
            f"registered_auth {g.reply_bytes:,} B"
        )


def print_summary(
    throughput: list[ThroughputResult],
    memory: list[MemoryResult],
    discovery: list[DiscoveryResult],
    load: LoadSettings,
    main_target: str,
) -> None:
    """The figures of this run as a Markdown table for the README."""
    med = median_rates(throughput)
    rows: list[tuple[str, str, str]] = []
    for m in memory:
        if m.target == main_target:
            rows.append(
                (
                    "Idle peers connected to one process",
                    f"{m.peers:,} (registered in {m.connect_s:.1f} s)",
                    "—",
                )
            )
    for t, rate in med.items():
        rows.append((f"`peer_message` deliveries/s, {t}", f"{rate:,.0f}", "—"))
    if "bare" in med:
        for t, rate in med.items():
            if t != "bare":
                ratio = rate / med["bare"]
                rows.append((f"Throughput ratio {t} / bare", f"{ratio:.2f}x", "≥ 1.4x"))
    cpu = median_server_us(throughput)
    if "bare" in cpu:
        for t, us in cpu.items():
            if t != "bare":
                rows.append(
                    (
                        f"Server CPU per delivered message, {t} (bare: "
                        f"{cpu['bare']:.0f} µs)",
                        f"{us:.0f} µs ({cpu['bare'] / us:.2f}x less)",
                        "—",
                    )
                )
    lat = [x for r in throughput if r.target == main_target for x in r.latencies_ms]
    if lat:
        rows.append(
            (
                f"`peer_message` round trip at {load.latency_rate:.0f} msg/s "
                f"(p50 / p99), {main_target}",
                f"{pct(lat, 0.5):.2f} / {pct(lat, 0.99):.2f} ms",
                "—",
            )
        )
    for d in discovery:
        if d.filter_name in ("narrow", "unindexed"):
            indexed = d.filter_name == "narrow"
            target = "p50 ≤ 1 ms" if indexed and d.room_size == 5000 else "—"
            rows.append(
                (
                    f"`discover_peers` ({d.filter_name}, {d.count} found) in a room "
                    f"of {d.room_size:,} (p50 / p99)",
                    f"{pct(d.latencies_ms, 0.5):.2f} / "
                    f"{pct(d.latencies_ms, 0.99):.2f} ms",
                    target,
                )
            )
    for m in memory:
        target = "≤ 30 KB" if m.target.startswith("ours") else "—"
        rows.append(
            (f"Server RSS per idle peer, {m.target}", f"{m.per_peer_kb:.1f} KB", target)
        )
    print(f"\n  Summary ({machine_line()}):\n")
    print("  | Figure | This run | Target |")
    print("  |---|---|---|")
    for name, value, target in rows:
        print(f"  | {name} | {value} | {target} |")


def print_goals(
    throughput: list[ThroughputResult],
    memory: list[MemoryResult],
    fills: dict[int, dict[str, float]],
    main_target: str,
) -> None:
    """The three figures the issue sets goals for, each beside its target."""
    rows: list[tuple[str, str, str, bool | None]] = []
    med = median_rates(throughput)
    if "bare" in med and main_target in med:
        ratio = med[main_target] / max(med["bare"], 1e-9)
        rows.append(
            (
                "saturated peer_message deliveries/s, ours / bare relay",
                f"{ratio:.2f}x",
                ">= 1.4x",
                ratio >= 1.4,
            )
        )
    for n, took in sorted(fills.items()):
        if "bare" in took and main_target in took:
            ratio = took[main_target] / max(took["bare"], 1e-9)
            rows.append(
                (
                    f"filling a room of {n:,} peers, ours / bare relay (time)",
                    f"{ratio:.2f}x",
                    "<= 2x" if n >= 5000 else "—",
                    ratio <= 2.0 if n >= 5000 else None,
                )
            )
    for m in memory:
        if m.target == main_target:
            rows.append(
                (
                    f"server RSS per idle registered peer ({m.peers:,} peers)",
                    f"{m.per_peer_kb:.1f} KB",
                    "<= 30 KB",
                    m.per_peer_kb <= 30.0,
                )
            )
    print(f"\n  Goals (one run; {machine_line()}):\n")
    print(f"  {'figure':<58} {'this run':>10}  {'target':<8} verdict")
    for name, value, target, met in rows:
        verdict = "—" if met is None else ("met" if met else "NOT MET")
        print(f"  {name:<58} {value:>10}  {target:<8} {verdict}")
