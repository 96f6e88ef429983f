"""Events the presubmission machine receives and effects it asks the app to perform.

The machine is sans-I/O (STYLE.md conventions 1 and 11): the Qt adapter performs
every :class:`Effect` and feeds the outcome back as an :class:`Event`. Both are
frozen, slotted dataclasses, one class per kind, as h11's ``_events.py`` does, so
that the transition table in :mod:`.states` can be keyed by event *type*.

Events that carry secrets or large texts (a JWT, the training YAML) keep them out
of ``repr`` so that logging an event never leaks them.

The path report (:class:`PathReport`) is the core client's, plain data too: what
the worker said about the labels file and each video, with suggestions for what
is missing (the CLI's ``check`` reads the same report).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# One report type, the core client's (pure data, no I/O here).
from sleap_rtc_core.client.path_check import PathReport, VideoCheck, VideoStatus

__all__ = [
    "EFFECT_TYPES",
    "EVENT_TYPES",
    "AuthChecked",
    "BuildConfig",
    "CancelLogin",
    "ChannelLost",
    "CheckAuth",
    "CheckPaths",
    "CloseDialog",
    "ConfigBuilt",
    "ConfigFailed",
    "ConnectFailed",
    "ConnectWorker",
    "Connected",
    "Disconnect",
    "Effect",
    "Event",
    "ForwardProgress",
    "HidePathResolution",
    "JobAccepted",
    "JobCompleted",
    "JobFailed",
    "JobRejected",
    "LabelsPathEntered",
    "LoginExpired",
    "LoginFinished",
    "NoWorkerAvailable",
    "OpenLogin",
    "PathReport",
    "PathsChecked",
    "PathsResolved",
    "ProgressReceived",
    "ResolutionCancelled",
    "ReturnToDialog",
    "RunRequested",
    "ShowError",
    "ShowPathResolution",
    "StartProgressFeed",
    "StopUpload",
    "SubmitJob",
    "TimedOut",
    "TrainingDone",
    "UploadCancelled",
    "UploadFailed",
    "UploadFinished",
    "UploadLabels",
    "UploadRequested",
    "UserCancelled",
    "VideoCheck",
    "VideoStatus",
]


def _require_text(value: object, name: str) -> str:
    """Return ``value`` if it is a non-empty string, else raise.

    Raises:
        TypeError: ``value`` is not a string.
        ValueError: ``value`` is empty.
    """
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty")
    return value


def _frozen_mapping(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Copy ``data`` into a dict so that later edits by the caller do not leak in.

    Raises:
        TypeError: ``data`` is not a mapping.
    """
    if not isinstance(data, Mapping):
        raise TypeError(f"{name} must be a mapping, not {type(data).__name__}")
    return dict(data)


# --------------------------------------------------------------------------- events


