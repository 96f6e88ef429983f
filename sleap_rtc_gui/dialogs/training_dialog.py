"""The standalone training dialog (``sleap-rtc gui LABELS.slp``).

The essential training options (model type, epochs, batch size, input scale)
become a sleap-nn configuration built the same way as
:func:`~sleap_rtc_core.sample_data.tiny_training_config`, with the dialog's
values in it; the worker panel picks the room and the worker; **Run Remotely**
hands both to a :class:`~sleap_rtc_gui.controller.RemoteRunController`. The
dialog stays open (controls disabled, Cancel active) until the job is accepted,
then closes; errors come back as popups over it.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import yaml
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from sleap_rtc_core.sample_data import TinyModelType, tiny_training_config
from sleap_rtc_core.signaling.client import SignalingClient
from sleap_rtc_gui.controller import FeedOptions, RemoteRunController, StepTimeouts
from sleap_rtc_gui.dialogs.worker_panel import WorkerPanel
from sleap_rtc_gui.session import AuthProvider, SessionFactory

__all__ = ["MODEL_TYPES", "TrainingDialog", "build_training_config"]

MODEL_TYPES: tuple[tuple[str, str], ...] = (
    ("Single animal", TinyModelType.SINGLE_INSTANCE.value),
    ("Top-down: centroid", TinyModelType.CENTROID.value),
    ("Top-down: centered instance", TinyModelType.CENTERED_INSTANCE.value),
)
"""The model types offered: label and sleap-nn head name."""

RoomConnector = Callable[[str], Coroutine[Any, Any, SignalingClient]]
"""Connects a signaling client to a room (for the worker list)."""


def build_training_config(
    model_type: str, epochs: int, batch_size: int, input_scale: float
) -> str:
    """The sleap-nn YAML for the dialog's options.

    Raises:
        ValueError: An unknown model type, or a value out of range.
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError("epochs and batch size must be at least 1")
    if not 0.0 < input_scale <= 4.0:
        raise ValueError("input scale must be in (0, 4]")
    text = tiny_training_config(
        model_type=model_type, max_epochs=epochs, batch_size=batch_size
    )
    config: dict[str, Any] = yaml.safe_load(text)
    config["data_config"]["preprocessing"]["scale"] = float(input_scale)
    return str(yaml.safe_dump(config, sort_keys=False, width=88))


class TrainingDialog(QDialog):
    """Training options + worker panel + **Run Remotely**.

    Attributes:
        labels_path: The labels file to train on.
        model_box: Model type.
        epochs_box: Epochs.
        batch_box: Batch size.
        scale_box: Input scale.
        worker_panel: Room, workers and **Run Remotely**.
        status_label: What the flow is doing.
        cancel_button: Cancel (aborts a run in progress, else closes).
        controller: Performs the presubmission flow.
    """

    def __init__(
        self,
        labels_path: str | None,
        session_factory: SessionFactory,
        auth: AuthProvider,
        *,
        rooms: Sequence[str] = (),
        connect_room: RoomConnector | None = None,
        feed: FeedOptions | None = None,
        timeouts: StepTimeouts | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.labels_path = labels_path
        self.connect_room = connect_room
        self.setWindowTitle("Train remotely — sleap-rtc")
        self.resize(620, 560)

        self.model_box = QComboBox(self)
        for label, value in MODEL_TYPES:
            self.model_box.addItem(label, value)
        self.epochs_box = QSpinBox(self)
        self.epochs_box.setRange(1, 10000)
        self.epochs_box.setValue(100)
        self.batch_box = QSpinBox(self)
        self.batch_box.setRange(1, 512)
        self.batch_box.setValue(4)
        self.scale_box = QDoubleSpinBox(self)
        self.scale_box.setRange(0.05, 4.0)
        self.scale_box.setSingleStep(0.05)
        self.scale_box.setValue(1.0)

        options = QGroupBox("Training", self)
        form = QFormLayout(options)
        name = Path(labels_path).name if labels_path else "(project not saved)"
        form.addRow("Labels:", QLabel(name, options))
        form.addRow("Model type:", self.model_box)
        form.addRow("Epochs:", self.epochs_box)
        form.addRow("Batch size:", self.batch_box)
        form.addRow("Input scale:", self.scale_box)

        self.worker_panel = WorkerPanel(rooms, self)
        self.status_label = QLabel("", self)
        self.status_label.setWordWrap(True)
        self.buttons = QDialogButtonBox(self)
        self.cancel_button = QPushButton("Cancel", self)
        self.buttons.addButton(
            self.cancel_button, QDialogButtonBox.ButtonRole.RejectRole
        )
        self.cancel_button.clicked.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(options)
        layout.addWidget(self.worker_panel, 1)
        layout.addWidget(self.status_label)
        layout.addWidget(self.buttons)

        self.controller = RemoteRunController(
            self, session_factory, auth, timeouts=timeouts, feed=feed, parent=self
        )
        self.worker_panel.run_requested.connect(self._run_requested)
        self.worker_panel.room_changed.connect(self._room_changed)
        self._controls: list[QWidget] = [options, self.worker_panel]

    # ------------------------------------------------------------------ RunView

    def build_config(self) -> str:
        """The YAML for the options shown (the controller's ``BuildConfig``)."""
        return build_training_config(
            str(self.model_box.currentData()),
            self.epochs_box.value(),
            self.batch_box.value(),
            self.scale_box.value(),
        )

    def set_running(self, running: bool) -> None:
        """Disable the options and the worker panel while the flow runs."""
        for widget in self._controls:
            widget.setEnabled(not running)

    def set_status(self, text: str) -> None:
        """Show what the flow is doing."""
        self.status_label.setText(text)

    # ------------------------------------------------------------------ intents

    def _run_requested(self, worker_id: str, room: str) -> None:
        self.controller.run(worker_id, room or None, self.labels_path)

    def _room_changed(self, room: str) -> None:
        if self.connect_room is None:
            return
        self.worker_panel.bridge.start(
            self.connect_room(room),
            self._watch,
            lambda exc: self.set_status(f"Cannot join room {room}: {exc}"),
            name=f"join {room}",
        )

    def _watch(self, client: SignalingClient) -> None:
        self.worker_panel.watch(client)

    def reject(self) -> None:
        """Cancel: abort a run in progress, then close."""
        self.controller.cancel()
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        """Closing the window is Cancel."""
        self.controller.cancel()
        super().closeEvent(event)
