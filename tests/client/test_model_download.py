"""Models come home: :func:`download_models` against a real model file server.

Fast tests serve a hand-made run folder (a few MB of random "checkpoint")
through :class:`ModelFileServer` over a real authenticated data channel; the
slow test trains a tiny model on a real :class:`WorkerService` whose mount the
client pretends not to see, drops the channel mid-copy, resumes on a new one,
and runs ``sleap-nn track`` on the copy. :func:`download_predictions` is tested
the same two ways: a hand-made predictions file, and a tiny real track job whose
predictions arrive and load with sleap-io.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import sleap_io as sio

from sleap_rtc_core.client.model_download import (
    ORIGIN_FILE,
    PARTIAL_SUFFIX,
    download_models,
    download_predictions,
    local_model_path,
    models_dir_for,
    worker_model_path,
)
from sleap_rtc_core.client.session import run_remote_job
from sleap_rtc_core.errors import ChannelClosed, TransferError
from sleap_rtc_core.protocol.channel_transfer import FileDownloadRequestMsg
from sleap_rtc_core.protocol.jobspec import (
    FrameFilter,
    JobSpec,
    TrackJobSpec,
    TrainJobSpec,
)
from sleap_rtc_core.protocol.states import JobState
from sleap_rtc_core.sample_data import tiny_training_config, write_tiny_labels
from sleap_rtc_core.signaling.client.session_io import SignalingClient
from sleap_rtc_core.transport.auth import ChannelAuth
from sleap_rtc_core.transport.channel import Channel
from sleap_rtc_core.transport.peer import open_channel
from sleap_rtc_core.worker.files.models import ModelFileServer
from sleap_rtc_core.worker.files.mounts import MountPolicy
from sleap_rtc_core.worker.jobs.results import JobInfo
from sleap_rtc_core.worker.jobs.sleapnn_cmd import track_argv
from sleap_rtc_core.worker.service import WorkerService
from tests.fixtures.timing import scaled
from tests.fixtures.transport import (
    TransportPair,
)

JOB = "job_0001"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(folder: Path) -> dict[str, str]:
    """Relative path → SHA-256 of every file below ``folder`` (but the origin
    note a download adds)."""
    return {
        p.relative_to(folder).as_posix(): sha(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ORIGIN_FILE
    }


def make_run(folder: Path, ckpt_bytes: int = 3 << 20) -> Path:
    """A run folder as sleap-nn leaves it (random checkpoint, small files)."""
    folder.mkdir(parents=True)
    (folder / "best.ckpt").write_bytes(os.urandom(ckpt_bytes))
    (folder / "training_config.yaml").write_text("model_config: {}\n")
    (folder / "training_log.csv").write_text("epoch,loss\n0,1.0\n")
    (folder / "viz").mkdir()
    (folder / "viz" / "a n=1.png").write_bytes(os.urandom(1000))
    return folder


def job_info(owner: str, run_dirs: list[Path], state: JobState) -> JobInfo:
    result = {
        "job_id": JOB,
        "output_path": run_dirs[-1].as_posix(),
        "model_paths": [d.as_posix() for d in run_dirs],
        "models": [
            {"index": i, "run_dir": d.as_posix()} for i, d in enumerate(run_dirs)
        ],
    }
    return JobInfo(JOB, "cj", owner, "train", state, 0, 1, None, 0, 0, result, None)


class Served:
    """The worker side: a :class:`ModelFileServer` on every channel accepted,
    plus a log of the requests it got."""

    def __init__(self, pair: TransportPair, info: JobInfo, mount: Path) -> None:
        self.pair = pair
        self.info = info
        self.requests: list[FileDownloadRequestMsg] = []
        self.server = ModelFileServer(self.authorize, MountPolicy([mount.as_posix()]))
        pair.handler = self.serve

    def authorize(
        self, job_id: str, channel: Channel, secret: object
    ) -> JobInfo | None:
        """A channel of the job's owner stands for one attached to the job
        (``JobService.authorized_job`` decides that for real)."""
        if job_id == self.info.job_id and channel.peer_id == self.info.owner:
            return self.info
        return None

    async def serve(self, channel: Channel) -> None:
        async for item in channel:
            if isinstance(item, FileDownloadRequestMsg):
                self.requests.append(item)
                await self.server.handle(item, channel)


@pytest.fixture
def served_mount(tmp_path: Path) -> Path:
    """The worker's mount: one finished job with two run folders."""
    mount = tmp_path / "worker"
    make_run(mount / "models" / "240506_070809.centroid.n=20")
    make_run(mount / "models" / "240506_070809.centered_instance.n=20", 100_000)
    return mount


