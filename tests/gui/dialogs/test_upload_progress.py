"""The upload's progress dialog: bytes, rate, ETA and its Cancel."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from sleap_rtc_gui.dialogs.upload_progress import UploadProgressDialog

SIZE = 40_000_000


def test_progress_shows_bytes_rate_and_eta_and_cancel_says_so(qtbot: QtBot) -> None:
    now = [0.0]
    dialog = UploadProgressDialog("labels.pkg.slp", clock=lambda: now[0])
    qtbot.addWidget(dialog)
    dialog.set_progress(0, SIZE)
    now[0] = 4.0
    dialog.set_progress(SIZE // 4, SIZE)
    assert dialog.bar.value() == 25
    assert dialog.status_label.text() == "10.0/40.0 MB  2.5 MB/s  ETA 12 s"
    with qtbot.waitSignal(dialog.cancelled):
        dialog.cancel_button.click()
