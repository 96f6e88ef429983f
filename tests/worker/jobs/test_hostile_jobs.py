"""Hostile job configs against a real JobService: refused by field, nothing
written or deleted, and no secret of the worker in a job's reach.

The worker's mount is a temporary folder; the job processes are real. For the
environment check the interpreter the worker runs is a small script that
reports the environment it got instead of training (what a hostile config
could make sleap-nn read), so every byte the job sends back can be searched.
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from sleap_rtc_core.protocol.channel_messages import (
    JobFailedMsg,
    JobLogMsg,
    JobRejectedMsg,
)
from sleap_rtc_core.sample_data import tiny_training_config
from sleap_rtc_core.worker.files.mounts import MountPolicy
from sleap_rtc_core.worker.jobs.service import JobService
from tests.fixtures.data import tiny_config_with
from tests.fixtures.timing import scaled
from tests.worker.jobs.test_service import Channel, submit, train_spec

SECRETS = {
    "SLEAP_RTC_API_KEY": "slp_worker_key_that_must_never_leak_3f9a",
    "SLEAP_ROOM_SECRET": "room-secret-that-must-never-leak-77c1",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-that-must-never-leak-0b2e",
}


async def rejected_fields(service: JobService, mount: Path, config: str) -> dict:
    channel = Channel()
    await submit(service, channel, train_spec(mount, config_content=config))
    (rejected,) = channel.of(JobRejectedMsg)
    return {e["field"]: e["code"] for e in rejected.errors}


async def test_a_cache_folder_outside_the_mounts_or_already_there_is_refused(
    mount: Path, tmp_path: Path
) -> None:
    service = JobService(MountPolicy([mount.as_posix()]), work_dir=tmp_path)
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    existing = mount / "data"
    try:
        for folder, code in [
            (outside / "cache", "NOT_ALLOWED"),
            (existing, "NOT_ALLOWED"),
            ("relative/cache", "INVALID_PATH"),
        ]:
            config = tiny_config_with({"data_config.cache_img_path": str(folder)})
            fields = await rejected_fields(service, mount, config)
            assert fields == {"config.data_config.cache_img_path": code}
        assert (outside / "keep.txt").read_text() == "mine"
        assert sorted(p.name for p in existing.iterdir()) == ["tiny.pkg.slp"]
    finally:
        await service.close()


async def test_hostile_configs_are_refused_by_field(
    mount: Path, tmp_path: Path
) -> None:
    service = JobService(MountPolicy([mount.as_posix()]), work_dir=tmp_path)
    try:
        cases = {
            "config.model_config.pretrained_backbone_weights": tiny_config_with(
                {"model_config.pretrained_backbone_weights": str(tmp_path / "x.ckpt")}
            ),
            "config.data_config.validation_fraction": tiny_config_with(
                {"data_config.validation_fraction": "${oc.env:SLEAP_RTC_API_KEY}"}
            ),
            "config.defaults": tiny_training_config() + "defaults:\n  - /etc/x\n",
        }
        for field, config in cases.items():
            fields = await rejected_fields(service, mount, config)
            assert list(fields) == [field]
    finally:
        await service.close()


async def test_no_secret_of_the_worker_reaches_a_job(
    mount: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    reporter = tmp_path / "python-reporting-its-env"
    reporter.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import os, sys
            for key, value in sorted(os.environ.items()):
                print(f"{{key}}={{value}}", flush=True)
            print(" ".join(sys.argv), file=sys.stderr, flush=True)
            sys.exit(3)
            """
        )
    )
    reporter.chmod(0o755)
    service = JobService(
        MountPolicy([mount.as_posix()]), work_dir=tmp_path, python=str(reporter)
    )
    channel = Channel()
    try:
        await submit(service, channel, train_spec(mount))
        failed = await channel.wait_for(JobFailedMsg, scaled(30))
    finally:
        await service.close()
    sent = "\n".join(channel.frames)  # every byte the job's run sent back
    assert failed.job_id
    env = dict(
        line.split("=", 1)
        for m in channel.of(JobLogMsg)
        if "=" in (line := m.line) and line.split("=", 1)[0].isupper()
    )
    assert "PATH" in env
    assert env["HOME"] != os.environ.get("HOME")  # the job's own folder
    assert env["CUDA_VISIBLE_DEVICES"] == ""  # the worker decides: the CPU
    for name, value in SECRETS.items():
        assert name not in env
        assert value not in sent
