"""A remote run started from SLEAP's ``LearningDialog`` (the plugin's opener).

What SLEAP's own **Run** does locally, :class:`SleapRemoteRun` does on a worker:

1. **Run Remotely…** opens our panel over SLEAP's dialog: the room's workers,
   live (the same :class:`~sleap_rtc_gui.dialogs.training_dialog.TrainingDialog`
   as ``sleap-rtc gui``, connected the same way), and the pipeline summary. The
   job's configs are SLEAP's form, read when the labeler presses Run Remotely in
   our panel (:func:`~sleap_rtc_gui.sleap_form.remote_configs`).
2. The presubmission flow runs (login check, the worker's path check, the
   PathResolutionDialog for missing videos, submit). SLEAP's dialog stays open
   until the worker accepts the job, then both close.
3. SLEAP's **LossViewer** opens as SLEAP's runner opens it (default ports 9001 /
   9000, moved by SLEAP when taken), and our progress bridge feeds it on the
   ports it bound. **Stop Early** and **Cancel Training** reach the worker.
4. At the end the models come home into ``models/`` beside the labels (where
   SLEAP's training dialog lists them); when the form's *Inference Target* asks
   for predictions, the worker predicts those frames over the same channel and
   they are merged into SLEAP's open labels with SLEAP's own merge. A message
   says what happened and where the models are.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QMessageBox, QWidget

from sleap_rtc_core.protocol.channel_transfer import model_run_dirs
from sleap_rtc_core.protocol.jobspec import TrackJobSpec
from sleap_rtc_gui.dialogs.training_dialog import RoomConnector, TrainingDialog
from sleap_rtc_gui.plugin import labels_path_of
from sleap_rtc_gui.presubmit_io import FeedOptions, PredictionJob, TrainingConfigs
from sleap_rtc_gui.session import AuthProvider, SessionFactory
from sleap_rtc_gui.sleap_form import (
    InferencePlan,
    inference_plan,
    remote_configs,
    trained_model_paths,
)

__all__ = ["RunParts", "SleapRemoteRun", "merge_predictions", "pipeline_summary"]

logger = logging.getLogger(__name__)

_CANCEL_POLL_MS = 200


def pipeline_summary(dialog: Any) -> str:
    """One line about the pipeline chosen in SLEAP's form."""
    pipeline = str(getattr(dialog, "current_pipeline", "") or "the chosen pipeline")
    heads = [str(h) for h in getattr(dialog, "shown_tab_names", []) or []]
    models = f" ({', '.join(heads)})" if heads else ""
    if getattr(dialog, "mode", "training") == "inference":
        return (
            f"{pipeline}{models}: predict with the trained models chosen in "
            "SLEAP's dialog, on the frames of its Inference Target."
        )
    return (
        f"{pipeline}{models}, with the settings of SLEAP's training dialog. "
        "The worker picks its GPU."
    )


class RunParts:
    """What a remote run needs from the connection flags.

    Args:
        session_factory: Opens a data channel to a worker.
        auth: The login check (flags first, then the saved login).
        connect_room: Joins a room for the live worker list.
        rooms: The rooms offered (the ``--room`` flag's).
    """

    def __init__(
        self,
        session_factory: SessionFactory,
        auth: AuthProvider,
        connect_room: RoomConnector | None,
        rooms: list[str],
    ) -> None:
        self.session_factory = session_factory
        self.auth = auth
        self.connect_room = connect_room
        self.rooms = rooms


