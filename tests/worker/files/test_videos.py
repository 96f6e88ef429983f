"""Tests of :mod:`sleap_rtc_core.worker.files.videos`: which videos of a real
``.slp`` the worker can read, and where it suggests the missing ones are."""

from __future__ import annotations

from pathlib import Path

import pytest

from sleap_rtc_core.errors import LabelsUnreadable, PathNotAllowed
from sleap_rtc_core.worker.files.mounts import MountPolicy
from sleap_rtc_core.worker.files.videos import check_videos, is_labels_path


def test_each_video_is_found_missing_or_embedded(
    files: dict[str, Path], policy: MountPolicy
) -> None:
    labels = str(files["labels"])
    reply = check_videos(policy, labels)
    statuses = {v["path"]: v["status"] for v in reply.extra["videos"]}
    assert statuses == {
        str(files["a"]): "found",
        str(files["b"]): "missing",
        str(files["c"]): "missing",
        str(files["d"]): "missing",  # it exists, but outside the mount
        labels: "embedded",
    }
    assert (reply.total_videos, reply.accessible, reply.embedded) == (5, 1, 1)
    assert {m["original_path"] for m in reply.missing} == {
        str(files["b"]),
        str(files["c"]),
        str(files["d"]),
    }


def test_missing_videos_get_same_name_suggestions_inside_the_mounts(
    files: dict[str, Path], policy: MountPolicy
) -> None:
    reply = check_videos(policy, str(files["labels"]))
    suggestions = {m["original_path"]: m["candidates"] for m in reply.missing}
    mount = files["mount"]
    # Names match case-insensitively; with as many trailing folders shared,
    # the shallower copy comes first; nothing outside the mount is listed.
    assert suggestions[str(files["b"])] == [
        (mount / "moved" / "B.MP4").as_posix(),
        (mount / "archive" / "old" / "b.mp4").as_posix(),
    ]
    assert suggestions[str(files["c"])] == []
    assert suggestions[str(files["d"])] == []
    assert check_videos(policy, str(files["labels"]), max_suggestions=1).missing[0][
        "candidates"
    ] == [suggestions[str(files["b"])][0]]


def test_an_unreadable_or_outside_labels_file_raises(
    files: dict[str, Path], policy: MountPolicy, tmp_path: Path
) -> None:
    bad = files["mount"] / "bad.slp"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(LabelsUnreadable):
        check_videos(policy, str(bad))
    outside = tmp_path / "outside.slp"
    outside.write_bytes(b"x")
    with pytest.raises(PathNotAllowed):
        check_videos(policy, str(outside))


@pytest.mark.parametrize(
    ("path", "expected"),
    [("a.slp", True), ("A.PKG.SLP", True), ("a.mp4", False), ("slp", False)],
)
def test_is_labels_path(path: str, expected: bool) -> None:
    assert is_labels_path(path) is expected
