"""A small loss plot of our own, for when SLEAP (and its LossViewer) is absent.

It reads the same trainer events that :class:`~sleap_rtc_core.progress.
zmq_bridge.ProgressBridge` publishes for LossViewer (``epoch_end`` with
``train/loss`` and ``val/loss``, or the older ``loss``/``val_loss``) and draws
the epoch curves with ``QPainter`` (PySide6-Essentials has no QtCharts).
**Stop Early** emits ``stop_requested``, which the controller forwards to the
worker exactly like LossViewer's button.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

__all__ = ["LossCanvas", "LossPlotWindow", "losses_of"]

_TRAIN_KEYS = ("train/loss", "train_loss", "loss")
_VAL_KEYS = ("val/loss", "val_loss")


def _first(logs: Mapping[str, Any], keys: tuple[str, ...]) -> float | None:
    for key in keys:
        value = logs.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            return float(value)
    return None


def losses_of(event: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """``(train, val)`` losses of an ``epoch_end`` event (``None`` if absent)."""
    logs = event.get("logs")
    if not isinstance(logs, Mapping):
        return None, None
    return _first(logs, _TRAIN_KEYS), _first(logs, _VAL_KEYS)


class LossCanvas(QWidget):
    """Draws epoch loss curves (train blue, validation orange)."""

    COLORS = {"train": QColor(18, 158, 220), "val": QColor(248, 167, 52)}

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.series: dict[str, list[tuple[int, float]]] = {"train": [], "val": []}
        self.setMinimumSize(420, 240)

    def add(self, which: str, epoch: int, value: float) -> None:
        """Add one point and repaint."""
        self.series[which].append((epoch, value))
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        """Axes, then one polyline per series."""
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), QColor(255, 255, 255))
        area = QRectF(self.rect()).adjusted(48, 16, -16, -28)
        painter.setPen(QPen(QColor(90, 90, 90), 1))
        painter.drawRect(area)
        points = [p for s in self.series.values() for p in s]
        if not points:
            painter.drawText(area, Qt.AlignmentFlag.AlignCenter, "Waiting for epochs…")
            return
        x_max = max(1, max(x for x, _ in points))
        lo = min(y for _, y in points)
        hi = max(y for _, y in points)
        if hi - lo < 1e-12:
            lo, hi = lo - 0.5, hi + 0.5
        painter.drawText(QPointF(4, area.top() + 10), f"{hi:.3g}")
        painter.drawText(QPointF(4, area.bottom()), f"{lo:.3g}")
        painter.drawText(QPointF(area.center().x() - 20, area.bottom() + 20), "Epoch")

        def at(x: int, y: float) -> QPointF:
            return QPointF(
                area.left() + area.width() * x / x_max,
                area.bottom() - area.height() * (y - lo) / (hi - lo),
            )

        for name, series in self.series.items():
            painter.setPen(QPen(self.COLORS[name], 3))
            pts = [at(x, y) for x, y in series]
            for a, b in zip(pts, pts[1:], strict=False):
                painter.drawLine(a, b)
            for p in pts:
                painter.drawEllipse(p, 3.5, 3.5)


class LossPlotWindow(QWidget):
    """A live loss curve with **Stop Early**.

    Attributes:
        canvas: The plot.
        title_label: Epoch and the last losses.
        stop_button: **Stop Early**.
        events: How many events were read.
    """

    stop_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Training progress (remote)")
        self.canvas = LossCanvas(self)
        self.title_label = QLabel("Waiting for the worker…", self)
        self.stop_button = QPushButton("Stop Early", self)
        self.stop_button.clicked.connect(self._stop_clicked)
        self.events = 0
        self.finished = False
        buttons = QHBoxLayout()
        buttons.addWidget(self.title_label, 1)
        buttons.addWidget(self.stop_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.canvas, 1)
        layout.addLayout(buttons)

    def add_event(self, event: str | bytes | Mapping[str, Any]) -> None:
        """Read one trainer event (the JSON text or its decoded mapping)."""
        if isinstance(event, str | bytes):
            try:
                decoded = json.loads(event)
            except ValueError:
                return
            if not isinstance(decoded, dict):
                return
            event = decoded
        self.events += 1
        kind = event.get("event")
        if kind == "epoch_end":
            epoch = event.get("epoch")
            epoch = (
                int(epoch) + 1
                if isinstance(epoch, int)
                else len(self.canvas.series["train"]) + 1
            )
            train, val = losses_of(event)
            if train is not None:
                self.canvas.add("train", epoch, train)
            if val is not None:
                self.canvas.add("val", epoch, val)
            text = f"Epoch {epoch}"
            if train is not None:
                text += f" · loss {train:.4g}"
            if val is not None:
                text += f" · val {val:.4g}"
            self.title_label.setText(text)
        elif kind == "train_end":
            self.set_finished("Training finished.")

    def set_finished(self, text: str) -> None:
        """The job ended: say so and disable **Stop Early**."""
        self.finished = True
        self.title_label.setText(text)
        self.stop_button.setEnabled(False)

    def _stop_clicked(self) -> None:
        self.stop_button.setText("Stopping…")
        self.stop_button.setEnabled(False)
        self.stop_requested.emit()
