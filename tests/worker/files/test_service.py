"""Tests of the worker's file-system service against real files in ``tmp_path``.

Every request and reply goes through the text codec (``encode_text`` then
``decode_text``), as it would over the data channel, so paths with ``::``,
spaces and unicode are exercised end to end.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, TypeVar

import pytest

from sleap_rtc_core.protocol.channel import ChannelMessage, decode_text, encode_text
from sleap_rtc_core.protocol.channel_fs import (
    FsApplyPrefixMsg,
    FsCheckVideosResponseMsg,
    FsErrorCode,
    FsErrorMsg,
    FsGetInfoMsg,
    FsGetMountsMsg,
    FsInfoResponseMsg,
    FsListDirMsg,
    FsListResponseMsg,
    FsMountsResponseMsg,
    FsPrefixAppliedMsg,
    FsPrefixProposalMsg,
    FsResolveMsg,
    FsResolveResponseMsg,
    FsResolveWithPrefixMsg,
    FsScanDirMsg,
    FsScanDirResponseMsg,
    FsWriteSlpErrorMsg,
    FsWriteSlpMsg,
    FsWriteSlpOkMsg,
    UseWorkerPathMsg,
    WorkerPathErrorMsg,
    WorkerPathOkMsg,
)
from sleap_rtc_core.protocol.channel_messages import JobStopMsg
from sleap_rtc_core.sample_data import write_tiny_labels
from sleap_rtc_core.worker.files.mounts import MountPolicy
from sleap_rtc_core.worker.files.service import FsService
from sleap_rtc_core.worker.files.slp_write import (
    client_folder_name,
    default_output_name,
)
from tests.fixtures.half_present import build_half_present

M = TypeVar("M", bound=ChannelMessage)

ODD = "odd::dir with spaces ünïcødé 数据"
"""A folder name with the separator, spaces and non-ASCII characters."""


async def ask(service: FsService, msg: ChannelMessage) -> list[ChannelMessage]:
    """Send ``msg`` through the text codec and decode every reply."""
    request = decode_text(encode_text(msg))
    return [decode_text(encode_text(r)) for r in await service.handle(request)]


async def ask_one(service: FsService, msg: ChannelMessage, kind: type[M]) -> M:
    replies = await ask(service, msg)
    assert len(replies) == 1, replies
    assert isinstance(replies[0], kind), replies[0]
    return replies[0]


async def fs_error(service: FsService, msg: ChannelMessage) -> FsErrorMsg:
    return await ask_one(service, msg, FsErrorMsg)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``tmp_path/mount`` (the mount) with files, an odd folder, a hidden file,
    a link pointing out, and ``tmp_path/outside/secret.txt``."""
    mount = tmp_path / "mount"
    odd = mount / ODD
    odd.mkdir(parents=True)
    (odd / "vidéo 1.mp4").write_bytes(b"1" * 10)
    (mount / "Beta").mkdir()
    (mount / "alpha").mkdir()
    (mount / "Zed.txt").write_bytes(b"z")
    (mount / "bee.txt").write_bytes(b"bb")
    (mount / ".hidden").write_bytes(b"h")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_bytes(b"s")
    os.symlink(tmp_path / "outside", mount / "escape")
    os.symlink(tmp_path / "outside" / "secret.txt", mount / "secret.txt")
    return tmp_path


@pytest.fixture
def service(tree: Path) -> FsService:
    return FsService(
        MountPolicy([f"{tree / 'mount'}:lab"]), worker_id="w1", working_dir="/wd"
    )


def outside_paths(tree: Path) -> list[str]:
    """Every way out of the mount that must be refused."""
    mount = tree / "mount"
    return [
        f"{mount}/../outside/secret.txt",
        f"{mount}/{ODD}/../../outside/secret.txt",
        str(tree / "outside" / "secret.txt"),
        "/etc/passwd",
        str(mount / "escape" / "secret.txt"),
        str(mount / "secret.txt"),
        "relative/path.slp",
    ]