class Event:
    """Base of everything the machine receives (one subclass per kind)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class RunRequested(Event):
    """The labeler pressed **Run Remotely**.

    Attributes:
        config_yaml: The training configuration as YAML text, when the dialog
            already has it; ``None`` makes the machine ask for it (``BuildConfig``).
        labels_path: The labels file on the labeler's machine; ``None`` or empty
            when the project was never saved.
        worker_id: The chosen worker's peer id; ``None`` or empty when none was
            chosen (or none is available to choose).
        room: The room the worker is in.
        worker_uploads: The worker published an upload area
            (``accepts_uploads``): only then is sending the labels offered.
    """

    config_yaml: str | None = field(repr=False)
    labels_path: str | None
    worker_id: str | None
    room: str | None = None
    worker_uploads: bool = False


@dataclass(frozen=True, slots=True)
class ConfigBuilt(Event):
    """The dialog turned its options into a training configuration.

    Attributes:
        config_yaml: The configuration as YAML text; it stays in memory and travels
            in the job spec as ``config_content``.
        more_configs: The next models of a pipeline (top-down, bottom-up), trained
            after the first one in the same job (``config_contents``).
        model_types: The model type of each config, in order (SLEAP's head
            names, e.g. ``centroid``, ``centered_instance``); empty when unknown.
        track: Instead of training: the fields of a ``TrackJobSpec`` (models,
            frames); the labels file and the path mappings are added on submit.
    """

    config_yaml: str = field(repr=False)
    more_configs: tuple[str, ...] = field(default=(), repr=False)
    model_types: tuple[str, ...] = ()
    track: Mapping[str, Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.track is not None:  # a prediction job: no training config
            return
        _require_text(self.config_yaml, "config_yaml")
        for text in self.more_configs:
            _require_text(text, "more_configs")
        if self.model_types and len(self.model_types) != 1 + len(self.more_configs):
            raise ValueError("model_types must name one type per config")


@dataclass(frozen=True, slots=True)
class ConfigFailed(Event):
    """The dialog's options do not make a valid configuration.

    Attributes:
        reason: Why, in words the labeler can act on.
    """

    reason: str


@dataclass(frozen=True, slots=True)
class AuthChecked(Event):
    """The stored credentials were checked.

    Attributes:
        ok: A JWT is present and not expired.
        expired: A JWT is present but expired (changes the login prompt only).
    """

    ok: bool
    expired: bool = False


@dataclass(frozen=True, slots=True)
class LoginFinished(Event):
    """The browser login ended.

    Attributes:
        ok: The login succeeded; ``False`` for a failure or a cancel.
        jwt: The new token, when the adapter wants to hand it over; never logged.
    """

    ok: bool
    jwt: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class LoginExpired(Event):
    """The signaling server refused the token part-way through the flow."""


@dataclass(frozen=True, slots=True)
class Connected(Event):
    """The data channel to the worker is open and authenticated."""


@dataclass(frozen=True, slots=True)
class ConnectFailed(Event):
    """The worker could not be reached.

    Attributes:
        reason: Technical detail for the popup's details section.
    """

    reason: str = ""


@dataclass(frozen=True, slots=True)
class NoWorkerAvailable(Event):
    """The chosen worker is gone, or the room has no worker that can take the job.

    Attributes:
        reason: Technical detail for the popup's details section.
    """

    reason: str = ""


@dataclass(frozen=True, slots=True)
class PathsChecked(Event):
    """The worker reported what it can see of the labels file and videos.

    Attributes:
        report: The report.
    """

    report: PathReport

    def __post_init__(self) -> None:
        if not isinstance(self.report, PathReport):
            raise TypeError("report must be a PathReport")


@dataclass(frozen=True, slots=True)
class LabelsPathEntered(Event):
    """The labeler typed (or browsed to) where the labels file is on the worker.

    Attributes:
        path: The worker path to check next.
    """

    path: str

    def __post_init__(self) -> None:
        _require_text(self.path, "path")


@dataclass(frozen=True, slots=True)
class PathsResolved(Event):
    """The labeler resolved every missing video in the path resolution dialog.

    Attributes:
        mappings: Client path → worker path, merged into the job's
            ``path_mappings``.
    """

    mappings: Mapping[str, str]

    def __post_init__(self) -> None:
        object.__setattr__(self, "mappings", _frozen_mapping(self.mappings, "mappings"))


@dataclass(frozen=True, slots=True)
class ResolutionCancelled(Event):
    """The labeler closed the path resolution dialog without resolving."""


@dataclass(frozen=True, slots=True)
class UploadRequested(Event):
    """The labeler chose to send the labels file to the worker (which cannot
    see it) instead of naming where it is there.

    Attributes:
        with_videos: Send the ``.slp`` as it is and its videos, not a package.
    """

    with_videos: bool = False


@dataclass(frozen=True, slots=True)
class UploadFinished(Event):
    """The worker holds the labels file (sent now, or it had it already).

    Attributes:
        worker_path: The stored file on the worker; the job's labels map to it.
        cached: The worker had it: nothing was sent.
        mappings: More of the job's mappings (the videos sent with it).
    """

    worker_path: str
    cached: bool = False
    mappings: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require_text(self.worker_path, "worker_path")


@dataclass(frozen=True, slots=True)
class UploadFailed(Event):
    """The upload failed: the worker refused it (no upload area, quota) or
    it could not be read or sent.

    Attributes:
        reason: What went wrong, for the popup's details.
        code: The worker's refusal code (``NO_UPLOAD_AREA``, ``QUOTA_EXCEEDED``
            …), or ``None`` when the failure was here.
    """

    reason: str = ""
    code: str | None = None


@dataclass(frozen=True, slots=True)
class UploadCancelled(Event):
    """The labeler stopped the upload (the worker keeps what it verified, so
    the next try resumes)."""


@dataclass(frozen=True, slots=True)
class JobAccepted(Event):
    """The worker answered ``JOB_ACCEPTED``.

    Attributes:
        job_id: The worker's job id (``job_`` + 8 hex).
    """

    job_id: str

    def __post_init__(self) -> None:
        _require_text(self.job_id, "job_id")


@dataclass(frozen=True, slots=True)
class JobRejected(Event):
    """The worker answered ``JOB_REJECTED`` with field-level errors.

    Attributes:
        errors: Each a mapping with ``field`` and ``message``, and optionally
            ``code`` and ``path``, as the worker sent them.
    """

    errors: Sequence[Mapping[str, Any]]

    def __post_init__(self) -> None:
        if isinstance(self.errors, Mapping | str) or not isinstance(
            self.errors, Sequence
        ):
            raise TypeError("errors must be a sequence of mappings")
        object.__setattr__(
            self,
            "errors",
            tuple(_frozen_mapping(e, "each error") for e in self.errors),
        )


@dataclass(frozen=True, slots=True)
class ChannelLost(Event):
    """The data channel closed under us.

    Attributes:
        reason: Technical detail for the popup's details section.
    """

    reason: str = ""


@dataclass(frozen=True, slots=True)
class ProgressReceived(Event):
    """A progress event arrived from the running job.

    Attributes:
        event: The progress event as received (e.g. a sleap-nn ZMQ message).
    """

    event: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class JobFailed(Event):
    """The worker sent ``JOB_FAILED``.

    Attributes:
        details: The worker's payload (``message``, ``exit_code``, ...).
    """

    details: Mapping[str, Any]

    def __post_init__(self) -> None:
        object.__setattr__(self, "details", _frozen_mapping(self.details, "details"))


@dataclass(frozen=True, slots=True)
class JobCompleted(Event):
    """The worker sent ``JOB_COMPLETE``.

    Attributes:
        result: The worker's payload (``job_id``, ``output_path``, ...).
    """

    result: Mapping[str, Any]

    def __post_init__(self) -> None:
        object.__setattr__(self, "result", _frozen_mapping(self.result, "result"))


@dataclass(frozen=True, slots=True)
class UserCancelled(Event):
    """The labeler pressed Cancel or closed the dialog before the job was accepted."""


@dataclass(frozen=True, slots=True)
class TimedOut(Event):
    """A network step took longer than the adapter allows.

    The adapter owns the timers (STYLE.md convention 3); the machine only decides
    what a timeout means in the current state.

    Attributes:
        step: Which operation timed out, for the popup's details.
    """

    step: str = ""


EVENT_TYPES: tuple[type[Event], ...] = (
    RunRequested,
    ConfigBuilt,
    ConfigFailed,
    AuthChecked,
    LoginFinished,
    LoginExpired,
    Connected,
    ConnectFailed,
    NoWorkerAvailable,
    PathsChecked,
    LabelsPathEntered,
    PathsResolved,
    ResolutionCancelled,
    UploadRequested,
    UploadFinished,
    UploadFailed,
    UploadCancelled,
    JobAccepted,
    JobRejected,
    ChannelLost,
    ProgressReceived,
    JobFailed,
    JobCompleted,
    UserCancelled,
    TimedOut,
)
"""Every event kind, in flow order."""


# --------------------------------------------------------------------------- effects


class Effect:
    """Base of everything the machine asks the app to do (one subclass per kind)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class BuildConfig(Effect):
    """Turn the dialog's options into YAML; answer ``ConfigBuilt``/``ConfigFailed``.

    Attributes:
        labels_path: The labels file the configuration trains on.
    """

    labels_path: str


