"""The Qt adapter of the presubmission machine: it performs the effects.

:class:`RemoteRunController` owns one
:class:`~sleap_rtc_gui.presubmit.PresubmitMachine` per **Run Remotely** and is
the thin loop of STYLE.md convention 3: feed an event, drain the effects,
perform each one. Network effects run as tasks of an
:class:`~sleap_rtc_gui.bridge.AsyncBridge` (with the step timeouts, which live
here and not in the machine), and their outcomes come back through the bridge as
events. Results of work started before a ``Disconnect``, ``CancelLogin`` or
``ReturnToDialog`` are dropped (a generation counter), as the machine requires.

The view is the training dialog (or SLEAP's, through the plugin); it implements
:class:`RunView`. Once the job is accepted the view is closed, and the progress
goes to SLEAP's LossViewer through a
:class:`~sleap_rtc_core.progress.zmq_bridge.ProgressBridge` and, when SLEAP is
absent, to our own :class:`~sleap_rtc_gui.dialogs.loss_plot.LossPlotWindow`;
both carry **Stop Early** back to the worker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from sleap_rtc_core.aio import wait_for
from sleap_rtc_core.client.model_download import models_dir_for
from sleap_rtc_core.errors import (
    ChannelClosed,
    LocalProtocolError,
    TransferError,
    UploadRefused,
)
from sleap_rtc_core.progress.zmq_bridge import (
    DEFAULT_CONTROLLER_PORT,
    DEFAULT_PUBLISH_PORT,
    ProgressBridge,
)
from sleap_rtc_gui.bridge import AsyncBridge
from sleap_rtc_gui.dialogs.error_popup import ErrorPopup, show_error
from sleap_rtc_gui.dialogs.loss_plot import LossPlotWindow
from sleap_rtc_gui.dialogs.path_resolution import PathResolutionDialog
from sleap_rtc_gui.dialogs.upload_progress import UploadProgressDialog
from sleap_rtc_gui.presubmit import (
    PRE_ACCEPT_STATES,
    AuthChecked,
    BuildConfig,
    CancelLogin,
    ChannelLost,
    CheckAuth,
    CheckPaths,
    CloseDialog,
    ConfigBuilt,
    ConfigFailed,
    Connected,
    ConnectWorker,
    Disconnect,
    Effect,
    Event,
    ForwardProgress,
    HidePathResolution,
    JobAccepted,
    JobCompleted,
    JobFailed,
    LabelsPathEntered,
    LoginFinished,
    OpenLogin,
    PathsChecked,
    PathsResolved,
    PresubmitMachine,
    PresubmitState,
    ProgressReceived,
    ResolutionCancelled,
    ReturnToDialog,
    RunRequested,
    ShowError,
    ShowPathResolution,
    StartProgressFeed,
    StopUpload,
    SubmitJob,
    TrainingDone,
    UploadCancelled,
    UploadFailed,
    UploadFinished,
    UploadLabels,
    UploadRequested,
    UserCancelled,
)
from sleap_rtc_gui.session import (
    AuthProvider,
    RemoteSession,
    SessionFactory,
    SessionUpdate,
    UpdateKind,
    UploadingSession,
    VideoUploadingSession,
    classify_error,
)

__all__ = [
    "AfterTraining",
    "FeedOptions",
    "PredictionJob",
    "RemoteRunController",
    "RunView",
    "StepTimeouts",
    "TrainingConfigs",
    "ViewerOpener",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class RunView(Protocol):
    """What the controller needs from the dialog that owns **Run Remotely**."""

    def build_config(self) -> str | TrainingConfigs | PredictionJob:
        """The training YAML from the dialog's options (several for a pipeline),
        or the prediction job it asks for.

        Raises:
            ValueError: The options do not make a valid configuration.
        """
        ...

    def set_running(self, running: bool) -> None:
        """Disable the controls while the flow runs (re-enable on return)."""
        ...

    def set_status(self, text: str) -> None:
        """Show one line about what the flow is doing."""
        ...

    def accept(self) -> None:
        """Close the dialog: the job was accepted."""
        ...


@dataclass(frozen=True, slots=True)
class TrainingConfigs:
    """A pipeline's sleap-nn configurations, trained in order in one job.

    Attributes:
        configs: One YAML text per model (top-down: centroid, then centered
            instance).
        model_types: The model type of each config (SLEAP's head names).
    """

    configs: tuple[str, ...]
    model_types: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.configs:
            raise ValueError("a pipeline needs at least one configuration")


AfterTraining = Callable[
    [RemoteSession, Mapping[str, Any], Mapping[str, str]], Awaitable[object]
]
"""Work on the finished job's channel before it closes (SLEAP's inference
after training): called with the session, ``JOB_COMPLETE``'s data and the
job's path mappings."""


