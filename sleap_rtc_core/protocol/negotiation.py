"""Job negotiation messages carried in ``peer_message.payload`` (PROTOCOL.md A.2, B §3).

The discriminator is ``payload.app_message_type``; the server never inspects it.
Unknown keys are kept in ``extra`` (older and newer peers add fields), but every
known field is type-checked.

Flow: client ``job_request`` → worker ``job_response`` (accepted: the worker is
reserved) → client ``job_assignment`` (worker busy) → ``job_status`` … →
``job_complete`` / ``job_failed``; ``job_cancel`` → ``job_cancelled``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from ..errors import ErrorCode, RemoteProtocolError
from ._schema import JSONObject, WireObject, extra_field, wire_field

__all__ = [
    "APP_MESSAGE_CLASSES",
    "AppError",
    "AppMessage",
    "AppMessageType",
    "JobAssignment",
    "JobCancel",
    "JobCancelled",
    "JobComplete",
    "JobFailed",
    "JobRequest",
    "JobResponse",
    "JobStatus",
    "JobType",
    "RejectReason",
    "WorkerHeartbeat",
    "decode_app_message",
]


class AppMessageType(StrEnum):
    """Values of ``payload.app_message_type``."""

    JOB_REQUEST = "job_request"
    JOB_RESPONSE = "job_response"
    JOB_ASSIGNMENT = "job_assignment"
    JOB_STATUS = "job_status"
    JOB_COMPLETE = "job_complete"
    JOB_FAILED = "job_failed"
    JOB_CANCEL = "job_cancel"
    JOB_CANCELLED = "job_cancelled"
    WORKER_HEARTBEAT = "worker_heartbeat"
    APP_ERROR = "app_error"


class JobType(StrEnum):
    """What a job asks the worker to do."""

    TRAINING = "training"
    INFERENCE = "inference"


class RejectReason(StrEnum):
    """Why a worker declines a ``job_request``."""

    BUSY = "busy"
    INCOMPATIBLE = "incompatible"
    INSUFFICIENT_MEMORY = "insufficient_memory"
    INCOMPATIBLE_VERSION = "incompatible_version"
    MAINTENANCE = "maintenance"


@dataclass(frozen=True, slots=True)
class AppMessage(WireObject):
    """Base of negotiation payloads; ``TYPE`` names ``app_message_type``."""

    TYPE: ClassVar[AppMessageType]
    RESERVED_KEYS: ClassVar[frozenset[str]] = frozenset({"app_message_type"})

    def to_dict(self) -> JSONObject:
        """The payload object to put in a ``peer_message``."""
        out: JSONObject = {"app_message_type": self.TYPE.value}
        out.update(WireObject.to_dict(self))
        return out


@dataclass(frozen=True, slots=True)
class JobRequest(AppMessage):
    """Client asks a worker whether it would take a job.

    Attributes:
        dataset_info: ``{format, path?, frame_count?, estimated_size_mb?}``.
        config: ``{model_type?, epochs?, batch_size?, ...}``.
        requirements: ``{min_gpu_memory_mb?, estimated_duration_minutes?}``.
        timeout_ms: How long the client waits for answers.
    """

    TYPE = AppMessageType.JOB_REQUEST
    job_id: str = wire_field(non_empty=True)
    job_type: JobType = JobType.TRAINING
    dataset_info: JSONObject = wire_field(default_factory=dict)
    config: JSONObject = wire_field(default_factory=dict)
    requirements: JSONObject = wire_field(default_factory=dict)
    timeout_ms: int | None = None
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class JobResponse(AppMessage):
    """Worker's answer; accepting reserves the worker until assignment or expiry."""

    TYPE = AppMessageType.JOB_RESPONSE
    job_id: str = wire_field(non_empty=True)
    accepted: bool = False
    reason: str | None = None
    estimated_start_time_sec: float | None = None
    estimated_duration_minutes: float | None = None
    worker_info: JSONObject | None = None
    retry_after_sec: float | None = None
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class JobAssignment(AppMessage):
    """Client hands the job to the worker it picked."""

    TYPE = AppMessageType.JOB_ASSIGNMENT
    job_id: str = wire_field(non_empty=True)
    initiate_connection: bool = True
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class JobStatus(AppMessage):
    """Worker reports progress over signaling (for clients without a channel)."""

    TYPE = AppMessageType.JOB_STATUS
    job_id: str = wire_field(non_empty=True)
    status: str = "running"
    progress: float | None = None
    message: str | None = None
    details: JSONObject | None = None
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class JobComplete(AppMessage):
    """The job finished successfully."""

    TYPE = AppMessageType.JOB_COMPLETE
    job_id: str = wire_field(non_empty=True)
    status: str = "completed"
    result: JSONObject = wire_field(default_factory=dict)
    transfer_method: str | None = "webrtc_datachannel"
    ready_for_download: bool | None = True
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class JobFailed(AppMessage):
    """The job failed; ``error`` is ``{code, message, recoverable}``."""

    TYPE = AppMessageType.JOB_FAILED
    job_id: str = wire_field(non_empty=True)
    status: str = "failed"
    error: JSONObject = wire_field(default_factory=dict)
    partial_results: JSONObject | None = None
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class JobCancel(AppMessage):
    """Client releases a reservation or cancels its running job; a submitted
    job is cancelled only with the ``job_secret`` its ``JOB_ACCEPTED`` gave."""

    TYPE = AppMessageType.JOB_CANCEL
    job_id: str = wire_field(non_empty=True)
    reason: str | None = None
    job_secret: str | None = None
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class JobCancelled(AppMessage):
    """Worker confirms a cancel once the job's processes are gone."""

    TYPE = AppMessageType.JOB_CANCELLED
    job_id: str = wire_field(non_empty=True)
    status: str = "cancelled"
    cleanup_complete: bool = True
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class WorkerHeartbeat(AppMessage):
    """Documented upstream only; accepted and ignored."""

    TYPE = AppMessageType.WORKER_HEARTBEAT
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class AppError(AppMessage):
    """Documented upstream only; an application-level error notice."""

    TYPE = AppMessageType.APP_ERROR
    message: str | None = None
    extra: JSONObject = extra_field()


APP_MESSAGE_CLASSES: dict[str, type[AppMessage]] = {
    cls.TYPE.value: cls
    for cls in (
        JobRequest,
        JobResponse,
        JobAssignment,
        JobStatus,
        JobComplete,
        JobFailed,
        JobCancel,
        JobCancelled,
        WorkerHeartbeat,
        AppError,
    )
}
"""``app_message_type`` → class."""


def decode_app_message(payload: Any) -> AppMessage:
    """The typed negotiation message in a ``peer_message`` payload.

    Raises:
        RemoteProtocolError: ``INVALID_MESSAGE`` for a payload that is not an
            object or has bad fields, ``UNKNOWN_MESSAGE_TYPE`` for an unknown
            ``app_message_type``.
    """
    if not isinstance(payload, Mapping):
        raise RemoteProtocolError(
            "payload is not an object", code=ErrorCode.INVALID_MESSAGE
        )
    kind = payload.get("app_message_type")
    if not isinstance(kind, str):
        raise RemoteProtocolError(
            "payload has no string 'app_message_type'",
            code=ErrorCode.INVALID_MESSAGE,
        )
    cls = APP_MESSAGE_CLASSES.get(kind)
    if cls is None:
        raise RemoteProtocolError(
            f"unknown app_message_type {kind[:64]!r}",
            code=ErrorCode.UNKNOWN_MESSAGE_TYPE,
        )
    return cls.from_dict(payload, what=kind)
