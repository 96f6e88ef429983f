"""The suite's leftover check sees a live sleap-nn process of a lab, and only
while it lives, so that ``assert_clean`` can fail."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sleap_rtc_core.worker.jobs.sleapnn_cmd import SLEAP_NN_MODULE
from tests.cli.conftest import sleap_nn_processes
from tests.fixtures.timing import scaled, wait_until


def test_a_running_sleap_nn_below_the_lab_is_found(tmp_path: Path) -> None:
    # The argv the worker gives sleap-nn (``python -m sleap_nn.cli``) with a
    # path below the lab; ``-c`` keeps it asleep instead of training.
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "-m"]
        + [SLEAP_NN_MODULE, "train", "--config-dir", str(tmp_path / "job")]
    )
    try:
        wait_until(lambda: sleeper.pid in sleap_nn_processes(tmp_path), scaled(10))
        assert not sleap_nn_processes(tmp_path / "elsewhere")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert sleeper.pid not in sleap_nn_processes(tmp_path)
