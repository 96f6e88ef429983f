"""Tests of :mod:`sleap_rtc_core.worker.jobs.env`: what of the worker's
environment a job may see."""

from __future__ import annotations

from pathlib import Path

from sleap_rtc_core.worker.jobs.env import job_environment

WORKER_ENV = {
    "PATH": "/usr/bin",
    "LC_ALL": "C.UTF-8",
    "CUDA_VISIBLE_DEVICES": "0,1",
    "HOME": "/home/worker",
    "SLEAP_RTC_API_KEY": "slp_secret",
    "SLEAP_ROOM_SECRET": "room-secret",
    "AWS_SECRET_ACCESS_KEY": "aws",
}


def test_only_allowed_names_and_families_pass(tmp_path: Path) -> None:
    env = job_environment(WORKER_ENV, tmp_path, {})
    assert env == {
        "PATH": "/usr/bin",
        "LC_ALL": "C.UTF-8",
        "CUDA_VISIBLE_DEVICES": "0,1",
        "HOME": str(tmp_path),
    }


def test_the_workers_settings_go_on_top_and_none_removes(tmp_path: Path) -> None:
    env = job_environment(
        WORKER_ENV,
        tmp_path,
        {"CUDA_VISIBLE_DEVICES": "1", "LC_ALL": None, "SLEAP_JOB": "yes"},
    )
    assert env["CUDA_VISIBLE_DEVICES"] == "1"
    assert "LC_ALL" not in env
    assert env["SLEAP_JOB"] == "yes"


def test_the_source_is_not_changed(tmp_path: Path) -> None:
    source = dict(WORKER_ENV)
    job_environment(source, tmp_path, {"PATH": None})
    assert source == WORKER_ENV
