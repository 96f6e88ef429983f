"""One slot of the worker's job ledger, and what an input to the ledger did.

Pure data and the small rules about one slot (who may cancel it, whether its job
is past its reservation, the typed ``job_failed`` replies, the rough duration
estimate of a request), so that :mod:`.ledger` reads as the decisions alone.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..protocol.negotiation import (
    AppMessage,
    JobFailed,
    JobRequest,
    JobType,
)

__all__ = [
    "DEFAULT_RESERVATION_TIMEOUT",
    "JOB_REJECTED_CODE",
    "NOT_RESERVED_CODE",
    "NO_SUBMIT_CODE",
    "Action",
    "Clock",
    "Estimator",
    "IgnoreReason",
    "Slot",
    "SlotOutcome",
    "SlotState",
    "estimate_duration_minutes",
    "finite_number",
    "holds_secret",
    "is_running",
    "job_failed",
    "not_reserved",
]

Clock = Callable[[], float]
"""Seconds on a monotonic clock (``time.monotonic`` in production)."""

Estimator = Callable[[JobRequest], float]
"""Minutes a job would take on this worker."""

DEFAULT_RESERVATION_TIMEOUT = 30.0
"""Seconds an accepted request holds a slot without a ``job_assignment``."""

NOT_RESERVED_CODE = "NOT_RESERVED"
"""``job_failed.error.code`` for an assignment of a job this worker does not hold."""

NO_SUBMIT_CODE = "NO_SUBMIT"
"""``job_failed.error.code`` for an assigned job whose ``JOB_SUBMIT`` never came."""

JOB_REJECTED_CODE = "JOB_REJECTED"
"""``job_failed.error.code`` for a negotiated job whose spec the worker refused."""


class SlotState(StrEnum):
    """What a held slot is doing."""

    RESERVED = "reserved"
    """Accepted a request; waiting for the owner's ``job_assignment``."""
    ASSIGNED = "assigned"
    """Assigned by its owner; waiting for the owner's ``JOB_SUBMIT``."""
    BUSY = "busy"
    """The job runs (or is about to): submitted, or assigned to a runner."""


class Action(StrEnum):
    """What a :class:`SlotOutcome` asks the adapter to do."""

    ACCEPTED = "accepted"
    """A request was accepted and a slot reserved; send ``reply``."""
    REJECTED = "rejected"
    """A request was declined; send ``reply``."""
    ASSIGNED = "assigned"
    """The owner assigned its job: expect its offer, then run the job."""
    CANCELLING = "cancelling"
    """The owner cancelled a running job: stop it, then ``finish(cancelled)``."""
    RELEASED = "released"
    """A reservation ended without a job (cancel, expiry, owner gone,
    maintenance); the slot is free. Send ``reply`` if any."""
    ORPHANED = "orphaned"
    """The owner of a running job left. The slot stays held: keep the job while
    its data channel lives, or stop it and ``finish`` it."""
    FINISHED = "finished"
    """A job ended and its slot is free. Send ``reply`` if any (the adapter sends
    ``job_complete``/``job_failed`` itself, with the results it has)."""
    IGNORED = "ignored"
    """Nothing changed; ``reason`` says why. Send ``reply`` if any."""
    ADMITTED = "admitted"
    """A submission took a slot (its own reservation, or a free one) under
    ``job_id``: prepare and start it, then ``finish`` it (or ``withdraw`` it
    if it never starts)."""
    REFUSED = "refused"
    """A submission found no slot; ``reason`` says why (``maintenance``,
    ``busy``)."""


class IgnoreReason(StrEnum):
    """Why an assignment or cancel changed nothing."""

    NOT_RESERVED = "not_reserved"
    """No such job here (never accepted, expired, or already over)."""
    NOT_OWNER = "not_owner"
    """The job belongs to another peer."""
    ALREADY_ASSIGNED = "already_assigned"
    """A repeated ``job_assignment``."""
    ALREADY_CANCELLING = "already_cancelling"
    """A repeated ``job_cancel`` for a job being stopped."""


