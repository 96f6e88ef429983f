"""Remote job overhead: one tiny training locally and through sleap-rtc, same run.

Usage from the repository root::

    .venv/bin/python bench/job_overhead.py            # 3 runs of each side
    .venv/bin/python bench/job_overhead.py --quick    # 1 run of each side
    .venv/bin/python bench/job_overhead.py --runs 5 --epochs 3

The same tiny model (:mod:`sleap_rtc_core.sample_data`: 24 labeled 64x64
frames, 2 nodes, :func:`tiny_training_config`) is trained, alternately:

* **locally**: ``sleap-nn train`` as a subprocess, with the argv the worker
  builds (:func:`~sleap_rtc_core.worker.jobs.sleapnn_cmd.train_argv`, the labels and
  epochs as Hydra overrides, ZMQ progress to a :class:`TrainerLink` as the
  worker has). Wall time = process start → exit.
* **remotely**: in this process and event loop, as ``sleap-rtc demo`` does, an
  embedded signaling server, a :class:`WorkerService` whose mount holds the
  labels, and a client that connects, registers and calls
  :func:`run_remote_job` (discovery, negotiation, WebRTC channel on loopback,
  AUTH, ``JOB_SUBMIT``, progress, ``JOB_COMPLETE``). Wall time = client connect
  → ``JOB_COMPLETE``; the server and the worker were already running, as a
  lab's are.

Figures: the remote/local wall-time ratio (medians), submit → first progress
event at the client (and, for comparison, process start → first progress event
locally: most of both is sleap-nn's start-up), and the progress latency worker
→ client (see ``_jobprobe.py`` for how it is timed). Printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import secrets
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from _jobprobe import JobProbe, pct  # noqa: E402

from sleap_rtc_core.client.remote_job import JobCallbacks  # noqa: E402
from sleap_rtc_core.client.session import run_remote_job  # noqa: E402
from sleap_rtc_core.progress.trainer_link import TrainerLink  # noqa: E402
from sleap_rtc_core.protocol import signaling as sig  # noqa: E402
from sleap_rtc_core.protocol.jobspec import TrainJobSpec  # noqa: E402
from sleap_rtc_core.sample_data import (  # noqa: E402
    tiny_training_config,
    write_tiny_labels,
)
from sleap_rtc_core.signaling.auth.jwt_keys import JwtKeys  # noqa: E402
from sleap_rtc_core.signaling.client.session_io import SignalingClient  # noqa: E402
from sleap_rtc_core.signaling.server.router_io import ServerConfig  # noqa: E402
from sleap_rtc_core.signaling.service import build_service  # noqa: E402
from sleap_rtc_core.signaling.store.auth_store import Store  # noqa: E402
from sleap_rtc_core.transport.auth import ChannelAuth  # noqa: E402
from sleap_rtc_core.transport.loopback import loopback_only  # noqa: E402
from sleap_rtc_core.worker.capabilities import (  # noqa: E402
    TorchGpuProbe,
    WorkerCapabilities,
)
from sleap_rtc_core.worker.files.mounts import MountPolicy  # noqa: E402
from sleap_rtc_core.worker.jobs.sleapnn_cmd import train_argv  # noqa: E402
from sleap_rtc_core.worker.service import WorkerService  # noqa: E402

__all__ = ["BENCHMARK", "main"]

BENCHMARK = "Remote job overhead: tiny training locally vs through sleap-rtc"

_RUN_TIMEOUT = 600.0  # seconds; one tiny training takes well under a minute
_FRAMES = 24


@dataclass
class RunResult:
    """One training run, local or remote.

    Attributes:
        side: ``local`` or ``remote``.
        wall: Seconds from start to end (see the module docstring).
        first_progress: Seconds from process start (local) or ``JOB_SUBMIT``
            (remote) to the first progress event.
        events: Progress events the worker side received.
        submit_at: Remote only: seconds from connect to ``JOB_SUBMIT``.
        accept: Remote only: seconds from ``JOB_SUBMIT`` to ``JOB_ACCEPTED``.
        latencies_ms: Remote only: worker → client latency of each event.
        mismatched: Remote only: events that did not pair up.
        model: The best checkpoint written, if any.
    """

    side: str
    wall: float
    first_progress: float
    events: int
    submit_at: float = float("nan")
    accept: float = float("nan")
    latencies_ms: list[float] = field(default_factory=list)
    mismatched: int = 0
    model: str | None = None


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    await proc.wait()


async def local_run(
    probe: JobProbe, config_file: Path, labels: Path, epochs: int, out: Path
) -> RunResult:
    """``sleap-nn train`` as a subprocess, as the worker would start it."""
    probe.reset()
    run_name = f"local_{time.monotonic_ns()}"
    log = out / f"{run_name}.log"
    async with TrainerLink() as link:
        argv = train_argv(
            config_file,
            train_labels=[labels.as_posix()],
            max_epochs=epochs,
            run_name=run_name,
            ckpt_dir=out,
            publish_port=link.publish_port,
            controller_port=link.controller_port,
        )
        with log.open("wb") as sink:
            t0 = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdout=sink,
                stderr=sink,
                cwd=out,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},  # as the worker's
            )
            try:
                rc = await asyncio.wait_for(proc.wait(), _RUN_TIMEOUT)
            finally:
                if proc.returncode is None:
                    await _kill_group(proc)
            wall = time.perf_counter() - t0
    if rc != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"local sleap-nn train exited {rc}:\n{tail}")
    best = out / run_name / "best.ckpt"
    first = probe.worker[0][0] - t0 if probe.worker else float("nan")
    return RunResult(
        "local",
        wall,
        first,
        len(probe.worker),
        model=best.as_posix() if best.is_file() else None,
    )


@dataclass
class _Remote:
    """The long-running parts of the remote side (server, worker, room)."""

    url: str
    room_id: str
    token: str
    secret: str


async def remote_run(
    probe: JobProbe, remote: _Remote, n: int, labels: Path, config: str, epochs: int
) -> RunResult:
    """Connect a client and run the job through sleap-rtc; times every step."""
    probe.reset()
    register = sig.Register(
        peer_id=f"bench-client-{n}",
        role="client",
        metadata={"tags": ["sleap-rtc", "client"], "properties": {}},
        room_id=remote.room_id,
        token=remote.token,
    )
    t0 = time.perf_counter()

    async def go() -> dict[str, Any]:
        async with SignalingClient(remote.url, register) as client:
            return await run_remote_job(
                client,
                TrainJobSpec(
                    config_content=config,
                    labels_path=labels.as_posix(),
                    max_epochs=epochs,
                ),
                auth=ChannelAuth(secret=remote.secret),
                callbacks=JobCallbacks(on_progress=probe.on_progress),
                say=lambda line: None,
            )

    result = await asyncio.wait_for(go(), _RUN_TIMEOUT)
    wall = time.perf_counter() - t0
    submitted = probe.submitted if probe.submitted is not None else float("nan")
    first = probe.client[0][0] - submitted if probe.client else float("nan")
    latencies, mismatched = probe.latencies_ms()
    accepted = probe.accepted if probe.accepted is not None else float("nan")
    models = result.get("models") or []
    best = (
        models[0].get("best_ckpt") if models and isinstance(models[0], dict) else None
    )
    return RunResult(
        "remote",
        wall,
        first,
        len(probe.worker),
        submit_at=submitted - t0,
        accept=accepted - submitted,
        latencies_ms=latencies,
        mismatched=mismatched,
        model=best or result.get("output_path"),
    )


def _print_run(i: int, r: RunResult) -> None:
    extra = ""
    if r.side == "remote":
        lat = r.latencies_ms
        extra = (
            f"  connect→submit {r.submit_at:5.2f} s  submit→accepted "
            f"{r.accept * 1e3:5.1f} ms  latency p50/max "
            f"{pct(lat, 0.5):5.1f}/{max(lat, default=float('nan')):5.1f} ms"
            f"  unpaired {r.mismatched}"
        )
    first_from = "submit" if r.side == "remote" else "start"
    print(
        f"  {r.side:<6} #{i + 1}: wall {r.wall:6.2f} s  {first_from}→first progress "
        f"{r.first_progress:5.2f} s  events {r.events:3d}{extra}"
        f"  model {'yes' if r.model else 'NO'}",
        flush=True,
    )


def _summary(local: list[RunResult], remote: list[RunResult], args: Any) -> None:
    lw = statistics.median(r.wall for r in local)
    rw = statistics.median(r.wall for r in remote)
    lf = statistics.median(r.first_progress for r in local)
    rf = statistics.median(r.first_progress for r in remote)
    sub = statistics.median(r.submit_at for r in remote)
    acc = statistics.median(r.accept for r in remote)
    lat = [x for r in remote for x in r.latencies_ms]
    unpaired = sum(r.mismatched for r in remote)
    n = len(local)
    print(
        "\nMethod: worker, client and server share this process and its clock "
        "(time.perf_counter). Worker side = the instant the worker's ZMQ SUB "
        "(TrainerLink._push) receives a message sleap-nn published; client side "
        "= the job's on_progress callback. The k-th event the client hears is "
        "paired with the k-th the worker received (names checked). sleap-nn's "
        "own publish time is not observable (its messages carry no timestamp); "
        "the ZMQ hop before the worker is loopback IPC-scale.",
        flush=True,
    )
    print(f"\n### Figures (medians of {n} run(s) per side, {args.epochs} epochs)\n")
    print("| Figure | This run | Target |")
    print("|---|---|---|")
    print(f"| Local `sleap-nn train` wall time | {lw:.2f} s | — |")
    print(f"| Remote through sleap-rtc, connect → `JOB_COMPLETE` | {rw:.2f} s | — |")
    print(f"| Remote / local wall time | {rw / lw:.3f} | ≤ 1.02 |")
    print(f"| Remote: connect → `JOB_SUBMIT` sent | {sub:.2f} s | — |")
    print(f"| Remote: `JOB_SUBMIT` → `JOB_ACCEPTED` | {acc * 1e3:.0f} ms | — |")
    print(f"| Remote: `JOB_SUBMIT` → first progress event | {rf:.2f} s | ≤ 1 s |")
    print(f"| Local: process start → first progress event | {lf:.2f} s | — |")
    print(f"| Difference (sleap-rtc's share of the wait) | {rf - lf:+.2f} s | — |")
    print(
        f"| Progress latency worker → client, p50 / p99 / max ({len(lat)} events"
        f"{f', {unpaired} unpaired' if unpaired else ''}) | {pct(lat, 0.5):.2f} / "
        f"{pct(lat, 0.99):.2f} / {max(lat, default=float('nan')):.2f} ms | "
        "p99 ≤ 50 ms |"
    )


async def _warm_up() -> None:
    """Import sleap-nn once so that the first measured run is not the cold one."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sleap_nn.train", start_new_session=True
    )
    try:
        await asyncio.wait_for(proc.wait(), _RUN_TIMEOUT)
    finally:
        if proc.returncode is None:
            await _kill_group(proc)


