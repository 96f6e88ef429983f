"""``sleap-rtc worker`` (serve jobs) and ``sleap-rtc workers`` (list them)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import os
import platform
import re
import signal
import sys
import uuid
from collections.abc import Mapping
from typing import Any

from ..aio import wait_for
from ..errors import SleapRTCError
from ..protocol import signaling as sig
from ..transport.auth import ChannelAuth
from ..worker.capabilities import TorchGpuProbe, WorkerCapabilities
from ..worker.config import (
    SLP_WRITE_KEYS,
    WorkerConfig,
    apply_env,
    load_worker_config,
    merge_flags,
)
from ..worker.files.mounts import Mount, MountPolicy
from ..worker.files.slp_write import SlpWriteQuota
from ..worker.files.uploads import UploadQuota
from ..worker.gpu_facts import DEVICE_ORDER
from ..worker.jobs.process import set_child_subreaper
from ..worker.service import WorkerService
from ._admin_util import emit, emit_table
from ._connect import (
    DEFAULT_SERVER,
    CredentialsError,
    add_connection_args,
    connected,
    credentials_from_args,
    room_secret,
    server_urls,
)
from ._env_help import WORKER_ENV, add_env_help
from ._progress import ProgressDisplay

__all__ = ["add_worker_args", "register", "worker_service_from_args"]

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``worker`` and ``workers`` to the CLI."""
    worker = sub.add_parser(
        "worker",
        help="run a GPU worker that serves training and inference jobs",
        description="Register as a worker in a room and serve jobs over "
        "authenticated WebRTC data channels until SIGINT/SIGTERM. Settings come "
        "from --config (TOML), then the environment, then these flags. Logs one "
        "line per state change.",
    )
    add_worker_args(worker)
    worker.add_argument(
        "--on-stop",
        choices=("wait", "cancel"),
        default="wait",
        help="on SIGTERM/SIGINT: let running jobs finish (default) or cancel them; "
        "a second signal stops at once",
    )
    worker.set_defaults(handler=run_worker)

    workers = sub.add_parser(
        "workers",
        help="list the workers of a room with their GPU and status",
        description="List the workers registered in the room: peer id, name, "
        "GPU, memory, status and folders; gives up with a clear message when "
        "the server cannot be reached.",
    )
    add_connection_args(workers)
    workers.add_argument("--json", action="store_true", help="print JSON")
    workers.set_defaults(handler=run_workers)


def add_worker_args(parser: argparse.ArgumentParser) -> None:
    """The flags of a worker (``sleap-rtc worker`` and ``sleap-rtc tray``):
    connection, ``--config`` and what it may set."""
    add_connection_args(parser)
    add_env_help(parser, *WORKER_ENV)
    parser.set_defaults(server=None)  # let --config supply it
    parser.add_argument("--config", help="worker config file (TOML)")
    parser.add_argument(
        "--gpu",
        metavar="N[,N…]|all",
        help="the CUDA device(s) this worker owns, one job on each (default 0)",
    )
    parser.add_argument("--name", help="name shown by `sleap-rtc workers`")
    parser.add_argument(
        "--peer-id",
        help="peer id (default: NAME-<8 hex>, the same at every restart of this "
        "worker with these credentials, name and GPUs)",
    )
    parser.add_argument(
        "--mount",
        action="append",
        default=[],
        metavar="PATH[:LABEL]",
        help="a folder jobs may read and write (repeatable)",
    )
    parser.add_argument(
        "--max-concurrent-jobs",
        type=int,
        help="job slots (default: one per GPU; more share the GPUs evenly)",
    )
    parser.add_argument(
        "--upload-dir",
        metavar="PATH",
        help="where clients without shared storage may send their labels: a "
        "folder inside a mount (config: [uploads] path)",
    )
    parser.add_argument(
        "--refuse-legacy-clients",
        action="store_true",
        help="refuse sleap-rtc 0.0.7 clients, which cannot check who the worker "
        "is (config: accept_legacy_clients = false)",
    )
    quota = parser.add_argument_group(
        "labels copies (FS_WRITE_SLP), per worker process",
        "what clients may write with FS_WRITE_SLP before QUOTA_EXCEEDED; "
        "config: the same names with underscores",
    )
    default = SlpWriteQuota()
    limits = {
        "slp_write_files_per_peer": "copies one client peer id may write",
        "slp_write_bytes_per_peer": "bytes one client peer id may write",
        "slp_write_files_total": "copies all clients together may write",
        "slp_write_bytes_total": "bytes all clients together may write",
    }
    for key, field_name in SLP_WRITE_KEYS.items():
        quota.add_argument(
            "--" + key.replace("_", "-"),
            type=int,
            metavar="BYTES" if "bytes" in key else "N",
            help=f"{limits[key]} (default {getattr(default, field_name)})",
        )