class SleapRemoteRun(QObject):
    """One remote run over one SLEAP ``LearningDialog`` (module docstring).

    Attributes:
        sleap_dialog: SLEAP's dialog.
        panel: Our panel (workers, status, Run Remotely).
        viewer: SLEAP's LossViewer, once the job runs.
        message: The message shown at the end.
        models: The local model folders, once they came home.
    """

    def __init__(
        self,
        sleap_dialog: QWidget,
        parts: RunParts,
        *,
        viewer_factory: Callable[[dict[str, int]], Any] | None = None,
    ) -> None:
        super().__init__()
        self.sleap_dialog = sleap_dialog
        self.viewer: Any = None
        self.message: QMessageBox | None = None
        self.models: list[str] = []
        self.plan = InferencePlan()
        self.predicted_frames: int | None = None
        self._viewer_factory = viewer_factory or _sleap_loss_viewer
        self._cancel_sent = False
        self._result = ""
        self._timer: QTimer | None = None
        self.predicting = getattr(sleap_dialog, "mode", "training") == "inference"
        self._worker_models: tuple[str, ...] = ()
        if self.predicting:  # progress is the final message; no LossViewer
            feed = FeedOptions(None, None, after_training=self._predict)
        else:
            feed = FeedOptions(
                open_viewer=self._open_viewer,
                download_models=True,
                after_training=self._predict,
            )
        self.panel = TrainingDialog(
            labels_path_of(sleap_dialog),
            parts.session_factory,
            parts.auth,
            rooms=parts.rooms,
            connect_room=parts.connect_room,
            feed=feed,
            config_source=self._read_form,
            summary=pipeline_summary(sleap_dialog),
        )
        title = "Predict Remotely" if self.predicting else "Run Remotely"
        self.panel.setWindowTitle(f"{title} — sleap-rtc")
        controller = self.panel.controller
        controller.accepted.connect(self._accepted)
        controller.models_ready.connect(self._models_ready)
        controller.finished.connect(self._finished)

    @property
    def controller(self) -> Any:
        """The presubmission controller of the panel."""
        return self.panel.controller

    def show(self) -> None:
        """Show the panel over SLEAP's dialog and join the first room."""
        self.panel.show()
        self.panel.raise_()
        self.panel.join_room(self.panel.worker_panel.room)

    # ------------------------------------------------------------ the run

    def _read_form(self) -> TrainingConfigs | PredictionJob:
        """SLEAP's form now: the models to train and what to predict after,
        or (inference dialog) the trained models and the frames to predict.

        Raises:
            ValueError: The form asks for nothing that can run remotely.
        """
        plan = inference_plan(self.sleap_dialog)
        if not self.predicting:
            configs = remote_configs(self.sleap_dialog)
            self.plan = plan
            return configs
        if not plan.specs:
            raise ValueError("choose the frames to predict (Inference Target)")
        self._worker_models = trained_model_paths(self.sleap_dialog)
        first, *rest = plan.specs
        self.plan = InferencePlan(tuple(rest), plan.params)
        return PredictionJob({**first, "model_paths": list(self._worker_models)})

    def _accepted(self, job_id: str) -> None:
        logger.info("= job %s accepted: closing SLEAP's dialog", job_id)
        accept = getattr(self.sleap_dialog, "accept", None)
        if callable(accept):
            accept()

    def _open_viewer(self) -> tuple[int, int | None]:
        viewer = self._viewer_factory({"publish_port": 9001, "controller_port": 9000})
        self.viewer = viewer
        worker = self.controller.machine.run.worker_id or "the worker"
        viewer.setWindowTitle(f"Training Model - remote on {worker}")
        viewer.set_message(f"Training on {worker}…")
        viewer.resize(600, 400)
        viewer.show()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._check_cancel)
        self._timer.start(_CANCEL_POLL_MS)
        ports = viewer.zmq_ports
        return int(ports["publish_port"]), int(ports["controller_port"])

    def _check_cancel(self) -> None:
        """SLEAP's Cancel Training only sets ``canceled``: pass it on once."""
        if self.viewer is not None and self.viewer.canceled and not self._cancel_sent:
            self._cancel_sent = True
            self.controller.cancel_training()

    def _models_ready(self, outcome: object) -> None:
        if isinstance(outcome, list):
            self.models = [str(p) for p in outcome]
            self._result = "The models are in:\n" + "\n".join(self.models)
        else:
            self._result = f"The models could not be copied here: {outcome}"
        if not self.plan.specs:
            self._say("Remote training finished", f"Training finished. {self._result}")

    async def _predict(
        self,
        session: Any,
        result: Mapping[str, Any],
        mappings: Mapping[str, str],
    ) -> None:
        """Predict the frames the form asked for, on the worker, and merge the
        predictions into SLEAP's open labels as SLEAP's own run does.

        After training, every requested item is a new track job with the new
        models; in the inference dialog the accepted job was the first item,
        so its predictions are fetched first.
        """
        labels_path = labels_path_of(self.sleap_dialog)
        if not labels_path or not (self.predicting or self.plan.specs):
            return
        models = self._worker_models or tuple(model_run_dirs(result))
        frames: list[Any] = []
        try:
            with tempfile.TemporaryDirectory(prefix="sleap-rtc-predictions-") as tmp:
                if self.predicting:
                    first = Path(tmp) / "first.slp"
                    local = await session.fetch_predictions(result, first, mappings)
                    frames += await asyncio.to_thread(_predicted_frames, local)
                for i, fields in enumerate(self.plan.specs):
                    spec = TrackJobSpec(
                        data_path=labels_path,
                        model_paths=models,
                        path_mappings=dict(mappings),
                        **fields,
                    )
                    local = await session.predict(spec, Path(tmp) / f"{i}.slp")
                    frames += await asyncio.to_thread(_predicted_frames, local)
                self.predicted_frames = merge_predictions(
                    self.sleap_dialog, frames, self.plan.params, list(models)
                )
        except Exception as exc:
            logger.warning("! remote inference failed: %s", exc)
            note = f"Predicting the requested frames failed: {exc}"
        else:
            note = f"{self.predicted_frames} frames were predicted and merged."
        if self.predicting:
            self._say("Remote inference finished", note)
        else:
            self._say(
                "Remote training finished",
                f"Training finished. {self._result}\n\n{note}",
            )

    def _finished(self, state: str) -> None:
        if self._timer is not None:
            self._timer.stop()
        if self.viewer is not None:
            self.viewer.close()
        if state != "done":
            logger.info("= remote run ended: %s", state)

    def _say(self, title: str, text: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Information, title, text)
        box.setObjectName("sleap_rtc_result")
        self.message = box
        box.show()


