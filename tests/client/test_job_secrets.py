"""The kept job secrets: private, per worker and job, bounded."""

from __future__ import annotations

import stat
from pathlib import Path

from sleap_rtc_core.client import job_secrets as js


def test_a_secret_is_kept_privately_per_worker_and_job(tmp_path: Path) -> None:
    path = tmp_path / "state" / "job-secrets.json"
    js.save_job_secret("w1", "job_1", "s-one", path)
    js.save_job_secret("w2", "job_1", "s-two", path)
    assert js.load_job_secret("w1", "job_1", path) == "s-one"
    assert js.load_job_secret("w2", "job_1", path) == "s-two"
    assert js.load_job_secret("w1", "job_2", path) is None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_unreadable_or_odd_files_hold_no_secret(tmp_path: Path) -> None:
    path = tmp_path / "job-secrets.json"
    assert js.load_job_secret("w", "j", path) is None
    for text in ("not json", "[1]", '{"w/j": 5}', '{"w/j": {"secret": 5}}'):
        path.write_text(text)
        assert js.load_job_secret("w", "j", path) is None


def test_only_the_newest_are_kept(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(js, "KEEP", 3)
    path = tmp_path / "job-secrets.json"
    for i in range(5):
        js.save_job_secret("w", f"j{i}", f"s{i}", path)
    assert [js.load_job_secret("w", f"j{i}", path) for i in range(5)] == [
        None,
        None,
        "s2",
        "s3",
        "s4",
    ]


def test_the_default_place_is_the_users_state_folder() -> None:
    assert js.job_secrets_path().name == "job-secrets.json"
    assert "sleap-rtc" in js.job_secrets_path().parts
