"""**Run Remotely** inside SLEAP's training dialog, when SLEAP is installed.

SLEAP (1.6.6) has no extension point for remote training: its ``LearningDialog``
(``sleap/gui/learning/dialog.py``) only trains locally, as a subprocess. So the
plugin wraps that class **in one place**, :func:`install`: it replaces
``LearningDialog.__init__`` by a wrapper that calls the original and then adds a
**Run Remotely…** button to the dialog's button box. The button opens our
remote panel (:class:`~sleap_rtc_gui.dialogs.training_dialog.TrainingDialog`
for the dialog's labels file), which runs the presubmission flow and feeds
SLEAP's own LossViewer through :class:`~sleap_rtc_core.progress.zmq_bridge.
ProgressBridge` on SLEAP's default ports.

Everything is defensive: without SLEAP, or when SLEAP's dialog does not look as
expected (no button box, no labels file), :func:`install` returns ``False`` or
the button is simply not added; SLEAP keeps working either way.
``sleap-rtc label`` calls :func:`install` and then starts SLEAP.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtWidgets import QDialogButtonBox, QPushButton, QWidget

__all__ = [
    "BUTTON_TEXT",
    "DIALOG_CLASS",
    "RemoteOpener",
    "add_run_remotely",
    "install",
    "installed",
]

logger = logging.getLogger(__name__)

DIALOG_CLASS = ("sleap.gui.learning.dialog", "LearningDialog")
"""The module and class of SLEAP's training dialog (the one thing we wrap)."""

BUTTON_TEXT = "Run Remotely…"
"""The label of the button added to SLEAP's dialog."""

_MARK = "__sleap_rtc_wrapped__"

RemoteOpener = Callable[[QWidget, str | None], Any]
"""Opens the remote panel over SLEAP's dialog for its labels file."""


def _labels_path(dialog: Any) -> str | None:
    """The labels file of SLEAP's dialog, wherever this SLEAP version keeps it."""
    for owner in (dialog, getattr(dialog, "labels", None)):
        for name in ("labels_filename", "filename", "labels_path"):
            value = getattr(owner, name, None)
            if isinstance(value, str) and value:
                return value
    return None


def add_run_remotely(dialog: QWidget, opener: RemoteOpener) -> QPushButton | None:
    """Add **Run Remotely…** to ``dialog``'s button box; the button, or ``None``.

    Works on any dialog with a ``QDialogButtonBox`` (SLEAP's, or a test's).
    """
    box = dialog.findChild(QDialogButtonBox)
    if box is None:
        logger.warning("! no button box in %s; Run Remotely not added", dialog)
        return None
    button = QPushButton(BUTTON_TEXT, dialog)
    button.setObjectName("sleap_rtc_run_remotely")
    button.clicked.connect(lambda: opener(dialog, _labels_path(dialog)))
    box.addButton(button, QDialogButtonBox.ButtonRole.ActionRole)
    return button


def installed() -> bool:
    """Whether :func:`install` has wrapped SLEAP's dialog in this process."""
    cls: Any = _dialog_class()
    return cls is not None and bool(getattr(cls.__init__, _MARK, False))


def _dialog_class() -> type | None:
    module_name, class_name = DIALOG_CLASS
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # SLEAP absent, or broken: stay out of the way
        logger.debug("SLEAP not available: %s", exc)
        return None
    cls = getattr(module, class_name, None)
    return cls if isinstance(cls, type) else None


def install(opener: RemoteOpener, dialog_class: type | None = None) -> bool:
    """Wrap SLEAP's training dialog so that it gets **Run Remotely…**.

    The one place the plugin touches SLEAP. Idempotent.

    Args:
        opener: Called with SLEAP's dialog and its labels file on click.
        dialog_class: The class to wrap (default: SLEAP's ``LearningDialog``;
            tests pass their own).

    Returns:
        True when the class is wrapped (now or before); False without SLEAP.
    """
    cls: Any = dialog_class or _dialog_class()
    if cls is None:
        return False
    original = cls.__init__
    if getattr(original, _MARK, False):
        return True

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        try:
            add_run_remotely(self, opener)
        except Exception:  # never break SLEAP's own dialog
            logger.exception("! could not add Run Remotely")

    setattr(__init__, _MARK, True)
    cls.__init__ = __init__
    logger.info("= Run Remotely added to %s", cls.__qualname__)
    return True
