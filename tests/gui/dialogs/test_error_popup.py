"""The error popup the presubmission machine's ``ShowError`` becomes."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from sleap_rtc_gui import presubmit
from sleap_rtc_gui.dialogs.error_popup import show_error


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
