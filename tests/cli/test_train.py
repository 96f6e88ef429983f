"""``train`` as a lab meets it (issue 20, cases 6, 7 and 8): sleap-nn's own
error shown, a busy worker named, Ctrl-C ending a job within its bound and
leaving nothing behind."""

from __future__ import annotations

import re

import pytest

from sleap_rtc_core.sample_data import tiny_training_config, write_tiny_labels
from tests.fixtures.timing import scaled, wait_until

from .conftest import Lab, interrupt


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
