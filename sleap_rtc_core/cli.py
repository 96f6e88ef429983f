"""The ``sleap-rtc`` command line.

Each command group lives in its own module under :mod:`sleap_rtc_core.commands`
and adds its sub-commands through ``register(subparsers)``; every public module of
that package is loaded, so adding a command never touches this file. Packages the
core must not import (the Qt GUI) add theirs through the entry-point group
``sleap_rtc.commands``, so ``sleap-rtc gui`` exists only when the GUI is installed.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

from . import __version__

__all__ = ["build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """The full parser: core commands plus those plugins register."""
    parser = argparse.ArgumentParser(
        prog="sleap-rtc",
        description="Remote training and inference for SLEAP over WebRTC.",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)"
    )
    parser.add_argument(
        "--version", action="version", version=f"sleap-rtc {__version__}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from . import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{commands.__name__}.{info.name}").register(sub)
    for ep in entry_points(group="sleap_rtc.commands"):
        try:
            ep.load()(sub)
        except ImportError as exc:  # the GUI extra is not installed
            logging.getLogger(__name__).debug("skipping %s: %s", ep.name, exc)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sleap-rtc``; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(message)s")
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
