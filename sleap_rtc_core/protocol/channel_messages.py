"""Data-channel messages of structured jobs and post-training inference.

One frozen, slotted dataclass per ``TYPE`` (PROTOCOL.md B §4.3, §4.5, §5, and
our ``JOB_ATTACH`` / ``JOB_STATE``). The framing rules they share are in
:mod:`._channel_base`; the codec (and ``LogLine`` for unframed worker output) is
:mod:`.channel`; the ``AUTH_*`` messages are in :mod:`.channel_auth`. Class
names are the ``TYPE`` in CamelCase plus ``Msg``, which keeps them apart from the
signaling and negotiation messages of the same name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from ..errors import RemoteProtocolError
from . import json_text
from ._channel_args import NAME, OBJECT, OPT_NAME, TEXT, Arg, local
from ._channel_base import ChannelMessage, ChannelMessageType, IdPrefixed, JsonMessage
from ._schema import JSONObject, extra_field
from .states import JobState

__all__ = [
    "JOB_STATE_UNKNOWN",
    "ControlCommandMsg",
    "CrMsg",
    "InferenceBeginMsg",
    "InferenceCompleteMsg",
    "InferenceFailedMsg",
    "InferenceLogMsg",
    "InferenceProgressMsg",
    "InferenceSkippedMsg",
    "JobAcceptedMsg",
    "JobAttachMsg",
    "JobCancelMsg",
    "JobCompleteMsg",
    "JobFailedMsg",
    "JobLogMsg",
    "JobProgressMsg",
    "JobRejectedMsg",
    "JobStateMsg",
    "JobStopMsg",
    "JobSubmitMsg",
    "ModelTypeMsg",
    "ProgressReportMsg",
    "RawJsonMessage",
    "ZmqCtrlMsg",
]

JOB_STATE_UNKNOWN = "unknown"
"""The ``JOB_STATE`` state of a job the worker does not know."""


@dataclass(frozen=True, slots=True)
class RawJsonMessage(ChannelMessage):
    """Base of ``TYPE::{raw}`` messages whose JSON text is forwarded verbatim
    (progress events, ZMQ control strings), so it is republished byte for byte.

    Attributes:
        raw: The text after ``TYPE::``, exactly as received (may be empty or
            not JSON at all: we forward, we do not judge).
    """

    ARGS: ClassVar[tuple[tuple[str, Arg], ...]] = (("raw", TEXT),)

    raw: str

    @property
    def data(self) -> dict[str, Any] | str:
        """``raw`` parsed if it is a JSON object, else ``raw`` itself."""
        try:
            return json_text.loads_object(self.raw)
        except RemoteProtocolError:
            return self.raw

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Self:
        """The message carrying ``data`` as compact JSON.

        Raises:
            LocalProtocolError: when ``data`` holds something JSON cannot.
        """
        return cls(json_text.dumps(data))


# --------------------------------------------------------------------------
# Structured jobs (B §4.5, §5)


@dataclass(frozen=True, slots=True)
class JobSubmitMsg(ChannelMessage):
    """``JOB_SUBMIT::{client_job_id}::{spec_json}`` (spec validated elsewhere)."""

    TYPE = ChannelMessageType.JOB_SUBMIT
    ARGS = (
        ("client_job_id", NAME),
        ("spec", OBJECT),
    )

    client_job_id: str
    spec: dict[str, Any]


@dataclass(frozen=True, slots=True)
class JobStopMsg(ChannelMessage):
    """``JOB_STOP``: graceful stop (SIGINT; checkpoints are kept)."""

    TYPE = ChannelMessageType.JOB_STOP


@dataclass(frozen=True, slots=True)
class JobCancelMsg(ChannelMessage):
    """``JOB_CANCEL``: hard cancel (SIGTERM, then SIGKILL)."""

    TYPE = ChannelMessageType.JOB_CANCEL


@dataclass(frozen=True, slots=True)
class JobAttachMsg(ChannelMessage):
    """``JOB_ATTACH::{job_id}::{job_secret}``: reattach to a job after
    reconnecting, proving it is ours with the secret ``JOB_ACCEPTED`` gave.

    The worker answers :class:`JobStateMsg` and, while the job runs, resumes
    sending its progress on this channel, which may then stop, cancel and
    download it. Without the right secret the job is ``unknown``.
    """

    TYPE = ChannelMessageType.JOB_ATTACH
    ARGS = (("job_id", NAME), ("job_secret", OPT_NAME))
    MIN_ARGS = 1

    job_id: str
    job_secret: str | None = None


@dataclass(frozen=True, slots=True)
class ControlCommandMsg(RawJsonMessage):
    """``CONTROL_COMMAND::{raw}``: a ZMQ control string for the trainer, verbatim
    (e.g. ``{"command":"stop"}``)."""

    TYPE = ChannelMessageType.CONTROL_COMMAND


@dataclass(frozen=True, slots=True)
class ZmqCtrlMsg(RawJsonMessage):
    """``ZMQ_CTRL::{raw}``: legacy spelling of ``CONTROL_COMMAND``."""

    TYPE = ChannelMessageType.ZMQ_CTRL


@dataclass(frozen=True, slots=True)
class JobAcceptedMsg(ChannelMessage):
    """``JOB_ACCEPTED::{job_id}`` to a 0.0.7 client, and
    ``JOB_ACCEPTED::{job_id}::{job_secret}`` to a current one: the job's id
    and the capability that owns it (attach, stop, cancel, download from
    another channel). Peer ids never are."""

    TYPE = ChannelMessageType.JOB_ACCEPTED
    ARGS = (("job_id", NAME), ("job_secret", OPT_NAME))
    MIN_ARGS = 1

    job_id: str
    job_secret: str | None = None


@dataclass(frozen=True, slots=True)
class JobRejectedMsg(IdPrefixed):
    """``JOB_REJECTED::{client_job_id}::{"errors":[{field,message,code?,path?}]}``.

    Attributes:
        errors: Field errors as sent (see ``jobspec_check.FieldError.from_dict``).
        client_job_id: The id of the ``JOB_SUBMIT``; ``None`` if not given.
    """

    TYPE = ChannelMessageType.JOB_REJECTED
    ID_FIELD = "client_job_id"
    ID_AS_PREFIX = True
    errors: list[dict[str, Any]] = field(default_factory=list)
    client_job_id: str | None = None
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class JobProgressMsg(IdPrefixed):
    """``JOB_PROGRESS::{"epoch":n,"loss"?:x,"val_loss"?:y}`` parsed from stdout."""

    TYPE = ChannelMessageType.JOB_PROGRESS
    NON_NEGATIVE = ("epoch",)
    epoch: int | None = None
    loss: float | None = None
    val_loss: float | None = None
    job_id: str | None = None
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class JobCompleteMsg(IdPrefixed):
    """``JOB_COMPLETE::{"job_id","job_type","duration_seconds","success",
    "stopped_early","output_path"?}``, one per model."""

    TYPE = ChannelMessageType.JOB_COMPLETE
    NON_NEGATIVE = ("duration_seconds",)
    job_id: str
    job_type: str | None = None
    success: bool = True
    duration_seconds: float | None = None
    stopped_early: bool | None = None
    output_path: str | None = None
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class JobFailedMsg(IdPrefixed):
    """``JOB_FAILED::{"job_id","job_type","exit_code"?,"duration_seconds"?,
    "message"}`` (cancel: message ``Job cancelled by user``)."""

    TYPE = ChannelMessageType.JOB_FAILED
    NON_NEGATIVE = ("duration_seconds",)
    message: str = ""
    job_id: str | None = None
    job_type: str | None = None
    exit_code: int | None = None
    duration_seconds: float | None = None
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class JobLogMsg(ChannelMessage):
    """``JOB_LOG::{line}``: a track job's output line, verbatim (may itself be
    ``CR::…`` or ``[stderr] …``)."""

    TYPE = ChannelMessageType.JOB_LOG
    ARGS = (("line", TEXT),)

    line: str


@dataclass(frozen=True, slots=True)
class JobStateMsg(JsonMessage):
    """``JOB_STATE::{json}``: the worker's answer to ``JOB_ATTACH``.

    Attributes:
        job_id: The job asked about.
        state: A :class:`~.states.JobState` value, or ``unknown``
            (:data:`JOB_STATE_UNKNOWN`) if the worker has no such job.
        job_type: ``train`` or ``track``.
        model_index: 0-based index of the model now training (pipelines).
        model_count: Models in the pipeline.
        model_type: The current model type (as ``MODEL_TYPE`` would say).
        last_progress: The latest ``JOB_PROGRESS`` object.
        progress: Buffered ``PROGRESS_REPORT`` texts, oldest first, verbatim, so
            the client can replay them into LossViewer.
        dropped: Progress texts dropped from the front of a full buffer.
        result: The ``JOB_COMPLETE`` / ``JOB_FAILED`` object once final.
    """

    TYPE = ChannelMessageType.JOB_STATE
    NON_NEGATIVE = ("model_index", "model_count", "dropped")
    job_id: str
    state: str
    job_type: str | None = None
    model_index: int | None = None
    model_count: int | None = None
    model_type: str | None = None
    last_progress: dict[str, Any] | None = None
    progress: list[str] = field(default_factory=list)
    dropped: int = 0
    result: dict[str, Any] | None = None
    extra: JSONObject = extra_field()

    def _check(self) -> None:
        if not self.job_id:
            raise local("JOB_STATE needs a job_id")
        if self.state != JOB_STATE_UNKNOWN and self.state not in _JOB_STATES:
            raise local(f"JOB_STATE state must be a JobState or unknown: {self.state}")
        if (
            self.model_index is not None
            and self.model_count is not None
            and self.model_index >= self.model_count
        ):
            raise local("JOB_STATE model_index must be < model_count")

    @property
    def job_state(self) -> JobState | None:
        """``state`` as a :class:`~.states.JobState`; ``None`` for ``unknown``."""
        return None if self.state == JOB_STATE_UNKNOWN else JobState(self.state)


_JOB_STATES = frozenset(s.value for s in JobState)


@dataclass(frozen=True, slots=True)
class ProgressReportMsg(RawJsonMessage):
    """``PROGRESS_REPORT::{zmq msg}``: a sleap-nn progress event (B §5), kept as
    the exact text received so it can be republished unchanged (``data`` gives
    the event as a dict)."""

    TYPE = ChannelMessageType.PROGRESS_REPORT


@dataclass(frozen=True, slots=True)
class ModelTypeMsg(ChannelMessage):
    """``MODEL_TYPE::{type}``: the pipeline moved on to a model of this type."""

    TYPE = ChannelMessageType.MODEL_TYPE
    ARGS = (("model_type", NAME),)

    model_type: str


@dataclass(frozen=True, slots=True)
class CrMsg(ChannelMessage):
    """``CR::<text>``: a carriage-return (tqdm) update replacing the last line."""

    TYPE = ChannelMessageType.CR
    ARGS = (("text", TEXT),)

    text: str


# --------------------------------------------------------------------------
# Post-training inference (B §4.5)


@dataclass(frozen=True, slots=True)
class InferenceSkippedMsg(JsonMessage):
    """``INFERENCE_SKIPPED::{"reason"}`` (cancelled, training_failed, …)."""

    TYPE = ChannelMessageType.INFERENCE_SKIPPED
    reason: str
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class InferenceBeginMsg(JsonMessage):
    """``INFERENCE_BEGIN::{}`` (a bare ``INFERENCE_BEGIN`` is accepted)."""

    TYPE = ChannelMessageType.INFERENCE_BEGIN
    PAYLOAD_OPTIONAL = True
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class InferenceProgressMsg(RawJsonMessage):
    """``INFERENCE_PROGRESS::{json line}``, verbatim."""

    TYPE = ChannelMessageType.INFERENCE_PROGRESS


@dataclass(frozen=True, slots=True)
class InferenceLogMsg(ChannelMessage):
    """``INFERENCE_LOG::{line}``."""

    TYPE = ChannelMessageType.INFERENCE_LOG
    ARGS = (("line", TEXT),)

    line: str


@dataclass(frozen=True, slots=True)
class InferenceCompleteMsg(JsonMessage):
    """``INFERENCE_COMPLETE::{"predictions_path"}``, or the legacy bare
    ``INFERENCE_COMPLETE`` (sent when there is nothing to say)."""

    TYPE = ChannelMessageType.INFERENCE_COMPLETE
    PAYLOAD_OPTIONAL = True
    BARE_WHEN_EMPTY = True
    predictions_path: str | None = None
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class InferenceFailedMsg(JsonMessage):
    """``INFERENCE_FAILED::{"error"}``."""

    TYPE = ChannelMessageType.INFERENCE_FAILED
    error: str
    extra: JSONObject = extra_field()
