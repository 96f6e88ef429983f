"""The client's uploads to a real worker over real data channels: sent once,
resumed after a dropped channel, cancelled cleanly, refused with a code."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from sleap_rtc_core.client.job_secrets import (
    job_for_model,
    save_job_models,
    save_job_secret,
)
from sleap_rtc_core.client.remote_job import RemoteJob, claim_models
from sleap_rtc_core.client.upload import (
    UploadProgressLine,
    labels_to_send,
    package_cache_dir,
    upload_file,
    upload_with_videos,
    videos_to_send,
)
from sleap_rtc_core.errors import (
    ChannelClosed,
    JobError,
    JobRejected,
    LabelsUnreadable,
    UploadRefused,
)
from sleap_rtc_core.protocol.channel_transfer import model_run_dirs
from sleap_rtc_core.protocol.jobspec import TrackJobSpec, TrainJobSpec
from sleap_rtc_core.sample_data import (
    tiny_training_config,
    write_tiny_labels,
    write_tiny_video_labels,
)
from sleap_rtc_core.signaling.client.session_io import SignalingClient
from sleap_rtc_core.signaling.service import Service
from sleap_rtc_core.transport.auth import ChannelAuth
from sleap_rtc_core.transport.channel import Channel
from sleap_rtc_core.transport.peer import open_channel
from sleap_rtc_core.worker.files.uploads import SEGMENT_SIZE, UploadQuota
from sleap_rtc_core.worker.service import WorkerService
from tests.fixtures.signaling import RoomCreds
from tests.fixtures.timing import async_wait_until, scaled
from tests.fixtures.transport import make_signaling

MB = 1 << 20


@pytest.fixture
def worker_options(worker_mount: Path) -> dict[str, Any]:
    """The worker's one mount is empty but for its upload area (30 MiB each)."""
    return {
        "upload_dir": worker_mount / "uploads",
        "upload_quota": UploadQuota(max_bytes_per_uploader=30 * MB),
    }


async def connect(client: SignalingClient, secret: str) -> Channel:
    return await open_channel(client, "w", auth=ChannelAuth(secret=secret))


def stored_files(worker: WorkerService) -> list[Path]:
    assert worker.uploads.area is not None
    return sorted((worker.uploads.area.root / "sha256").glob("*/[!.]*"))


async def test_a_package_is_sent_once(
    worker: WorkerService, client: SignalingClient, room_secret: str, tmp_path: Path
) -> None:
    labels = await asyncio.to_thread(write_tiny_labels, tmp_path / "l.pkg.slp")
    seen: list[tuple[int, int]] = []
    async with await connect(client, room_secret) as channel:
        first = await upload_file(
            channel, labels, on_progress=lambda d, t: seen.append((d, t))
        )
    size = labels.stat().st_size
    assert not first.cached
    assert first.sent == size
    assert seen[-1] == (size, size)
    stored = await asyncio.to_thread(Path(first.path).read_bytes)
    assert stored == labels.read_bytes()
    async with await connect(client, room_secret) as channel:  # a second job
        second = await upload_file(channel, labels)
    assert second.cached
    assert second.sent == 0
    assert second.path == first.path
    assert [p.name for p in stored_files(worker)] == ["l.pkg.slp"]


async def test_a_dropped_channel_resumes_and_the_checksum_matches(
    worker: WorkerService, client: SignalingClient, room_secret: str, tmp_path: Path
) -> None:
    data = os.urandom(2 * SEGMENT_SIZE + 300_000)
    big = tmp_path / "big.pkg.slp"
    big.write_bytes(data)
    channel = await connect(client, room_secret)
    cut: list[asyncio.Task[None]] = []

    def drop_midway(done: int, total: int) -> None:
        if done > SEGMENT_SIZE + MB and not cut:
            cut.append(asyncio.ensure_future(channel.close("dropped by the test")))

    with pytest.raises(ChannelClosed):
        await upload_file(channel, big, on_progress=drop_midway)
    await asyncio.gather(*cut)
    assert stored_files(worker) == []  # nothing that looks complete
    async with await connect(client, room_secret) as again:
        resumed = await upload_file(again, big)
    assert resumed.resumed_at >= SEGMENT_SIZE
    assert resumed.resumed_at % SEGMENT_SIZE == 0
    assert resumed.sent == len(data) - resumed.resumed_at
    assert await asyncio.to_thread(Path(resumed.path).read_bytes) == data
    assert resumed.sha256 == hashlib.sha256(data).hexdigest()


