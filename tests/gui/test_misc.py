"""Small pieces: commands, popups, loss plot, screenshots (the login is
tested in ``test_login.py``, the error mapping in ``test_session.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from sleap_rtc_core.cli import build_parser
from sleap_rtc_gui import presubmit
from sleap_rtc_gui.dialogs.error_popup import show_error
from sleap_rtc_gui.dialogs.loss_plot import LossPlotWindow, losses_of


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


def test_error_popup_shows_title_text_and_details(qtbot: QtBot) -> None:
    popup = show_error(presubmit.ShowError("Timed out", "Too slow.", "connect"))
    qtbot.addWidget(popup)
    assert (popup.windowTitle(), popup.text(), popup.detailedText()) == (
        "Timed out",
        "Too slow.",
        "connect",
    )
    popup.ok_button.click()
    assert not popup.isVisible()


def test_loss_plot_reads_both_log_spellings(qtbot: QtBot) -> None:
    assert losses_of({"logs": {"loss": 1.0, "val_loss": 2.0}}) == (1.0, 2.0)
    assert losses_of({"logs": None}) == (None, None)
    plot = LossPlotWindow()
    qtbot.addWidget(plot)
    plot.add_event('{"event": "epoch_end", "epoch": 0, "logs": {"train/loss": 0.5}}')
    plot.add_event("not json")
    plot.add_event({"event": "train_end"})
    assert plot.canvas.series["train"] == [(1, 0.5)]
    assert plot.finished
    assert not plot.stop_button.isEnabled()
    plot.grab()  # paints


def test_screenshots_script_writes_the_readme_images(tmp_path: Path) -> None:
    import importlib.util

    script = Path(__file__).parents[2] / "scripts" / "make_gui_screenshots.py"
    spec = importlib.util.spec_from_file_location("make_gui_screenshots", script)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = module.render(tmp_path)
    sleap = [  # SLEAP is installed by the test set-up
        "sleap_run_remotely.png",
        "sleap_run_remotely_panel.png",
        "sleap_loss_viewer.png",
    ]
    assert [p.name for p in written] == [
        "training_dialog.png",
        "path_resolution.png",
        "error_popup.png",
        "loss_plot.png",
        *sleap,
    ]
    assert all(p.stat().st_size > 1000 for p in written)