@dataclass(frozen=True, slots=True)
class CheckAuth(Effect):
    """Check the stored JWT; answer ``AuthChecked``."""


@dataclass(frozen=True, slots=True)
class OpenLogin(Effect):
    """Open the browser login; answer ``LoginFinished``.

    Attributes:
        reason: The sentence to show next to the login prompt.
    """

    reason: str


@dataclass(frozen=True, slots=True)
class CancelLogin(Effect):
    """Stop waiting for the browser login started by ``OpenLogin``."""


@dataclass(frozen=True, slots=True)
class ConnectWorker(Effect):
    """Connect and authenticate to the worker; answer ``Connected`` or a failure.

    Attributes:
        worker_id: The worker's peer id.
        room: The room it is in.
    """

    worker_id: str
    room: str | None = None


@dataclass(frozen=True, slots=True)
class CheckPaths(Effect):
    """Ask the worker about the labels file and its videos; answer ``PathsChecked``.

    Attributes:
        labels_path: The path to check (``USE_WORKER_PATH``).
    """

    labels_path: str


@dataclass(frozen=True, slots=True)
class ShowPathResolution(Effect):
    """Open the path resolution dialog.

    It answers ``LabelsPathEntered`` or (with ``can_upload``)
    ``UploadRequested`` (labels missing),
    ``PathsResolved`` (videos missing) or ``ResolutionCancelled``, and closes
    itself on any of them.

    Attributes:
        report: What is missing, with suggestions.
        corrections_left: How many more labels paths the labeler may try.
        can_upload: The worker has an upload area: offer to send the labels.
    """

    report: PathReport
    corrections_left: int
    can_upload: bool = False


