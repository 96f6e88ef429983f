"""Tests of :mod:`sleap_rtc_core.worker.files.search` over a real folder tree
(the worker's ``FS_RESOLVE``): what is found, how it ranks, and what stays out
of reach."""

from __future__ import annotations

from pathlib import Path

import pytest

from sleap_rtc_core.errors import PatternTooBroad
from sleap_rtc_core.worker.files.mounts import MountPolicy
from sleap_rtc_core.worker.files.search import (
    MatchType,
    find_files,
    find_names,
    normalize_pattern,
)


def _write(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


@pytest.fixture
def mount(tmp_path: Path) -> Path:
    """``mount/`` with mouse1.mp4 in three places, a hidden copy, a deep one,
    and a link to a file outside the mount."""
    root = tmp_path / "mount"
    _write(root / "lab" / "mouse1.mp4", 100)
    _write(root / "archive" / "MOUSE1.MP4", 50)
    _write(root / "lab" / "mouse1.mp4.bak", 100)
    _write(root / ".cache" / "mouse1.mp4", 100)
    _write(root / "a" / "b" / "c" / "d" / "mouse1.mp4", 100)
    secret = _write(tmp_path / "outside" / "mouse1-secret.mp4", 100)
    (root / "lab" / "mouse1-link.mp4").symlink_to(secret)
    return root


@pytest.fixture
def policy(mount: Path) -> MountPolicy:
    return MountPolicy([mount.as_posix()])


def test_exact_names_rank_first_and_an_equal_size_ranks_higher(
    mount: Path, policy: MountPolicy
) -> None:
    result = find_files(policy, "mouse1.mp4", file_size=50, max_depth=1)
    paths = [c.path for c in result.candidates]
    assert paths[:2] == [
        (mount / "archive" / "MOUSE1.MP4").as_posix(),  # exact, same size
        (mount / "lab" / "mouse1.mp4").as_posix(),  # exact
    ]
    assert result.candidates[0].match_type is MatchType.EXACT
    assert result.candidates[0].score > result.candidates[1].score
    assert (mount / "lab" / "mouse1.mp4.bak").as_posix() in paths  # substring
    assert not result.timeout


def test_hidden_folders_depth_and_links_out_of_the_mounts_stay_out(
    mount: Path, policy: MountPolicy
) -> None:
    shallow = [c.path for c in find_files(policy, "mouse1", max_depth=1).candidates]
    assert not any("/.cache/" in p for p in shallow)
    assert not any("/a/b/" in p for p in shallow)
    assert not any("secret" in p or "link" in p for p in shallow)
    deep = [c.path for c in find_files(policy, "mouse1.mp4", max_depth=5).candidates]
    assert (mount / "a" / "b" / "c" / "d" / "mouse1.mp4").as_posix() in deep


def test_substring_matches_can_be_turned_off(policy: MountPolicy) -> None:
    result = find_files(policy, "mouse1", substring=False)
    assert result.candidates == []


def test_a_limit_truncates_the_result(policy: MountPolicy) -> None:
    result = find_files(policy, "mouse1.mp4", limit=1, max_depth=5)
    assert len(result.candidates) == 1
    assert result.truncated


def test_wildcards_need_enough_literal_characters(policy: MountPolicy) -> None:
    found = find_files(policy, "mous*.mp4", max_depth=1, substring=False)
    assert {c.match_type for c in found.candidates} == {MatchType.WILDCARD}
    with pytest.raises(PatternTooBroad):
        find_files(policy, "*.py")


@pytest.mark.parametrize(
    ("pattern", "name"),
    [
        ("D:\\lab\\mouse1.mp4", "mouse1.mp4"),
        ("/home/me/v/mouse1.mp4", "mouse1.mp4"),
        ("  mouse1.mp4 ", "mouse1.mp4"),
    ],
)
def test_a_path_is_searched_by_its_file_name(pattern: str, name: str) -> None:
    assert normalize_pattern(pattern) == name


@pytest.mark.parametrize("pattern", ["", "/", "C:\\lab\\", ".."])
def test_a_pattern_without_a_name_is_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match="no file name"):
        normalize_pattern(pattern)


def test_find_names_finds_several_names_in_one_walk(
    mount: Path, policy: MountPolicy
) -> None:
    hits, timed_out = find_names(policy, ["MOUSE1.mp4", "absent.mp4"], max_depth=5)
    assert not timed_out
    assert hits["absent.mp4"] == []
    found = hits["mouse1.mp4"]
    assert [depth for depth, _ in found] == sorted(depth for depth, _ in found)
    assert (1, (mount / "lab" / "mouse1.mp4").as_posix()) in found
    assert not any("/.cache/" in path for _, path in found)
    assert find_names(policy, []) == ({}, False)
