"""Tests of :mod:`sleap_rtc_core.worker.jobs.paths`: a job's paths checked
against real mounts, and labels files whose videos a mapping moves copied with
the new paths (the original never changes)."""

from __future__ import annotations

from pathlib import Path

import sleap_io as sio

from sleap_rtc_core.protocol.jobspec_check import SpecErrorCode
from sleap_rtc_core.worker.files.mounts import MountPolicy
from sleap_rtc_core.worker.jobs.paths import LabelsRemapper, policy_check


def _video_paths(labels_path: Path | str) -> list[str]:
    labels = sio.load_slp(str(labels_path), open_videos=False)
    return [str(v.filename) for v in labels.videos]


def test_policy_check_reports_each_kind_of_bad_path(
    files: dict[str, Path], policy: MountPolicy
) -> None:
    check = policy_check(policy)
    assert check("labels_path", str(files["labels"])) is None
    missing = check("labels_path", str(files["mount"] / "nope.slp"))
    assert missing is not None
    assert missing.code == SpecErrorCode.PATH_NOT_FOUND
    outside = check("labels_path", str(files["d"]))
    assert outside is not None
    assert outside.code == SpecErrorCode.NOT_ALLOWED
    assert "map it to a path inside" in outside.message
    assert policy_check(policy, must_exist=False)("out", str(files["c"])) is None


def test_a_mapping_writes_a_remapped_copy_and_leaves_the_original(
    files: dict[str, Path], policy: MountPolicy, tmp_path: Path
) -> None:
    labels = str(files["labels"])
    before = _video_paths(labels)
    moved = files["mount"] / "moved" / "B.MP4"
    remapper = LabelsRemapper({str(files["b"]): str(moved)}, policy)
    remapper.plan("labels_path", labels)
    assert remapper.errors == []
    private = tmp_path / "private"
    private.mkdir()
    remapper.write(private)

    copy = remapper(labels)
    assert copy != labels
    assert Path(copy).parent == private
    assert str(moved) in _video_paths(copy)
    assert str(files["b"]) not in _video_paths(copy)
    assert _video_paths(labels) == before
    assert remapper("/some/other.slp") == "/some/other.slp"


def test_a_mapping_out_of_the_mounts_is_a_field_error(
    files: dict[str, Path], policy: MountPolicy, tmp_path: Path
) -> None:
    remapper = LabelsRemapper(
        {str(files["a"]): str(tmp_path / "elsewhere.mp4")}, policy
    )
    remapper.plan("labels_path", str(files["labels"]))
    (error,) = remapper.errors
    assert error.field.startswith("labels_path.videos[")
    assert error.code == SpecErrorCode.NOT_ALLOWED


def test_an_unreadable_labels_file_is_a_field_error(
    files: dict[str, Path], policy: MountPolicy
) -> None:
    bad = files["mount"] / "bad.slp"
    bad.write_bytes(b"not hdf5")
    remapper = LabelsRemapper({"/a": str(files["a"])}, policy)
    remapper.plan("val_labels_path", str(bad))
    (error,) = remapper.errors
    assert (error.field, error.code) == ("val_labels_path", SpecErrorCode.INVALID_VALUE)


def test_without_a_mapping_nothing_is_read_or_written(
    files: dict[str, Path], policy: MountPolicy, tmp_path: Path
) -> None:
    remapper = LabelsRemapper({}, policy)
    remapper.plan("labels_path", str(files["labels"]))
    remapper.write(tmp_path)
    assert remapper.written == {}
    assert remapper(str(files["labels"])) == str(files["labels"])
