"""The one qasync event loop that the dialog, the tray app and the plugin share.

Qt and asyncio must run on one thread and one loop: qasync's ``QEventLoop`` is an
asyncio loop driven by Qt's event dispatcher, so a coroutine awaiting the
signaling server and a widget repainting take turns on the same loop. Everything
in :mod:`sleap_rtc_gui` gets its loop from here:

* :func:`application` returns the process's ``QApplication`` (SLEAP's, when the
  plugin runs inside SLEAP), creating it only when there is none;
* :func:`shared_loop` returns the process's qasync loop, installing it as the
  current asyncio loop the first time; inside SLEAP it is created over SLEAP's
  application and never closed by us;
* :func:`run` is the entry point of the standalone commands (``sleap-rtc gui``,
  ``sleap-rtc tray``): it runs one coroutine on the shared loop until it returns.

Tests take a fresh loop per test from :func:`new_event_loop` (through
pytest-asyncio's loop factory hook), for the same reason.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import qasync
from PySide6.QtCore import QCoreApplication
from PySide6.QtWidgets import QApplication

__all__ = ["APP_NAME", "application", "new_event_loop", "run", "shared_loop"]

logger = logging.getLogger(__name__)

APP_NAME = "sleap-rtc"
"""The Qt application and organisation name (QSettings scope)."""

_shared: asyncio.AbstractEventLoop | None = None


def application(argv: Sequence[str] | None = None) -> QApplication:
    """The process's ``QApplication``, created on first use.

    Args:
        argv: Arguments for a new application (default ``sys.argv``); ignored
            when one exists already (e.g. inside SLEAP).

    Raises:
        RuntimeError: A non-widget ``QCoreApplication`` exists already: our
            dialogs and the tray icon need a ``QApplication``.
    """
    existing = QCoreApplication.instance()
    if existing is not None:
        if not isinstance(existing, QApplication):
            raise RuntimeError("a QCoreApplication exists; widgets need QApplication")
        return existing
    app = QApplication(list(argv if argv is not None else sys.argv))
    # Our programs end when their main coroutine returns, not when the last
    # window closes: the training dialog closes once the job is accepted and
    # the tray app has no window at all.
    app.setQuitOnLastWindowClosed(False)
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(APP_NAME)
    return app


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new qasync loop over :func:`application` (not installed anywhere)."""
    loop: asyncio.AbstractEventLoop = qasync.QEventLoop(application())
    return loop


def shared_loop(*, already_running: bool = False) -> asyncio.AbstractEventLoop:
    """The process's qasync loop, created and installed on first use.

    A running qasync loop (a test's, or one started by :func:`run`) is returned
    as it is, so every caller in one process shares one loop.

    Args:
        already_running: Qt's event loop is already running and owned by
            someone else (SLEAP's ``app.exec()``, for the plugin): the new
            qasync loop attaches to it and counts as running at once.
    """
    global _shared
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if isinstance(running, qasync.QEventLoop):
        return running
    if _shared is None or _shared.is_closed():
        _shared = qasync.QEventLoop(application(), already_running=already_running)
        asyncio.set_event_loop(_shared)
        logger.debug("= qasync loop installed")
    return _shared


def run(
    main: Callable[[], Coroutine[Any, Any, int]],
    argv: Sequence[str] | None = None,
) -> int:
    """Run ``main()`` on the shared loop until it returns; its exit status.

    Args:
        main: Makes the coroutine of the whole program (it opens its windows,
            awaits until they are closed and returns an exit status).
        argv: Arguments for the ``QApplication``.
    """
    application(argv)
    loop = shared_loop()
    result = loop.run_until_complete(main())
    return int(result)
