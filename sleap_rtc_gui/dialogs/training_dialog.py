"""The standalone training dialog (``sleap-rtc gui LABELS.slp``).

The essential training options (model type, epochs, batch size, input scale)
become a real sleap-nn configuration (SLEAP's training profile for the model
type, or sleap-nn's defaults: :func:`~sleap_rtc_gui.job_config.standard_config`);
inside SLEAP the plugin passes a ``config_source`` that reads SLEAP's own form
instead, and the options are not shown. The worker panel picks the room and
the worker; **Run Remotely** hands both to a
:class:`~sleap_rtc_gui.presubmit_io.RemoteRunController`. The dialog stays open
(controls disabled, Cancel active) until the job is accepted, then closes;
errors come back as popups over it.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

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

from sleap_rtc_core.signaling.client.session_io import SignalingClient
from sleap_rtc_gui.dialogs.worker_panel import WorkerPanel
from sleap_rtc_gui.job_config import standard_config
from sleap_rtc_gui.presubmit_io import (
    FeedOptions,
    PredictionJob,
    RemoteRunController,
    StepTimeouts,
    TrainingConfigs,
)
from sleap_rtc_gui.session import AuthProvider, SessionFactory

__all__ = ["MODEL_TYPES", "TrainingDialog", "build_training_config"]

MODEL_TYPES: tuple[tuple[str, str], ...] = (
    ("Single animal", "single_instance"),
    ("Top-down: centroid", "centroid"),
    ("Top-down: centered instance", "centered_instance"),
    ("Bottom-up", "bottomup"),
)
"""The model types offered: label and sleap-nn head name."""

RoomConnector = Callable[[str], Coroutine[Any, Any, SignalingClient]]
"""Connects a signaling client to a room (for the worker list)."""


def build_training_config(
    model_type: str, epochs: int, batch_size: int, input_scale: float
) -> str:
    """The sleap-nn YAML for the dialog's options (SLEAP's profile for the
    model type, or sleap-nn's defaults; see :mod:`sleap_rtc_gui.job_config`).

    Raises:
        ValueError: An unknown model type, or a value out of range.
    """
    return standard_config(model_type, epochs, batch_size, input_scale)


ConfigSource = Callable[[], "str | TrainingConfigs | PredictionJob"]
"""Builds the job's configs from another form (SLEAP's, in the plugin).

Raises:
    ValueError: The form does not make a valid configuration.
"""


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
        config_source: ConfigSource | None = None,
        summary: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.labels_path = labels_path
        self.connect_room = connect_room
        self.config_source = config_source
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
        if config_source is None:
            form.addRow("Model type:", self.model_box)
            form.addRow("Epochs:", self.epochs_box)
            form.addRow("Batch size:", self.batch_box)
            form.addRow("Input scale:", self.scale_box)
        else:  # the options come from another form (SLEAP's)
            for box in (self.model_box, self.epochs_box, self.batch_box):
                box.hide()
            self.scale_box.hide()
            about = QLabel(summary or "As configured in the training dialog.")
            about.setWordWrap(True)
            form.addRow("Pipeline:", about)

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
        self.worker_panel.room_changed.connect(self.join_room)
        self.controller.paths_checked.connect(self.worker_panel.note_labels)
        self._controls: list[QWidget] = [options, self.worker_panel]

    # ------------------------------------------------------------------ RunView

    def build_config(self) -> str | TrainingConfigs | PredictionJob:
        """The YAML for the options shown (the controller's ``BuildConfig``)."""
        if self.config_source is not None:
            return self.config_source()
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
        worker = self.worker_panel.directory.get(worker_id)
        uploads = worker is not None and worker.accepts_uploads
        self.controller.run(worker_id, room or None, self.labels_path, uploads=uploads)

    def join_room(self, room: str) -> None:
        """Connect to ``room`` and list its workers live (``connect_room``)."""
        if self.connect_room is None or not room:
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
