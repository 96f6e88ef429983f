"""The upload area on disk: stored once, verified, resumable, bounded, confined."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sleap_rtc_core.errors import (
    PathNotAllowed,
    QuotaExceeded,
    SleapRTCError,
    UploadConflict,
)
from sleap_rtc_core.worker.files.beneath import open_beneath
from sleap_rtc_core.worker.files.mounts import MountPolicy
from sleap_rtc_core.worker.files.uploads import (
    SEGMENT_SIZE,
    UploadArea,
)
from tests.fixtures.uploads import MB, sha, upload


def test_a_file_is_stored_once_by_content(area: UploadArea) -> None:
    data = os.urandom(3 * MB)
    first = upload(area, "alice", data, "labels.pkg.slp")
    assert first == area.root / "sha256" / sha(data) / "labels.pkg.slp"
    assert first.read_bytes() == data
    assert area.lookup(sha(data)) == first
    # Sent again (another name, another uploader): the stored file is reused.
    assert upload(area, "bob", data, "copy.pkg.slp") == first
    assert area.used_total() == len(data)
    assert area.used_by("bob") == 0
    assert not list((area.root / "partial").rglob("*.partial"))


def test_a_cut_off_upload_resumes_after_its_last_verified_segment(
    area: UploadArea,
) -> None:
    data = os.urandom(9 * MB)
    partial = area.begin("alice", sha(data), "big.slp", len(data))
    partial.write(data[:SEGMENT_SIZE])
    partial.segment(SEGMENT_SIZE, sha(data[:SEGMENT_SIZE]))
    partial.write(data[SEGMENT_SIZE : SEGMENT_SIZE + MB])  # never verified
    partial.keep()  # the channel dropped
    assert area.lookup(sha(data)) is None  # nothing looks complete
    again = area.begin("alice", sha(data), "big.slp", len(data))
    assert again.verified == SEGMENT_SIZE
    rest = data[SEGMENT_SIZE:]
    again.write(rest)
    again.segment(len(data), sha(rest))
    assert again.finish().read_bytes() == data


def test_a_bad_segment_is_dropped_and_a_bad_file_removed(area: UploadArea) -> None:
    data = os.urandom(5 * MB)
    partial = area.begin("alice", sha(data), "x.slp", len(data))
    partial.write(data[:SEGMENT_SIZE])
    with pytest.raises(SleapRTCError) as bad:
        partial.segment(SEGMENT_SIZE, "0" * 64)
    assert bad.value.code == "CHECKSUM_MISMATCH"
    assert partial.verified == 0
    # A whole file that is not what was announced is never stored.
    partial.write(b"x" * len(data))
    with pytest.raises(SleapRTCError) as whole:
        partial.finish()
    assert whole.value.code == "CHECKSUM_MISMATCH"
    assert area.lookup(sha(data)) is None
    assert not list((area.root / "partial").rglob("*.partial"))
    assert area.used_total() == 0


def test_quotas_per_uploader_and_in_all(area: UploadArea) -> None:
    upload(area, "alice", os.urandom(10 * MB))
    with pytest.raises(QuotaExceeded):
        area.begin("alice", "1" * 64, "b.slp", 3 * MB)
    upload(area, "bob", os.urandom(9 * MB))
    with pytest.raises(QuotaExceeded, match="upload area"):
        area.begin("carol", "2" * 64, "c.slp", 2 * MB)
    # A new area counts what the old one left.
    again = UploadArea(area.root, area.quota)
    again.open()
    assert again.used_by("alice") == 10 * MB
    assert again.used_total() == 19 * MB


def test_one_upload_of_a_content_at_a_time_per_uploader(area: UploadArea) -> None:
    partial = area.begin("alice", "3" * 64, "a.slp", 10)
    with pytest.raises(UploadConflict):
        area.begin("alice", "3" * 64, "a.slp", 10)
    partial.keep()
    area.begin("alice", "3" * 64, "a.slp", 10).discard()


@pytest.mark.parametrize("name", ["../x.slp", "/abs.slp", ".uploader", "a/b", ""])
def test_names_that_are_not_bare_are_refused(area: UploadArea, name: str) -> None:
    with pytest.raises(PathNotAllowed):
        area.begin("alice", "4" * 64, name, 10)


def test_a_symlink_in_the_area_is_never_written_through(
    area: UploadArea, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (area.root / "partial" / "sleap-rtc-mallory").symlink_to(outside)
    with pytest.raises(PathNotAllowed):
        area.begin("mallory", "5" * 64, "a.slp", 10)
    data = b"labels"
    (area.root / "sha256" / sha(data)).symlink_to(outside)
    partial = area.begin("alice", sha(data), "a.slp", len(data))
    partial.write(data)
    with pytest.raises(PathNotAllowed):
        partial.finish()
    assert list(outside.iterdir()) == []


def test_expiry_removes_what_went_unused(area: UploadArea) -> None:
    kept, old = os.urandom(100), os.urandom(200)
    upload(area, "alice", kept)
    upload(area, "alice", old)
    area.begin("bob", "6" * 64, "p.slp", 10).keep()
    long_after = 10**12
    assert area.sweep(now=long_after, in_use=[sha(kept)]) == 2
    assert area.lookup(sha(kept)) is not None
    assert area.lookup(sha(old)) is None
    assert area.used_total() == len(kept)
    assert area.sweep() == 0  # nothing is old yet


def test_the_area_is_hidden_from_the_mount_policy(
    area: UploadArea, tmp_path: Path
) -> None:
    stored = upload(area, "alice", b"secret labels")
    policy = MountPolicy([str(tmp_path / "mount")]).hiding(area.root)
    assert policy.allows(tmp_path / "mount")
    assert not policy.allows(stored)
    with pytest.raises(PathNotAllowed):
        open_beneath(policy, str(stored), read=True)
    with pytest.raises(PathNotAllowed):
        open_beneath(policy, str(tmp_path / "mount" / "uploads" / ".." / "uploads"))
