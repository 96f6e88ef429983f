"""``sleap-rtc worker`` (serve jobs) and ``sleap-rtc workers`` (list them)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import uuid
from typing import Any

from ..errors import SleapRTCError
from ..protocol import signaling as sig
from ..signaling.client import SignalingClient
from ..worker.agent import SignalingWorker
from ..worker.capabilities import TorchGpuProbe, WorkerCapabilities
from ..worker.mounts import parse_mount
from ._admin_util import emit, emit_table
from ._connect import (
    CredentialsError,
    add_connection_args,
    credentials_from_args,
    server_url,
)

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``worker`` and ``workers`` to the CLI."""
    worker = sub.add_parser(
        "worker",
        help="run a GPU worker that serves training and inference jobs",
        description="Register as a worker in a room and serve jobs until "
        "SIGINT/SIGTERM. Logs one line per state change.",
    )
    add_connection_args(worker)
    worker.add_argument("--gpu", type=int, default=0, help="CUDA device index")
    worker.add_argument("--name", help="name shown by `sleap-rtc workers`")
    worker.add_argument("--peer-id", help="peer id (default: the server picks)")
    worker.add_argument(
        "--mount",
        action="append",
        default=[],
        type=parse_mount,
        metavar="PATH[:LABEL]",
        help="a folder jobs may read and write (repeatable)",
    )
    worker.add_argument(
        "--max-concurrent-jobs", type=int, default=1, help="job slots (one per GPU)"
    )
    worker.set_defaults(handler=run_worker)

    workers = sub.add_parser(
        "workers", help="list the workers of a room with their GPU and status"
    )
    add_connection_args(workers)
    workers.add_argument("--json", action="store_true", help="print JSON")
    workers.set_defaults(handler=run_workers)


def _fail(message: str, status: int = 1) -> int:
    sys.stderr.write(f"sleap-rtc: error: {message}\n")
    return status


def run_worker(args: argparse.Namespace) -> int:
    """Serve until a signal or a fatal error."""
    try:
        credentials = credentials_from_args(args)
        capabilities = WorkerCapabilities.from_probe(TorchGpuProbe(args.gpu))
    except (CredentialsError, ValueError, SleapRTCError) as exc:
        return _fail(str(exc), 2)
    logging.getLogger("sleap_rtc_core.worker").setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(message)s")
    worker = SignalingWorker(
        server_url(args),
        credentials,
        capabilities,
        peer_id=args.peer_id,
        max_concurrent_jobs=args.max_concurrent_jobs,
        mounts=[m.to_entry() for m in args.mount],
        name=args.name,
    )
    try:
        asyncio.run(_serve(worker))
    except SleapRTCError as exc:
        return _fail(exc.message)
    return 0


async def _serve(worker: SignalingWorker) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    async with worker:
        gpu = worker.slots.capabilities.gpu
        sys.stdout.write(
            f"worker {worker.peer_id} ready: {gpu.model}, {gpu.memory_mb} MB, "
            f"status {worker.status.value}\n"
        )
        sys.stdout.flush()
        waiters = [
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(worker.wait_closed()),
        ]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        for waiter in waiters:
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
            if not waiter.cancelled() and waiter.exception() is not None:
                raise waiter.exception()  # type: ignore[misc]


def run_workers(args: argparse.Namespace) -> int:
    """Print the workers of the room."""
    try:
        credentials = credentials_from_args(args)
    except CredentialsError as exc:
        return _fail(str(exc), 2)
    register_msg = sig.Register(
        peer_id=f"cli-{uuid.uuid4().hex[:8]}",
        role="client",
        metadata={"tags": ["sleap-rtc", "cli"], "properties": {}},
        **credentials,
    )
    try:
        peers = asyncio.run(_discover(server_url(args), register_msg))
    except (SleapRTCError, TimeoutError) as exc:
        return _fail(str(exc) or "the server did not answer")
    if args.json:
        sys.stdout.write(json.dumps(peers, indent=2) + "\n")
        return 0
    _print_table(peers)
    return 0


async def _discover(url: str, register_msg: sig.Register) -> list[dict[str, Any]]:
    client = SignalingClient(url, register_msg, give_up_after=10.0)
    await client.start(timeout=15.0)
    try:
        return await client.discover({"role": "worker"})
    finally:
        await client.close()


def _print_table(peers: list[dict[str, Any]]) -> None:
    rows: list[tuple[str, ...]] = []
    for peer in sorted(peers, key=lambda p: str(p.get("peer_id"))):
        props = (peer.get("metadata") or {}).get("properties") or {}
        memory = props.get("gpu_memory_mb")
        rows.append(
            (
                str(peer.get("peer_id", "?")),
                str(props.get("worker_name", "-")),
                str(props.get("gpu_model", "?")),
                f"{memory} MB" if isinstance(memory, int) else "?",
                str(props.get("status", "?")),
                ",".join(props.get("supported_job_types") or []) or "-",
                str(props.get("hostname", "-")),
            )
        )
    if not rows:
        emit("no workers in this room")
        return
    emit_table(("PEER", "NAME", "GPU", "MEMORY", "STATUS", "JOBS", "HOST"), rows)