@pytest.fixture
async def served(
    transport_pair: TransportPair, room_secret: str, served_mount: Path
) -> AsyncIterator[Served]:
    runs = sorted((served_mount / "models").iterdir())
    served = Served(
        transport_pair, job_info("c", runs, JobState.SUCCEEDED), served_mount
    )
    async with transport_pair.acceptor(ChannelAuth(secret=room_secret)):
        yield served


OpenChannel = Callable[[], Awaitable[Channel]]


@pytest.fixture
def connect(transport_pair: TransportPair, room_secret: str) -> OpenChannel:
    async def open_() -> Channel:
        return await open_channel(
            transport_pair.signaling.client,
            "w",
            auth=ChannelAuth(secret=room_secret),
            timeout=scaled(10),
        )

    return open_


def hidden(mount: Path) -> Callable[[Path], bool]:
    """A visibility check for a client on other storage than ``mount``."""
    return lambda p: not p.absolute().is_relative_to(mount) and p.is_dir()


async def test_models_arrive_laid_out_as_sleap_lays_them_out(
    served: Served, connect: OpenChannel, served_mount: Path, tmp_path: Path
) -> None:
    labels = tmp_path / "client" / "labels.slp"
    dest = models_dir_for(labels)
    assert dest == tmp_path / "client" / "models"
    reports: list[tuple[int, int]] = []
    async with await connect() as channel:
        paths = await download_models(
            channel,
            served.info.result or {},
            dest,
            is_visible=hidden(served_mount),
            on_progress=lambda done, total: reports.append((done, total)),
        )
    runs = sorted((served_mount / "models").iterdir())
    assert paths == [dest / r.name for r in runs]
    for local, remote in zip(paths, runs, strict=True):
        assert tree(local) == tree(remote)
        # Where it came from, for predicting with it remotely later.
        assert worker_model_path(local) == remote.as_posix()
    assert worker_model_path(served_mount) is None  # never downloaded
    assert sorted(p.name for p in dest.iterdir()) == [r.name for r in runs]
    total = sum(p.stat().st_size for r in runs for p in r.rglob("*") if p.is_file())
    assert reports[-1] == (total, total)
    assert [d for d, _ in reports] == sorted(d for d, _ in reports)

    # Again: already here, nothing is fetched but the manifests.
    before = len(served.requests)
    async with await connect() as channel:
        again = await download_models(
            channel, served.info.result or {}, dest, is_visible=hidden(served_mount)
        )
    assert again == paths
    assert all(r.extra.get("manifest") for r in served.requests[before:])


async def test_a_visible_worker_folder_is_not_copied(
    served: Served, connect: OpenChannel, served_mount: Path, tmp_path: Path
) -> None:
    result = served.info.result or {}
    async with await connect() as channel:
        # Same path on both sides (shared storage): recorded, not copied.
        paths = await download_models(channel, result, tmp_path / "m1")
        assert paths == [Path(d) for d in result["model_paths"]]
        # Through the job's mappings read backwards.
        local_mount = tmp_path / "nas"
        shutil.copytree(served_mount, local_mount)
        mappings = {local_mount.as_posix(): served_mount.as_posix()}
        paths = await download_models(
            channel,
            result,
            tmp_path / "m2",
            path_mappings=mappings,
            is_visible=hidden(served_mount),
        )
        assert paths == [
            local_mount / "models" / Path(d).name for d in result["model_paths"]
        ]
        # --download copies anyway.
        paths = await download_models(channel, result, tmp_path / "m3", download=True)
        assert [p.parent for p in paths] == [tmp_path / "m3"] * 2
    assert served.requests  # only the forced copy asked for anything
    assert not (tmp_path / "m1").exists()
    assert not (tmp_path / "m2").exists()


def test_local_model_path_reads_mappings_backwards() -> None:
    mappings = {"/home/me/proj": "/mnt/data/proj", "C:\\lab": "/mnt/lab"}
    assert local_model_path("/mnt/data/proj/models/r n=1", mappings) == [
        Path("/mnt/data/proj/models/r n=1"),
        Path("/home/me/proj/models/r n=1"),
    ]
    assert local_model_path("/elsewhere/r", mappings) == [Path("/elsewhere/r")]


