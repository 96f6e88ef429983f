"""The presubmission state machine: events in, effects out, no I/O.

:class:`PresubmitMachine` is sans-I/O (STYLE.md conventions 1, 2 and 11; anchors:
h11's ``_connection.py``, websockets' ``protocol.py``). The Qt adapter feeds it what
happened through :meth:`PresubmitMachine.receive` and drains what to do next with
:meth:`PresubmitMachine.effects`::

    machine = PresubmitMachine()
    machine.receive(RunRequested(None, "/data/labels.slp", "worker-1", "lab"))
    for effect in machine.effects():   # [BuildConfig("/data/labels.slp")]
        adapter.perform(effect)        # ... which later calls machine.receive(...)

The transition taken is looked up in :data:`.states.TRANSITIONS`; an event that has
no entry raises :class:`~sleap_rtc_core.errors.LocalProtocolError` and changes
nothing (no state, no context, no effects). Effects follow from the transition:

* entering a state starts its step (``BuildConfig``, ``CheckAuth``, ``OpenLogin``,
  ``ConnectWorker``, ``CheckPaths``, ``ShowPathResolution``, ``UploadLabels``,
  ``SubmitJob``;
  ``CloseDialog`` + ``StartProgressFeed`` on acceptance; ``TrainingDone``);
* leaving a connected state for the dialog, the login or an abort closes the channel
  (``Disconnect``); leaving the path resolution dialog for any reason but its own
  answer hides it (``HidePathResolution``); leaving the login for any reason but its
  own answer stops it (``CancelLogin``); leaving the upload for any reason stops
  it and hides its progress (``StopUpload``);
* returning to the dialog shows why (``ShowError``, except after the labeler
  cancelled the path resolution, which is silent) and ends with ``ReturnToDialog``.

The adapter must drop results of operations it started before a ``Disconnect``,
``CancelLogin`` or ``ReturnToDialog``: fed to the machine they are illegal events.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sleap_rtc_core.errors import LocalProtocolError
from sleap_rtc_gui.presubmit import messages
from sleap_rtc_gui.presubmit.events import (
    AuthChecked,
    BuildConfig,
    CancelLogin,
    ChannelLost,
    CheckAuth,
    CheckPaths,
    CloseDialog,
    ConfigBuilt,
    ConfigFailed,
    ConnectFailed,
    ConnectWorker,
    Disconnect,
    Effect,
    Event,
    ForwardProgress,
    HidePathResolution,
    JobAccepted,
    JobCompleted,
    JobFailed,
    JobRejected,
    LabelsPathEntered,
    LoginExpired,
    LoginFinished,
    NoWorkerAvailable,
    OpenLogin,
    PathReport,
    PathsChecked,
    PathsResolved,
    ProgressReceived,
    ResolutionCancelled,
    ReturnToDialog,
    RunRequested,
    ShowError,
    ShowPathResolution,
    StartProgressFeed,
    StopUpload,
    SubmitJob,
    TimedOut,
    TrainingDone,
    UploadFailed,
    UploadFinished,
    UploadLabels,
    UploadRequested,
)
from sleap_rtc_gui.presubmit.states import (
    CONNECTED_STATES,
    MAX_LABELS_CORRECTIONS,
    TERMINAL_STATES,
    TRANSITIONS,
    Guard,
    PresubmitState,
    Trigger,
    trigger_event_type,
)

__all__ = ["PresubmitMachine", "RunContext"]

_log = logging.getLogger(__name__)


def _empty_mapping() -> Mapping[str, Any]:
    """A read-only empty mapping (a default for :class:`RunContext` fields)."""
    return MappingProxyType({})


_RESOLVING = frozenset(
    {PresubmitState.RESOLVING_LABELS, PresubmitState.RESOLVING_VIDEOS}
)
_RESOLUTION_ANSWERS = (
    LabelsPathEntered,
    UploadRequested,
    PathsResolved,
    ResolutionCancelled,
)


@dataclass(frozen=True, slots=True)
class RunContext:
    """What the machine knows about the current run; replaced, never mutated.

    Attributes:
        config_yaml: The training configuration, kept in memory (never a file).
        more_configs: The pipeline's next configurations, trained in order.
        model_types: The model type of each configuration (may be empty).
        track: A prediction job's ``TrackJobSpec`` fields, instead of training.
        labels_path: The labels file on the labeler's machine.
        worker_id: The chosen worker.
        room: The worker's room.
        worker_uploads: The worker has an upload area (sending is offered).
        checked_labels_path: The labels path the worker is asked about next: the
            labeler's path, or the last worker path the labeler typed.
        corrections_used: How many worker paths for the labels were typed.
        path_mappings: Client path → worker path, sent in the job spec.
        uploaded: The labels file was sent to the worker (its stored path is
            the mapping of ``labels_path``).
        report: The worker's last path report.
        job_id: The worker's job id once accepted.
        result: The worker's ``JOB_COMPLETE`` payload once done.
        last_error: The last popup shown, for the adapter and for tests.
    """

    config_yaml: str | None = field(default=None, repr=False)
    more_configs: tuple[str, ...] = field(default=(), repr=False)
    model_types: tuple[str, ...] = ()
    track: Mapping[str, Any] | None = field(default=None, repr=False)
    labels_path: str | None = None
    worker_id: str | None = None
    room: str | None = None
    worker_uploads: bool = False
    checked_labels_path: str | None = None
    corrections_used: int = 0
    path_mappings: Mapping[str, str] = field(default_factory=_empty_mapping)
    uploaded: bool = False
    report: PathReport | None = None
    job_id: str | None = None
    result: Mapping[str, Any] = field(default_factory=_empty_mapping)
    last_error: ShowError | None = None


class PresubmitMachine:
    """The **Run Remotely** flow of the training dialog, as a pure state machine.

    Attributes:
        max_labels_corrections: How many worker paths for the labels file the
            labeler may type before the run is given up.
    """

    def __init__(
        self,
        *,
        max_labels_corrections: int = MAX_LABELS_CORRECTIONS,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    ) -> None:
        """Start in :attr:`PresubmitState.IDLE` with an empty run.

        Args:
            max_labels_corrections: See the class attribute.
            logger: Where to log transitions at DEBUG; bind it to the dialog or
                job with a ``LoggerAdapter``. Defaults to this module's logger.

        Raises:
            ValueError: ``max_labels_corrections`` is negative.
        """
        if max_labels_corrections < 0:
            raise ValueError("max_labels_corrections must be >= 0")
        self.max_labels_corrections = max_labels_corrections
        self._log = logger if logger is not None else _log
        self._state = PresubmitState.IDLE
        self._run = RunContext()
        self._effects: list[Effect] = []

    def __repr__(self) -> str:
        return f"<PresubmitMachine state={self._state.value}>"

    # ------------------------------------------------------------------ queries

    @property
    def state(self) -> PresubmitState:
        """The current state."""
        return self._state

    @property
    def run(self) -> RunContext:
        """What is known about the current run."""
        return self._run

    @property
    def corrections_left(self) -> int:
        """How many more worker paths for the labels file the labeler may try."""
        return max(0, self.max_labels_corrections - self._run.corrections_used)

    @property
    def finished(self) -> bool:
        """True in a terminal state: nothing more will be accepted."""
        return self._state in TERMINAL_STATES

    def legal_events(self) -> frozenset[type[Event]]:
        """The event types the current state accepts (for some guard outcome)."""
        return frozenset(trigger_event_type(t) for t in TRANSITIONS[self._state])

    # ------------------------------------------------------------------ I/O-free API

    def receive(self, event: Event) -> PresubmitState:
        """Apply ``event``: change state and queue the effects of the transition.

        Args:
            event: What happened.

        Returns:
            The new state.

        Raises:
            LocalProtocolError: ``event`` is not legal in the current state (or,
                for a guarded event, not with this outcome); nothing changed.
        """
        source = self._state
        self._log.debug("< %s", type(event).__name__)
        guard = self._guard(event)
        trigger: Trigger = type(event) if guard is None else (type(event), guard)
        target = TRANSITIONS[source].get(trigger)
        if target is None:
            outcome = f" ({guard.value})" if guard is not None else ""
            error = LocalProtocolError(
                f"{type(event).__name__}{outcome} is not allowed in state "
                f"{source.value}"
            )
            self._log.debug("! %s", error.message)
            raise error
        run = self._absorb(event)
        effects = self._effects_for(source, target, event, guard, run)
        errors = [e for e in effects if isinstance(e, ShowError)]
        if errors:
            run = dataclasses.replace(run, last_error=errors[-1])
        # Commit only now: everything above is free of side effects.
        self._run = run
        self._state = target
        self._effects.extend(effects)
        if target is not source:
            self._log.debug("= %s", target.value)
        for effect in effects:
            self._log.debug("> %s", type(effect).__name__)
        return target

    def effects(self) -> list[Effect]:
        """Return the effects queued so far, oldest first, and forget them."""
        effects, self._effects = self._effects, []
        return effects

    # ------------------------------------------------------------------ internals

    def _guard(self, event: Event) -> Guard | None:
        """Which branch ``event`` takes; ``None`` for unguarded event types."""
        if isinstance(event, RunRequested):
            if not event.worker_id:
                return Guard.NO_WORKER
            if not event.labels_path:
                return Guard.NO_LABELS
            if event.config_yaml:
                return Guard.CONFIG_READY
            return Guard.NEEDS_CONFIG
        if isinstance(event, AuthChecked):
            return Guard.VALID if event.ok and not event.expired else Guard.LOGIN_NEEDED
        if isinstance(event, LoginFinished):
            return Guard.OK if event.ok else Guard.FAILED
        if isinstance(event, PathsChecked):
            report = event.report
            if report.labels_unreadable:
                return Guard.LABELS_UNREADABLE
            if not report.labels_found:
                if self.corrections_left > 0:
                    return Guard.LABELS_MISSING
                return Guard.CORRECTIONS_EXHAUSTED
            return Guard.VIDEOS_MISSING if report.missing else Guard.ALL_FOUND
        return None

    def _absorb(self, event: Event) -> RunContext:
        """The run context after a legal ``event`` (the current one is untouched)."""
        run = self._run
        replace = dataclasses.replace
        if isinstance(event, RunRequested):
            if event.worker_id and event.labels_path:
                return RunContext(
                    config_yaml=event.config_yaml or None,
                    labels_path=event.labels_path,
                    worker_id=event.worker_id,
                    room=event.room,
                    worker_uploads=event.worker_uploads,
                    checked_labels_path=event.labels_path,
                )
            return run
        if isinstance(event, ConfigBuilt):
            return replace(
                run,
                config_yaml=event.config_yaml,
                more_configs=event.more_configs,
                model_types=event.model_types,
                track=event.track,
            )
        if isinstance(event, LabelsPathEntered):
            return replace(
                run,
                checked_labels_path=event.path,
                corrections_used=run.corrections_used + 1,
            )
        if isinstance(event, PathsChecked):
            report = event.report
            mappings = dict(run.path_mappings)
            if report.labels_found and report.labels_path != run.labels_path:
                # The labeler's path is what the spec names; the worker swaps it.
                mappings[run.labels_path or ""] = report.labels_path
            return replace(run, report=report, path_mappings=MappingProxyType(mappings))
        if isinstance(event, UploadFinished):
            # The package holds the frames, or each video was sent with it:
            # no video is left to find.
            mappings = {
                **run.path_mappings,
                **event.mappings,
                run.labels_path or "": event.worker_path,
            }
            return replace(run, uploaded=True, path_mappings=MappingProxyType(mappings))
        if isinstance(event, PathsResolved):
            mappings = {**run.path_mappings, **event.mappings}
            return replace(run, path_mappings=MappingProxyType(mappings))
        if isinstance(event, JobAccepted):
            return replace(run, job_id=event.job_id)
        if isinstance(event, JobCompleted):
            return replace(run, result=MappingProxyType(dict(event.result)))
        return run

    def _effects_for(
        self,
        source: PresubmitState,
        target: PresubmitState,
        event: Event,
        guard: Guard | None,
        run: RunContext,
    ) -> list[Effect]:
        """The effects of taking ``source -> target`` on ``event``, in order."""
        S = PresubmitState
        out: list[Effect] = []

        # Leaving: stop what the source state had started.
        if source in _RESOLVING and not isinstance(event, _RESOLUTION_ANSWERS):
            out.append(HidePathResolution())
        if source is S.LOGGING_IN and not isinstance(event, LoginFinished):
            out.append(CancelLogin())
        if source is S.UPLOADING:
            out.append(StopUpload())
        if (
            source in CONNECTED_STATES
            and target not in CONNECTED_STATES
            and target is not S.RUNNING
        ):
            out.append(Disconnect())

        # Entering: start the target state's step.
        if target is S.IDLE:
            error = self._error_for(source, event, guard, run)
            if error is not None:
                out.append(error)
            out.append(ReturnToDialog())
        elif target is S.BUILDING_CONFIG:
            out.append(BuildConfig(labels_path=run.labels_path or ""))
        elif target is S.CHECKING_AUTH:
            out.append(CheckAuth())
        elif target is S.LOGGING_IN:
            expired = isinstance(event, LoginExpired) or (
                isinstance(event, AuthChecked) and event.expired
            )
            reason = messages.LOGIN_EXPIRED if expired else messages.LOGIN_PROMPT
            out.append(OpenLogin(reason=reason))
        elif target is S.CONNECTING:
            out.append(ConnectWorker(worker_id=run.worker_id or "", room=run.room))
        elif target is S.CHECKING_PATHS:
            out.append(CheckPaths(labels_path=run.checked_labels_path or ""))
        elif target in _RESOLVING and run.report is not None:
            left = max(0, self.max_labels_corrections - run.corrections_used)
            out.append(
                ShowPathResolution(
                    report=run.report,
                    corrections_left=left,
                    can_upload=run.worker_uploads,
                )
            )
        elif target is S.UPLOADING:
            out.append(
                UploadLabels(
                    labels_path=run.labels_path or "",
                    with_videos=isinstance(event, UploadRequested)
                    and event.with_videos,
                )
            )
        elif target is S.SUBMITTING:
            out.append(SubmitJob(spec=self._spec(run)))
        elif target is S.RUNNING:
            if source is S.SUBMITTING:
                out.append(CloseDialog())
                out.append(StartProgressFeed(job_id=run.job_id or ""))
            elif isinstance(event, ProgressReceived):
                out.append(ForwardProgress(event=event.event))
        elif target is S.DONE:
            model_path = run.result.get("output_path")
            out.append(
                TrainingDone(
                    model_path=str(model_path) if model_path else None,
                    result=run.result,
                )
            )
        elif target is S.FAILED:
            error = self._error_for(source, event, guard, run)
            if error is not None:
                out.append(error)
        return out

    @staticmethod
    def _spec(run: RunContext) -> dict[str, Any]:
        """The ``TrainJobSpec`` (or ``TrackJobSpec``) dict for ``JOB_SUBMIT``
        (PROTOCOL.md B §4.5)."""
        if run.track is not None:
            return {
                **dict(run.track),
                "type": "track",
                "data_path": run.labels_path or "",
                "path_mappings": dict(run.path_mappings),
            }
        spec: dict[str, Any] = {"type": "train"}
        if run.more_configs:
            spec["config_contents"] = [run.config_yaml or "", *run.more_configs]
        else:
            spec["config_content"] = run.config_yaml or ""
        if run.model_types:
            spec["model_types"] = list(run.model_types)
        spec["labels_path"] = run.labels_path or ""
        spec["path_mappings"] = dict(run.path_mappings)
        return spec

    def _error_for(
        self,
        source: PresubmitState,
        event: Event,
        guard: Guard | None,
        run: RunContext,
    ) -> ShowError | None:
        """The popup that explains why the flow stopped; ``None`` when silent."""
        m = messages
        if isinstance(event, RunRequested):
            if guard is Guard.NO_WORKER:
                return ShowError(m.NO_WORKER_TITLE, m.NO_WORKER_SELECTED)
            return ShowError(m.NO_LABELS_TITLE, m.NO_LABELS)
        if isinstance(event, ConfigFailed):
            return ShowError(
                m.CONFIG_FAILED_TITLE, m.config_failed(event.reason), event.reason
            )
        if isinstance(event, LoginFinished):
            return ShowError(m.LOGIN_REQUIRED_TITLE, m.LOGIN_REQUIRED)
        if isinstance(event, ConnectFailed):
            return ShowError(m.CONNECT_FAILED_TITLE, m.CONNECT_FAILED, event.reason)
        if isinstance(event, NoWorkerAvailable):
            return ShowError(m.NO_WORKER_TITLE, m.NO_WORKER_AVAILABLE, event.reason)
        if isinstance(event, PathsChecked) and event.report.labels_unreadable:
            return ShowError(
                m.LABELS_UNREADABLE_TITLE,
                m.LABELS_UNREADABLE,
                f"{event.report.labels_path}: {event.report.error}",
            )
        if isinstance(event, PathsChecked):
            return ShowError(
                m.LABELS_NOT_FOUND_TITLE,
                m.labels_not_found(run.corrections_used),
                event.report.labels_path,
            )
        if isinstance(event, ChannelLost):
            if source is PresubmitState.RUNNING:
                text = m.CONNECTION_LOST_DURING_TRAINING
            else:
                text = m.CONNECTION_LOST
            return ShowError(m.CONNECTION_LOST_TITLE, text, event.reason)
        if isinstance(event, UploadFailed):
            return ShowError(
                m.UPLOAD_FAILED_TITLE, m.upload_failed(event.code), event.reason
            )
        if isinstance(event, JobRejected):
            return ShowError(m.JOB_REJECTED_TITLE, m.job_rejected(event.errors))
        if isinstance(event, JobFailed):
            return ShowError(
                m.JOB_FAILED_TITLE,
                m.job_failed(event.details),
                m.format_details(event.details),
            )
        if isinstance(event, TimedOut):
            return ShowError(m.TIMED_OUT_TITLE, m.timed_out(source), event.step)
        # ResolutionCancelled, UploadCancelled: the labeler chose to stop; no
        # popup.
        return None
