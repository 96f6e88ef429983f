"""``--quiet`` (``-q``) for scripts: only errors and the result lines (where
the model is, the report), no progress display and no wait lines; and
``--epochs`` outside what a job may train is refused before anything starts."""

from __future__ import annotations

import pytest

from sleap_rtc_core.sample_data import tiny_training_config, write_tiny_labels

from .conftest import Lab


@pytest.mark.slow
def test_quiet_train_and_check_print_only_their_results(lab: Lab) -> None:
    shared = lab.root / "shared"
    lab.worker("gpu-a", shared)
    labels = write_tiny_labels(shared / "proj" / "labels.pkg.slp")
    config = lab.root / "cfg.yaml"
    config.write_text(tiny_training_config(max_epochs=2))
    trained = lab.run("train", str(labels), "--config", str(config), "-q", *lab.flags())
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert trained.stderr == ""  # no progress, no waits
    (line,) = trained.stdout.splitlines()  # no placement, no epochs
    assert line.startswith(f"model here: {shared / 'proj' / 'models'}/"), line

    checked = lab.run("check", str(labels), "--quiet", *lab.flags())
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stderr == ""  # not even "asking worker …"
    assert checked.stdout.splitlines() == [
        f"labels: {labels}: found",
        f"  embedded  {labels}",  # the package's video: its frames are inside
    ]
    lab.assert_clean(trained.stdout, checked.stdout)


def test_quiet_still_says_the_error(lab: Lab) -> None:
    labels = write_tiny_labels(lab.root / "x.pkg.slp")
    result = lab.run("check", str(labels), "-q", *lab.flags())  # no worker yet
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == ["sleap-rtc: error: no worker in this room"]


@pytest.mark.parametrize("epochs", ["0", "-1", "10001"])
def test_epochs_outside_what_a_job_trains_are_refused_at_once(
    lab: Lab, epochs: str
) -> None:
    labels = write_tiny_labels(lab.root / "x.pkg.slp")
    config = lab.root / "cfg.yaml"
    config.write_text(tiny_training_config(max_epochs=2))
    result = lab.run(
        "train", str(labels), "--config", str(config), "--epochs", epochs,
        *lab.flags(), timeout=30,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"--epochs must be 1 to 10000, not {epochs}" in result.stderr
    assert "config's trainer_config.max_epochs" in result.stderr
    assert result.stdout == ""  # nothing was started
