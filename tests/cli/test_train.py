"""``train`` as a lab meets it (issue 20, cases 6, 7 and 8): sleap-nn's own
error shown, a busy worker named, Ctrl-C ending a job within its bound and
leaving nothing behind."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from sleap_rtc_core.sample_data import tiny_training_config, write_tiny_labels
from tests.fixtures.timing import scaled, wait_until

from .conftest import Lab, interrupt, signal_bound


def _run_folders(models: Path) -> list[Path]:
    """Run folders in a ``models/`` folder (none when it is not there)."""
    return [p for p in models.iterdir() if p.is_dir()] if models.is_dir() else []


@pytest.mark.slow
def test_sleap_nns_own_error_is_shown(lab: Lab) -> None:
    shared = lab.root / "shared"
    lab.worker("gpu-a", shared)
    labels = write_tiny_labels(shared / "bad.pkg.slp")
    config = lab.root / "bad.yaml"
    text, n = re.subn(
        r"batch_size: \d+", "batch_size: eight", tiny_training_config(max_epochs=1)
    )
    assert n, "the tiny config has a batch_size"
    config.write_text(text)
    result = lab.run("train", str(labels), "--config", str(config), *lab.flags())
    assert result.returncode == 1, result.stdout + result.stderr
    # The line sleap-nn raised (it names the value it could not use), not
    # only "the job failed".
    assert "eight" in result.stderr, result.stdout + result.stderr
    lab.assert_clean(result.stdout, result.stderr)
    assert not _run_folders(shared / "models")  # a failed run leaves none
    # A user's config mistake is not the worker's crash: no traceback.
    assert "Traceback" not in lab.procs[-1].output, lab.procs[-1].output


@pytest.mark.slow
def test_when_only_a_busy_worker_sees_the_data_train_names_it_and_exits_2(
    lab: Lab,
) -> None:
    shared = lab.root / "shared"
    lab.worker("gpu-a", shared)
    lab.worker("gpu-b", lab.root / "elsewhere")
    labels = write_tiny_labels(shared / "proj" / "labels.pkg.slp")
    long = lab.root / "long.yaml"
    long.write_text(tiny_training_config(max_epochs=1000))
    busy = lab.spawn("train", str(labels), "--config", str(long), *lab.flags())
    wait_until(lambda: "epoch " in busy.stdout, timeout=scaled(120), interval=0.1)
    assert "selected gpu-a" in busy.stdout, busy.output

    short = lab.root / "short.yaml"
    short.write_text(tiny_training_config(max_epochs=1))
    result = lab.run("train", str(labels), "--config", str(short), *lab.flags())
    assert result.returncode == 2, result.stdout + result.stderr
    assert "gpu-a" in result.stderr, result.stdout + result.stderr
    assert "busy" in result.stderr, result.stdout + result.stderr
    assert "job " not in result.stdout  # it did not start on gpu-b instead

    # Ctrl-C without a terminal cancels (nothing to ask): exit 130, at once,
    # and the job's sleap-nn and private folder are gone.
    assert interrupt(busy) == 130, busy.output
    assert "cancel" in busy.output
    lab.assert_clean(busy.output, result.stdout, result.stderr)


@pytest.mark.slow
def test_answering_c_at_the_question_cancels_exit_130_and_leaves_no_run(
    lab: Lab,
) -> None:
    shared = lab.root / "shared"
    lab.worker("gpu-a", shared)
    labels = write_tiny_labels(shared / "proj" / "labels.pkg.slp")
    long = lab.root / "long.yaml"
    long.write_text(tiny_training_config(max_epochs=1000))
    train = lab.spawn(
        "train", str(labels), "--config", str(long), *lab.flags(), tty=True
    )
    wait_until(lambda: "epoch " in train.stdout, timeout=scaled(120), interval=0.1)
    train.popen.send_signal(signal.SIGINT)
    wait_until(lambda: "[s/c]" in train.stdout, timeout=scaled(15), interval=0.05)
    train.type("c\n")
    assert train.wait_exit(signal_bound()) == 130, train.output
    assert "cancelling" in train.stdout
    assert "Traceback" not in train.output
    lab.assert_clean(train.output)
    # The cancelled run's folder goes with it (the worker removes it once
    # sleap-nn has ended: bounded).
    models = shared / "proj" / "models"
    wait_until(lambda: not _run_folders(models), timeout=scaled(20), interval=0.1)


@pytest.mark.slow
def test_a_killed_workers_private_folder_is_swept_when_it_starts_again(
    lab: Lab,
) -> None:
    shared = lab.root / "shared"
    worker = lab.worker("gpu-a", shared)
    labels = write_tiny_labels(shared / "proj" / "labels.pkg.slp")
    long = lab.root / "long.yaml"
    long.write_text(tiny_training_config(max_epochs=1000))
    train = lab.spawn("train", str(labels), "--config", str(long), *lab.flags())
    wait_until(lambda: "epoch " in train.stdout, timeout=scaled(120), interval=0.1)
    assert list(lab.tmp.glob("sleap_rtc_job_*")), train.output
    worker.popen.kill()  # SIGKILL: nothing of the worker cleans up
    worker.popen.wait()
    # The client hears it (the server's peer_left) and fails the job: exit 1.
    assert train.wait(60) == 1, train.output
    assert "Traceback" not in train.output
    lab.worker("gpu-a", shared)  # the same worker, started again
    lab.assert_clean(train.output)  # its sleap-nn died with it; folder swept
