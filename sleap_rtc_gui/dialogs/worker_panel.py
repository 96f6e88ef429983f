"""The remote-training panel: room picker, live worker list, **Run Remotely**.

The panel renders a :class:`~sleap_rtc_gui.workers.WorkerDirectory` and forwards
intents; it never awaits. :meth:`WorkerPanel.watch` hands the directory's feed
(:func:`~sleap_rtc_gui.workers.watch_workers`) to the panel's
:class:`~sleap_rtc_gui.bridge.AsyncBridge`, whose relay turns every change into
a repaint from Qt.

Signals:
    run_requested(worker_id, room): **Run Remotely** was pressed ("" when no
        worker is selected: the presubmission machine explains).
    room_changed(room): The labeler picked another room; the owner connects to
        it and calls :meth:`WorkerPanel.watch` again.

A worker whose path check ran shows whether it sees the labels file beside its
status (:meth:`WorkerPanel.note_labels`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from sleap_rtc_core.signaling.client.session_io import SignalingClient
from sleap_rtc_gui.bridge import AsyncBridge
from sleap_rtc_gui.workers import WorkerDirectory, WorkerInfo, watch_workers

__all__ = ["COLUMNS", "WorkerPanel"]

COLUMNS = ("Worker", "GPU", "Memory", "Status")
"""The worker table's columns."""

_STATUS_TEXT = {
    "available": "Available",
    "reserved": "Reserved",
    "busy": "Busy",
    "maintenance": "Paused",
}


class WorkerPanel(QWidget):
    """Pick a room and a worker, then press **Run Remotely**.

    Attributes:
        room_box: The room picker (editable: type a room id).
        table: One row per worker of the room.
        run_button: **Run Remotely**.
        status_label: One line about the connection or the list.
        directory: The model rendered.
        bridge: Runs the list's feed.
    """

    run_requested = Signal(str, str)
    room_changed = Signal(str)

    def __init__(
        self,
        rooms: Sequence[str] = (),
        parent: QWidget | None = None,
        *,
        bridge: AsyncBridge | None = None,
    ) -> None:
        super().__init__(parent)
        self.bridge = bridge or AsyncBridge(self)
        self.directory = WorkerDirectory()
        self.directory.listeners.append(self.bridge.relay(self._render))
        self._watch: asyncio.Task[None] | None = None
        self._workers: list[WorkerInfo] = []
        self._labels_notes: dict[str, str] = {}

        self.room_box = QComboBox(self)
        self.room_box.setEditable(True)
        self.room_box.addItems(list(rooms))
        self.room_box.currentTextChanged.connect(self._room_picked)

        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._update_button)

        self.status_label = QLabel("Not connected.", self)
        self.run_button = QPushButton("Run Remotely", self)
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self._run_clicked)

        form = QFormLayout()
        form.addRow("Room:", self.room_box)
        buttons = QHBoxLayout()
        buttons.addWidget(self.status_label, 1)
        buttons.addWidget(self.run_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        self._update_button()

    # ------------------------------------------------------------------ model

    def watch(self, client: SignalingClient) -> asyncio.Task[None]:
        """Show ``client``'s room, live, until :meth:`stop_watching`."""
        self.stop_watching()
        self.status_label.setText("Looking for workers…")
        self._watch = self.bridge.start(
            watch_workers(client, self.directory),
            on_error=self._watch_failed,
            name="worker list",
        )
        return self._watch

    def stop_watching(self) -> None:
        """Stop following the room (the list is kept as it was)."""
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None

    def _watch_failed(self, exc: BaseException) -> None:
        self.status_label.setText(f"Lost the worker list: {exc}")

    # ------------------------------------------------------------------ view

    @property
    def room(self) -> str:
        """The room picked now."""
        return self.room_box.currentText().strip()

    def selected_worker(self) -> WorkerInfo | None:
        """The selected worker, if any."""
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 0)
        if item is None:
            return None
        return self.directory.get(str(item.data(Qt.ItemDataRole.UserRole)))

    def select_worker(self, peer_id: str) -> bool:
        """Select the row of ``peer_id``; False when it is not listed."""
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            if item is not None and item.data(Qt.ItemDataRole.UserRole) == peer_id:
                self.table.selectRow(row)
                return True
        return False

    def row_texts(self) -> list[tuple[str, ...]]:
        """What each row shows (for tests and screen readers)."""
        out = []
        for row in range(self.table.rowCount()):
            cells = (self.table.item(row, c) for c in range(len(COLUMNS)))
            out.append(tuple(c.text() if c is not None else "" for c in cells))
        return out

    def set_workers(self, workers: Sequence[WorkerInfo]) -> None:
        """Render ``workers`` (keeps the selection when the worker stays)."""
        self._render(list(workers))

    def note_labels(self, peer_id: str, found: bool) -> None:
        """Show whether ``peer_id`` saw the labels file when it was checked."""
        note = "sees the labels" if found else "cannot see the labels"
        self._labels_notes[peer_id] = note
        self._render(self._workers)

    def _render(self, workers: list[WorkerInfo]) -> None:
        chosen = self.selected_worker()
        self._workers = list(workers)
        self.table.setRowCount(len(workers))
        for row, worker in enumerate(workers):
            status = _STATUS_TEXT.get(worker.status, worker.status)
            note = self._labels_notes.get(worker.peer_id)
            cells = (
                worker.name,
                worker.gpu_model,
                worker.memory_text,
                f"{status} · {note}" if note else status,
            )
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, worker.peer_id)
                item.setToolTip(worker.peer_id)
                if worker.status != "available":
                    item.setForeground(Qt.GlobalColor.gray)
                self.table.setItem(row, column, item)
        if chosen is not None:
            self.select_worker(chosen.peer_id)
        available = sum(1 for w in workers if w.status == "available")
        self.status_label.setText(
            f"{len(workers)} worker(s), {available} available."
            if workers
            else "No workers in this room."
        )
        self._update_button()

    def _update_button(self) -> None:
        # The button stays enabled: pressing it without a choice explains why.
        worker = self.selected_worker()
        self.run_button.setToolTip(
            f"Train on {worker.name}" if worker else "Choose a worker first"
        )

    # ------------------------------------------------------------------ intents

    def _room_picked(self, room: str) -> None:
        self.stop_watching()
        self.directory.clear()
        if room.strip():
            self.room_changed.emit(room.strip())

    def _run_clicked(self) -> None:
        worker = self.selected_worker()
        self.run_requested.emit(worker.peer_id if worker else "", self.room)