# ---------------------------------------------------------------------------
# Info, mounts, unknown requests


async def test_info_and_mounts(service: FsService, tree: Path) -> None:
    mounts = [{"path": str(tree / "mount"), "label": "lab"}]
    info = await ask_one(service, FsGetInfoMsg(), FsInfoResponseMsg)
    assert (info.worker_id, info.working_dir, info.mounts) == ("w1", "/wd", mounts)
    reply = await ask_one(service, FsGetMountsMsg(), FsMountsResponseMsg)
    assert reply.mounts == mounts


async def test_not_an_fs_request(service: FsService) -> None:
    assert not FsService.handles(JobStopMsg())
    assert FsService.handles(FsGetMountsMsg())
    error = await fs_error(service, JobStopMsg())
    assert error.code is FsErrorCode.INVALID_REQUEST


# ---------------------------------------------------------------------------
# FS_LIST_DIR


async def test_list_dir_order_and_hiding(service: FsService, tree: Path) -> None:
    reply = await ask_one(service, FsListDirMsg(str(tree / "mount")), FsListResponseMsg)
    names = [(e["name"], e["type"]) for e in reply.entries]
    assert names == [
        ("alpha", "directory"),
        ("Beta", "directory"),
        (ODD, "directory"),
        ("bee.txt", "file"),
        ("Zed.txt", "file"),
    ]  # no .hidden, no links that point out of the mount
    assert reply.total_count == 5
    assert not reply.has_more
    bee = reply.entries[3]
    assert bee["size"] == 2
    assert isinstance(bee["modified"], float)
    assert reply.entries[0]["size"] is None


async def test_list_dir_pages(tree: Path) -> None:
    service = FsService(MountPolicy([str(tree / "mount")]), page_size=2)
    path = str(tree / "mount")
    pages = []
    for offset in (0, 2, 4):
        reply = await ask_one(service, FsListDirMsg(path, offset), FsListResponseMsg)
        pages.append(([e["name"] for e in reply.entries], reply.has_more))
    assert pages == [
        (["alpha", "Beta"], True),
        ([ODD, "bee.txt"], True),
        (["Zed.txt"], False),
    ]
    past = await ask_one(service, FsListDirMsg(path, 50), FsListResponseMsg)
    assert (past.entries, past.total_count, past.has_more) == ([], 5, False)


async def test_list_dir_odd_path(service: FsService, tree: Path) -> None:
    path = str(tree / "mount" / ODD)
    reply = await ask_one(service, FsListDirMsg(path, 0), FsListResponseMsg)
    assert reply.path == path
    assert [e["name"] for e in reply.entries] == ["vidéo 1.mp4"]


async def test_list_dir_errors(service: FsService, tree: Path) -> None:
    for path in outside_paths(tree) + [str(tree / "mount" / "escape")]:
        error = await fs_error(service, FsListDirMsg(path))
        assert error.code is FsErrorCode.ACCESS_DENIED, path
        # The message names only what the client sent, never a link's target.
        assert str(tree / "outside") not in error.message.replace(path, "")
    missing = await fs_error(service, FsListDirMsg(str(tree / "mount" / "nope")))
    assert missing.code is FsErrorCode.PATH_NOT_FOUND
    not_dir = await fs_error(service, FsListDirMsg(str(tree / "mount" / "bee.txt")))
    assert not_dir.code is FsErrorCode.INVALID_REQUEST


async def test_mount_that_is_a_symlink(tree: Path) -> None:
    os.symlink(tree / "mount", tree / "link")
    service = FsService(MountPolicy([str(tree / "link")]))
    reply = await ask_one(service, FsListDirMsg(str(tree / "link")), FsListResponseMsg)
    assert reply.total_count == 5
    error = await fs_error(service, FsListDirMsg(f"{tree / 'link'}/../outside"))
    assert error.code is FsErrorCode.ACCESS_DENIED
    found = await ask_one(service, FsResolveMsg("bee.txt"), FsResolveResponseMsg)
    assert [c["path"] for c in found.candidates] == [str(tree / "link" / "bee.txt")]


