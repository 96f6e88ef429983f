"""The Run Remotely button inside the real SLEAP 1.6 ``LearningDialog``.

SLEAP is installed by the test set-up (``make test``), so these tests wrap
SLEAP's own training and inference dialogs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QDialog, QPushButton, QVBoxLayout
from pytestqt.qtbot import QtBot

from sleap_rtc_gui import plugin
from tests.gui.learning import LearningDialog, learning_dialog, remote_button


def test_run_remotely_sits_beside_run_and_follows_it(
    qtbot: QtBot, labels: Path, wrapped: list[Any]
) -> None:
    dialog = learning_dialog(qtbot, labels)
    button = remote_button(dialog)
    layout = dialog.run_button.parentWidget().layout()
    assert layout.indexOf(button) == layout.indexOf(dialog.run_button) - 1
    assert button.text() == plugin.BUTTON_TEXT
    assert button.isEnabled() == dialog.run_button.isEnabled()
    dialog.run_button.setEnabled(False)  # SLEAP does this for an invalid form
    assert not button.isEnabled()
    dialog.run_button.setEnabled(True)
    assert button.isEnabled()
    button.click()
    assert wrapped == [dialog]


def test_install_is_idempotent_and_adds_one_button(
    qtbot: QtBot, labels: Path, wrapped: list[Any]
) -> None:
    assert plugin.install(lambda d: None)
    dialog = learning_dialog(qtbot, labels)
    buttons = [
        b for b in dialog.findChildren(QPushButton) if b.text() == plugin.BUTTON_TEXT
    ]
    assert len(buttons) == 1


def test_the_inference_dialog_gets_the_button_too(
    qtbot: QtBot, labels: Path, wrapped: list[Any]
) -> None:
    dialog = LearningDialog("inference", str(labels))
    qtbot.addWidget(dialog)
    button = remote_button(dialog)
    assert not dialog.run_button.isEnabled()  # no trained model yet
    assert not button.isEnabled()


def test_a_dialog_of_another_shape_is_left_alone_and_logged_once(
    qtbot: QtBot, caplog: pytest.LogCaptureFixture
) -> None:
    """SLEAP's dialog changed shape: no run_button, or Run outside a layout."""
    caplog.set_level(logging.WARNING, logger=plugin.__name__)
    plugin._warned.clear()
    bare = QDialog()
    qtbot.addWidget(bare)
    assert plugin.add_run_remotely(bare, lambda d: None) is None
    assert plugin.add_run_remotely(bare, lambda d: None) is None
    loose = QDialog()
    qtbot.addWidget(loose)
    loose.run_button = QPushButton("Run")  # type: ignore[attr-defined]
    QVBoxLayout(loose)
    assert plugin.add_run_remotely(loose, lambda d: None) is None
    warnings = [r.getMessage() for r in caplog.records]
    assert len([w for w in warnings if "no run_button" in w]) == 1
    assert len([w for w in warnings if "not in a box layout" in w]) == 1