async def test_cancel_leaves_nothing_that_looks_complete(
    worker: WorkerService, client: SignalingClient, room_secret: str, tmp_path: Path
) -> None:
    big = tmp_path / "big.pkg.slp"
    big.write_bytes(os.urandom(2 * SEGMENT_SIZE))
    started = asyncio.Event()
    async with await connect(client, room_secret) as channel:
        task = asyncio.ensure_future(
            upload_file(channel, big, on_progress=lambda d, t: d > MB and started.set())
        )
        await asyncio.wait_for(started.wait(), scaled(20))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        area = worker.uploads.area
        assert area is not None
        await async_wait_until(lambda: not area.uploading, scaled(10))
    assert stored_files(worker) == []
    partials = list((area.root / "partial").rglob("*.partial"))
    assert all(p.stat().st_size % SEGMENT_SIZE == 0 for p in partials)


async def test_a_refusal_carries_its_code(
    worker: WorkerService, client: SignalingClient, room_secret: str, tmp_path: Path
) -> None:
    huge = tmp_path / "huge.pkg.slp"
    with huge.open("wb") as f:
        f.truncate(31 * MB)
    async with await connect(client, room_secret) as channel:
        with pytest.raises(UploadRefused) as refused:
            await upload_file(channel, huge)
    assert refused.value.code == "QUOTA_EXCEEDED"


def test_what_is_sent_for_a_labels_file(tmp_path: Path) -> None:
    package = write_tiny_labels(tmp_path / "p.pkg.slp")
    assert labels_to_send(package, tmp_path) == package
    labels, _video = write_tiny_video_labels(tmp_path / "v" / "labels.slp")
    scratch = tmp_path / "scratch"
    sent = labels_to_send(labels, scratch)
    assert sent.parent.parent == scratch
    assert sent.name == "labels.pkg.slp"
    import sleap_io as sio

    embedded = sio.load_slp(str(sent))
    assert len(embedded.labeled_frames) == len(sio.load_slp(str(labels)))
    assert all(v.backend_metadata.get("has_embedded_images") for v in embedded.videos)


def test_the_same_labels_make_the_same_package_once(tmp_path: Path) -> None:
    """A package kept is what lets the next run ask by the same hash."""
    labels, _video = write_tiny_video_labels(tmp_path / "v" / "labels.slp")
    first = labels_to_send(labels)  # the cache folder (HOME is the test's)
    assert first.is_relative_to(package_cache_dir())
    written = first.stat().st_mtime_ns
    again = labels_to_send(labels)
    assert again == first
    assert again.stat().st_mtime_ns == written  # not written again
    write_tiny_video_labels(labels, n_frames=4)  # other labels: another package
    other = labels_to_send(labels)
    assert other != first
    assert other.name == first.name


def test_the_progress_line_says_bytes_rate_and_eta() -> None:
    now = [0.0]
    line = UploadProgressLine(clock=lambda: now[0])
    assert line.feed(0, 10_000_000) == "upload 0.0/10.0 MB"
    now[0] = 0.1
    assert line.feed(1_000_000, 10_000_000) is None  # too soon
    now[0] = 2.0
    assert line.feed(4_000_000, 10_000_000) == "upload 4.0/10.0 MB  2.0 MB/s  ETA 3 s"
    now[0] = 2.1
    assert line.feed(10_000_000, 10_000_000) == "upload 10.0/10.0 MB  4.8 MB/s"


# ------------------------------------------------------------ with its videos