# ---------------------------------------------------------------------------
# FS_RESOLVE


@pytest.fixture
def videos(tree: Path) -> Path:
    """Several ``session.mp4`` under the mount, at depths 1 to 3, one with the
    size 7, and one deeper than the default search depth."""
    mount = tree / "mount"
    (mount / "a").mkdir()
    (mount / "a" / "session.mp4").write_bytes(b"x" * 5)
    (mount / "b" / "c").mkdir(parents=True)
    (mount / "b" / "c" / "Session.MP4").write_bytes(b"x" * 7)
    (mount / "b" / "my_session.mp4.bak").write_bytes(b"x")
    deep = mount.joinpath(*"defghijk")
    deep.mkdir(parents=True)
    (deep / "session.mp4").write_bytes(b"x")
    (tree / "outside" / "session.mp4").write_bytes(b"x" * 7)
    os.symlink(tree / "outside" / "session.mp4", mount / "Beta" / "session.mp4")
    return mount


async def test_resolve_ranks_by_match_and_size(
    service: FsService, videos: Path
) -> None:
    reply = await ask_one(
        service, FsResolveMsg("session.mp4", file_size=7), FsResolveResponseMsg
    )
    paths = [c["path"] for c in reply.candidates]
    assert paths == [
        str(videos / "b" / "c" / "Session.MP4"),  # exact (any case) and size
        str(videos / "a" / "session.mp4"),
        str(videos / "b" / "my_session.mp4.bak"),  # substring
    ]  # not the deep one (depth 5), not the link that points out
    first = reply.candidates[0]
    assert first["match_type"] == "exact"
    assert first["size"] == 7
    assert first["name"] == "Session.MP4"
    assert first["score"] > reply.candidates[1]["score"]
    assert not reply.truncated
    assert not reply.timeout
    assert reply.search_time_ms is not None


async def test_resolve_depth_wildcard_and_label(
    service: FsService, videos: Path
) -> None:
    deep = await ask_one(
        service, FsResolveMsg("session.mp4", None, 0), FsResolveResponseMsg
    )
    assert deep.candidates == []
    wild = await ask_one(service, FsResolveMsg("sess*.mp4"), FsResolveResponseMsg)
    assert {c["match_type"] for c in wild.candidates} == {"wildcard"}
    assert len(wild.candidates) == 2
    labelled = await ask_one(
        service, FsResolveMsg("vidéo 1.mp4", None, None, "lab"), FsResolveResponseMsg
    )
    assert [c["path"] for c in labelled.candidates] == [
        str(videos / ODD / "vidéo 1.mp4")
    ]
    # A client may send a whole path (its own, Windows style): the name is used.
    windows = await ask_one(
        service, FsResolveMsg("C:\\Users\\me\\vidéo 1.mp4"), FsResolveResponseMsg
    )
    assert len(windows.candidates) == 1


async def test_resolve_limits_and_errors(tree: Path, videos: Path) -> None:
    service = FsService(MountPolicy([f"{videos}:lab"]), max_results=1)
    reply = await ask_one(service, FsResolveMsg("session.mp4"), FsResolveResponseMsg)
    assert len(reply.candidates) == 1
    assert reply.truncated
    for pattern in ("*.py", "*", "?a*", "*.*.", "[ab]*"):
        error = await fs_error(service, FsResolveMsg(pattern))
        assert error.code is FsErrorCode.PATTERN_TOO_BROAD
    error = await fs_error(service, FsResolveMsg("x.mp4", None, None, "nolabel"))
    assert error.code is FsErrorCode.MOUNT_NOT_FOUND
    error = await fs_error(service, FsResolveMsg("/"))
    assert error.code is FsErrorCode.INVALID_REQUEST


