"""A job's paths changed between the submit check and the start of sleap-nn:
the job fails before sleap-nn runs.

Each test prepares a real job (:func:`prepare_job`, real files in
``tmp_path``), then changes the file system the way an attacker with write
access to a mount would, then runs it as the worker does (:class:`JobRun`)
with an interpreter that only leaves a mark that it ran.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from sleap_rtc_core.protocol.jobspec import TrainJobSpec
from sleap_rtc_core.sample_data import tiny_training_config
from sleap_rtc_core.worker.files.mounts import MountPolicy
from sleap_rtc_core.worker.jobs.prepare import PreparedJob, prepare_job
from sleap_rtc_core.worker.jobs.run import JobRun
from tests.fixtures.data import tiny_config_with


@pytest.fixture
def mount(tmp_path: Path, tiny_labels: Path) -> Path:
    """``mount/data/tiny.pkg.slp`` and an ``outside/data/`` copy of it."""
    (tmp_path / "mount" / "data").mkdir(parents=True)
    (tmp_path / "outside" / "data").mkdir(parents=True)
    shutil.copy(tiny_labels, tmp_path / "mount" / "data" / "tiny.pkg.slp")
    shutil.copy(tiny_labels, tmp_path / "outside" / "data" / "tiny.pkg.slp")
    return tmp_path / "mount"


def _prepare(mount: Path, tmp_path: Path, config: str | None = None) -> PreparedJob:
    spec = TrainJobSpec.from_dict(
        {
            "type": "train",
            "config_content": config or tiny_training_config(max_epochs=1),
            "labels_path": (mount / "data" / "tiny.pkg.slp").as_posix(),
        }
    )
    job = prepare_job(spec, MountPolicy([mount.as_posix()]), private_parent=tmp_path)
    assert isinstance(job, PreparedJob), job
    assert job.recheck() == []
    return job


async def _run(job: PreparedJob, tmp_path: Path) -> tuple[dict[str, Any], bool]:
    """Run ``job`` with an interpreter that marks that it ran; ``(result,
    whether it ran)``."""
    mark = tmp_path / "sleap-nn-ran"
    fake = tmp_path / "fake-python"
    fake.write_text(f"#!{sys.executable}\nopen({str(mark)!r}, 'w').close()\n")
    fake.chmod(0o755)
    run = JobRun(
        "j1",
        "c1",
        "owner",
        job,
        python=str(fake),
        env={"PATH": os.environ.get("PATH", "")},
        stop_grace=1.0,
        stop_timeout=1.0,
        max_buffered=100,
        on_state=lambda _id, _state: None,
    )
    await run.run()
    assert run.result is not None
    return run.result, mark.exists()


async def test_labels_folder_swapped_for_a_link_out(
    mount: Path, tmp_path: Path
) -> None:
    job = _prepare(mount, tmp_path)
    (mount / "data").rename(mount / "data.old")
    os.symlink(tmp_path / "outside" / "data", mount / "data")
    result, ran = await _run(job, tmp_path)
    assert not ran
    assert result["code"] == "NOT_ALLOWED"
    labels = (mount / "data" / "tiny.pkg.slp").as_posix()
    assert result["message"].startswith(f"sleap-nn was not started: {labels} ")
    assert "outside the worker's mounts" in result["message"]
    assert {e["path"] for e in result["errors"]} >= {labels}


async def test_run_folder_swapped_for_a_link(mount: Path, tmp_path: Path) -> None:
    job = _prepare(mount, tmp_path)
    run_dir = job.models[0].run_dir
    assert run_dir is not None
    run_dir.rmdir()
    os.symlink(tmp_path / "outside", run_dir)
    result, ran = await _run(job, tmp_path)
    assert not ran
    assert result["code"] == "NOT_ALLOWED"
    assert run_dir.as_posix() in {e["path"] for e in result["errors"]}


async def test_cache_folder_that_appeared_since(mount: Path, tmp_path: Path) -> None:
    cache = mount / "cache"
    config = tiny_config_with(
        {"trainer_config.max_epochs": 1, "data_config.cache_img_path": str(cache)}
    )
    job = _prepare(mount, tmp_path, config)
    os.symlink(mount / "data", cache)  # sleap-nn would delete the labels' folder
    result, ran = await _run(job, tmp_path)
    assert not ran
    assert [e["path"] for e in result["errors"]] == [str(cache)]
    assert (mount / "data" / "tiny.pkg.slp").exists()


async def test_an_unchanged_job_starts(mount: Path, tmp_path: Path) -> None:
    job = _prepare(mount, tmp_path)
    result, ran = await _run(job, tmp_path)
    assert ran  # the fake trains nothing, so the job fails after it ran
    assert result.get("code") != "NOT_ALLOWED"
