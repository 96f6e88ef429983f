"""File transfer between two real peers: uploads (with the cache and the
destination policy) and downloads, sizes and SHA-256 checked, no partial file
left behind by a failure or an interrupted channel."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sleap_rtc_core.errors import ChannelClosed, PathNotAllowed, TransferError
from sleap_rtc_core.protocol.channel import ChannelMessage
from sleap_rtc_core.protocol.channel_messages import ModelTypeMsg
from sleap_rtc_core.protocol.channel_transfer import (
    EndOfFileMsg,
    FileDownloadMetaMsg,
    FileUploadCheckMsg,
    FileUploadCompleteMsg,
    FileUploadEndMsg,
    FileUploadErrorMsg,
    FileUploadReadyMsg,
    FileUploadStartMsg,
)
from sleap_rtc_core.transport import (
    DOWNLOAD_SUBDIR,
    Channel,
    UploadCache,
    receive_file,
    send_file,
    serve_upload,
)
from tests.fixtures.timing import async_wait_until, scaled
from tests.fixtures.transport import ChannelPair

MB = 1 << 20


def make_file(path: Path, size: int, seed: int = 0) -> str:
    """Write ``size`` pseudo-random bytes; return their SHA-256."""
    digest = hashlib.sha256()
    block = hashlib.sha256(str(seed).encode()).digest() * (MB // 32)
    with path.open("wb") as f:
        left = size
        while left:
            piece = block[: min(left, len(block))]
            f.write(piece)
            digest.update(piece)
            left -= len(piece)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def partials(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".part")]


@dataclass
class UploadServer:
    """The worker's side: serves every upload on the channel into ``mount``."""

    mount: Path
    cache: UploadCache = field(default_factory=UploadCache)
    stored: list[Path] = field(default_factory=list)
    errors: list[Exception] = field(default_factory=list)
    progress: list[tuple[int, int]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def allowed(self, path: Path) -> bool:
        return path.is_relative_to(self.mount.resolve())

    async def __call__(self, channel: Channel) -> None:
        while True:
            try:
                msg = await channel.recv()
            except ChannelClosed:
                return
            if not isinstance(msg, FileUploadCheckMsg | FileUploadStartMsg):
                continue
            try:
                path = await serve_upload(
                    channel,
                    msg,
                    allowed=self.allowed,
                    cache=self.cache,
                    on_progress=lambda d, t: self.progress.append((d, t)),
                    timeout=scaled(5),
                )
            except (TransferError, PathNotAllowed, ChannelClosed) as exc:
                self.errors.append(exc)
            else:
                self.stored.append(path)


@pytest.fixture
def mount(tmp_path: Path) -> Path:
    folder = tmp_path / "mount"
    folder.mkdir()
    return folder


@pytest.fixture
async def server(channel_pair: ChannelPair, mount: Path) -> AsyncIterator[UploadServer]:
    """An :class:`UploadServer` reading the worker end of the pair."""
    srv = UploadServer(mount)
    srv.task = asyncio.create_task(srv(channel_pair.worker))
    try:
        yield srv
    finally:
        srv.task.cancel()
        await asyncio.gather(srv.task, return_exceptions=True)


async def test_upload_stores_the_file_and_reports_progress(
    channel_pair: ChannelPair, server: UploadServer, tmp_path: Path
) -> None:
    source = tmp_path / "labels.pkg.slp"
    sha = make_file(source, 3 * MB + 17)
    seen: list[tuple[int, int]] = []
    sent = await send_file(
        channel_pair.client,
        source,
        dest_dir=str(server.mount),
        on_progress=lambda d, t: seen.append((d, t)),
        timeout=scaled(10),
    )
    stored = server.mount / "labels.pkg.slp"
    assert sent.sha256 == sha
    assert sent.size == 3 * MB + 17
    assert sent.path == str(stored.resolve())
    assert not sent.cached
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == sha
    assert seen[-1] == (sent.size, sent.size)
    assert server.progress[-1] == (sent.size, sent.size)
    assert partials(server.mount) == []


async def test_second_upload_of_the_same_content_is_a_cache_hit(
    channel_pair: ChannelPair, server: UploadServer, tmp_path: Path
) -> None:
    source = tmp_path / "video.mp4"
    make_file(source, 200_000)
    first = await send_file(
        channel_pair.client, source, dest_dir=str(server.mount), timeout=scaled(10)
    )
    second = await send_file(
        channel_pair.client,
        source,
        dest_dir=str(server.mount),
        name="other-name.mp4",
        timeout=scaled(10),
    )
    assert second.cached
    assert second.path == first.path
    assert not (server.mount / "other-name.mp4").exists()
    # A changed file is no longer served from the cache.
    await asyncio.to_thread(Path(first.path or "").write_bytes, b"changed")
    third = await send_file(
        channel_pair.client, source, dest_dir=str(server.mount), timeout=scaled(10)
    )
    assert not third.cached


async def test_upload_into_a_subdir(
    channel_pair: ChannelPair, server: UploadServer, tmp_path: Path
) -> None:
    source = tmp_path / "a b ü.slp"
    make_file(source, 1000)
    sent = await send_file(
        channel_pair.client,
        source,
        dest_dir=str(server.mount),
        create_subdir=True,
        timeout=scaled(10),
    )
    assert sent.path == str((server.mount / DOWNLOAD_SUBDIR / "a b ü.slp").resolve())


@pytest.mark.parametrize(
    ("dest", "name"),
    [
        pytest.param("outside", "x.slp", id="folder-outside-the-mount"),
        pytest.param("mount", "../x.slp", id="name-with-a-folder"),
        pytest.param("mount", "..", id="dot-dot"),
        pytest.param("link", "x.slp", id="symlink-out-of-the-mount"),
        pytest.param("relative", "x.slp", id="relative-folder"),
        pytest.param("missing", "x.slp", id="missing-folder"),
    ],
)
async def test_upload_outside_the_policy_is_refused(
    channel_pair: ChannelPair,
    server: UploadServer,
    tmp_path: Path,
    dest: str,
    name: str,
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (server.mount / "link").symlink_to(outside)
    folders = {
        "outside": str(outside),
        "mount": str(server.mount),
        "link": str(server.mount / "link"),
        "relative": "mount",
        "missing": str(server.mount / "nope"),
    }
    source = tmp_path / "src.slp"
    make_file(source, 1000)
    with pytest.raises(TransferError, match="refused"):
        await send_file(
            channel_pair.client,
            source,
            dest_dir=folders[dest],
            name=name,
            use_cache=False,
            timeout=scaled(10),
        )
    await async_wait_until(lambda: bool(server.errors), scaled(5))
    assert not list(outside.iterdir())
    assert sorted(p.name for p in server.mount.iterdir()) == ["link"]


async def test_no_policy_means_no_upload(
    channel_pair: ChannelPair, tmp_path: Path
) -> None:
    client, worker = channel_pair.client, channel_pair.worker
    start = FileUploadStartMsg("x.slp", 3, str(tmp_path))
    reply = asyncio.create_task(
        client.request(start, (FileUploadReadyMsg, FileUploadErrorMsg), scaled(5))
    )
    msg = await worker.recv(scaled(5))
    assert isinstance(msg, FileUploadStartMsg)
    with pytest.raises(PathNotAllowed):
        await receive_file(worker, msg)
    assert isinstance(await reply, FileUploadErrorMsg)
    assert not (tmp_path / "x.slp").exists()


@pytest.mark.parametrize("fault", ["short", "long", "hash"])
async def test_wrong_size_or_hash_leaves_no_file(
    channel_pair: ChannelPair, server: UploadServer, fault: str
) -> None:
    client = channel_pair.client
    data = b"0123456789" * 1000
    sha = hashlib.sha256(b"other content" if fault == "hash" else data).hexdigest()
    body = {"short": data[:-1], "long": data + b"!", "hash": data}[fault]
    ready = (FileUploadReadyMsg, FileUploadErrorMsg)
    assert isinstance(
        await client.request(FileUploadCheckMsg(sha, "f.bin"), ready, scaled(5)),
        FileUploadReadyMsg,
    )
    start = FileUploadStartMsg("f.bin", len(data), str(server.mount))
    assert isinstance(await client.request(start, ready, scaled(5)), FileUploadReadyMsg)
    with client.expecting((FileUploadCompleteMsg, FileUploadErrorMsg)) as final:
        await client.send_bytes(body)
        await client.send(FileUploadEndMsg())
        reply = await asyncio.wait_for(final, scaled(5))
    assert isinstance(reply, FileUploadErrorMsg)
    await async_wait_until(lambda: bool(server.errors), scaled(5))
    assert isinstance(server.errors[0], TransferError)
    assert list(server.mount.iterdir()) == []


async def test_interrupted_upload_leaves_no_partial_file(
    channel_pair: ChannelPair, server: UploadServer, tmp_path: Path
) -> None:
    client = channel_pair.client
    source = tmp_path / "big.bin"
    make_file(source, 8 * MB)

    def stop_midway(done: int, total: int) -> None:
        if done >= 2 * MB and not client.closed.is_set():
            asyncio.get_running_loop().create_task(client.close())

    with pytest.raises(ChannelClosed):
        await send_file(
            client,
            source,
            dest_dir=str(server.mount),
            on_progress=stop_midway,
            timeout=scaled(10),
        )
    await async_wait_until(lambda: bool(server.errors), scaled(10))
    assert isinstance(server.errors[0], ChannelClosed)
    assert list(server.mount.iterdir()) == []


async def test_download_with_meta_checks_and_interleaved_messages(
    channel_pair: ChannelPair, tmp_path: Path
) -> None:
    client, worker = channel_pair.client, channel_pair.worker
    source = tmp_path / "out.predictions.slp"
    sha = make_file(source, 2 * MB + 5)
    dest = tmp_path / "client"
    dest.mkdir()
    sending = asyncio.create_task(
        send_file(worker, source, kind="predictions", transfer_id="t1")
    )
    meta = await client.recv(scaled(5))
    assert isinstance(meta, FileDownloadMetaMsg)
    assert meta.kind == "predictions"
    assert meta.sha256 == sha
    others: list[ChannelMessage] = []
    await worker.send(ModelTypeMsg("centroid"))  # arrives amid the bytes
    path = await receive_file(
        client, meta, dest, on_other=others.append, timeout=scaled(10)
    )
    sent = await sending
    assert sent.sha256 == sha
    assert path == dest / "out.predictions.slp"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
    assert others == [ModelTypeMsg("centroid")]
    assert partials(dest) == []


async def test_download_with_a_wrong_hash_leaves_no_file(
    channel_pair: ChannelPair, tmp_path: Path
) -> None:
    client, worker = channel_pair.client, channel_pair.worker
    meta = FileDownloadMetaMsg(name="x.slp", size=4, sha256="0" * 64)
    await worker.send(meta)
    await worker.send_bytes(b"abcd")
    await worker.send(EndOfFileMsg())
    got = await client.recv(scaled(5))
    assert isinstance(got, FileDownloadMetaMsg)
    with pytest.raises(TransferError, match="SHA-256"):
        await receive_file(client, got, tmp_path, timeout=scaled(5))
    assert await asyncio.to_thread(os.listdir, tmp_path) == []


async def test_download_name_cannot_leave_the_folder(
    channel_pair: ChannelPair, tmp_path: Path
) -> None:
    meta = FileDownloadMetaMsg(name="x.slp", size=1, sha256="0" * 64)
    # The message class refuses such names; a peer's meta is checked again.
    object.__setattr__(meta, "name", "../x.slp")
    with pytest.raises(TransferError, match="bare file name"):
        await receive_file(channel_pair.client, meta, tmp_path)


async def test_interrupted_download_leaves_no_partial_file(
    channel_pair: ChannelPair, tmp_path: Path
) -> None:
    client, worker = channel_pair.client, channel_pair.worker
    source = tmp_path / "big.bin"
    make_file(source, 8 * MB)
    dest = tmp_path / "client"
    dest.mkdir()
    sending = asyncio.create_task(send_file(worker, source))
    meta = await client.recv(scaled(5))
    assert isinstance(meta, FileDownloadMetaMsg)

    def stop_midway(done: int, total: int) -> None:
        if done >= MB and not worker.closed.is_set():
            asyncio.get_running_loop().create_task(worker.close())

    with pytest.raises(ChannelClosed):
        await receive_file(
            client, meta, dest, on_progress=stop_midway, timeout=scaled(10)
        )
    with pytest.raises(ChannelClosed):
        await sending
    assert list(dest.iterdir()) == []


async def test_cancelled_receive_removes_the_partial_file(
    channel_pair: ChannelPair, tmp_path: Path
) -> None:
    client, worker = channel_pair.client, channel_pair.worker
    await worker.send(FileDownloadMetaMsg(name="x.bin", size=10 * MB, sha256="0" * 64))
    await worker.send_bytes(b"x" * 1000)
    meta = await client.recv(scaled(5))
    assert isinstance(meta, FileDownloadMetaMsg)
    receiving = asyncio.create_task(receive_file(client, meta, tmp_path))
    await async_wait_until(lambda: bool(partials(tmp_path)), scaled(5))
    receiving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await receiving
    assert await asyncio.to_thread(os.listdir, tmp_path) == []


@pytest.mark.slow
async def test_50_mb_both_ways_with_checksum(
    channel_pair: ChannelPair, server: UploadServer, tmp_path: Path
) -> None:
    size = 50 * MB
    up = tmp_path / "up.bin"
    sha_up = make_file(up, size, seed=1)
    sent = await send_file(
        channel_pair.client, up, dest_dir=str(server.mount), timeout=scaled(30)
    )
    assert sent.sha256 == sha_up
    stored = Path(sent.path or "")
    assert await asyncio.to_thread(sha256_of, stored) == sha_up

    down = tmp_path / "down.bin"
    sha_down = make_file(down, size, seed=2)
    dest = tmp_path / "client"
    dest.mkdir()
    # The worker's reader is busy serving uploads: stop it, then stream back.
    assert server.task is not None
    server.task.cancel()
    sending = asyncio.create_task(send_file(channel_pair.worker, down))
    meta = await channel_pair.client.recv(scaled(5))
    assert isinstance(meta, FileDownloadMetaMsg)
    path = await receive_file(channel_pair.client, meta, dest, timeout=scaled(30))
    assert (await sending).sha256 == sha_down
    assert await asyncio.to_thread(sha256_of, path) == sha_down
    assert partials(dest) == []
