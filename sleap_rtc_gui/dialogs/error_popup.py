"""Error popups, driven by the presubmission machine's ``ShowError`` effects.

The machine decides *what* to say (``presubmit/messages.py``); this module only
shows it: a warning box with the title, the sentence, and the technical detail
in the expandable "Show Details..." section. Popups are opened window-modal with
``open()``, never ``exec()``, so the shared qasync loop keeps running (and
tests can read and close them).
"""

from __future__ import annotations

from PySide6.QtWidgets import QAbstractButton, QMessageBox, QWidget

from sleap_rtc_gui.presubmit import ShowError

__all__ = ["ErrorPopup", "show_error"]


class ErrorPopup(QMessageBox):
    """One error, as the machine phrased it.

    Attributes:
        effect: The ``ShowError`` shown.
    """

    def __init__(self, effect: ShowError, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.effect = effect
        self.setIcon(QMessageBox.Icon.Warning)
        self.setWindowTitle(effect.title)
        self.setText(effect.message)
        if effect.details:
            self.setDetailedText(effect.details)
        self.setStandardButtons(QMessageBox.StandardButton.Ok)

    @property
    def ok_button(self) -> QAbstractButton:
        """The **OK** button (what a test clicks)."""
        return self.button(QMessageBox.StandardButton.Ok)


def show_error(effect: ShowError, parent: QWidget | None = None) -> ErrorPopup:
    """Open a popup for ``effect`` over ``parent`` without blocking; the popup."""
    popup = ErrorPopup(effect, parent)
    popup.open()
    return popup