def _fail(message: str, status: int = 1) -> int:
    sys.stderr.write(f"sleap-rtc: error: {message}\n")
    return status


def stable_worker_id(
    credentials: Mapping[str, Any],
    name: str | None,
    gpus: object,
    hostname: str | None = None,
) -> str:
    """The worker's peer id when none is given: the same at every restart of
    the same worker (credential, room, machine, name, GPUs), so that
    ``--worker``, scripts and the tray keep finding it; different for two
    workers that differ in any of those. Readable: ``<name>-<8 hex>``.

    The credential enters only through a one-way hash, never as text.
    """
    host = hostname if hostname is not None else platform.node()
    # A key or room token is the same at every start; a login's JWT is not
    # (the room, machine and name tell such workers apart).
    keys = ("api_key", "token")
    credential = next((str(credentials[k]) for k in keys if credentials.get(k)), "")
    room = str(credentials.get("room_id") or "")
    material = "\x00".join((room, credential, host, name or "", repr(gpus)))
    digest = hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()
    words = re.sub(r"[^a-z0-9]+", "-", (name or host or "worker").lower()).strip("-")
    return f"{words[:24].strip('-') or 'worker'}-{digest[:8]}"


def _worker_settings(args: argparse.Namespace) -> tuple[WorkerConfig, dict[str, Any]]:
    """The merged config and the ``register`` credentials."""
    config = merge_flags(apply_env(load_worker_config(args.config)), args)
    args.server = config.server or os.environ.get("SLEAP_RTC_SERVER", DEFAULT_SERVER)
    args.room = config.room
    credentials = config.register_credentials()
    if credentials is None:
        credentials = credentials_from_args(args)  # the saved login's JWT
    return config, credentials


def worker_service_from_args(args: argparse.Namespace) -> WorkerService:
    """The worker the flags of :func:`add_worker_args` describe: ``--config``
    (TOML), then the environment, then the flags, as both ``sleap-rtc worker``
    and the tray run it.

    Raises:
        CredentialsError, ValueError, SleapRTCError: unusable settings.
    """
    config, credentials = _worker_settings(args)
    for name, value in DEVICE_ORDER.items():  # before torch first looks
        os.environ.setdefault(name, value)
    # torch's import takes seconds: say what the start waits for
    logging.getLogger("sleap_rtc_core.worker").info("probing the GPUs (loading torch)")
    capabilities = WorkerCapabilities.from_probe(TorchGpuProbe(config.gpu))
    policy = MountPolicy([Mount(str(m.path), m.label) for m in config.mounts])
    secret = room_secret(args)
    uploads = config.uploads
    if secret is None and not credentials.get("api_key"):
        logger.warning(
            "! no room secret (--room-secret, $SLEAP_ROOM_SECRET): every data "
            "channel will be refused, so no job can reach this worker"
        )
    elif secret is None:
        logger.warning(
            "! no room secret: only clients that sign with a room member's key "
            "can reach this worker"
        )
    slots: dict[str, Any] = {}  # default: one job per GPU
    if config.max_concurrent_jobs is not None:
        slots["max_concurrent_jobs"] = config.max_concurrent_jobs
    return WorkerService(
        server_urls(args),
        credentials,
        capabilities,
        policy,
        auth=ChannelAuth(secret=secret),
        peer_id=args.peer_id or stable_worker_id(credentials, config.name, config.gpu),
        **slots,
        name=config.name,
        accept_legacy_clients=config.accept_legacy_clients,
        slp_write_quota=config.slp_write_quota,
        upload_dir=uploads.path if uploads else None,
        upload_quota=(
            UploadQuota(
                max_bytes_per_uploader=uploads.max_bytes_per_uploader,
                max_bytes_total=uploads.max_bytes_total,
                expire_days=uploads.expire_days,
            )
            if uploads
            else None
        ),
    )