async def test_resolve_timeout(videos: Path) -> None:
    service = FsService(MountPolicy([str(videos)]), resolve_timeout=1e-9)
    reply = await ask_one(service, FsResolveMsg("session.mp4"), FsResolveResponseMsg)
    assert reply.timeout


# ---------------------------------------------------------------------------
# FS_SCAN_DIR


async def test_scan_dir(service: FsService, tree: Path) -> None:
    folder = str(tree / "mount" / ODD)
    reply = await ask_one(
        service,
        FsScanDirMsg(
            folder, ["vidéo 1.mp4", "nope.mp4", "../bee.txt", "../../outside/x"]
        ),
        FsScanDirResponseMsg,
    )
    assert reply.directory == folder
    assert reply.found == {
        "vidéo 1.mp4": f"{folder}/vidéo 1.mp4",
        "nope.mp4": None,
        "../bee.txt": None,
        "../../outside/x": None,
    }
    links = await ask_one(
        service,
        FsScanDirMsg(str(tree / "mount"), ["secret.txt", "bee.txt"]),
        FsScanDirResponseMsg,
    )
    assert links.found == {"secret.txt": None, "bee.txt": str(tree / "mount/bee.txt")}
    for path in outside_paths(tree):
        error = await fs_error(service, FsScanDirMsg(path, ["x"]))
        assert error.code is FsErrorCode.ACCESS_DENIED


# ---------------------------------------------------------------------------
# USE_WORKER_PATH and the video check


async def test_use_worker_path_plain_file(service: FsService, tree: Path) -> None:
    path = str(tree / "mount" / ODD / "vidéo 1.mp4")
    replies = await ask(service, UseWorkerPathMsg(path))
    assert replies == [WorkerPathOkMsg(path)]


async def test_use_worker_path_refused(service: FsService, tree: Path) -> None:
    for path in outside_paths(tree):
        reply = await ask_one(service, UseWorkerPathMsg(path), WorkerPathErrorMsg)
        assert reply.message.startswith("ACCESS_DENIED: "), path
    missing = str(tree / "mount" / "nope.slp")
    reply = await ask_one(service, UseWorkerPathMsg(missing), WorkerPathErrorMsg)
    assert reply.message.startswith("PATH_NOT_FOUND: ")


async def test_check_videos_half_present(tmp_path: Path) -> None:
    files = build_half_present(tmp_path)
    mount = files["mount"]
    service = FsService(MountPolicy([str(mount)]))
    labels = str(files["labels"])
    ok, check = await ask(service, UseWorkerPathMsg(labels))
    assert ok == WorkerPathOkMsg(labels)
    assert isinstance(check, FsCheckVideosResponseMsg)
    assert check.error is None
    assert (check.slp_path, check.total_videos) == (labels, 5)
    assert (check.accessible, check.embedded) == (1, 1)
    assert check.missing == [
        {
            "filename": "b.mp4",
            "original_path": str(files["b"]),
            "candidates": [
                str(mount / "moved" / "B.MP4"),
                str(mount / "archive" / "old" / "b.mp4"),
            ],
        },
        {"filename": "c.mp4", "original_path": str(files["c"]), "candidates": []},
        {"filename": "d.mp4", "original_path": str(files["d"]), "candidates": []},
    ]
    assert check.extra["videos"] == [
        {"path": str(files["a"]), "status": "found", "suggestions": []},
        {
            "path": str(files["b"]),
            "status": "missing",
            "suggestions": [
                str(mount / "moved" / "B.MP4"),
                str(mount / "archive" / "old" / "b.mp4"),
            ],
        },
        {"path": str(files["c"]), "status": "missing", "suggestions": []},
        {"path": str(files["d"]), "status": "missing", "suggestions": []},
        {"path": labels, "status": "embedded", "suggestions": []},
    ]