@dataclass(frozen=True, slots=True)
class PredictionJob:
    """A prediction job instead of training (SLEAP's inference dialog).

    Attributes:
        track: ``TrackJobSpec`` fields (``model_paths``, frames, filters); the
            labels file and the path mappings are added when it is submitted.
    """

    track: Mapping[str, Any]


ViewerOpener = Callable[[], tuple[int, int | None]]
"""Opens the progress viewer (SLEAP's LossViewer) and returns the ports it
bound: ``(publish_port, controller_port)``."""


@dataclass(frozen=True, slots=True)
class StepTimeouts:
    """Seconds each network step may take before it counts as ``TimedOut``."""

    login: float = 300.0
    """The browser login."""
    connect: float = 30.0
    """Opening and authenticating the channel."""
    check_paths: float = 30.0
    """The worker's path checks."""
    submit: float = 30.0
    """``JOB_SUBMIT`` until ``JOB_ACCEPTED``/``JOB_REJECTED``."""


@dataclass(frozen=True, slots=True)
class FeedOptions:
    """Where the progress of an accepted job goes."""

    publish_port: int | None = DEFAULT_PUBLISH_PORT
    """LossViewer's progress port (``None``: no LossViewer feed)."""
    controller_port: int | None = DEFAULT_CONTROLLER_PORT
    """LossViewer's command port (``None``: LossViewer has no controls)."""
    show_plot: bool = False
    """Open our own loss plot (when SLEAP's LossViewer is not there)."""
    open_viewer: ViewerOpener | None = None
    """Opens SLEAP's LossViewer when the job is accepted; its ports replace
    ``publish_port``/``controller_port`` (SLEAP moves off ports in use)."""
    download_models: bool = False
    """Bring the trained models into ``models/`` beside the labels file (where
    SLEAP lists them) before the channel closes."""
    after_training: AfterTraining | None = None
    """Runs once the models are home, before the channel closes."""


_STATUS = {
    PresubmitState.BUILDING_CONFIG: "Building the training configuration…",
    PresubmitState.CHECKING_AUTH: "Checking your login…",
    PresubmitState.LOGGING_IN: "Waiting for the browser login…",
    PresubmitState.CONNECTING: "Connecting to the worker…",
    PresubmitState.CHECKING_PATHS: "Checking files on the worker…",
    PresubmitState.RESOLVING_LABELS: "Waiting for the labels file's worker path…",
    PresubmitState.UPLOADING: "Sending the labels to the worker…",
    PresubmitState.RESOLVING_VIDEOS: "Waiting for the videos' worker paths…",
    PresubmitState.SUBMITTING: "Submitting the job…",
    PresubmitState.RUNNING: "Training on the worker…",
    PresubmitState.IDLE: "",
}


