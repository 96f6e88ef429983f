"""``FS_WRITE_SLP`` as an attacker would use it: overwrite files, write outside
the mounts through planted links, fill the disk. Real files in ``tmp_path``;
requests and replies go through the text codec as over a data channel."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from sleap_rtc_core.protocol.channel import ChannelMessage, decode_text, encode_text
from sleap_rtc_core.protocol.channel_fs import (
    FsWriteSlpErrorMsg,
    FsWriteSlpMsg,
    FsWriteSlpOkMsg,
)
from sleap_rtc_core.sample_data import write_tiny_labels
from sleap_rtc_core.worker.files.mounts import MountPolicy
from sleap_rtc_core.worker.files.service import FsService
from sleap_rtc_core.worker.files.slp_write import SlpWriteQuota, client_folder_name


async def write(
    service: FsService, peer: str = "mallory", **fields: object
) -> ChannelMessage:
    """One ``FS_WRITE_SLP`` from ``peer``; its single reply."""
    msg = FsWriteSlpMsg(**fields)  # type: ignore[arg-type]
    replies = await service.handle(decode_text(encode_text(msg)), peer)
    assert len(replies) == 1, replies
    return decode_text(encode_text(replies[0]))


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def mount(tmp_path: Path) -> Path:
    """``mount/labels.pkg.slp`` (a tiny labels file, frames embedded) and an
    empty ``outside/`` beside the mount."""
    write_tiny_labels(tmp_path / "mount" / "labels.pkg.slp", n_frames=2, size=32)
    (tmp_path / "outside").mkdir()
    return tmp_path / "mount"


def _service(mount: Path, **quota: int) -> FsService:
    return FsService(MountPolicy([str(mount)]), slp_write_quota=SlpWriteQuota(**quota))


async def test_never_overwrites(mount: Path) -> None:
    service = _service(mount)
    mine = mount / client_folder_name("mallory")
    mine.mkdir()
    (mine / "x.pkg.slp").write_bytes(b"someone's work")
    outside = mount.parent / "outside"
    os.symlink(outside / "planted.pkg.slp", mine / "y.pkg.slp")  # dangling, out
    src = str(mount / "labels.pkg.slp")
    names = []
    for name in ("x.pkg.slp", "x.pkg.slp", "y.pkg.slp"):
        reply = await write(
            service, slp_path=src, output_dir=str(mount), output_filename=name
        )
        assert isinstance(reply, FsWriteSlpOkMsg), reply
        names.append(Path(reply.output_path).name)
    assert names == ["x-2.pkg.slp", "x-3.pkg.slp", "y-2.pkg.slp"]
    assert (mine / "x.pkg.slp").read_bytes() == b"someone's work"
    assert _names(outside) == []
    assert [n for n in _names(mine) if n.startswith(".")] == []  # no part files


async def test_only_inside_a_mount_and_in_the_peers_folder(mount: Path) -> None:
    service = _service(mount)
    outside = mount.parent / "outside"
    os.symlink(outside, mount / "escape")
    src = str(mount / "labels.pkg.slp")
    for output_dir in (
        str(outside),
        str(mount / "escape"),
        f"{mount}/../outside",
        "/",
        "relative",
    ):
        reply = await write(service, slp_path=src, output_dir=output_dir)
        assert isinstance(reply, FsWriteSlpErrorMsg), output_dir
        assert reply.extra["code"] == "ACCESS_DENIED"
    # A peer's folder planted as a link out of the mount is not followed.
    os.symlink(outside, mount / client_folder_name("eve"))
    reply = await write(service, "eve", slp_path=src, output_dir=str(mount))
    assert isinstance(reply, FsWriteSlpErrorMsg)
    assert reply.extra["code"] == "ACCESS_DENIED"
    assert _names(outside) == []
    ok = await write(service, "../../x", slp_path=src, output_dir=str(mount))
    assert isinstance(ok, FsWriteSlpOkMsg)
    assert Path(ok.output_path).parent.parent == mount  # an odd peer id stays put


async def test_file_quota_per_peer_and_in_all(mount: Path) -> None:
    service = _service(mount, max_files_per_peer=2, max_files_total=3)
    src = str(mount / "labels.pkg.slp")
    replies = [
        await write(service, peer, slp_path=src, output_dir=str(mount))
        for peer in ("a", "a", "a", "b", "c")
    ]
    kinds = [type(r).__name__ for r in replies]
    assert kinds == [
        "FsWriteSlpOkMsg",
        "FsWriteSlpOkMsg",
        "FsWriteSlpErrorMsg",
        "FsWriteSlpOkMsg",
        "FsWriteSlpErrorMsg",
    ]
    for reply in (replies[2], replies[4]):
        assert isinstance(reply, FsWriteSlpErrorMsg)
        assert reply.extra["code"] == "QUOTA_EXCEEDED"
        assert reply.error.startswith("QUOTA_EXCEEDED: ")
    assert "most it may (2)" in replies[2].error  # type: ignore[attr-defined]
    # Failed requests do not use up the quota.
    service = _service(mount, max_files_per_peer=1)
    missing = await write(service, slp_path=f"{mount}/nope.slp", output_dir=str(mount))
    assert isinstance(missing, FsWriteSlpErrorMsg)
    assert isinstance(
        await write(service, slp_path=src, output_dir=str(mount)), FsWriteSlpOkMsg
    )


async def test_byte_quota_leaves_nothing_behind(mount: Path) -> None:
    size = (mount / "labels.pkg.slp").stat().st_size
    service = _service(mount, max_bytes_per_peer=size // 2)
    src = str(mount / "labels.pkg.slp")
    reply = await write(service, slp_path=src, output_dir=str(mount))
    assert isinstance(reply, FsWriteSlpErrorMsg)
    assert reply.extra["code"] == "QUOTA_EXCEEDED"
    assert _names(mount) == ["labels.pkg.slp"]  # not even the peer's folder
    assert service.slp_writes.used("mallory") == (0, 0)


async def test_concurrent_writes_stay_within_quota(mount: Path) -> None:
    service = _service(mount, max_files_per_peer=3)
    src = str(mount / "labels.pkg.slp")
    replies = await asyncio.gather(
        *(
            write(service, slp_path=src, output_dir=str(mount), output_filename="r.slp")
            for _ in range(8)
        )
    )
    ok = [r for r in replies if isinstance(r, FsWriteSlpOkMsg)]
    assert len(ok) == 3
    assert len({r.output_path for r in ok}) == 3
    assert _names(mount / client_folder_name("mallory")) == [
        "r-2.slp",
        "r-3.slp",
        "r.slp",
    ]
