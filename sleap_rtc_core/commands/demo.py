"""``sleap-rtc demo``: the first five minutes, end to end on loopback."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from ..errors import SleapRTCError
from ._job_view import JobView

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``demo`` to the CLI."""
    parser = sub.add_parser(
        "demo",
        help="train a tiny model remotely on loopback (server, worker, client)",
        description="Start an embedded signaling server and worker on 127.0.0.1, "
        "make a tiny labeled dataset and train it remotely over WebRTC.",
    )
    parser.add_argument("--epochs", type=int, default=3, help="epochs to train")
    parser.add_argument(
        "--workdir", type=Path, help="the worker's mount (default: a temp folder)"
    )
    parser.set_defaults(handler=run)


async def _demo(args: argparse.Namespace) -> None:
    """The demo with ``train``'s own progress display (:class:`JobView`): the
    epoch lines on stdout, the live bar or paced status lines on stderr."""
    from ..client.progress_view import TrainingProgress
    from ..client.remote_job import JobCallbacks
    from ..demo import run_demo  # imports torch and aiortc: only when asked

    view = JobView(TrainingProgress(total_epochs=args.epochs))
    async with view.display:
        await run_demo(
            sys.stdout,
            epochs=args.epochs,
            workdir=args.workdir,
            callbacks=JobCallbacks(
                on_progress=view.on_progress, on_message=view.on_message
            ),
            on_wait=view.wait,
            on_job=lambda _job: view.accepted(),
        )


def run(args: argparse.Namespace) -> int:
    """Run the demo; exit 0 when the model was trained."""
    if args.epochs < 1:
        sys.stderr.write("sleap-rtc: error: --epochs must be at least 1\n")
        return 2
    try:
        asyncio.run(_demo(args))
    except SleapRTCError as exc:
        sys.stderr.write(f"sleap-rtc: demo failed: {exc.message}\n")
        return 1
    return 0