async def test_check_videos_prefers_labels_folder(tmp_path: Path) -> None:
    files = build_half_present(tmp_path)
    project = files["labels"].parent
    shutil.copy(files["a"], project / "b.mp4")  # same name beside the labels
    service = FsService(MountPolicy([str(files["mount"])]))
    _, check = await ask(service, UseWorkerPathMsg(str(files["labels"])))
    assert isinstance(check, FsCheckVideosResponseMsg)
    # b.mp4 is back at its own path now, so it is found.
    assert check.accessible == 2
    assert [m["filename"] for m in check.missing] == ["c.mp4", "d.mp4"]


async def test_check_videos_unreadable_labels(service: FsService, tree: Path) -> None:
    bad = tree / "mount" / ODD / "broken.slp"
    bad.write_bytes(b"not hdf5")
    ok, check = await ask(service, UseWorkerPathMsg(str(bad)))
    assert ok == WorkerPathOkMsg(str(bad))
    assert isinstance(check, FsCheckVideosResponseMsg)
    assert check.error is not None
    assert check.total_videos == 0


async def test_check_videos_embedded_only(tmp_path: Path) -> None:
    labels = write_tiny_labels(tmp_path / "m" / "tiny.pkg.slp", n_frames=2, size=32)
    service = FsService(MountPolicy([str(tmp_path / "m")]))
    _, check = await ask(service, UseWorkerPathMsg(str(labels)))
    assert isinstance(check, FsCheckVideosResponseMsg)
    assert (check.total_videos, check.embedded, check.missing) == (1, 1, [])


# ---------------------------------------------------------------------------
# FS_WRITE_SLP


def _video_files(path: Path) -> list[Any]:
    import sleap_io as sio

    labels = sio.load_slp(str(path), open_videos=False)
    return [
        "embedded"
        if (v.backend_metadata or {}).get("has_embedded_images")
        else v.filename
        for v in labels.videos
    ]


async def test_write_slp_remaps(tmp_path: Path) -> None:
    files = build_half_present(tmp_path)
    mount = files["mount"]
    service = FsService(MountPolicy([str(mount)]))
    out_dir = mount / ODD
    new_b = str(mount / "moved" / "B.MP4")
    reply = await ask_one(
        service,
        FsWriteSlpMsg(
            slp_path=str(files["labels"]),
            output_dir=str(out_dir),
            filename_map={str(files["b"]): new_b, "/not/in/labels.mp4": new_b},
            output_filename="fixed::copy.slp",
        ),
        FsWriteSlpOkMsg,
    )
    mine = out_dir / client_folder_name("anonymous")
    assert reply.output_path == str(mine / "fixed::copy.slp")
    assert reply.videos_updated == 1
    assert _video_files(Path(reply.output_path)) == [
        str(files["a"]),
        new_b,
        str(files["c"]),
        str(files["d"]),
        "embedded",
    ]
    assert sorted(p.name for p in out_dir.iterdir()) == [mine.name]
    assert sorted(p.name for p in mine.iterdir()) == ["fixed::copy.slp"]
    # The original is untouched.
    assert _video_files(files["labels"])[1] == str(files["b"])
    # And the copy passes the check with one fewer missing video.
    _, check = await ask(service, UseWorkerPathMsg(reply.output_path))
    assert isinstance(check, FsCheckVideosResponseMsg)
    assert check.accessible == 2


async def test_write_slp_default_name(tmp_path: Path) -> None:
    labels = write_tiny_labels(tmp_path / "m" / "tiny.pkg.slp", n_frames=2, size=32)
    service = FsService(MountPolicy([str(tmp_path / "m")]))
    reply = await ask_one(
        service,
        FsWriteSlpMsg(slp_path=str(labels), output_dir=str(tmp_path / "m" / "new")),
        FsWriteSlpOkMsg,
    )
    name = Path(reply.output_path).name
    assert name == default_output_name(str(labels))
    assert name.startswith("resolved_")
    assert name.endswith("_tiny.pkg.slp")
    assert reply.videos_updated == 0
    assert _video_files(Path(reply.output_path)) == ["embedded"]


