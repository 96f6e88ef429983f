"""Uploads into a real worker over real data channels (the raw wire).

A real :class:`WorkerService` with an upload area ``mount/uploads`` (8 MiB per
uploader) on the embedded signaling server; clients speak the raw
``FILE_UPLOAD_*`` messages, as sleap-rtc 0.0.7 clients (``CHECK``/``START``,
through :func:`~sleap_rtc_core.transport.transfer.send_file`) and ours
(``BEGIN``/``SEGMENT``) send them, so the wire is what is tested.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sleap_rtc_core.client.remote_job import RemoteJob
from sleap_rtc_core.errors import JobRejected, TransferError
from sleap_rtc_core.protocol.channel import ChannelMessage
from sleap_rtc_core.protocol.channel_fs import (
    FsErrorMsg,
    FsListDirMsg,
    FsListResponseMsg,
    UseWorkerPathMsg,
    WorkerPathErrorMsg,
    WorkerPathOkMsg,
)
from sleap_rtc_core.protocol.channel_transfer import (
    FileUploadBeginMsg,
    FileUploadCacheHitMsg,
    FileUploadCheckMsg,
    FileUploadCompleteMsg,
    FileUploadEndMsg,
    FileUploadErrorMsg,
    FileUploadOffsetMsg,
    FileUploadReadyMsg,
    FileUploadSegmentMsg,
    FileUploadStartMsg,
    UploadErrorCode,
    parse_upload_error,
)
from sleap_rtc_core.protocol.jobspec import TrainJobSpec
from sleap_rtc_core.signaling.client.session_io import SignalingClient
from sleap_rtc_core.signaling.service import Service
from sleap_rtc_core.transport.auth import ChannelAuth
from sleap_rtc_core.transport.channel import Channel
from sleap_rtc_core.transport.peer import open_channel
from sleap_rtc_core.transport.transfer import send_file
from sleap_rtc_core.worker.files.uploads import SEGMENT_SIZE, UploadQuota
from sleap_rtc_core.worker.service import WorkerService
from tests.fixtures.signaling import RoomCreds
from tests.fixtures.timing import async_wait_until, scaled
from tests.fixtures.transport import make_signaling, stated_worker

MB = 1 << 20
REPLIES = (
    FileUploadReadyMsg,
    FileUploadCacheHitMsg,
    FileUploadOffsetMsg,
    FileUploadCompleteMsg,
    FileUploadErrorMsg,
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def worker_options(worker_mount: Path) -> dict[str, Any]:
    return {
        "upload_dir": worker_mount / "uploads",
        "upload_quota": UploadQuota(max_bytes_per_uploader=8 * MB),
    }


def area_of(worker: WorkerService) -> Path:
    assert worker.uploads.area is not None
    return worker.uploads.area.root


async def connect(
    service: Service, room: RoomCreds, secret: str, peer_id: str
) -> tuple[Channel, SignalingClient]:
    client = make_signaling(service.server.url, room, peer_id, "client")
    await client.start(timeout=scaled(5))
    channel = await open_channel(client, "w", auth=ChannelAuth(secret=secret))
    return channel, client


@pytest.fixture
async def channel(
    worker: WorkerService, service: Service, room: RoomCreds, room_secret: str
) -> AsyncIterator[Channel]:
    channel, client = await connect(service, room, room_secret, "alice")
    try:
        yield channel
    finally:
        await channel.close()
        await client.close()


async def ask(channel: Channel, msg: ChannelMessage) -> ChannelMessage:
    return await channel.request(msg, REPLIES, scaled(10))


def code_of(reply: ChannelMessage) -> UploadErrorCode | None:
    assert isinstance(reply, FileUploadErrorMsg), reply
    return parse_upload_error(reply.reason)[0]


async def send_segments(channel: Channel, data: bytes, start: int, stop: int) -> None:
    """Bytes ``[start, stop)`` in 64 KiB frames, a SEGMENT after each 4 MiB."""
    pos = start
    while pos < stop:
        end = min(stop, (pos // SEGMENT_SIZE + 1) * SEGMENT_SIZE)
        for i in range(pos, end, 64 << 10):
            await channel.send_bytes(data[i : min(end, i + (64 << 10))])
        if end % SEGMENT_SIZE == 0 or end == len(data):
            await channel.send(FileUploadSegmentMsg(end, sha(data[pos:end])))
        pos = end


async def test_a_reference_client_uploads_into_the_area_once(
    worker: WorkerService, channel: Channel, tmp_path: Path
) -> None:
    labels = tmp_path / "labels.pkg.slp"
    data = os.urandom(300_000)
    labels.write_bytes(data)
    area = area_of(worker)
    sent = await send_file(channel, labels, dest_dir=str(area), create_subdir=True)
    assert sent.path == str(area / "sha256" / sent.sha256 / "labels.pkg.slp")
    assert await asyncio.to_thread(Path(sent.path).read_bytes) == data
    again = await send_file(channel, labels, dest_dir=str(area))
    assert again.cached
    assert again.path == sent.path
    # Anywhere else in the mount is not an upload area.
    with pytest.raises(TransferError, match="ACCESS_DENIED"):
        await send_file(channel, labels, dest_dir=str(area.parent), use_cache=False)


@pytest.mark.parametrize(
    ("name", "dest"),
    [
        ("../evil.slp", "{area}"),
        ("evil.slp", "{area}/.."),
        ("evil.slp", "/tmp"),
        ("evil.slp", "relative/dir"),
    ],
)
async def test_escapes_from_the_area_are_refused(
    worker: WorkerService, channel: Channel, name: str, dest: str
) -> None:
    area = area_of(worker)
    assert isinstance(
        await ask(channel, FileUploadCheckMsg("a" * 64, name)), FileUploadReadyMsg
    )
    reply = await ask(
        channel, FileUploadStartMsg(name, 10, dest.format(area=area), False)
    )
    assert code_of(reply) is UploadErrorCode.ACCESS_DENIED
    assert not (area.parent / "evil.slp").exists()
    assert list((area / "sha256").iterdir()) == []


async def test_a_start_without_a_check_is_refused(
    worker: WorkerService, channel: Channel
) -> None:
    reply = await ask(channel, FileUploadStartMsg("a.slp", 10, str(area_of(worker))))
    assert code_of(reply) is UploadErrorCode.INVALID_REQUEST


async def test_a_wrong_checksum_stores_nothing(
    worker: WorkerService, channel: Channel
) -> None:
    data = os.urandom(100_000)
    area = area_of(worker)
    await ask(channel, FileUploadCheckMsg(sha(b"something else"), "a.slp"))
    ready = await ask(channel, FileUploadStartMsg("a.slp", len(data), str(area)))
    assert isinstance(ready, FileUploadReadyMsg)
    await channel.send_bytes(data)
    reply = await ask(channel, FileUploadEndMsg())
    assert code_of(reply) is UploadErrorCode.CHECKSUM_MISMATCH
    assert list((area / "sha256").iterdir()) == []
    assert not list((area / "partial").rglob("*.partial"))


async def test_a_bad_segment_is_refused_and_the_partial_kept(
    worker: WorkerService, channel: Channel
) -> None:
    data = os.urandom(SEGMENT_SIZE + 1000)
    offset = await ask(channel, FileUploadBeginMsg("a.slp", len(data), sha(data)))
    assert isinstance(offset, FileUploadOffsetMsg)
    assert offset.offset == 0
    await send_segments(channel, data, 0, SEGMENT_SIZE)
    await channel.send_bytes(data[SEGMENT_SIZE:])
    reply = await ask(channel, FileUploadSegmentMsg(len(data), "0" * 64))
    assert code_of(reply) is UploadErrorCode.CHECKSUM_MISMATCH
    resumed = await ask(channel, FileUploadBeginMsg("a.slp", len(data), sha(data)))
    assert isinstance(resumed, FileUploadOffsetMsg)
    assert resumed.offset == SEGMENT_SIZE


async def test_quota_exceeded_is_a_typed_refusal(
    worker: WorkerService, channel: Channel
) -> None:
    reply = await ask(channel, FileUploadBeginMsg("big.slp", 9 * MB, "b" * 64))
    assert code_of(reply) is UploadErrorCode.QUOTA_EXCEEDED


async def test_a_dropped_channel_resumes_where_it_was_verified(
    worker: WorkerService, service: Service, room: RoomCreds, room_secret: str
) -> None:
    data = os.urandom(SEGMENT_SIZE + 500_000)
    first, client = await connect(service, room, room_secret, "alice")
    try:
        await ask(first, FileUploadCheckMsg(sha(data), "big.slp"))
        await ask(first, FileUploadBeginMsg("big.slp", len(data), sha(data)))
        await send_segments(first, data, 0, SEGMENT_SIZE + 100_000)
        # The segment's bytes are held before the channel goes.
        partial = area_of(worker) / "partial" / "sleap-rtc-alice"
        await async_wait_until(
            lambda: any(
                p.stat().st_size >= SEGMENT_SIZE for p in partial.glob("*.partial")
            ),
            scaled(10),
        )
    finally:
        await first.close()
    second = await open_channel(client, "w", auth=ChannelAuth(secret=room_secret))
    area = worker.uploads.area
    assert area is not None
    try:
        await async_wait_until(lambda: not area.uploading, scaled(10))
        assert isinstance(
            await ask(second, FileUploadCheckMsg(sha(data), "big.slp")),
            FileUploadReadyMsg,
        )
        offset = await ask(second, FileUploadBeginMsg("big.slp", len(data), sha(data)))
        assert isinstance(offset, FileUploadOffsetMsg)
        assert offset.offset == SEGMENT_SIZE
        await send_segments(second, data, offset.offset, len(data))
        done = await ask(second, FileUploadEndMsg())
        assert isinstance(done, FileUploadCompleteMsg)
        stored = Path(done.path)
        assert await asyncio.to_thread(stored.read_bytes) == data
    finally:
        await second.close()
        await client.close()


async def test_another_uploader_cannot_use_or_see_an_upload(
    worker: WorkerService,
    channel: Channel,
    service: Service,
    room: RoomCreds,
    room_secret: str,
    tmp_path: Path,
) -> None:
    labels = tmp_path / "mine.pkg.slp"
    labels.write_bytes(os.urandom(50_000))
    sent = await send_file(channel, labels, dest_dir=str(area_of(worker)))
    assert sent.path is not None
    # A config that fails on its own, so that no job ever starts here.
    spec = TrainJobSpec(config_content="trainer_config: [bad", labels_path=sent.path)
    other, client = await connect(service, room, room_secret, "mallory")
    try:
        listing = await other.request(
            FsListDirMsg(str(area_of(worker))), (FsListResponseMsg, FsErrorMsg), 10
        )
        assert isinstance(listing, FsErrorMsg)
        assert listing.code == "ACCESS_DENIED"
        seen = await other.request(
            UseWorkerPathMsg(sent.path), (WorkerPathOkMsg, WorkerPathErrorMsg), 10
        )
        assert isinstance(seen, WorkerPathErrorMsg)
        with pytest.raises(JobRejected) as rejected:
            await RemoteJob(other, spec).submit(timeout=scaled(20))
        labels_errors = [
            e for e in rejected.value.errors if e["field"] == "labels_path"
        ]
        assert labels_errors
        assert labels_errors[0]["code"] == "NOT_ALLOWED"
        # The mount's listing does not show the area either.
        top = await other.request(
            FsListDirMsg(str(area_of(worker).parent)), (FsListResponseMsg,), 10
        )
        assert isinstance(top, FsListResponseMsg)
        assert "uploads" not in {e["name"] for e in top.entries}
        # Asking with the hash proves it knows the content: now it may.
        hit = await ask(other, FileUploadCheckMsg(sent.sha256, "x.pkg.slp"))
        assert isinstance(hit, FileUploadCacheHitMsg)
        with pytest.raises(JobRejected) as again:
            await RemoteJob(other, spec).submit(timeout=scaled(20))
        assert "labels_path" not in {e["field"] for e in again.value.errors}
    finally:
        await other.close()
        await client.close()


async def test_a_worker_without_an_area_says_so(
    service: Service, room: RoomCreds, tmp_path: Path, room_secret: str
) -> None:
    async with stated_worker(service.server.url, room, tmp_path, room_secret):
        channel, client = await connect(service, room, room_secret, "alice")
        try:
            reply = await ask(channel, FileUploadCheckMsg("c" * 64, "a.slp"))
            assert code_of(reply) is UploadErrorCode.NO_UPLOAD_AREA
        finally:
            await channel.close()
            await client.close()


async def test_a_symlink_planted_in_the_area_is_refused(
    worker: WorkerService, channel: Channel, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (area_of(worker) / "partial" / "sleap-rtc-alice").symlink_to(outside)
    reply = await ask(channel, FileUploadBeginMsg("a.slp", 10, "d" * 64))
    assert code_of(reply) is UploadErrorCode.ACCESS_DENIED
    assert list(outside.iterdir()) == []
