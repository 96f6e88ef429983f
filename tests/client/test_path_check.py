"""Tests of the presubmission path checks against a real :class:`FsService`.

The :data:`Requester` here does what the transport will: encode the request as
a text frame, decode it on the "worker" side, let the service answer, and send
each reply back through the codec, returning the first of the types asked for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sleap_rtc_core.client.path_check import (
    PathReport,
    Requester,
    VideoCheck,
    VideoStatus,
    check_paths,
    propose_mappings,
    unmapped,
)
from sleap_rtc_core.protocol.channel import ChannelMessage, decode_text, encode_text
from sleap_rtc_core.protocol.channel_fs import FsCheckVideosResponseMsg, FsResolveMsg
from sleap_rtc_core.worker.files.mounts import MountPolicy
from sleap_rtc_core.worker.files.service import FsService
from tests.fixtures.half_present import build_half_present
from tests.fixtures.timing import UNIT

Rewrite = Callable[[ChannelMessage], ChannelMessage]


def make_requester(
    service: FsService,
    log: list[str] | None = None,
    rewrite: Rewrite | None = None,
) -> Requester:
    """A requester over the text codec and a real service; ``log`` records
    every request frame, ``rewrite`` alters replies (to play an old worker)."""

    async def request(
        msg: ChannelMessage, types: tuple[type, ...], timeout: float
    ) -> ChannelMessage:
        frame = encode_text(msg)
        if log is not None:
            log.append(frame)
        replies = await asyncio.wait_for(service.handle(decode_text(frame)), timeout)
        for reply in replies:
            back = decode_text(encode_text(rewrite(reply) if rewrite else reply))
            if isinstance(back, types):
                return back
        raise TimeoutError(f"no {types} in reply to {frame[:40]}")

    return request


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return build_half_present(tmp_path)


@pytest.fixture
def service(files: dict[str, Path]) -> FsService:
    return FsService(MountPolicy([str(files["mount"])]))


async def test_half_present(files: dict[str, Path], service: FsService) -> None:
    labels = str(files["labels"])
    report = await check_paths(make_requester(service), labels, timeout=10 * UNIT)
    mount = files["mount"]
    b_suggestions = [
        str(mount / "moved" / "B.MP4"),
        str(mount / "archive" / "old" / "b.mp4"),
    ]
    assert report.to_json() == {
        "labels": {"path": labels, "found": True},
        "videos": [
            {"path": str(files["a"]), "status": "found", "suggestions": []},
            {
                "path": str(files["b"]),
                "status": "missing",
                "suggestions": b_suggestions,
            },
            {"path": str(files["c"]), "status": "missing", "suggestions": []},
            {"path": str(files["d"]), "status": "missing", "suggestions": []},
            {"path": labels, "status": "embedded", "suggestions": []},
        ],
    }
    assert (report.accessible, report.embedded) == (1, 1)
    assert [v.path for v in report.missing] == [
        str(files["b"]),
        str(files["c"]),
        str(files["d"]),
    ]
    assert not report.ok
    assert report.error is None


async def test_labels_refused_or_missing(
    files: dict[str, Path], service: FsService
) -> None:
    request = make_requester(service)
    for path in (
        str(files["outside"] / "d.mp4"),
        f"{files['mount']}/../outside/x.slp",
        str(files["mount"] / "nope.slp"),
    ):
        report = await check_paths(request, path)
        assert report.to_json() == {
            "labels": {"path": path, "found": False},
            "videos": [],
        }
        assert report.error is not None
        assert not report.ok
    outside = await check_paths(request, str(files["outside"] / "d.mp4"))
    assert outside.error is not None
    assert outside.error.startswith("ACCESS_DENIED")


async def test_a_refused_labels_path_gets_suggestions_only_when_asked(
    files: dict[str, Path], service: FsService
) -> None:
    log: list[str] = []
    request = make_requester(service, log)
    elsewhere = "/somewhere/else/labels.slp"
    plain = await check_paths(request, elsewhere)
    assert plain.labels_suggestions == ()
    assert not any("FS_RESOLVE" in frame for frame in log)

    report = await check_paths(request, elsewhere, suggest_labels=True)
    assert not report.labels_found
    assert report.labels_suggestions == (str(files["labels"]),)
    assert not report.labels_unreadable


async def test_all_present_and_non_labels(
    files: dict[str, Path], service: FsService
) -> None:
    request = make_requester(service)
    video = str(files["a"])
    report = await check_paths(request, video)
    assert report.to_json() == {"labels": {"path": video, "found": True}, "videos": []}
    assert report.ok


async def test_unreadable_labels(files: dict[str, Path], service: FsService) -> None:
    bad = files["mount"] / "bad::name ü.slp"
    bad.write_bytes(b"nope")
    report = await check_paths(make_requester(service), str(bad))
    assert report.labels_found
    assert report.error is not None
    assert not report.ok
    assert report.labels_unreadable


def _as_reference_worker(reply: ChannelMessage) -> ChannelMessage:
    """Strip what only our worker sends from the video check."""
    if not isinstance(reply, FsCheckVideosResponseMsg):
        return reply
    missing = [
        {"filename": m["filename"], "original_path": m["original_path"]}
        for m in reply.missing
    ]
    return FsCheckVideosResponseMsg(
        slp_path=reply.slp_path,
        total_videos=reply.total_videos,
        missing=missing,
        accessible=reply.accessible,
        embedded=reply.embedded,
    )


async def test_reference_worker_falls_back_to_fs_resolve(
    files: dict[str, Path], service: FsService
) -> None:
    log: list[str] = []
    request = make_requester(service, log, _as_reference_worker)
    report = await check_paths(request, str(files["labels"]))
    assert [v.status for v in report.videos] == [VideoStatus.MISSING] * 3
    by_path = {v.path: v.suggestions for v in report.videos}
    assert set(by_path[str(files["b"])]) == {
        str(files["mount"] / "moved" / "B.MP4"),
        str(files["mount"] / "archive" / "old" / "b.mp4"),
    }
    assert by_path[str(files["c"])] == ()
    resolves = [decode_text(f) for f in log[1:]]
    assert [m.pattern for m in resolves if isinstance(m, FsResolveMsg)] == [
        "b.mp4",
        "c.mp4",
        "d.mp4",
    ]
    quiet = make_requester(service, None, _as_reference_worker)
    report = await check_paths(quiet, str(files["labels"]), resolve_missing=False)
    assert all(v.suggestions == () for v in report.videos)


async def test_timeout_propagates(files: dict[str, Path]) -> None:
    async def silent(
        msg: ChannelMessage, types: tuple[type, ...], timeout: float
    ) -> ChannelMessage:
        raise TimeoutError

    with pytest.raises(TimeoutError):
        await check_paths(silent, str(files["labels"]))


# ---------------------------------------------------------------------------
# propose_mappings (pure)


def _report(*videos: VideoCheck) -> PathReport:
    return PathReport("/w/labels.slp", True, videos)


def _missing(path: str, *suggestions: str) -> VideoCheck:
    return VideoCheck(path, VideoStatus.MISSING, suggestions)


def test_propose_user_choice_wins() -> None:
    report = _report(
        _missing("/home/me/a.mp4", "/data/x/a.mp4", "/data/y/a.mp4"),
        VideoCheck("/data/found.mp4", VideoStatus.FOUND),
    )
    choices = {"/home/me/a.mp4": "/data/y/a.mp4"}
    assert propose_mappings(report, choices) == choices


def test_propose_best_suggestion_and_unmapped() -> None:
    report = _report(
        _missing("/home/me/a.mp4", "/data/x/a.mp4", "/data/y/a.mp4"),
        _missing("/home/me/b.mp4"),
    )
    # A same-named file elsewhere is not necessarily the same video: never
    # taken silently, only when the user says so.
    assert propose_mappings(report, {}) == {}
    mappings = propose_mappings(report, {}, take_suggestions=True)
    assert mappings == {"/home/me/a.mp4": "/data/x/a.mp4"}
    assert unmapped(report, mappings) == ["/home/me/b.mp4"]


def test_propose_follows_the_users_folder_swap() -> None:
    report = _report(
        _missing("C:\\lab\\s1\\a.mp4", "/srv/old/s1/a.mp4", "/data/s1/a.mp4"),
        _missing("C:\\lab\\s1\\b.mp4", "/srv/old/s1/b.mp4", "/data/s1/b.mp4"),
        _missing("C:\\lab\\s2\\c.mp4", "/srv/c.mp4"),
        _missing("E:\\else\\d.mp4"),
    )
    choice = {"C:\\lab\\s1\\a.mp4": "/data/s1/a.mp4"}
    swapped = {
        "C:\\lab\\s1\\a.mp4": "/data/s1/a.mp4",
        "C:\\lab\\s1\\b.mp4": "/data/s1/b.mp4",  # the swap, not the first pick
    }
    assert propose_mappings(report, choice) == swapped
    assert propose_mappings(report, choice, take_suggestions=True) == {
        **swapped,
        "C:\\lab\\s2\\c.mp4": "/srv/c.mp4",  # swap result not suggested
    }


def test_propose_drops_identity_and_keeps_extra_choices() -> None:
    report = _report(_missing("/a.mp4"))
    choices: dict[str, Any] = {"/a.mp4": "/a.mp4", "/labels.slp": "/w/labels.slp"}
    assert propose_mappings(report, choices) == {"/labels.slp": "/w/labels.slp"}


async def test_propose_from_a_real_report(
    files: dict[str, Path], service: FsService
) -> None:
    report = await check_paths(make_requester(service), str(files["labels"]))
    choice = {str(files["c"]): str(files["a"])}
    assert propose_mappings(report, choice) == choice  # nothing taken silently
    mappings = propose_mappings(report, choice, take_suggestions=True)
    assert mappings == {
        str(files["b"]): str(files["mount"] / "moved" / "B.MP4"),
        str(files["c"]): str(files["a"]),
    }
    assert unmapped(report, mappings) == [str(files["d"])]
