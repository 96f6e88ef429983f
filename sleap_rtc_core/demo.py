"""The first five minutes: a tiny model trained remotely, entirely on loopback.

:func:`run_demo` starts, in this one process and event loop, an embedded
signaling server (in-memory store, fresh keys) on a free 127.0.0.1 port, a worker
whose only mount is a temporary folder, and a client. It writes a small synthetic
labeled dataset and a tiny training config into the mount, and the client then
does what ``sleap-rtc train`` does: discovers the worker, negotiates, opens an
authenticated WebRTC data channel, submits the job and follows the progress until
the worker reports the trained model. sleap-nn itself runs as the worker's
subprocess, exactly as on a real GPU box. ``sleap-rtc demo`` hands it the
progress view of ``train`` (``callbacks``, ``on_wait``, ``on_job``), so the demo
shows what a user of ``train`` sees.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from .client.progress_view import TrainingProgress, format_duration
from .client.remote_job import JobCallbacks, RemoteJob
from .client.session import run_remote_job
from .protocol import signaling as sig
from .protocol.jobspec import TrainJobSpec
from .sample_data import tiny_training_config, write_tiny_labels
from .signaling.auth.jwt_keys import JwtKeys
from .signaling.client.session_io import SignalingClient
from .signaling.server.router_io import ServerConfig
from .signaling.service import build_service
from .signaling.store.auth_store import Store
from .transport.auth import ChannelAuth
from .transport.loopback import loopback_only
from .worker.capabilities import TorchGpuProbe, WorkerCapabilities
from .worker.files.mounts import MountPolicy
from .worker.service import WorkerService

__all__ = ["run_demo"]


def _make_dataset(workdir: Path | None) -> tuple[Path, Path]:
    """The worker's mount and the labels written into it (blocking)."""
    mount = Path(workdir or tempfile.mkdtemp(prefix="sleap-rtc-demo-"))
    mount.mkdir(parents=True, exist_ok=True)
    labels = write_tiny_labels(mount / "labels.pkg.slp", n_frames=24, n_nodes=2)
    return mount, labels


async def run_demo(
    out: TextIO,
    *,
    epochs: int = 3,
    workdir: Path | None = None,
    callbacks: JobCallbacks | None = None,
    on_wait: Callable[[str | None], None] | None = None,
    on_job: Callable[[RemoteJob], None] | None = None,
) -> dict[str, Any]:
    """Train a tiny model remotely; returns the worker's ``JOB_COMPLETE`` data.

    Args:
        out: Where the story is told.
        epochs: Epochs to train.
        workdir: The worker's mount (a fresh temporary folder by default; kept,
            so that the model can be looked at afterwards).
        callbacks: The job's progress callbacks (default: one line per epoch
            on ``out``).
        on_wait: Told each wait (the worker's start, placement, the data
            channel), ``None`` when it is over.
        on_job: Gets the job once the worker accepted it.
    """

    def wait(what: str | None) -> None:
        if on_wait is not None:
            on_wait(what)

    def say(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    started = time.monotonic()
    mount, labels = await asyncio.to_thread(_make_dataset, workdir)
    config = tiny_training_config(max_epochs=epochs)
    say(f"dataset: {labels} (24 labeled frames, 2-node skeleton)")

    store = Store(":memory:")
    room = store.create_room("demo")
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    service = build_service(ServerConfig(port=0), store, JwtKeys.generate())
    creds = {"room_id": room.room_id, "token": room.token}
    with loopback_only():
        async with service.server:
            url = service.server.url
            say(f"signaling server: {url} (room {room.room_id})")
            wait("starting the worker (probing the GPU: loading torch)")
            capabilities = await asyncio.to_thread(
                WorkerCapabilities.from_probe, TorchGpuProbe(0)
            )
            worker = WorkerService(
                url,
                creds,
                capabilities,
                MountPolicy([str(mount)]),
                auth=ChannelAuth(secret=secret),
                peer_id="demo-worker",
                name="demo",
            )
            async with worker:
                wait(None)
                gpu = worker.worker.ledger.capabilities.gpu
                say(f"worker: {worker.peer_id} ({gpu.model}), mount {mount}")
                register = sig.Register(
                    peer_id="demo-client",
                    role="client",
                    metadata={"tags": ["sleap-rtc", "client"], "properties": {}},
                    subscribe={"roles": ["worker"]},
                    room_id=room.room_id,
                    token=room.token,
                )
                async with SignalingClient(url, register) as client:
                    view = TrainingProgress(total_epochs=epochs)

                    def progress(event: Any) -> None:
                        if isinstance(event, dict):
                            line = view.feed(event)
                            if line:
                                say(f"  {line}")

                    result = await run_remote_job(
                        client,
                        TrainJobSpec(
                            config_content=config,
                            labels_path=str(labels),
                            max_epochs=epochs,
                        ),
                        auth=ChannelAuth(secret=secret),
                        callbacks=callbacks or JobCallbacks(on_progress=progress),
                        say=say,
                        on_job=on_job,
                        on_wait=on_wait,
                    )
    wait(None)  # the job is over: the display shows nothing more
    model = result.get("output_path") or result.get("model_paths")
    say(f"model: {model}")
    say(f"done in {format_duration(time.monotonic() - started)}")
    return result