def run_worker(args: argparse.Namespace) -> int:
    """Serve until a signal or a fatal error."""
    logging.getLogger("sleap_rtc_core.worker").setLevel(logging.INFO)
    # Say that the server cannot be reached, and that we keep trying.
    logging.getLogger("sleap_rtc_core.signaling.client.session_io").setLevel(
        logging.INFO
    )
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(message)s")
    try:
        service = worker_service_from_args(args)
    except (CredentialsError, ValueError, SleapRTCError) as exc:
        return _fail(str(exc), 2)
    set_child_subreaper()  # orphans of our jobs become ours to reap
    try:
        asyncio.run(_serve(service, args.on_stop))
    except SleapRTCError as exc:
        return _fail(exc.message)
    return 0


STATUS_BOUND = 1.0
"""Seconds a stopping worker waits for the server to take its new status."""


async def _serve(service: WorkerService, on_stop: str) -> None:
    signalled = asyncio.Queue[None]()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, signalled.put_nowait, None)
    # A signal while the server cannot be reached yet stops the worker too.
    starting = asyncio.ensure_future(service.start())
    if await _first(starting, signalled.get()) is not starting:
        sys.stderr.write("stopped before the signaling server was reached\n")
        await service.close()
        return
    try:
        starting.result()  # a start that failed raises why
        gpu = service.worker.ledger.capabilities.gpu
        sys.stdout.write(
            f"worker {service.peer_id} ready: {gpu.model}, {gpu.memory_mb} MB, "
            f"status {service.worker.status.value}\n"
        )
        sys.stdout.flush()
        closed = asyncio.ensure_future(service.wait_closed())
        if await _first(closed, signalled.get()) is closed:
            closed.result()  # the connection was lost for good: raise why
            return
        closed.cancel()
        await _drain(service, on_stop, signalled)
    finally:
        await service.close()


async def _first(*aws: Any) -> asyncio.Future[Any]:
    """The first of ``aws`` to finish; the others are cancelled."""
    futures = [asyncio.ensure_future(a) for a in aws]
    done, pending = await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
    for future in pending:
        future.cancel()
    return done.pop()


async def _drain(
    service: WorkerService, on_stop: str, signalled: asyncio.Queue[None]
) -> None:
    """Graceful stop: no new jobs; running ones finish or are cancelled; a
    second signal stops at once.

    The server is told ``maintenance`` if it answers within
    :data:`STATUS_BOUND` (it may be down: the worker stops anyway)."""
    with contextlib.suppress(TimeoutError):
        await wait_for(service.worker.update_status("maintenance"), STATUS_BOUND)
    running = [j for j, info in service.jobs.jobs.items() if info.result is None]
    if not running:
        return
    if on_stop == "cancel":
        for job_id in running:
            service.jobs.cancel_job(job_id)
    logging.getLogger("sleap_rtc_core.worker").info(
        "stopping: %s %d job(s); signal again to stop at once",
        "cancelling" if on_stop == "cancel" else "waiting for",
        len(running),
    )
    await _first(service.wait_idle(), signalled.get())


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
        subscribe={"roles": []},  # one discovery, no announcements
        **credentials,
    )
    try:
        peers = asyncio.run(_discover(args, register_msg))
    except (SleapRTCError, TimeoutError) as exc:
        return _fail(str(exc) or "the server did not answer")
    if args.json:
        sys.stdout.write(json.dumps(peers, indent=2) + "\n")
        return 0
    _print_table(peers)
    return 0


async def _discover(
    args: argparse.Namespace, register_msg: sig.Register
) -> list[dict[str, Any]]:
    """The room's workers; the waits (the server, its answer) on stderr, and
    the bound of the client commands (``CONNECT_GIVE_UP``)."""
    display = ProgressDisplay()
    async with display, connected(args, register_msg, display.wait) as client:
        display.wait("discovering the room's workers")
        return await client.discover({"role": "worker"})


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