@dataclass(frozen=True, slots=True)
class HidePathResolution(Effect):
    """Close the path resolution dialog: something else ended the flow."""


@dataclass(frozen=True, slots=True)
class UploadLabels(Effect):
    """Send the labels file to the worker's upload area, showing progress
    with a Cancel; answer ``UploadFinished``, ``UploadFailed`` or
    ``UploadCancelled``.

    Attributes:
        labels_path: The labels file here (a ``.slp`` with external videos
            goes as a package of its labeled frames, or as it is with its
            videos).
        with_videos: Send it as it is, with its videos.
    """

    labels_path: str
    with_videos: bool = False


@dataclass(frozen=True, slots=True)
class StopUpload(Effect):
    """The flow left the upload: stop it if it still runs, hide its progress."""


@dataclass(frozen=True, slots=True)
class SubmitJob(Effect):
    """Send ``JOB_SUBMIT``; answer ``JobAccepted`` or ``JobRejected``.

    Attributes:
        spec: The ``TrainJobSpec`` as a dict: ``type``, ``config_content``,
            ``labels_path`` and ``path_mappings``.
    """

    spec: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class ShowError(Effect):
    """Show an error popup over the dialog.

    Attributes:
        title: The popup's title.
        message: What happened and what to do, in one or a few sentences.
        details: Technical detail for an expandable section (may be empty).
    """

    title: str
    message: str
    details: str = ""


@dataclass(frozen=True, slots=True)
class CloseDialog(Effect):
    """Close the training dialog: the job was accepted."""


@dataclass(frozen=True, slots=True)
class StartProgressFeed(Effect):
    """Start streaming the job's progress (e.g. into SLEAP's LossViewer).

    From here on the progress feed owns the data channel: the machine never asks to
    close it, because post-training inference may still stream after the job
    completes.

    Attributes:
        job_id: The worker's job id.
    """

    job_id: str


@dataclass(frozen=True, slots=True)
class ForwardProgress(Effect):
    """Hand one progress event to the progress view.

    Attributes:
        event: The progress event as received.
    """

    event: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class TrainingDone(Effect):
    """Tell the labeler training finished and where the model is.

    Attributes:
        model_path: Where the worker wrote the model, when it said.
        result: The worker's full ``JOB_COMPLETE`` payload.
    """

    model_path: str | None
    result: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Disconnect(Effect):
    """Close the data channel and drop any network work still in flight."""


@dataclass(frozen=True, slots=True)
class ReturnToDialog(Effect):
    """Give the training dialog back to the labeler (re-enable its controls)."""


EFFECT_TYPES: tuple[type[Effect], ...] = (
    BuildConfig,
    CheckAuth,
    OpenLogin,
    CancelLogin,
    ConnectWorker,
    CheckPaths,
    ShowPathResolution,
    HidePathResolution,
    UploadLabels,
    StopUpload,
    SubmitJob,
    ShowError,
    CloseDialog,
    StartProgressFeed,
    ForwardProgress,
    TrainingDone,
    Disconnect,
    ReturnToDialog,
)
"""Every effect kind."""
