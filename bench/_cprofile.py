"""``--profile``: our server at saturation under cProfile, and where time goes.

cProfile runs inside the server child (started and stopped through its
``/bench/profile/...`` hook); the file lands in ``bench/results/`` (ignored by
git) for ``snakeviz`` or ``pstats``, and the top functions are printed.
"""

from __future__ import annotations

import dataclasses
import pstats
import time
from pathlib import Path
from typing import Any

from _servers import start_target
from _throughput import LoadSettings, run_throughput
from _wsload import http_request

__all__ = ["print_profile", "run_profile"]

_ROOT = Path(__file__).resolve().parent.parent
_RESULTS = _ROOT / "bench" / "results"


async def run_profile(target: str, load: LoadSettings, duration: float) -> Path:
    """A saturation run of ``target`` under cProfile; returns the stats file."""
    _RESULTS.mkdir(exist_ok=True)
    path = _RESULTS / f"signaling-{target}-{time.strftime('%Y%m%d-%H%M%S')}.prof"
    child = await start_target(target, ping_interval=300)
    try:
        await http_request(child.port, "POST", "/bench/profile/start", {})
        res = await run_throughput(
            child, dataclasses.replace(load, duration=duration), latency=False
        )
        await http_request(
            child.port, "POST", "/bench/profile/stop", {"path": str(path)}
        )
        print(f"  (under cProfile: {res.rate:,.0f} msg/s; cProfile slows it down)")
    finally:
        await child.stop()
    return path


def print_profile(path: Path, top: int = 25) -> None:
    """Top functions by own time, and own time grouped by module."""
    stats = pstats.Stats(str(path))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values()) or 1.0
    rows = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)
    print(f"\n  cProfile of our server at saturation ({path.relative_to(_ROOT)})")
    print(f"  {'own %':>6} {'cum %':>6} {'calls':>10}  function")
    for (file, line, func), (_, ncalls, tt, ct, _) in rows[:top]:
        print(
            f"  {100 * tt / total:6.1f} {100 * ct / total:6.1f} {ncalls:10d}  "
            f"{_short(file)}:{line}({func})"
        )
    groups: dict[str, float] = {}
    for (file, _, func), (_, _, tt, _, _) in raw.items():
        key = _module_group(file, func)
        groups[key] = groups.get(key, 0.0) + tt
    print("\n  own time by module")
    for key, tt in sorted(groups.items(), key=lambda kv: kv[1], reverse=True)[:15]:
        print(f"  {100 * tt / total:6.1f}  {key}")


def _short(file: str) -> str:
    for marker in ("site-packages/", "sleap_rtc_core/", "lib/python3"):
        if marker in file:
            return file[file.index(marker) :]
    return file


def _module_group(file: str, func: str) -> str:
    if file == "~":
        return f"builtins ({func.split(' ')[-1].strip('>')[:40]})"
    if "sleap_rtc_core/" in file:
        return file[file.index("sleap_rtc_core/") :]
    if "site-packages/" in file:
        return file[file.index("site-packages/") :].split("/")[1]
    return "stdlib " + Path(file).name
