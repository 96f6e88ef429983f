"""The worker tray app (``sleap-rtc tray``): a worker with an icon and a menu.

The same :class:`~sleap_rtc_core.worker.ledger_io.SignalingWorker` as the headless
``sleap-rtc worker``, plus a tray icon whose menu shows the connection, the
status and the current job, and offers **Pause** (the worker publishes
``maintenance``: no new jobs, a running one finishes), **Resume**
(``available``), **Open log** and **Quit** (stops the worker cleanly: running
jobs are cancelled, the worker leaves the room, then the app quits).

The menu is a view: :meth:`WorkerTray.refresh` reads the worker and renders it;
a timer calls it once a second and every action calls it when its work is done.
Status changes go through :class:`~sleap_rtc_gui.bridge.AsyncBridge`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QColor, QDesktopServices, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from sleap_rtc_core.protocol.states import WorkerStatus
from sleap_rtc_core.worker.ledger_io import SignalingWorker
from sleap_rtc_gui.bridge import AsyncBridge

__all__ = ["WorkerTray", "status_icon"]

logger = logging.getLogger(__name__)

_COLORS = {
    WorkerStatus.AVAILABLE: QColor(76, 175, 80),
    WorkerStatus.RESERVED: QColor(255, 193, 7),
    WorkerStatus.BUSY: QColor(33, 150, 243),
    WorkerStatus.MAINTENANCE: QColor(158, 158, 158),
}
_OFFLINE = QColor(244, 67, 54)


def status_icon(status: WorkerStatus | None) -> QIcon:
    """A round icon in the status colour (red when disconnected)."""
    pixmap = QPixmap(32, 32)
    pixmap.fill(QColor(0, 0, 0, 0))
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(_COLORS.get(status, _OFFLINE) if status else _OFFLINE)
    painter.setPen(QColor(40, 40, 40))
    painter.drawEllipse(3, 3, 26, 26)
    painter.end()
    return QIcon(pixmap)


class WorkerTray(QObject):
    """Tray icon and menu over a running worker.

    Attributes:
        worker: The worker shown (started by the caller).
        icon: The tray icon.
        menu: Its menu.
        connection_action: "Connected to ROOM" / "Disconnected" (read-only).
        status_action: "Status: available" (read-only).
        job_action: "Job: job_… " or "No job" (read-only).
        pause_action: Pause (→ maintenance).
        resume_action: Resume (→ available).
        log_action: Opens the log file.
        quit_action: Stops the worker and quits.
        bridge: Runs the worker's status changes and its shutdown.
    """

    quit_requested = Signal()
    refreshed = Signal()

    def __init__(
        self,
        worker: SignalingWorker,
        *,
        log_path: Path | None = None,
        refresh_ms: int = 1000,
        on_quit: Callable[[], None] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.worker = worker
        self.log_path = log_path
        self.on_quit = on_quit
        self.bridge = AsyncBridge(self)
        self.stopped = asyncio.Event()
        self.menu = QMenu()
        self.connection_action = self._info("Connecting…")
        self.status_action = self._info("Status: -")
        self.job_action = self._info("No job")
        self.menu.addSeparator()
        self.pause_action = QAction("Pause (maintenance)", self.menu)
        self.resume_action = QAction("Resume", self.menu)
        self.log_action = QAction("Open log", self.menu)
        self.quit_action = QAction("Quit", self.menu)
        for action in (self.pause_action, self.resume_action):
            self.menu.addAction(action)
        self.menu.addSeparator()
        self.menu.addAction(self.log_action)
        self.menu.addAction(self.quit_action)
        self.pause_action.triggered.connect(self.pause)
        self.resume_action.triggered.connect(self.resume)
        self.log_action.triggered.connect(self.open_log)
        self.quit_action.triggered.connect(self.quit)
        self.log_action.setEnabled(log_path is not None)

        self.icon = QSystemTrayIcon(status_icon(None), self)
        self.icon.setContextMenu(self.menu)
        self.icon.setToolTip("sleap-rtc worker")
        self.timer = QTimer(self)
        self.timer.setInterval(refresh_ms)
        self.timer.timeout.connect(self.refresh)

    def _info(self, text: str) -> QAction:
        action = QAction(text, self.menu)
        action.setEnabled(False)
        self.menu.addAction(action)
        return action

    # ------------------------------------------------------------------ view

    def show(self) -> None:
        """Show the icon (where the platform has a tray) and start refreshing."""
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.icon.show()
        self.timer.start()
        self.refresh()

    def refresh(self) -> None:
        """Render the worker's connection, status and job."""
        worker = self.worker
        connected = worker.client.connected
        if connected:
            room = worker.client.registration.room_id
            self.connection_action.setText(f"Connected to room {room}")
        else:
            self.connection_action.setText("Disconnected (reconnecting…)")
        status = worker.status
        self.status_action.setText(f"Status: {status.value}")
        jobs = [s.job_id for s in worker.ledger]
        self.job_action.setText(f"Job: {', '.join(jobs)}" if jobs else "No job")
        paused = status is WorkerStatus.MAINTENANCE
        self.pause_action.setEnabled(connected and not paused)
        self.resume_action.setEnabled(connected and paused)
        self.icon.setIcon(status_icon(status if connected else None))
        self.icon.setToolTip(
            f"sleap-rtc worker {worker.client.session.peer_id or ''}: {status.value}"
        )
        self.refreshed.emit()

    # ------------------------------------------------------------------ intents

    def pause(self) -> None:
        """Take the worker out of service (``maintenance``)."""
        self.pause_action.setEnabled(False)
        self._set_status(WorkerStatus.MAINTENANCE)

    def resume(self) -> None:
        """Put the worker back in service (``available``)."""
        self.resume_action.setEnabled(False)
        self._set_status(WorkerStatus.AVAILABLE)

    def _set_status(self, status: WorkerStatus) -> None:
        self.bridge.start(
            self.worker.update_status(status),
            lambda _r: self.refresh(),
            self._failed,
            name=f"status {status.value}",
        )

    def _failed(self, exc: BaseException) -> None:
        logger.error("! tray action failed: %s", exc)
        self.icon.showMessage(
            "sleap-rtc", str(exc), QSystemTrayIcon.MessageIcon.Warning
        )
        self.refresh()

    def open_log(self) -> None:
        """Open the log file with the desktop's viewer."""
        if self.log_path is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.log_path)))

    def quit(self) -> None:
        """Stop the worker cleanly, then ask the app to quit."""
        self.quit_action.setEnabled(False)
        self.timer.stop()
        self.bridge.start(self.worker.close(), lambda _r: self._closed(), self._closed)

    def _closed(self, *_: object) -> None:
        self.icon.hide()
        self.stopped.set()
        self.quit_requested.emit()
        if self.on_quit is not None:
            self.on_quit()
