"""The ``gui``, ``tray`` and ``label`` sub-commands: their flags, the
credentials they count as given, and the real ``sleap-rtc label`` process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sleap_rtc_core.cli import build_parser
from tests.fixtures.timing import scaled


def test_gui_commands_are_registered() -> None:
    parser = build_parser()
    args = parser.parse_args(["gui", "labels.slp", "--room", "r", "--no-plot"])
    assert (args.labels, args.publish_port, args.controller_port) == (
        "labels.slp",
        9001,
        9000,
    )
    assert args.plot is False
    assert parser.parse_args(["tray", "--room", "r"]).handler.__name__ == "run_tray"


def test_the_flags_and_the_environment_count_as_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sleap_rtc_gui.commands import _credentials_given

    for name in ("SLEAP_RTC_TOKEN", "SLEAP_RTC_API_KEY", "SLEAP_RTC_ACCOUNT_KEY"):
        monkeypatch.delenv(name, raising=False)
    args = build_parser().parse_args(["gui", "x.slp", "--room", "r"])
    assert not _credentials_given(args)
    monkeypatch.setenv("SLEAP_RTC_API_KEY", "slp_x")
    assert _credentials_given(args)
    monkeypatch.delenv("SLEAP_RTC_API_KEY")
    args = build_parser().parse_args(["gui", "x.slp", "--room", "r", "--token", "t"])
    assert _credentials_given(args)


def test_label_takes_our_flags_after_the_labels_file() -> None:
    args = build_parser().parse_args(
        ["label", "labels.slp", "--room", "r", "--token", "t", "--sleap-arg=--reset"]
    )
    assert (args.labels, args.room, args.token) == ("labels.slp", "r", "t")
    assert args.sleap_arg == ["--reset"]


@pytest.mark.slow
def test_sleap_rtc_label_starts_sleap_with_the_plugin(
    labels: Path, tmp_path: Path
) -> None:
    """The front door: the real ``sleap-rtc label`` process starts SLEAP's main
    window on the labels with Run Remotely installed (stopped after that)."""
    env = {**os.environ, "HOME": str(tmp_path), "QT_QPA_PLATFORM": "offscreen"}
    cmd = [sys.executable, "-m", "sleap_rtc_core.cli", "-v", "label", str(labels)]
    cmd += ["--room", "r", "--token", "t"]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + scaled(90)
        seen: list[str] = []
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if "Launching GUI" in line:
                break
        text = "".join(seen)
        assert "Run Remotely added to LearningDialog" in text
        assert "Launching GUI" in text
        assert proc.poll() is None  # SLEAP's window is up
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(scaled(10))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