@dataclass(frozen=True, slots=True)
class Slot:
    """One held slot.

    Attributes:
        job_id: The job's one id: the client's (negotiated) or the worker's
            (submitted straight over a channel).
        owner: Peer id of the client that reserved or submitted it.
        state: Reserved, assigned or busy.
        job_type: Training or inference.
        model_type: ``config.model_type`` of the request, if any.
        reserved_at: Clock time of the accepting response (or the submission).
        expires_at: When the reservation or assignment lapses; ``None`` once
            busy.
        assigned_at: Clock time of the assignment; ``None`` while reserved.
        cancel_requested: The owner asked to cancel the running job.
        negotiated: The slot came from a ``job_request`` (its owner follows it
            over signaling too).
        submitted: A ``JOB_SUBMIT`` runs in it (the job lives on its data
            channel and outlives its owner's signaling socket).
        secret: The submitted job's capability (``JOB_ACCEPTED`` gave it to
            the submitter); a ``job_cancel`` of a submitted job must carry it.
    """

    job_id: str
    owner: str
    state: SlotState
    job_type: JobType
    model_type: str | None
    reserved_at: float
    expires_at: float | None
    assigned_at: float | None = None
    cancel_requested: bool = False
    negotiated: bool = True
    submitted: bool = False
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class SlotOutcome:
    """What one input did, and what to send.

    Attributes:
        action: What happened.
        job_id: The job concerned.
        peer_id: The peer the input came from (the one to reply to); for
            expiry and finish, the job's owner.
        slot: The slot after the change (busy/reserved), or as it was when it
            was freed; ``None`` when no slot was involved.
        reply: A negotiation message to send to ``peer_id``, or ``None``.
        reason: A reject reason, an :class:`IgnoreReason`, or why a slot was
            released (``expired``, ``cancelled``, ``owner_gone``,
            ``maintenance``), or the finish outcome.
    """

    action: Action
    job_id: str
    peer_id: str
    slot: Slot | None = None
    reply: AppMessage | None = None
    reason: str | None = None


def holds_secret(slot: Slot, secret: str | None) -> bool:
    """Whether a ``job_cancel`` carrying ``secret`` may cancel ``slot``: any
    from its owner before it is submitted (nothing runs yet), only the job's
    own secret after."""
    if slot.secret is None:
        return True
    return isinstance(secret, str) and hmac.compare_digest(
        slot.secret.encode(), secret.encode("utf-8", "surrogatepass")
    )


def is_running(slot: Slot) -> bool:
    """Whether the slot's job is past its reservation (assigned or running)."""
    return slot.state is not SlotState.RESERVED


def finite_number(value: Any) -> float | None:
    """``value`` as a float when it is a finite number (not a bool), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def estimate_duration_minutes(request: JobRequest) -> float:
    """The reference's rough estimate of how long a job takes.

    Training: half a minute per epoch (``config.epochs`` or
    ``config.max_epochs``, default 100). Inference: a minute per 100 frames
    (``dataset_info.frame_count``, default 1000), at least one minute.
    """
    if request.job_type is JobType.INFERENCE:
        frames = finite_number(request.dataset_info.get("frame_count"))
        frames = 1000.0 if frames is None or frames < 0 else frames
        return max(1.0, frames / 100.0)
    epochs = finite_number(request.config.get("epochs"))
    if epochs is None:
        epochs = finite_number(request.config.get("max_epochs"))
    epochs = 100.0 if epochs is None or epochs < 0 else epochs
    return epochs * 0.5


def job_failed(job_id: str, code: str, message: str, **extra: Any) -> JobFailed:
    return JobFailed(job_id=job_id, error={"code": code, "message": message, **extra})


def not_reserved(job_id: str) -> JobFailed:
    return job_failed(
        job_id,
        NOT_RESERVED_CODE,
        "this worker holds no reservation for the job "
        "(it expired or was never accepted); ask again",
        recoverable=True,
    )
