"""Run names and run folders chosen by :func:`prepare_job` (fast; no training).

The tiny embedded dataset has 20 labeled frames, so SLEAP's pattern reads
``YYMMDD_HHMMSS.<model type>.n=20``. Run folders are created when the job is
prepared (so no two jobs share one) and removed again if nothing was written.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sleap_rtc_core.protocol.jobspec import TrainJobSpec
from sleap_rtc_core.sample_data import tiny_training_config
from sleap_rtc_core.worker.files.mounts import MountPolicy
from sleap_rtc_core.worker.jobs.prepare import (
    OWNER_FILE,
    PRIVATE_PREFIX,
    PreparedJob,
    prepare_job,
    remove_abandoned_job_dirs,
)
from tests.fixtures.data import TINY_FRAMES

STAMP = r"\d{6}_\d{6}"


@pytest.fixture
def mount(tmp_path: Path, tiny_labels: Path) -> Path:
    """A mount whose labels live in a folder named with ``=``, spaces, unicode."""
    root = tmp_path / "mount"
    (root / "data =ü x").mkdir(parents=True)
    shutil.copy(tiny_labels, root / "data =ü x" / "tiny n=1.pkg.slp")
    return root


def labels_of(mount: Path) -> Path:
    return mount / "data =ü x" / "tiny n=1.pkg.slp"


def prepare(mount: Path, tmp_path: Path, **fields: Any) -> PreparedJob | list[Any]:
    spec: dict[str, Any] = {
        "type": "train",
        "config_content": tiny_training_config(max_epochs=2),
        "labels_path": labels_of(mount).as_posix(),
        **fields,
    }
    return prepare_job(
        TrainJobSpec.from_dict(spec),
        MountPolicy([mount.as_posix()]),
        private_parent=tmp_path,
    )


def test_a_model_gets_a_sleap_style_run_folder_made_now(
    mount: Path, tmp_path: Path
) -> None:
    job = prepare(mount, tmp_path)
    assert isinstance(job, PreparedJob)
    (model,) = job.models
    # The model type is read from the config when the spec gives none.
    assert model.model_type == "single_instance"
    assert re.fullmatch(rf"{STAMP}\.single_instance\.n={TINY_FRAMES}", model.run_name)
    assert model.ckpt_dir == labels_of(mount).parent / "models"
    assert model.run_dir == model.ckpt_dir / model.run_name
    assert model.run_dir.is_dir()
    # Its private folder names the worker process (for a restart's clean-up).
    assert (job.private_dir / OWNER_FILE).read_text() == str(os.getpid())
    # A second job in the same second never shares the folder.
    again = prepare(mount, tmp_path)
    assert isinstance(again, PreparedJob)
    assert again.models[0].run_dir != model.run_dir
    # Nothing was trained: cleanup removes the empty folders; a folder that
    # holds a model stays.
    (again.models[0].run_dir / "best.ckpt").write_bytes(b"x")
    job.cleanup()
    again.cleanup()
    assert not model.run_dir.exists()
    assert again.models[0].run_dir.is_dir()


@pytest.mark.parametrize(
    ("outcome", "with_ckpt", "stays"),
    [
        ("succeeded", False, True),  # what sleap-nn wrote: logs, configs
        ("cancelled", True, False),  # the user said cancel: no half model
        ("failed", False, False),  # nothing to look at but a half run
        ("failed", True, True),  # a checkpoint: worth keeping
    ],
)
def test_a_cancelled_or_failed_run_leaves_no_half_run_folder(
    mount: Path, tmp_path: Path, outcome: str, with_ckpt: bool, stays: bool
) -> None:
    job = prepare(mount, tmp_path)
    assert isinstance(job, PreparedJob)
    run = job.models[0].run_dir
    (run / "training_config.yaml").write_text("x")
    if with_ckpt:
        (run / "best.ckpt").write_bytes(b"x")
    job.cleanup(outcome)
    assert run.is_dir() is stays
    assert not job.private_dir.exists()


def test_a_run_folder_replaced_by_a_link_is_not_followed(
    mount: Path, tmp_path: Path
) -> None:
    job = prepare(mount, tmp_path)
    assert isinstance(job, PreparedJob)
    run = job.models[0].run_dir
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("x")
    run.rmdir()
    run.symlink_to(elsewhere)
    job.cleanup("cancelled")
    assert (elsewhere / "keep.txt").exists()


def test_the_configs_run_name_is_kept_as_sleap_wrote_it(
    mount: Path, tmp_path: Path
) -> None:
    name = "my run = ü ✓ 'q' \"d\""
    job = prepare(mount, tmp_path, config_content=tiny_training_config(run_name=name))
    assert isinstance(job, PreparedJob)
    try:
        assert job.models[0].run_name == name
        assert job.models[0].run_dir == labels_of(mount).parent / "models" / name
    finally:
        job.cleanup()


def test_a_two_model_pipeline_leaves_two_folders(mount: Path, tmp_path: Path) -> None:
    job = prepare(
        mount,
        tmp_path,
        config_content=None,
        config_contents=[
            tiny_training_config(model_type="centroid"),
            tiny_training_config(model_type="centered_instance"),
        ],
    )
    assert isinstance(job, PreparedJob)
    try:
        first, second = job.models
        assert re.fullmatch(rf"{STAMP}\.centroid\.n=20", first.run_name)
        assert re.fullmatch(rf"{STAMP}\.centered_instance\.n=20", second.run_name)
        assert first.run_name[:13] == second.run_name[:13]  # one timestamp
        assert first.run_dir is not None
        assert second.run_dir is not None
        assert first.run_dir.is_dir()
        assert second.run_dir.is_dir()
        assert first.run_dir != second.run_dir
    finally:
        job.cleanup()


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        (
            {"config_content": tiny_training_config(run_name="a/b")},
            "config.trainer_config.run_name",
            "INVALID_VALUE",
        ),
        (
            {"config_content": tiny_training_config(run_name="x${y}")},
            "config.trainer_config.run_name",
            "INVALID_VALUE",
        ),
        (
            {"config_content": tiny_training_config(ckpt_dir="models ${oc.env:HOME}")},
            "config.trainer_config.ckpt_dir",
            "INVALID_PATH",
        ),
    ],
)
def test_names_sleap_nn_would_misread_are_refused_before_anything_is_made(
    mount: Path, tmp_path: Path, fields: dict[str, Any], field: str, code: str
) -> None:
    errors = prepare(mount, tmp_path, **fields)
    assert isinstance(errors, list)
    assert (field, code) in [(e.field, e.code) for e in errors]
    assert not (labels_of(mount).parent / "models").exists()


def test_a_run_folder_that_cannot_be_made_is_a_field_error(
    mount: Path, tmp_path: Path
) -> None:
    models = labels_of(mount).parent / "models"
    models.write_text("a file where the folder should be")
    errors = prepare(mount, tmp_path)
    assert isinstance(errors, list)
    assert [e.field for e in errors] == ["config.trainer_config.run_name"]
    assert list(tmp_path.glob("sleap_rtc_job_*")) == []


def test_folders_of_dead_workers_are_removed_and_no_others(tmp_path: Path) -> None:
    """A SIGKILLed worker leaves its private folders; the next start removes
    them, and only them."""

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owners = {
            "dead": dead.stdout.strip(),
            "live": str(live.pid),
            "mine": str(os.getpid()),
        }
        for name, pid in owners.items():
            folder = tmp_path / f"{PRIVATE_PREFIX}{name}"
            folder.mkdir()
            (folder / OWNER_FILE).write_text(pid)
        (tmp_path / f"{PRIVATE_PREFIX}unowned").mkdir()
        (tmp_path / "someone_elses").mkdir()
        assert remove_abandoned_job_dirs(tmp_path) == 1
    finally:
        live.kill()
        live.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [
            f"{PRIVATE_PREFIX}live",
            f"{PRIVATE_PREFIX}mine",
            f"{PRIVATE_PREFIX}unowned",
            "someone_elses",
        ]
    )