def _predicted_frames(path: Path) -> list[Any]:
    """The labeled frames of a predictions file, each tagged with the index of
    its video in that file (the project's order: the worker predicted on the
    project's labels)."""
    import sleap_io as sio

    predictions = sio.load_slp(str(path), open_videos=False)
    index = {id(v): i for i, v in enumerate(predictions.videos)}
    frames = list(predictions.labeled_frames)
    return [(index.get(id(lf.video)), lf) for lf in frames]


def merge_predictions(
    dialog: Any, frames: list[Any], params: Mapping[str, Any], models: list[str]
) -> int:
    """Merge predicted frames into the dialog's labels with SLEAP's own
    ``InferenceTask.merge_results`` (its replace/keep and clear-all choices),
    then tell SLEAP's window, as its local run does; the frames merged.

    ``frames`` are ``(video index, frame)`` pairs: the predictions name the
    worker's copies of the videos, and each frame is given the project's video
    of that index back (else the one of the same file name).
    """
    from sleap.gui.learning.runners import InferenceTask

    labels = dialog.labels
    by_name = {Path(v.filename).name: v for v in labels.videos}
    results = []
    for index, frame in frames:
        if isinstance(index, int) and index < len(labels.videos):
            frame.video = labels.videos[index]
        else:
            frame.video = by_name.get(Path(frame.video.filename).name, frame.video)
        results.append(frame)
    task = InferenceTask(
        trained_job_paths=list(models),
        inference_params=dict(params),
        labels=labels,
        labels_filename=labels_path_of(dialog),
        results=results,
    )
    count = int(task.merge_results())
    finished = getattr(dialog, "_handle_learning_finished", None)
    if finished is not None:
        finished.emit(count)
    return count


def _sleap_loss_viewer(ports: dict[str, int]) -> Any:
    """SLEAP's LossViewer, as its runner makes one (it binds the ports)."""
    from sleap.gui.widgets.monitor import LossViewer

    return LossViewer(zmq_ports=dict(ports))