async def test_write_slp_refused(tmp_path: Path) -> None:
    files = build_half_present(tmp_path)
    mount = files["mount"]
    os.symlink(files["outside"], mount / "escape")
    service = FsService(MountPolicy([str(mount)]))
    labels, b = str(files["labels"]), str(files["b"])

    async def refuse(code: FsErrorCode, **fields: Any) -> None:
        args: dict[str, Any] = {"slp_path": labels, "output_dir": str(mount)}
        args.update(fields)
        reply = await ask_one(service, FsWriteSlpMsg(**args), FsWriteSlpErrorMsg)
        assert reply.extra["code"] == code.value, fields
        assert reply.error.startswith(f"{code.value}: ")

    await refuse(FsErrorCode.ACCESS_DENIED, output_dir=str(files["outside"]))
    await refuse(FsErrorCode.ACCESS_DENIED, output_dir=str(mount / "escape"))
    await refuse(FsErrorCode.ACCESS_DENIED, output_dir=f"{mount}/../outside")
    await refuse(FsErrorCode.ACCESS_DENIED, filename_map={b: str(files["d"])})
    await refuse(FsErrorCode.ACCESS_DENIED, slp_path="/etc/passwd.slp")
    await refuse(FsErrorCode.PATH_NOT_FOUND, slp_path=str(mount / "nope.slp"))
    for name in ("../x.slp", "a/b.slp", "x.txt", ".hidden.slp", ".."):
        await refuse(FsErrorCode.INVALID_REQUEST, output_filename=name)
    # The peer's own folder is a link out of the mount: refused.
    os.symlink(files["outside"], mount / client_folder_name("anonymous"))
    await refuse(FsErrorCode.ACCESS_DENIED)
    assert sorted(p.name for p in files["outside"].iterdir()) == ["d.mp4"]


# ---------------------------------------------------------------------------
# FS_RESOLVE_WITH_PREFIX, FS_APPLY_PREFIX


async def test_resolve_with_prefix(service: FsService, tree: Path) -> None:
    folder = tree / "mount" / ODD
    (folder / "b.mp4").write_bytes(b"b")
    reply = await ask_one(
        service,
        FsResolveWithPrefixMsg(
            original_path="C:\\lab\\" + ODD + "\\vidéo 1.mp4",
            new_path=str(folder / "vidéo 1.mp4"),
            other_missing=[
                "C:\\lab\\" + ODD + "\\b.mp4",
                "C:\\lab\\" + ODD + "\\zz.mp4",
                "D:\\other\\b.mp4",
                "C:\\lab\\..\\..\\outside\\secret.txt",
            ],
        ),
        FsPrefixProposalMsg,
    )
    assert (reply.old_prefix, reply.new_prefix) == ("C:/lab", str(tree / "mount"))
    assert reply.would_resolve == [
        {"original": "C:\\lab\\" + ODD + "\\b.mp4", "resolved": str(folder / "b.mp4")}
    ]
    assert reply.would_not_resolve == [
        "C:\\lab\\" + ODD + "\\zz.mp4",
        "D:\\other\\b.mp4",
        "C:\\lab\\..\\..\\outside\\secret.txt",
    ]


async def test_resolve_with_prefix_refused(service: FsService, tree: Path) -> None:
    for path in outside_paths(tree):
        msg = FsResolveWithPrefixMsg(original_path="/x/secret.txt", new_path=path)
        error = await fs_error(service, msg)
        assert error.code is FsErrorCode.ACCESS_DENIED
    msg = FsResolveWithPrefixMsg(
        original_path="/x/n.mp4", new_path=str(tree / "mount" / "n.mp4")
    )
    assert (await fs_error(service, msg)).code is FsErrorCode.PATH_NOT_FOUND


async def test_apply_prefix(service: FsService) -> None:
    reply = await ask_one(service, FsApplyPrefixMsg(), FsPrefixAppliedMsg)
    assert reply.success