async def run(args: argparse.Namespace) -> None:
    """Set up the remote side once, then alternate local and remote runs."""
    with tempfile.TemporaryDirectory(prefix="bench-job-") as tmp:
        mount = Path(tmp) / "mount"
        labels = await asyncio.to_thread(
            write_tiny_labels, mount / "labels.pkg.slp", n_frames=_FRAMES, n_nodes=2
        )
        config = tiny_training_config(max_epochs=args.epochs)
        local_dir = mount / "local"
        local_dir.mkdir()
        config_file = local_dir / "config.yaml"
        config_file.write_text(config, encoding="utf-8")
        print(
            f"dataset: {_FRAMES} frames 64x64, 2 nodes; {args.epochs} epochs; "
            f"{args.runs} run(s) per side, alternating",
            flush=True,
        )
        if args.warm_up:
            t = time.perf_counter()
            await _warm_up()
            print(f"warm-up import of sleap_nn.train: {time.perf_counter() - t:.1f} s")

        store = Store(":memory:")
        room = store.create_room("bench")
        secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
        service = build_service(ServerConfig(port=0), store, JwtKeys.generate())
        probe = JobProbe()
        local: list[RunResult] = []
        remote: list[RunResult] = []
        with loopback_only(), probe.installed():
            async with service.server:
                worker = WorkerService(
                    service.server.url,
                    {"room_id": room.room_id, "token": room.token},
                    WorkerCapabilities.from_probe(TorchGpuProbe(0)),
                    MountPolicy([str(mount)]),
                    auth=ChannelAuth(secret=secret),
                    peer_id="bench-worker",
                    name="bench",
                )
                async with worker:
                    where = _Remote(
                        service.server.url, room.room_id, room.token, secret
                    )
                    for i in range(args.runs):
                        local.append(
                            await local_run(
                                probe, config_file, labels, args.epochs, local_dir
                            )
                        )
                        _print_run(i, local[-1])
                        remote.append(
                            await remote_run(
                                probe, where, i, labels, config, args.epochs
                            )
                        )
                        _print_run(i, remote[-1])
        store.close()
    _summary(local, remote, args)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=BENCHMARK)
    parser.add_argument("--quick", action="store_true", help="1 run of each side")
    parser.add_argument("--runs", type=int, default=None, help="runs per side (3)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per training")
    parser.add_argument(
        "--no-warm-up",
        dest="warm_up",
        action="store_false",
        help="skip the unmeasured sleap-nn import (skipped with --quick)",
    )
    args = parser.parse_args(argv)
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    if args.quick:
        args.warm_up = False
    if args.runs < 1 or args.epochs < 1:
        parser.error("--runs and --epochs must be at least 1")
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
