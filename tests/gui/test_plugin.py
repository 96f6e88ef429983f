"""The SLEAP plugin's one hook, on a stand-in dialog (SLEAP is not installed here)."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QPushButton, QVBoxLayout
from pytestqt.qtbot import QtBot

from sleap_rtc_gui import plugin


class StandInLearningDialog(QDialog):
    """Shaped like SLEAP's LearningDialog where it matters: a button box and
    the labels file name."""

    def __init__(self, labels_filename: str) -> None:
        super().__init__()
        self.labels_filename = labels_filename
        layout = QVBoxLayout(self)
        layout.addWidget(QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self))


def test_without_sleap_install_does_nothing() -> None:
    assert plugin.install(lambda parent, path: None) is False
    assert plugin.installed() is False


def test_install_wraps_the_dialog_once(qtbot: QtBot) -> None:
    opened: list[tuple[Any, str | None]] = []

    class Dialog(StandInLearningDialog):
        pass

    assert plugin.install(lambda p, path: opened.append((p, path)), Dialog)
    assert plugin.install(lambda p, path: None, Dialog)  # idempotent
    dialog = Dialog("/data/labels.slp")
    qtbot.addWidget(dialog)
    buttons = [
        b for b in dialog.findChildren(QPushButton) if b.text() == plugin.BUTTON_TEXT
    ]
    assert len(buttons) == 1
    buttons[0].click()
    assert opened == [(dialog, "/data/labels.slp")]


def test_a_dialog_without_button_box_is_left_alone(qtbot: QtBot) -> None:
    dialog = QDialog()
    qtbot.addWidget(dialog)
    assert plugin.add_run_remotely(dialog, lambda p, path: None) is None
