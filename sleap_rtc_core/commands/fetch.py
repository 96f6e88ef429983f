"""``sleap-rtc fetch``: bring a finished job's models or predictions here.

A copy that stopped half-way (Ctrl-C, a dropped connection, a closed laptop)
goes on where it stopped: the files already here are checked by SHA-256 and
kept. The job's secret, which the client kept when the job was accepted
(``~/.local/state/sleap-rtc/job-secrets.json``), shows the worker the job is
ours, from any process and any peer id. ``train`` and ``track`` print this
command when their copy is interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from ..client.legacy_job import is_legacy_worker
from ..client.model_download import download_models, download_predictions
from ..client.progress_view import TransferProgress, Waiting
from ..client.remote_job import RemoteJob
from ..errors import CredentialsError, JobError, SleapRTCError
from ..protocol.channel_transfer import model_run_dirs
from ..transport.loopback import LOOPBACK_ENV
from ..transport.peer import open_channel
from ._connect import (
    add_connection_args,
    channel_auth,
    client_register,
    connected,
    find_worker,
)
from ._env_help import add_env_help
from ._output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    add_quiet_arg,
    fail,
    say,
    say_result,
    set_quiet,
)
from ._progress import ProgressDisplay

__all__ = ["register", "run_fetch"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``fetch`` to the CLI."""
    parser = sub.add_parser(
        "fetch",
        help="bring a finished job's models or predictions here",
        description="Copy what a finished job made (its model folders, or its "
        "predictions file) from the worker, going on where an earlier copy "
        "stopped. The job's secret, kept here when the job was accepted, shows "
        "the worker that the job is yours.",
    )
    parser.add_argument("job_id", help="the job's id (train and track print it)")
    parser.add_argument("--worker", required=True, help="the worker's peer id or name")
    parser.add_argument(
        "--to",
        default=None,
        help="the folder that gets the model folders (default: ./models), or the "
        "predictions file's path (default: its name on the worker, here)",
    )
    add_quiet_arg(parser, "only errors and where the copy is (no progress)")
    add_connection_args(parser)
    add_env_help(parser, LOOPBACK_ENV)
    parser.set_defaults(handler=run_fetch)


def run_fetch(args: argparse.Namespace) -> int:
    """Attach to the job, wait for its result, copy what it made."""
    set_quiet(args.quiet)
    try:
        register = client_register(args)
    except CredentialsError as exc:
        return fail(f"error: {exc}", 2)

    to = Path(args.to).absolute() if args.to else None
    cwd = Path.cwd()

    display = ProgressDisplay(enabled=not args.quiet)

    async def main() -> list[Path]:
        async with display, connected(args, register, display.wait) as client:
            display.wait(f"looking for the worker {args.worker}")
            worker = await find_worker(client, args.worker)
            legacy = await is_legacy_worker(client, worker)
            display.wait(f"opening an authenticated data channel to {worker}")
            channel = await open_channel(
                client, worker, auth=channel_auth(args), legacy_worker=legacy
            )
            display.wait(None)
            async with channel:
                job = await RemoteJob.attach(channel, args.job_id)
                say(f"job {args.job_id} on {worker}: waiting for its result")
                display.show(Waiting("job", "waiting for the job to finish").status)
                result: dict[str, Any] = await job.follow()
                progress = TransferProgress("download")
                display.show(progress.status)
                if model_run_dirs(result):
                    dest = to or cwd / "models"
                    return await download_models(
                        channel,
                        result,
                        dest,
                        download=True,
                        on_progress=progress.feed,
                    )
                worker_file = str(result.get("predictions_path") or "predictions.slp")
                name = worker_file.replace("\\", "/").rsplit("/", 1)[-1]
                dest = to or cwd / name
                local = await download_predictions(
                    channel, result, dest, download=True, on_progress=progress.feed
                )
                return [local]

    try:
        here = asyncio.run(main())
    except (JobError, SleapRTCError, TimeoutError) as exc:
        return fail(f"failed: {exc}", EXIT_FAILED)
    except KeyboardInterrupt:
        return fail("cancelled", EXIT_INTERRUPTED)
    for path in here:
        say_result(f"here: {path}")
    return 0
