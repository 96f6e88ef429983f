"""PathResolutionDialog: point the worker at the files it cannot see.

Opened by the ``ShowPathResolution`` effect with the worker's
:class:`~sleap_rtc_gui.presubmit.PathReport`. Two modes:

* **videos missing**: every video of the labels file in one table, found and
  missing side by side: the labeler's path, what the worker found, and for each
  missing one an editable worker path with the worker's suggestions, the best
  one preselected. A prefix fix (``/Volumes/lab`` → ``/mnt/lab``) applies to all
  missing videos at once; **Browse worker…** lists the worker's mounts
  (``FS_LIST_DIR``, through the ``browse`` callback) and puts the chosen file
  into the selected row. **OK** is enabled only when every missing video has a
  worker path. When *all* videos are missing, a hint says that the worker
  probably sees the same storage under another prefix.
* **labels missing**: one field for the labels file's worker path (suggestions
  offered) and how many tries are left, and **Send it to the worker** for a
  worker that shares no storage with the labeler, offered only when the worker
  published an upload area (``can_upload``); without one, a line says so.

The dialog answers through signals and closes itself: ``resolved(mappings)``,
``labels_entered(path)``, ``upload_requested()`` or ``cancelled()``; the
controller turns them into ``PathsResolved``, ``LabelsPathEntered``,
``UploadRequested`` and ``ResolutionCancelled``.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Coroutine
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from sleap_rtc_core.protocol.paths import replace_prefix
from sleap_rtc_gui.bridge import AsyncBridge
from sleap_rtc_gui.presubmit import PathReport, VideoStatus
from sleap_rtc_gui.session import DirEntry

__all__ = [
    "NO_UPLOAD_AREA_HINT",
    "SEND_INSTEAD_HINT",
    "SHARED_STORAGE_HINT",
    "Browse",
    "PathResolutionDialog",
]

SHARED_STORAGE_HINT = (
    "None of the videos are visible to the worker. If the worker reads the same "
    "storage under another path, fix the prefix once below and every video "
    "follows; otherwise copy the videos into one of the worker's folders."
)
"""Shown when every video is missing."""

SEND_INSTEAD_HINT = "No shared storage? Send the file to the worker instead."
"""Above **Send it to the worker** (a worker with an upload area)."""

NO_UPLOAD_AREA_HINT = (
    "This worker has no upload area, so the file cannot be sent to it: copy it "
    "into one of the worker's folders, or choose a worker that takes uploads."
)
"""Instead of **Send it to the worker**, for a worker without an upload area."""

Browse = Callable[[str], Coroutine[Any, Any, list[DirEntry]]]
"""Lists a worker folder (``""``: the mounts)."""

_STATUS_TEXT = {
    VideoStatus.FOUND: "Found",
    VideoStatus.MISSING: "Missing",
    VideoStatus.EMBEDDED: "Embedded",
}


class PathResolutionDialog(QDialog):
    """Resolve what the worker cannot see.

    Attributes:
        table: Videos (videos mode): client path, status, worker path.
        labels_box: The labels file's worker path (labels mode).
        prefix_from: Prefix fix: the labeler's folder.
        prefix_to: Prefix fix: the worker's folder.
        prefix_button: Applies the prefix fix to every missing video.
        browse_button: Lists the worker's mounts.
        browse_list: Entries of the worker folder being browsed.
        hint_label: The shared-storage hint (visible when all videos miss).
        upload_button: **Send it to the worker** (labels mode, ``can_upload``):
            a package of the labeled frames.
        upload_videos_button: **Send it with its videos** (the same, not for a
            ``.pkg.slp``): the ``.slp`` as it is and every video it names.
        upload_label: Above it, or why sending is not offered (labels mode).
        buttons: OK / Cancel.
    """

    resolved = Signal(dict)
    labels_entered = Signal(str)
    upload_requested = Signal()
    upload_with_videos_requested = Signal()
    cancelled = Signal()

    def __init__(
        self,
        report: PathReport,
        corrections_left: int = 0,
        parent: QWidget | None = None,
        *,
        browse: Browse | None = None,
        bridge: AsyncBridge | None = None,
        can_upload: bool = False,
    ) -> None:
        super().__init__(parent)
        self.report = report
        self.labels_mode = not report.labels_found
        self._browse = browse
        self.bridge = bridge or AsyncBridge(self)
        self._answered = False
        self._combos: dict[str, QComboBox] = {}
        self._folder = ""
        self.setWindowTitle("Files not found on the worker")
        self.resize(820, 420)
        layout = QVBoxLayout(self)

        self.labels_box = QComboBox(self)
        self.labels_box.setEditable(True)
        self.table = QTableWidget(0, 3, self)
        self.hint_label = QLabel(SHARED_STORAGE_HINT, self)
        self.hint_label.setWordWrap(True)
        self.prefix_from = QLineEdit(self)
        self.prefix_to = QLineEdit(self)
        self.prefix_button = QPushButton("Apply to all missing", self)
        self.browse_button = QPushButton("Browse worker…", self)
        self.browse_list = QListWidget(self)
        self.upload_button = QPushButton("Send it to the worker", self)
        self.upload_button.setToolTip(
            "Copy the labels (with their labeled frames) into the worker's "
            "upload area; sent once: the worker keeps it by content."
        )
        self.upload_button.clicked.connect(self._upload)
        self.upload_videos_button = QPushButton("Send it with its videos", self)
        self.upload_videos_button.setToolTip(
            "Copy the labels as they are and each video they name into the "
            "worker's upload area (whole videos: more to send); each is sent "
            "once: the worker keeps it by content."
        )
        self.upload_videos_button.clicked.connect(self._upload_with_videos)
        self.upload_label = QLabel(
            SEND_INSTEAD_HINT if can_upload else NO_UPLOAD_AREA_HINT, self
        )
        self.upload_label.setWordWrap(True)
        self._can_upload = can_upload and self.labels_mode
        self.upload_button.setVisible(self._can_upload)
        package = self.report.labels_path.lower().endswith(".pkg.slp")
        self.upload_videos_button.setVisible(self._can_upload and not package)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel,
            self,
        )
        self.buttons.accepted.connect(self._ok)
        self.buttons.rejected.connect(self.reject)

        if self.labels_mode:
            self._build_labels_mode(layout, corrections_left)
        else:
            self._build_videos_mode(layout)
            self.upload_label.hide()
        layout.addWidget(self.buttons)
        self._update_ok()

    # ------------------------------------------------------------------ layout

    def _build_labels_mode(self, layout: QVBoxLayout, corrections_left: int) -> None:
        layout.addWidget(
            QLabel(
                "The worker cannot see the labels file "
                f"<b>{self.report.labels_path}</b>. Where is it on the worker? "
                f"({corrections_left} tries left)",
                self,
            )
        )
        self.labels_box.addItems(list(self.report.labels_suggestions))
        self.labels_box.setCurrentIndex(0 if self.report.labels_suggestions else -1)
        self.labels_box.editTextChanged.connect(self._update_ok)
        layout.addWidget(self.labels_box)
        hidden: tuple[QWidget, ...] = (
            self.table,
            self.hint_label,
            self.prefix_from,
            self.prefix_to,
            self.prefix_button,
        )
        for widget in hidden:
            widget.hide()
        self._add_browser(layout)
        layout.addWidget(self.upload_label)
        if self._can_upload:
            layout.addWidget(self.upload_button)
            layout.addWidget(self.upload_videos_button)

    def _build_videos_mode(self, layout: QVBoxLayout) -> None:
        self.labels_box.hide()
        missing = self.report.missing
        self.hint_label.setVisible(
            bool(missing) and len(missing) == len(self.report.videos)
        )
        layout.addWidget(self.hint_label)
        self.table.setHorizontalHeaderLabels(
            ["Video (this computer)", "On the worker", "Worker path"]
        )
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.Stretch
        )
        self.table.setRowCount(len(self.report.videos))
        for row, video in enumerate(self.report.videos):
            self.table.setItem(row, 0, _item(video.path))
            self.table.setItem(row, 1, _item(_STATUS_TEXT[video.status]))
            if video.status is VideoStatus.MISSING:
                combo = QComboBox(self.table)
                combo.setEditable(True)
                combo.addItems(list(video.suggestions))
                combo.setCurrentIndex(0 if video.suggestions else -1)
                combo.editTextChanged.connect(self._update_ok)
                self._combos[video.path] = combo
                self.table.setCellWidget(row, 2, combo)
            else:
                self.table.setItem(row, 2, _item(video.path))
        layout.addWidget(self.table, 1)
        prefix = QHBoxLayout()
        prefix.addWidget(QLabel("Replace prefix", self))
        prefix.addWidget(self.prefix_from, 1)
        prefix.addWidget(QLabel("with", self))
        prefix.addWidget(self.prefix_to, 1)
        prefix.addWidget(self.prefix_button)
        self.prefix_button.clicked.connect(self._apply_prefix_clicked)
        layout.addLayout(prefix)
        self._add_browser(layout)

    def _add_browser(self, layout: QVBoxLayout) -> None:
        row = QHBoxLayout()
        row.addWidget(self.browse_button)
        row.addWidget(self.browse_list, 1)
        self.browse_list.setMaximumHeight(110)
        self.browse_button.setEnabled(self._browse is not None)
        self.browse_button.clicked.connect(lambda: self.browse(""))
        self.browse_list.itemActivated.connect(self._entry_activated)
        layout.addLayout(row)

    # ------------------------------------------------------------------ state

    def worker_path(self, client_path: str) -> str:
        """The worker path chosen now for a missing video ("" if none)."""
        combo = self._combos.get(client_path)
        return combo.currentText().strip() if combo is not None else ""

    def set_worker_path(self, client_path: str, worker_path: str) -> None:
        """Choose ``worker_path`` for the missing video ``client_path``."""
        combo = self._combos[client_path]
        combo.setEditText(worker_path)
        self._update_ok()

    def mappings(self) -> dict[str, str]:
        """Client path → worker path for every missing video resolved so far."""
        return {p: self.worker_path(p) for p in self._combos if self.worker_path(p)}

    def labels_path(self) -> str:
        """The labels file's worker path typed or chosen (labels mode)."""
        return self.labels_box.currentText().strip()

    @property
    def ok_button(self) -> QPushButton:
        """**OK**: enabled only when everything missing has a worker path."""
        button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        return button

    def all_resolved(self) -> bool:
        """Whether every missing path has a worker path."""
        if self.labels_mode:
            return bool(self.labels_path())
        return all(self.worker_path(p) for p in self._combos)

    def apply_prefix_fix(self, old: str, new: str) -> int:
        """Apply ``old`` → ``new`` to every missing video; how many matched."""
        count = 0
        for client_path in self._combos:
            fixed = replace_prefix(client_path, old, new)
            if fixed is not None:
                self._combos[client_path].setEditText(fixed)
                count += 1
        self._update_ok()
        return count

    def _apply_prefix_clicked(self) -> None:
        self.apply_prefix_fix(self.prefix_from.text(), self.prefix_to.text())

    def _update_ok(self, *_: object) -> None:
        self.ok_button.setEnabled(self.all_resolved())

    # ------------------------------------------------------------------ browse

    def browse(self, folder: str) -> None:
        """List the worker folder ``folder`` ("": the mounts) in the list."""
        if self._browse is None:
            return
        self._folder = folder
        self.browse_list.clear()
        self.browse_list.addItem("Loading…")
        self.bridge.start(self._browse(folder), self._show_entries, self._browse_failed)

    def _show_entries(self, entries: list[DirEntry]) -> None:
        self.browse_list.clear()
        if self._folder:
            parent = posixpath.dirname(self._folder.rstrip("/"))
            up = QListWidgetItem("..")
            up.setData(Qt.ItemDataRole.UserRole, DirEntry(parent, True))
            self.browse_list.addItem(up)
        for entry in entries:
            name = posixpath.basename(entry.path.rstrip("/")) or entry.path
            item = QListWidgetItem(name + ("/" if entry.is_dir else ""))
            item.setData(Qt.ItemDataRole.UserRole, entry)
            item.setToolTip(entry.path)
            self.browse_list.addItem(item)

    def _browse_failed(self, exc: BaseException) -> None:
        self.browse_list.clear()
        self.browse_list.addItem(f"Cannot list the folder: {exc}")

    def _entry_activated(self, item: QListWidgetItem) -> None:
        entry = item.data(Qt.ItemDataRole.UserRole)
        if not isinstance(entry, DirEntry):
            return
        if entry.is_dir:
            self.browse(entry.path)
        else:
            self.choose_worker_file(entry.path)

    def choose_worker_file(self, worker_path: str) -> None:
        """Use a browsed worker file for the selected missing row (or labels)."""
        if self.labels_mode:
            self.labels_box.setEditText(worker_path)
            return
        row = self.table.currentRow()
        rows = [row] if row >= 0 else range(self.table.rowCount())
        for r in rows:
            item = self.table.item(r, 0)
            path = item.text() if item is not None else ""
            if path in self._combos and (row >= 0 or not self.worker_path(path)):
                self.set_worker_path(path, worker_path)
                return

    # ------------------------------------------------------------------ answers

    def _ok(self) -> None:
        if not self.all_resolved():
            return
        self._answered = True
        if self.labels_mode:
            self.labels_entered.emit(self.labels_path())
        else:
            self.resolved.emit(self.mappings())
        self.accept()

    def _upload(self) -> None:
        if self._answered or not self._can_upload:
            return
        self._answered = True
        self.upload_requested.emit()
        self.accept()

    def _upload_with_videos(self) -> None:
        if self._answered or not self.upload_videos_button.isVisibleTo(self):
            return
        self._answered = True
        self.upload_with_videos_requested.emit()
        self.accept()

    def reject(self) -> None:
        """Cancel: the flow returns to the training dialog without a popup."""
        if not self._answered:
            self._answered = True
            self.cancelled.emit()
        super().reject()

    def dismiss(self) -> None:
        """Close without answering (``HidePathResolution``: the flow moved on)."""
        self._answered = True
        self.bridge.cancel_all()
        super().reject()


def _item(text: str) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
    item.setToolTip(text)
    return item
