"""The loss plot ``sleap-rtc gui`` shows where SLEAP's LossViewer is not."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from sleap_rtc_gui.dialogs.loss_plot import LossPlotWindow, losses_of


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
