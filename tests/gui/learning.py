"""SLEAP's own training dialog for the tests of the modules that work inside it
(``plugin``, ``sleap_form``, ``sleap_run``, ``commands``' ``label``).

SLEAP is installed by the test set-up (``make test``); importing this module
skips the importing test module where it is not.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QPushButton
from pytestqt.qtbot import QtBot

from sleap_rtc_gui import plugin

os.environ.setdefault("_SLEAP_LD_FIXED", "1")
learning = pytest.importorskip("sleap.gui.learning.dialog")
LearningDialog = learning.LearningDialog


def learning_dialog(qtbot: QtBot, path: Path | str, **kwargs: Any) -> Any:
    """SLEAP's training dialog on the labels at ``path``, closed after the test."""
    dialog = LearningDialog("training", str(path), **kwargs)
    qtbot.addWidget(dialog)
    return dialog


def remote_button(dialog: Any) -> QPushButton:
    """The **Run Remotely** button the plugin added to ``dialog``."""
    button = dialog.findChild(QPushButton, plugin.BUTTON_NAME)
    assert button is not None
    return button


def set_epochs(dialog: Any, epochs: int) -> None:
    """Type ``epochs`` into every model tab of SLEAP's form."""
    for name in dialog.shown_tab_names:
        dialog._ensure_tab_initialized(name).set_fields_from_key_val_dict(
            {"trainer_config.max_epochs": epochs}
        )


def single(dialog: Any) -> None:
    """Choose SLEAP's single-animal pipeline (one model, the fastest to train)."""
    dialog.pipeline_form_widget.current_pipeline = "single"
    assert dialog.shown_tab_names == ["single_instance"]


def target(dialog: Any, key: str) -> None:
    """Pick SLEAP's *Inference Target* (``nothing``, ``suggestions``…)."""
    from sleap.gui.widgets.frame_target_selector import FrameTargetSelection

    dialog.frame_target_selector.set_selection(FrameTargetSelection(target_key=key))