class RemoteRunController(QObject):
    """Performs the presubmission machine's effects for one dialog.

    Attributes:
        machine: The current run's machine (a new one per **Run Remotely**).
        session: The open session to the worker, if any.
        popups: Every error popup shown, oldest first.
        path_dialog: The open path resolution dialog, if any.
        upload_dialog: The open upload progress dialog, if any.
        plot: Our loss plot, once the job runs (``FeedOptions.show_plot``).
        progress_bridge: The LossViewer feed, once the job runs.
        bridge: Runs the network steps.
    """

    state_changed = Signal(str)
    error_shown = Signal(object)
    accepted = Signal(str)
    training_done = Signal(object)
    models_ready = Signal(object)
    paths_checked = Signal(str, bool)
    finished = Signal(str)

    def __init__(
        self,
        view: RunView,
        session_factory: SessionFactory,
        auth: AuthProvider,
        *,
        timeouts: StepTimeouts | None = None,
        feed: FeedOptions | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.view = view
        self.session_factory = session_factory
        self.auth = auth
        self.timeouts = timeouts or StepTimeouts()
        self.feed = feed or FeedOptions()
        self.bridge = AsyncBridge(self)
        self.machine = PresubmitMachine()
        self.session: RemoteSession | None = None
        self.popups: list[ErrorPopup] = []
        self.path_dialog: PathResolutionDialog | None = None
        self.upload_dialog: UploadProgressDialog | None = None
        self._upload: asyncio.Task[Any] | None = None
        self.plot: LossPlotWindow | None = None
        self.progress_bridge: ProgressBridge | None = None
        self._generation = 0
        self._queue: deque[Event] = deque()
        self._busy = False
        self._login: asyncio.Task[Any] | None = None
        self._feed_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ intents

    @property
    def state(self) -> PresubmitState:
        """Where the current run is."""
        return self.machine.state

    def run(
        self,
        worker_id: str,
        room: str | None,
        labels_path: str | None,
        *,
        uploads: bool = False,
    ) -> None:
        """**Run Remotely** was pressed (``uploads``: the worker has an upload
        area, so sending the labels is offered)."""
        if self.machine.state is not PresubmitState.IDLE:
            if self.machine.state in PRE_ACCEPT_STATES:
                logger.debug("! run ignored: already %s", self.machine.state.value)
                return
            self.machine = PresubmitMachine()  # a finished run: start afresh
        self.view.set_running(True)
        self.receive(RunRequested(None, labels_path, worker_id or None, room, uploads))

    def cancel(self) -> None:
        """Cancel or close before the job was accepted (aborts the run)."""
        if self.machine.state in PRE_ACCEPT_STATES:
            self.receive(UserCancelled())

    def stop_training(self) -> None:
        """Ask the running job to stop early (Stop Early in either viewer)."""
        session = self.session
        if session is not None and self.machine.state is PresubmitState.RUNNING:
            self.bridge.start(session.stop(), on_error=self._log_error)

    def cancel_training(self) -> None:
        """Cancel the running job on the worker (LossViewer's Cancel Training):
        nothing of it is kept."""
        session = self.session
        if session is not None and self.machine.state is PresubmitState.RUNNING:
            self.bridge.start(session.cancel(), on_error=self._log_error)

    async def aclose(self) -> None:
        """Stop everything this controller runs (the app is quitting)."""
        self._generation += 1
        await self.bridge.aclose()
        await self._close_feed()
        await self._close_session()

    # ------------------------------------------------------------------ the loop

    def receive(self, event: Event) -> None:
        """Feed ``event`` to the machine and perform what it asks, in order."""
        self._queue.append(event)
        if self._busy:
            return  # performed by the outer call, after the current effects
        self._busy = True
        try:
            while self._queue:
                self._step(self._queue.popleft())
        finally:
            self._busy = False

    def _step(self, event: Event) -> None:
        before = self.machine.state
        try:
            self.machine.receive(event)
        except LocalProtocolError as exc:
            logger.debug("! dropped %s: %s", type(event).__name__, exc.message)
            return
        for effect in self.machine.effects():
            self._perform(effect)
        state = self.machine.state
        if state is not before:
            if state in _STATUS:
                self.view.set_status(_STATUS[state])
            self.state_changed.emit(state.value)
        if self.machine.finished and before is not state:
            self._finish(state)

    def _later(self, generation: int) -> Callable[[Event], None]:
        """A callback that feeds an event unless the run moved on since."""

        def feed(event: Event) -> None:
            if generation == self._generation:
                self.receive(event)
            else:
                logger.debug("! stale %s dropped", type(event).__name__)

        return feed

    def _task(
        self,
        coro: Awaitable[T],
        timeout: float | None,
        to_event: Callable[[T], Event],
        *,
        submitting: bool = False,
        name: str,
    ) -> None:
        feed = self._later(self._generation)

        async def step() -> T:
            return await wait_for(coro, timeout)

        self.bridge.start(
            step(),
            lambda result: feed(to_event(result)),
            lambda exc: feed(classify_error(exc, submitting=submitting)),
            name=name,
        )

    # ------------------------------------------------------------------ effects

    def _perform(self, effect: Effect) -> None:  # noqa: C901 - one branch per kind
        logger.debug("> %s", type(effect).__name__)
        if isinstance(effect, BuildConfig):
            try:
                built = self.view.build_config()
            except ValueError as exc:
                self.receive(ConfigFailed(reason=str(exc)))
            else:
                self.receive(_config_built(built))
        elif isinstance(effect, CheckAuth):
            ok, expired = self.auth.check()
            self.receive(AuthChecked(ok=ok, expired=expired))
        elif isinstance(effect, OpenLogin):
            self.view.set_status(effect.reason)
            feed = self._later(self._generation)

            async def login() -> bool:
                return await wait_for(self.auth.login(), self.timeouts.login)

            self._login = self.bridge.start(
                login(),
                lambda ok: feed(LoginFinished(ok=bool(ok))),
                lambda exc: feed(LoginFinished(ok=False)),
                name="login",
            )
        elif isinstance(effect, CancelLogin):
            self._generation += 1
            if self._login is not None:
                self._login.cancel()
                self._login = None
        elif isinstance(effect, ConnectWorker):
            self._task(
                self.session_factory(effect.worker_id, effect.room),
                self.timeouts.connect,
                self._connected,
                name="connect",
            )
        elif isinstance(effect, CheckPaths):
            session = self._require_session()
            self._task(
                session.check_paths(effect.labels_path),
                self.timeouts.check_paths,
                self._paths_checked,
                name="check paths",
            )
        elif isinstance(effect, ShowPathResolution):
            self._show_path_resolution(effect)
        elif isinstance(effect, HidePathResolution):
            if self.path_dialog is not None:
                self.path_dialog.dismiss()
                self.path_dialog = None
        elif isinstance(effect, UploadLabels):
            self._start_upload(effect.labels_path, effect.with_videos)
        elif isinstance(effect, StopUpload):
            upload, self._upload = self._upload, None
            if upload is not None:
                upload.cancel()  # the worker is told; it keeps verified bytes
            if self.upload_dialog is not None:
                self.upload_dialog.dismiss()
                self.upload_dialog = None
        elif isinstance(effect, SubmitJob):
            session = self._require_session()
            self._task(
                session.submit(effect.spec),
                self.timeouts.submit,
                lambda job_id: JobAccepted(job_id=str(job_id)),
                submitting=True,
                name="submit",
            )
        elif isinstance(effect, ShowError):
            self._show_error(effect)
        elif isinstance(effect, CloseDialog):
            self.view.accept()
        elif isinstance(effect, StartProgressFeed):
            self._start_feed(effect.job_id)
        elif isinstance(effect, ForwardProgress):
            self._forward(effect.event)
        elif isinstance(effect, TrainingDone):
            text = "Training finished."
            if effect.model_path:
                text += f" Model: {effect.model_path}"
            if self.plot is not None:
                self.plot.set_finished(text)
            self.training_done.emit(effect.model_path)
        elif isinstance(effect, Disconnect):
            self._generation += 1
            self.bridge.cancel_all()
            closing, self.session = self.session, None
            if closing is not None:
                self.bridge.start(closing.close(), on_error=self._log_error)
        elif isinstance(effect, ReturnToDialog):
            self._generation += 1
            self.view.set_running(False)

    def _paths_checked(self, report: Any) -> Event:
        worker = self.machine.run.worker_id
        if worker:
            self.paths_checked.emit(worker, bool(report.labels_found))
        return PathsChecked(report=report)

    def _connected(self, session: RemoteSession) -> Event:
        self.session = session
        return Connected()

    def _require_session(self) -> RemoteSession:
        if self.session is None:  # the machine only asks once connected
            raise LocalProtocolError("no session to the worker")
        return self.session

    def _parent_widget(self) -> QWidget | None:
        view = self.view
        if isinstance(view, QWidget) and view.isVisible():
            return view
        return None

    def _show_error(self, effect: ShowError) -> None:
        popup = show_error(effect, self._parent_widget())
        self.popups.append(popup)
        self.error_shown.emit(popup)

    def _show_path_resolution(self, effect: ShowPathResolution) -> None:
        session = self.session
        dialog = PathResolutionDialog(
            effect.report,
            effect.corrections_left,
            self._parent_widget(),
            browse=session.list_dir if session is not None else None,
            can_upload=effect.can_upload,
        )
        dialog.resolved.connect(lambda m: self.receive(PathsResolved(mappings=m)))
        dialog.labels_entered.connect(lambda p: self.receive(LabelsPathEntered(path=p)))
        dialog.upload_requested.connect(lambda: self.receive(UploadRequested()))
        dialog.upload_with_videos_requested.connect(
            lambda: self.receive(UploadRequested(with_videos=True))
        )
        dialog.cancelled.connect(lambda: self.receive(ResolutionCancelled()))
        dialog.finished.connect(lambda _r: self._forget_dialog(dialog))
        self.path_dialog = dialog
        dialog.open()

    def _start_upload(self, labels_path: str, with_videos: bool = False) -> None:
        """Send the labels on the event loop (``with_videos``: as they are,
        with their videos), progress in a dialog; no step timeout: each answer
        of the upload has its own."""
        session = self._require_session()
        if not isinstance(session, UploadingSession) or (
            with_videos and not isinstance(session, VideoUploadingSession)
        ):
            self.receive(UploadFailed("this connection cannot send files"))
            return
        dialog = UploadProgressDialog(
            os.path.basename(labels_path), self._parent_widget()
        )
        dialog.cancelled.connect(lambda: self.receive(UploadCancelled()))
        self.upload_dialog = dialog
        feed = self._later(self._generation)

        def done(result: tuple[Any, ...]) -> None:
            self._upload = None
            more = dict(result[2]) if len(result) > 2 else {}
            feed(UploadFinished(worker_path=result[0], cached=result[1], mappings=more))

        sending = (
            session.upload_labels_with_videos(labels_path, dialog.set_progress)
            if isinstance(session, VideoUploadingSession) and with_videos
            else session.upload_labels(labels_path, dialog.set_progress)
        )
        self._upload = self.bridge.start(
            sending,
            done,
            lambda exc: feed(_upload_failed(exc)),
            name="upload",
        )
        dialog.open()

    def _forget_dialog(self, dialog: PathResolutionDialog) -> None:
        if self.path_dialog is dialog:
            self.path_dialog = None

    # ------------------------------------------------------------------ progress

    def _start_feed(self, job_id: str) -> None:
        self.accepted.emit(job_id)
        publish, controller = self.feed.publish_port, self.feed.controller_port
        if self.feed.open_viewer is not None:
            try:
                publish, controller = self.feed.open_viewer()
            except Exception as exc:  # the job runs on; only the view is missing
                logger.warning("! could not open the progress viewer: %s", exc)
        if publish is not None:
            self.progress_bridge = ProgressBridge(
                publish, controller, on_command=self._viewer_command
            )
            self.progress_bridge.open()
        if self.feed.show_plot:
            self.plot = LossPlotWindow()
            self.plot.stop_requested.connect(self.stop_training)
            self.plot.show()
        running = self.session
        if running is None:
            return
        self._feed_task = self.bridge.stream(
            running.updates(),
            self._on_update,
            on_end=lambda: self.receive(ChannelLost(reason="the job stream ended")),
            on_error=lambda exc: self.receive(ChannelLost(reason=str(exc))),
            name=f"progress {job_id}",
        )

    def _on_update(self, update: SessionUpdate) -> None:
        if update.kind is UpdateKind.PROGRESS:
            self.receive(ProgressReceived(event=_as_event(update.payload)))
        elif update.kind is UpdateKind.COMPLETE:
            self.receive(JobCompleted(result=dict(update.payload or {})))
        elif update.kind is UpdateKind.FAILED:
            self.receive(JobFailed(details=dict(update.payload or {})))

    def _forward(self, event: Any) -> None:
        raw = event.get("_raw") if isinstance(event, dict) else None
        payload = raw if isinstance(raw, str) else event
        if self.progress_bridge is not None and not self.progress_bridge.closed:
            try:
                self.progress_bridge.publish(payload)
            except Exception as exc:  # a bad event must not stop the stream
                logger.info("! progress event not published: %s", exc)
        if self.plot is not None:
            self.plot.add_event(payload)

    def _viewer_command(self, command: dict[str, Any]) -> None:
        if command.get("command") == "stop":
            self.stop_training()
        elif command.get("command") == "cancel":
            self.cancel_training()

    # ------------------------------------------------------------------ the end

    def _finish(self, state: PresubmitState) -> None:
        if state is not PresubmitState.ABORTED:
            self.bridge.start(self._wind_down(state), name="wind down")
        self.finished.emit(state.value)

    async def _wind_down(self, state: PresubmitState) -> None:
        await self._close_feed()
        if state is PresubmitState.DONE:
            if self.feed.download_models:
                await self._bring_models_home()
            if self.feed.after_training is not None and self.session is not None:
                run = self.machine.run
                try:
                    await self.feed.after_training(
                        self.session, dict(run.result), run.path_mappings
                    )
                except Exception as exc:
                    logger.warning("! after training: %s", exc)
        await self._close_session()

    async def _bring_models_home(self) -> None:
        """Copy the trained models next to the labels (SLEAP's ``models/``)."""
        session, run = self.session, self.machine.run
        fetch = getattr(session, "download_models", None)
        if fetch is None or not run.labels_path:
            return
        try:
            folders = await fetch(
                dict(run.result), models_dir_for(run.labels_path), run.path_mappings
            )
        except Exception as exc:
            logger.warning("! the models did not come home: %s", exc)
            self.models_ready.emit(exc)
            return
        self.models_ready.emit([str(f) for f in folders])

    async def _close_feed(self) -> None:
        task, self._feed_task = self._feed_task, None
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
        bridge, self.progress_bridge = self.progress_bridge, None
        if bridge is not None:
            await bridge.close()

    async def _close_session(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            try:
                await session.close()
            except Exception as exc:
                logger.info("! closing the session: %s", exc)

    def _log_error(self, exc: BaseException) -> None:
        logger.info("! %s", exc)


def _upload_failed(exc: BaseException) -> Event:
    """The event for an upload that raised: the channel's loss, or why."""
    if isinstance(exc, ChannelClosed):
        return ChannelLost(reason=str(exc))
    if isinstance(exc, UploadRefused):
        return UploadFailed(reason=exc.message, code=exc.code)
    if isinstance(exc, TransferError | OSError) or hasattr(exc, "message"):
        return UploadFailed(reason=str(exc))
    logger.error("upload failed", exc_info=exc)
    return UploadFailed(reason=type(exc).__name__)


def _config_built(built: str | TrainingConfigs | PredictionJob) -> ConfigBuilt:
    """The machine's event for what the view's ``build_config`` returned."""
    if isinstance(built, str):
        return ConfigBuilt(config_yaml=built)
    if isinstance(built, PredictionJob):
        return ConfigBuilt(config_yaml="", track=dict(built.track))
    first, *more = built.configs
    return ConfigBuilt(
        config_yaml=first, more_configs=tuple(more), model_types=built.model_types
    )


def _as_event(payload: Any) -> dict[str, Any]:
    """A progress payload as a mapping (the raw text kept for LossViewer)."""
    if isinstance(payload, dict):
        return payload
    if isinstance(payload, bytes):
        payload = payload.decode("utf-8", errors="replace")
    if isinstance(payload, str):
        try:
            decoded = json.loads(payload)
        except ValueError:
            return {"_raw": payload}
        if isinstance(decoded, dict):
            return {**decoded, "_raw": payload}
    return {"value": payload}