@pytest.mark.slow
async def test_labels_go_with_their_videos_and_train_on_them(
    worker: WorkerService, client: SignalingClient, room_secret: str, tmp_path: Path
) -> None:
    """The .slp as it is and its video, each stored by content; the job reads
    the video where it landed (the worker's copy of the labels names it)."""
    labels, video = await asyncio.to_thread(
        write_tiny_video_labels, tmp_path / "laptop" / "labels.slp", n_frames=6
    )
    assert videos_to_send(labels) == [video]
    seen: list[tuple[int, int]] = []
    async with await connect(client, room_secret) as channel:
        sent, mappings = await upload_with_videos(
            channel, labels, on_progress=lambda d, t: seen.append((d, t))
        )
        assert set(mappings) == {str(labels), str(video)}
        assert sent.path == mappings[str(labels)]
        spec = TrainJobSpec(
            config_content=tiny_training_config(max_epochs=1),
            labels_path=str(labels),
            path_mappings=mappings,
        )
        job = RemoteJob(channel, spec)
        await job.submit(timeout=scaled(20))
        result = await asyncio.wait_for(job.follow(), scaled(240))
    total = labels.stat().st_size + video.stat().st_size
    assert seen[-1] == (total, total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert {p.name for p in stored_files(worker)} == {"labels.slp", video.name}
    model_dir = Path(result["output_path"])
    assert worker.uploads.area is not None
    assert model_dir.is_relative_to(worker.uploads.area.root / "models")
    assert await asyncio.to_thread(lambda: list(model_dir.glob("*.ckpt")))
    async with await connect(client, room_secret) as channel:  # sent once
        again, _ = await upload_with_videos(channel, labels)
    assert again.cached


async def test_a_job_cannot_read_another_uploaders_video(
    worker: WorkerService,
    client: SignalingClient,
    service: Service,
    room: RoomCreds,
    room_secret: str,
    tmp_path: Path,
) -> None:
    """Mapping a video to a stored file the channel neither sent nor asked
    for by hash is refused, typed, before anything runs."""
    labels, video = await asyncio.to_thread(
        write_tiny_video_labels, tmp_path / "laptop" / "labels.slp", n_frames=4
    )
    async with await connect(client, room_secret) as channel:
        theirs = await upload_file(channel, video)
    async with make_signaling(service.server.url, room, "d", "client") as other:
        async with await connect(other, room_secret) as channel:
            mine = await upload_file(channel, labels)
            spec = TrainJobSpec(
                config_content=tiny_training_config(max_epochs=1),
                labels_path=str(labels),
                path_mappings={str(labels): mine.path, str(video): theirs.path},
            )
            with pytest.raises(JobRejected) as rejected:
                await RemoteJob(channel, spec).submit(timeout=scaled(20))
    [error] = rejected.value.errors
    assert error["code"] == "NOT_ALLOWED"
    assert error["field"].endswith("videos[0]")


def test_an_image_sequence_or_a_missing_video_goes_as_a_package(
    tmp_path: Path,
) -> None:
    labels, video = write_tiny_video_labels(tmp_path / "v" / "labels.slp")
    video.unlink()
    with pytest.raises(LabelsUnreadable, match="package"):
        videos_to_send(labels)
    package = write_tiny_labels(tmp_path / "p.pkg.slp")
    assert videos_to_send(package) == []


# ------------------------------------------------ a model trained from an upload


@pytest.mark.slow
async def test_a_model_trained_from_an_upload_serves_its_owner_elsewhere(
    worker: WorkerService,
    client: SignalingClient,
    service: Service,
    room: RoomCreds,
    room_secret: str,
    tmp_path: Path,
) -> None:
    """A later connection (another peer id, as a new process has) may name
    the model in the upload area once it shows the job's kept secret; without
    it, or with a wrong one, it is refused, typed."""
    labels = await asyncio.to_thread(write_tiny_labels, tmp_path / "l.pkg.slp")
    async with await connect(client, room_secret) as channel:
        sent = await upload_file(channel, labels)
        job = RemoteJob(
            channel,
            TrainJobSpec(
                config_content=tiny_training_config(max_epochs=1),
                labels_path=sent.path,
            ),
        )
        await job.submit(timeout=scaled(20))
        result = await asyncio.wait_for(job.follow(), scaled(240))
    [model] = model_run_dirs(result)
    assert worker.uploads.area is not None
    assert Path(model).is_relative_to(worker.uploads.area.root / "models")
    assert job.job_id is not None
    assert job_for_model("w", model) == (job.job_id, job.job_secret)

    def track() -> TrackJobSpec:
        return TrackJobSpec(data_path=sent.path, model_paths=(model,))

    async with make_signaling(service.server.url, room, "later", "client") as other:
        async with await connect(other, room_secret) as channel:
            await upload_file(channel, labels)  # asked by hash: the data is ours
            with pytest.raises(JobRejected) as rejected:
                await RemoteJob(channel, track()).submit(timeout=scaled(20))
            assert {e["code"] for e in rejected.value.errors} == {"NOT_ALLOWED"}
            assert await claim_models(channel, [model]) == [job.job_id]
            later = RemoteJob(channel, track())
            await later.submit(timeout=scaled(20))
            done = await asyncio.wait_for(later.follow(), scaled(180))
        assert done.get("predictions_path")

        # A wrong secret proves nothing.
        await asyncio.to_thread(save_job_secret, "w", job.job_id, "not-the-secret")
        await asyncio.to_thread(save_job_models, "w", job.job_id, [model])
        async with await connect(other, room_secret) as channel:
            with pytest.raises(JobError) as unknown:
                await claim_models(channel, [model])
            assert unknown.value.code == "UNKNOWN_JOB"
            with pytest.raises(JobRejected):
                await RemoteJob(channel, track()).submit(timeout=scaled(20))
