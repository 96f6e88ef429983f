"""The client's uploads to a real worker over real data channels: sent once,
resumed after a dropped channel, cancelled cleanly, refused with a code."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sleap_rtc_core.client.upload import (
    UploadProgressLine,
    labels_to_send,
    upload_file,
)
from sleap_rtc_core.errors import ChannelClosed, UploadRefused
from sleap_rtc_core.sample_data import write_tiny_labels, write_tiny_video_labels
from sleap_rtc_core.signaling.client import SignalingClient
from sleap_rtc_core.signaling.service import Service
from sleap_rtc_core.transport.auth import ChannelAuth
from sleap_rtc_core.transport.channel import Channel
from sleap_rtc_core.transport.peer import open_channel
from sleap_rtc_core.worker.files.uploads import SEGMENT_SIZE, UploadQuota
from sleap_rtc_core.worker.service import WorkerService
from tests.fixtures.signaling import RoomCreds
from tests.fixtures.timing import async_wait_until, scaled
from tests.fixtures.transport import make_signaling, stated_worker

MB = 1 << 20


@pytest.fixture
async def worker(
    service: Service, room: RoomCreds, tmp_path: Path, room_secret: str
) -> AsyncIterator[WorkerService]:
    """A worker whose one mount is empty but for its upload area (30 MiB each)."""
    mount = tmp_path / "worker"
    mount.mkdir()
    svc = stated_worker(
        service.server.url,
        room,
        mount,
        room_secret,
        upload_dir=mount / "uploads",
        upload_quota=UploadQuota(max_bytes_per_uploader=30 * MB),
    )
    async with svc:
        yield svc


@pytest.fixture
async def client(service: Service, room: RoomCreds) -> AsyncIterator[SignalingClient]:
    async with make_signaling(service.server.url, room, "c", "client") as c:
        yield c


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
    scratch.mkdir()
    sent = labels_to_send(labels, scratch)
    assert sent == scratch / "labels.pkg.slp"
    import sleap_io as sio

    embedded = sio.load_slp(str(sent))
    assert len(embedded.labeled_frames) == len(sio.load_slp(str(labels)))
    assert all(v.backend_metadata.get("has_embedded_images") for v in embedded.videos)


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
