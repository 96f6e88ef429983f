"""``sleap-rtc demo``: the README's first command, as a real process."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.fixtures.cli import run_cli


@pytest.mark.slow
def test_demo_trains_a_model_remotely(tmp_path: Path) -> None:
    result = run_cli("demo", "--epochs", "1", "--workdir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "found 1 available worker:" in out  # the placement says it once
    assert "selected demo (demo-worker) (reason: only one)" in out
    assert "accepted by demo-worker" in out
    assert "  training started" in out  # train's own lines (JobView) ...
    assert re.search(r"^  epoch 1/1  loss \S+  val \S+", out, re.MULTILINE), out
    # ... and its display on stderr: plain paced lines without a terminal
    # (a status told once it lasted a second), never escape codes.
    assert "\x1b" not in result.stderr
    status = re.compile(r"  (.* so far|epoch \d+/1  batch \d+.*)")
    for line in result.stderr.splitlines():
        assert status.fullmatch(line), result.stderr
    model_line = next(line for line in out.splitlines() if line.startswith("model: "))
    model_dir = Path(model_line.removeprefix("model: "))
    assert model_dir.is_relative_to(tmp_path)
    assert list(model_dir.glob("*.ckpt"))


def test_demo_refuses_nonsense() -> None:
    result = run_cli("demo", "--epochs", "0")
    assert result.returncode == 2
    assert "--epochs" in result.stderr
