"""Run every benchmark in ``bench/`` and print its figures (``make bench``).

Usage from the repository root::

    .venv/bin/python bench/run_all.py            # full runs (minutes)
    .venv/bin/python bench/run_all.py --quick    # about a minute in all
    .venv/bin/python bench/run_all.py --only signaling

A benchmark is a script ``bench/<name>.py`` with a module-level
``BENCHMARK = "<one-line title>"`` that accepts ``--quick``; this file finds them
by that line (without importing them) and runs each in its own process with this
interpreter, one after another so that they do not disturb each other's figures.
Helper modules (``_*.py``) and ``bare_relay.py`` carry no marker. Figures are
printed, never asserted: a run fails only when a benchmark crashes.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["find_benchmarks", "main"]

_BENCH = Path(__file__).resolve().parent
_MARKER = re.compile(r'^BENCHMARK = "(?P<title>[^"]*)"', re.MULTILINE)


def find_benchmarks(folder: Path = _BENCH) -> list[tuple[str, str, Path]]:
    """(name, title, path) of every benchmark script in ``folder``, by name."""
    found = []
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_") or path.resolve() == Path(__file__).resolve():
            continue
        match = _MARKER.search(path.read_text(encoding="utf-8"))
        if match is not None:
            found.append((path.stem, match["title"], path))
    return found


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns non-zero when a benchmark failed."""
    parser = argparse.ArgumentParser(description="Run every benchmark in bench/.")
    parser.add_argument("--quick", action="store_true", help="short runs of each")
    parser.add_argument(
        "--only", action="append", metavar="NAME", help="run only these (repeatable)"
    )
    args = parser.parse_args(argv)
    benches = find_benchmarks()
    if args.only:
        unknown = set(args.only) - {name for name, _, _ in benches}
        if unknown:
            parser.error(f"no benchmark named {', '.join(sorted(unknown))}")
        benches = [b for b in benches if b[0] in args.only]
    outcomes: list[tuple[str, int, float]] = []
    for name, title, path in benches:
        print(f"\n######## {name}: {title}", flush=True)
        argv_child = [sys.executable, str(path), *(["--quick"] if args.quick else [])]
        t0 = time.perf_counter()
        try:
            rc = subprocess.run(argv_child, cwd=_BENCH.parent, check=False).returncode
        except KeyboardInterrupt:
            print("\ninterrupted", file=sys.stderr)
            return 130
        outcomes.append((name, rc, time.perf_counter() - t0))
    print("\n######## done")
    for name, rc, took in outcomes:
        state = "ok" if rc == 0 else f"FAILED (exit {rc})"
        print(f"  {name:<20} {state:<18} {took:6.1f} s")
    return 0 if all(rc == 0 for _, rc, _ in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
