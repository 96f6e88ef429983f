"""A remapped copy of a labels file (:mod:`~sleap_rtc_core.worker.files.slp_write`)
called directly: quotas, folder and file names, the copy itself (real sleap-io
on real files in ``tmp_path``). ``FS_WRITE_SLP`` as an attacker would use it is
in ``tests/security/test_fs_write_slp.py``."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from sleap_rtc_core.errors import PathNotAllowed, QuotaExceeded
from sleap_rtc_core.sample_data import write_tiny_video_labels
from sleap_rtc_core.worker.files.mounts import MountPolicy
from sleap_rtc_core.worker.files.slp_write import (
    CLIENT_FOLDER_PREFIX,
    SlpWriteLedger,
    SlpWriteQuota,
    client_folder_name,
    default_output_name,
    write_remapped_labels,
)


def test_a_quota_is_non_negative_whole_numbers() -> None:
    assert SlpWriteQuota(max_files_per_peer=0).max_files_per_peer == 0
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="max_files_total"):
            SlpWriteQuota(max_files_total=bad)  # type: ignore[arg-type]


def test_the_ledger_counts_files_and_bytes_per_peer_and_in_all() -> None:
    ledger = SlpWriteLedger(
        SlpWriteQuota(
            max_files_per_peer=2,
            max_bytes_per_peer=100,
            max_files_total=3,
            max_bytes_total=150,
        )
    )
    ledger.reserve("a")
    ledger.charge("a", 60)
    assert ledger.used("a") == (1, 60)
    with pytest.raises(QuotaExceeded, match="past the 100 bytes"):
        ledger.charge("a", 41)
    ledger.reserve("a")
    with pytest.raises(QuotaExceeded, match="the most it may \\(2\\)"):
        ledger.reserve("a")
    ledger.release("a")  # the second write did not happen
    assert ledger.used("a") == (1, 60)
    ledger.reserve("b")
    ledger.charge("b", 90)  # 150 bytes in all
    ledger.reserve("c")  # 3 files in all
    with pytest.raises(QuotaExceeded, match="past the 150 bytes"):
        ledger.charge("c", 1)
    with pytest.raises(QuotaExceeded, match="ask its owner to restart it"):
        ledger.reserve("d")
    ledger.release("c")
    ledger.reserve("d")
    ledger.release("b", 90)
    assert ledger.used("b") == (0, 0)
    ledger.release("b", 90)  # never below nothing
    assert ledger.used("b") == (0, 0)


def test_each_peer_gets_its_own_safe_folder_name() -> None:
    assert client_folder_name("laptop-1") == CLIENT_FOLDER_PREFIX + "laptop-1"
    odd = client_folder_name("../../x")
    assert odd.startswith(CLIENT_FOLDER_PREFIX + "______x_")
    assert "/" not in odd
    assert odd != client_folder_name("..__/x")  # a changed id gets its hash
    assert len(client_folder_name("")) == len(CLIENT_FOLDER_PREFIX) + 12
    assert len(client_folder_name("x" * 300)) <= len(CLIENT_FOLDER_PREFIX) + 64 + 9


def test_the_default_name_is_the_reference_servers() -> None:
    day = datetime.date(2026, 1, 2)
    assert default_output_name("/a/b/labels.slp", day) == "resolved_20260102_labels.slp"
    assert (
        default_output_name("C:\\lab\\Proj.PKG.SLP", day)
        == "resolved_20260102_Proj.pkg.slp"
    )


def test_a_copy_points_its_videos_where_they_are_and_leaves_the_original(
    tmp_path: Path,
) -> None:
    import sleap_io as sio

    mount = tmp_path / "mount"
    labels, video = write_tiny_video_labels(mount / "proj" / "labels.slp", n_frames=3)
    moved = mount / "moved" / video.name
    moved.parent.mkdir()
    video.rename(moved)
    before = labels.read_bytes()
    policy = MountPolicy([str(mount)])
    ledger = SlpWriteLedger()

    out, updated = write_remapped_labels(
        policy,
        str(labels),
        str(mount / "out"),
        {str(video): str(moved)},
        "fixed.slp",
        peer="laptop",
        ledger=ledger,
    )
    assert updated == 1
    assert Path(out) == mount / "out" / client_folder_name("laptop") / "fixed.slp"
    copy = sio.load_slp(out, open_videos=False)
    assert [v.filename for v in copy.videos] == [str(moved)]
    assert labels.read_bytes() == before
    files, size = ledger.used("laptop")
    assert (files, size) == (1, Path(out).stat().st_size)

    again, _ = write_remapped_labels(
        policy, str(labels), str(mount / "out"), {}, "fixed.slp", peer="laptop"
    )
    assert Path(again).name == "fixed-2.slp"  # never overwrites
    with pytest.raises(ValueError, match="plain file name"):
        write_remapped_labels(policy, str(labels), str(mount), {}, "../x.slp")
    with pytest.raises(PathNotAllowed):
        write_remapped_labels(policy, str(labels), str(tmp_path / "elsewhere"), {})
    with pytest.raises(FileNotFoundError):
        write_remapped_labels(policy, str(mount / "none.slp"), str(mount), {})