async def test_a_dropped_channel_resumes_where_it_stopped(
    served: Served, connect: OpenChannel, served_mount: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "client" / "models"
    result = served.info.result or {}
    channel = await connect()
    closing: list[asyncio.Task[None]] = []

    def drop_midway(done: int, total: int) -> None:
        if done > (1 << 20) and not closing:
            closing.append(asyncio.ensure_future(channel.close()))

    with pytest.raises((ChannelClosed, TransferError)):
        await download_models(
            channel,
            result,
            dest,
            is_visible=hidden(served_mount),
            on_progress=drop_midway,
            timeout=scaled(5),
        )
    await asyncio.gather(*closing)
    # The first folder (small) is complete; the second, cut off in its big
    # checkpoint, is still a .partial folder: nothing half there looks whole.
    assert sorted(p.name for p in dest.iterdir()) == [
        "240506_070809.centered_instance.n=20",
        f"240506_070809.centroid.n=20{PARTIAL_SUFFIX}",
    ]
    files = [p for p in dest.rglob("*") if p.is_file() and p.name != ORIGIN_FILE]
    held = sum(p.stat().st_size for p in files)
    assert held > 0

    reports: list[tuple[int, int]] = []
    async with await connect() as channel2:
        paths = await download_models(
            channel2,
            result,
            dest,
            is_visible=hidden(served_mount),
            on_progress=lambda d, t: reports.append((d, t)),
        )
    # It counted what it held (the whole first folder, then the part of the
    # checkpoint) before fetching anything more.
    assert reports[1][0] == held
    resumed = [r for r in served.requests if r.offset > 0]
    assert resumed, "the interrupted file was resumed at an offset"
    for local, remote in zip(
        paths, sorted((served_mount / "models").iterdir()), strict=True
    ):
        assert tree(local) == tree(remote)
    assert not [
        p for p in dest.rglob("*") if p.name.endswith((".part", PARTIAL_SUFFIX))
    ]


async def test_only_the_owner_gets_the_models(
    served: Served, connect: OpenChannel, served_mount: Path, tmp_path: Path
) -> None:
    result = served.info.result or {}
    served.info = job_info(
        "someone-else", [Path(result["output_path"])], JobState.SUCCEEDED
    )
    async with await connect() as channel:
        with pytest.raises(TransferError, match="no job"):
            await download_models(
                channel, result, tmp_path / "m", is_visible=hidden(served_mount)
            )
    assert not (tmp_path / "m").exists()


async def test_predictions_arrive_unless_visible(
    served: Served, connect: OpenChannel, served_mount: Path, tmp_path: Path
) -> None:
    remote = served_mount / "proj" / "labels.predictions.slp"
    remote.parent.mkdir()
    remote.write_bytes(os.urandom(300_000))
    served.info = JobInfo(
        JOB,
        "cj",
        "c",
        "track",
        JobState.SUCCEEDED,
        0,
        1,
        None,
        0,
        0,
        {"job_id": JOB, "predictions_path": remote.as_posix()},
        None,
    )
    result = served.info.result or {}
    dest = tmp_path / "client" / "labels.predictions.slp"
    async with await connect() as channel:
        # Visible here (same path): nothing is copied.
        assert await download_predictions(channel, result, dest) == remote
        assert not served.requests
        # Not visible: copied, verified, under its final name only.
        got = await download_predictions(
            channel, result, dest, is_visible=hidden(served_mount)
        )
        assert got == dest
        assert sha(dest) == sha(remote)
        assert [p.name for p in dest.parent.iterdir()] == [dest.name]
        # --no-download: the worker's path, nothing asked.
        before = len(served.requests)
        kept = await download_predictions(
            channel,
            result,
            tmp_path / "x.slp",
            download=False,
            is_visible=hidden(served_mount),
        )
        assert kept == remote
        assert len(served.requests) == before
        # Another peer's job: refused.
        served.info = job_info("someone-else", [remote.parent], JobState.SUCCEEDED)
        with pytest.raises(TransferError, match="no job"):
            await download_predictions(
                channel, result, tmp_path / "y.slp", download=True
            )
    with pytest.raises(TransferError, match="no predictions"):
        await download_predictions(channel, {"job_id": JOB}, tmp_path / "z.slp")


# ---------------------------------------------------------------- real training


@pytest.fixture
def worker_mount(tmp_path: Path) -> Path:
    """A mount whose name needs quoting and encoding."""
    mount = tmp_path / "worker mount =ü"
    mount.mkdir()
    return mount


@pytest.mark.slow
async def test_a_model_trained_on_other_storage_comes_home_and_predicts(
    worker: WorkerService,
    client: SignalingClient,
    room_secret: str,
    tmp_path: Path,
) -> None:
    mount = Path(worker.policy.mounts[0].path)
    # The client's project and the worker's copy of it live apart.
    client_labels = tmp_path / "my project ✓" / "labels = v1.pkg.slp"
    client_labels.parent.mkdir()
    await asyncio.to_thread(write_tiny_labels, client_labels, suggestions=4)
    worker_labels = mount / "proj" / client_labels.name
    worker_labels.parent.mkdir()
    shutil.copy(client_labels, worker_labels)
    run_name = "run = ü ✓ 'q' n=20"
    spec = TrainJobSpec(
        config_content=tiny_training_config(max_epochs=2, run_name=run_name),
        labels_path=client_labels.as_posix(),
        path_mappings={client_labels.as_posix(): worker_labels.as_posix()},
    )
    auth = ChannelAuth(secret=room_secret)
    result = await asyncio.wait_for(
        run_remote_job(client, spec, auth=auth, worker_id="w"), scaled(180)
    )
    remote = worker_labels.parent / "models" / run_name
    assert result["output_path"] == remote.as_posix()
    assert (remote / "best.ckpt").is_file()

    # The copy drops once, mid-file; a new channel goes on from there.
    dest = models_dir_for(client_labels)
    channel = await open_channel(client, "w", auth=auth, timeout=scaled(10))
    closing: list[asyncio.Task[None]] = []

    def drop(done: int, total: int) -> None:
        if done > 100_000 and not closing:
            closing.append(asyncio.ensure_future(channel.close()))

    with pytest.raises((ChannelClosed, TransferError)):
        await download_models(
            channel, result, dest, is_visible=hidden(mount), on_progress=drop
        )
    await asyncio.gather(*closing)
    assert not (dest / run_name).exists()
    assert (dest / f"{run_name}{PARTIAL_SUFFIX}").is_dir()
    async with await open_channel(client, "w", auth=auth, timeout=scaled(10)) as again:
        (local,) = await download_models(again, result, dest, is_visible=hidden(mount))
    assert local == client_labels.parent / "models" / run_name
    assert tree(local) == tree(remote)

    # SLEAP's side: sleap-nn predicts with the copy, on the client's labels.
    out = tmp_path / "predictions.slp"
    argv = track_argv(
        client_labels,
        [local],
        output_path=out,
        frame_filter="suggested",
        peak_threshold=0.0,
        device="cpu",
    )
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    _, err = await asyncio.wait_for(proc.communicate(), scaled(180))
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    predictions = await asyncio.to_thread(sio.load_slp, out.as_posix())
    assert len(predictions.labeled_frames) == 4  # the suggested frames


@pytest.mark.slow
async def test_a_tiny_track_job_streams_predictions_that_load_with_sleap_io(
    worker: WorkerService,
    client: SignalingClient,
    room_secret: str,
    tmp_path: Path,
) -> None:
    mount = Path(worker.policy.mounts[0].path)
    labels = mount / "proj" / "labels.slp"
    labels.parent.mkdir()
    await asyncio.to_thread(write_tiny_labels, labels, suggestions=3)
    auth = ChannelAuth(secret=room_secret)
    trained = await asyncio.wait_for(
        run_remote_job(
            client,
            TrainJobSpec(
                config_content=tiny_training_config(max_epochs=1),
                labels_path=labels.as_posix(),
            ),
            auth=auth,
            worker_id="w",
        ),
        scaled(180),
    )
    spec = TrackJobSpec(
        data_path=labels.as_posix(),
        model_paths=(trained["output_path"],),
        frame_filter=FrameFilter.SUGGESTED,
        peak_threshold=0.0,
    )
    # The copy happens in the session's finish hook, as `sleap-rtc track` does.
    dest = tmp_path / "my project" / "labels.predictions.slp"
    arrived: list[Path] = []

    async def bring_home(
        channel: Channel, sent: JobSpec, result: dict[str, Any]
    ) -> None:
        arrived.append(
            await download_predictions(channel, result, dest, is_visible=hidden(mount))
        )

    result = await asyncio.wait_for(
        run_remote_job(client, spec, auth=auth, worker_id="w", finish=bring_home),
        scaled(180),
    )
    remote = Path(str(result["predictions_path"]))
    assert remote == labels.with_name("labels.predictions.slp")
    assert arrived == [dest]
    assert sha(dest) == sha(remote)  # also left on the worker's storage
    predictions = await asyncio.to_thread(sio.load_slp, dest.as_posix())
    assert len(predictions.labeled_frames) == 3  # the suggested frames
    assert all(lf.predicted_instances for lf in predictions.labeled_frames)


async def test_models_of_a_legacy_worker_stay_there(
    served: Served, connect: OpenChannel, served_mount: Path, tmp_path: Path
) -> None:
    """A 0.0.7 worker cannot send models: its folders are returned as they are
    (the local counterpart when visible), and ``--download`` says why not."""
    result = {
        **(served.info.result or {}),
        "models_stay_on_worker": True,
    }
    before = len(served.requests)
    async with await connect() as channel:
        hidden_paths = await download_models(
            channel, result, tmp_path / "m1", is_visible=hidden(served_mount)
        )
        assert hidden_paths == [Path(d) for d in result["model_paths"]]
        with pytest.raises(TransferError, match=r"0\.0\.7\) cannot send models"):
            await download_models(channel, result, tmp_path / "m2", download=True)
    assert len(served.requests) == before  # nothing was asked of the worker
    assert not (tmp_path / "m1").exists()
