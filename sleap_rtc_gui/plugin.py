"""**Run Remotely** inside SLEAP's training and inference dialog.

SLEAP (1.6.6) has no extension point for remote training: its ``LearningDialog``
(``sleap/gui/learning/dialog.py``) only trains locally, as a subprocess. So the
plugin wraps that class **in one place**, :func:`install`: it replaces
``LearningDialog.__init__`` by a wrapper that calls the original and then adds a
**Run Remotely…** button beside SLEAP's **Run** (:func:`add_run_remotely`).

SLEAP's buttons sit in a plain ``QHBoxLayout`` inside an unnamed widget (there
is no ``QDialogButtonBox``), so the button goes into ``run_button``'s parent
layout, just before Run, and follows Run's enabled state: SLEAP disables Run
while its form is invalid, and a remote run of an invalid form is no better.
The click hands SLEAP's dialog itself to the opener
(:func:`sleap_rtc_gui.sleap_run.open_remote_run`), which reads SLEAP's own form.

Everything is defensive: without SLEAP, or when SLEAP's dialog does not look as
expected (no ``run_button``, no layout), :func:`install` returns ``False`` or the
button is not added, a warning is logged once, and SLEAP keeps working.
``sleap-rtc label`` calls :func:`install` and then starts SLEAP.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QBoxLayout, QPushButton, QWidget

__all__ = [
    "BUTTON_TEXT",
    "DIALOG_CLASS",
    "RemoteOpener",
    "add_run_remotely",
    "install",
    "installed",
    "labels_path_of",
    "uninstall",
]

logger = logging.getLogger(__name__)

DIALOG_CLASS = ("sleap.gui.learning.dialog", "LearningDialog")
"""The module and class of SLEAP's training dialog (the one thing we wrap)."""

BUTTON_TEXT = "Run Remotely…"
"""The label of the button added to SLEAP's dialog."""

BUTTON_NAME = "sleap_rtc_run_remotely"
"""The object name of that button (tests and screenshots find it by it)."""

_MARK = "__sleap_rtc_wrapped__"

RemoteOpener = Callable[[QWidget], Any]
"""Opens the remote run over SLEAP's dialog (it reads the dialog's form)."""

_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        logger.warning("! %s", message)


def labels_path_of(dialog: Any) -> str | None:
    """The labels file of SLEAP's dialog (``labels_filename``), if saved."""
    value = getattr(dialog, "labels_filename", None)
    return value if isinstance(value, str) and value else None


class _FollowEnabled(QObject):
    """Keeps a button enabled exactly when another one is."""

    def __init__(self, source: QPushButton, target: QPushButton) -> None:
        super().__init__(target)
        self._target = target
        source.installEventFilter(self)
        target.setEnabled(source.isEnabled())

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        """Copy the source's enabled state whenever it changes."""
        if event.type() == QEvent.Type.EnabledChange and isinstance(
            watched, QPushButton
        ):
            self._target.setEnabled(watched.isEnabled())
        return False


def add_run_remotely(dialog: QWidget, opener: RemoteOpener) -> QPushButton | None:
    """Add **Run Remotely…** beside ``dialog.run_button``; the button, or ``None``.

    The button is inserted just before Run in Run's own layout and is enabled
    whenever Run is.
    """
    run_button = getattr(dialog, "run_button", None)
    if not isinstance(run_button, QPushButton):
        _warn_once(f"no run_button in {type(dialog).__name__}; Run Remotely not added")
        return None
    holder = run_button.parentWidget()
    layout = holder.layout() if holder is not None else None
    if not isinstance(layout, QBoxLayout) or layout.indexOf(run_button) < 0:
        _warn_once(
            f"Run is not in a box layout in {type(dialog).__name__}; "
            "Run Remotely not added"
        )
        return None
    button = QPushButton(BUTTON_TEXT, holder)
    button.setObjectName(BUTTON_NAME)
    button.setAutoDefault(False)
    button.setToolTip("Run this pipeline on a GPU worker of your lab (sleap-rtc).")
    button.clicked.connect(lambda: opener(dialog))
    layout.insertWidget(layout.indexOf(run_button), button)
    _FollowEnabled(run_button, button)
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
        opener: Called with SLEAP's dialog on click.
        dialog_class: The class to wrap (default: SLEAP's ``LearningDialog``).

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


def uninstall(dialog_class: type | None = None) -> None:
    """Undo :func:`install` (tests that wrap the real class in one process)."""
    cls: Any = dialog_class or _dialog_class()
    if cls is not None and getattr(cls.__init__, _MARK, False):
        cls.__init__ = cls.__init__.__wrapped__
