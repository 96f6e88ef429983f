"""UploadProgressDialog: the labels going to the worker, with a Cancel.

Opened by the ``UploadLabels`` effect, fed (bytes held by the worker, size) by
the upload's progress callback, closed by ``StopUpload``. It shows a bar and
``12.0/40.0 MB  3.1 MB/s  ETA 9 s`` (the rate counts only bytes sent since the
start, so a resumed upload's held bytes do not look fast). **Cancel** emits
``cancelled``; the controller turns it into ``UploadCancelled``, which stops
the upload (the worker keeps what it verified: the next try resumes).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QProgressBar,
    QVBoxLayout,
    QWidget,
)

from sleap_rtc_core.client.upload import UploadProgressLine

__all__ = ["UploadProgressDialog"]


class UploadProgressDialog(QDialog):
    """Progress of one upload (module docstring).

    Attributes:
        bar: Percent of the file the worker holds.
        status_label: Bytes, rate and ETA.
        cancel_button: Stops the upload.
    """

    cancelled = Signal()

    def __init__(
        self,
        name: str,
        parent: QWidget | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Sending the labels to the worker")
        self._line = UploadProgressLine(interval=0.0, clock=clock)
        self._answered = False
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"Sending <b>{name}</b> to the worker…", self))
        self.bar = QProgressBar(self)
        self.bar.setRange(0, 100)
        layout.addWidget(self.bar)
        self.status_label = QLabel("preparing…", self)
        layout.addWidget(self.status_label)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        button = buttons.button(QDialogButtonBox.StandardButton.Cancel)
        assert button is not None
        self.cancel_button = button
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def set_progress(self, done: int, total: int) -> None:
        """The worker holds ``done`` of ``total`` bytes."""
        self.bar.setValue(100 if total <= 0 else min(100, done * 100 // total))
        text = self._line.feed(done, total)
        if text is not None:
            self.status_label.setText(text.removeprefix("upload "))

    def reject(self) -> None:
        """Cancel: the labeler stops the upload."""
        if not self._answered:
            self._answered = True
            self.cancelled.emit()
        super().reject()

    def dismiss(self) -> None:
        """Close without answering (``StopUpload``: the flow moved on)."""
        self._answered = True
        super().reject()
