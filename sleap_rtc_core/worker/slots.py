"""The worker's job bookkeeping: slots, reservations and the status they imply.

Sans-I/O (STYLE.md 1): :class:`JobSlots` is fed decoded negotiation messages
(PROTOCOL.md A.2, B §3) with the peer that sent them, and the things an adapter
notices (time passing, a job ending, a peer leaving). Each call returns what to do
as :class:`SlotOutcome` values (a reply for the sender, if any); the status change
to publish is pulled with :meth:`JobSlots.take_patch`. It never awaits and never
reads a clock it was not given: timers live in the adapter, which calls
:meth:`JobSlots.expire` at :meth:`JobSlots.next_deadline`.

A worker has ``max_concurrent_jobs`` slots (one per GPU on a multi-GPU box). A
slot is held by one job, owned by the client that asked for it::

    job_request ──accept──▶ RESERVED ──job_assignment (owner)──▶ BUSY
                              │ expire, job_cancel (owner),      │ finish(job_id,
                              │ owner gone, maintenance          │        outcome)
                              └─────────────▶ free ◀─────────────┘

* A request is accepted only when the worker is not in maintenance, has a free
  slot, the client holds no other pending reservation here, and the job fits:
  ``requirements.min_gpu_memory_mb`` ≤ the GPU's memory, ``config.model_type``
  (when given) in ``supported_models``, ``job_type`` in ``supported_job_types``.
  Otherwise it is rejected with a reason: ``maintenance``, ``busy``,
  ``insufficient_memory`` or ``incompatible``.
* A reservation lasts ``reservation_timeout`` seconds unless its owner assigns
  the job. ``job_assignment`` and ``job_cancel`` are honoured only from the
  owner; from anyone else they are ignored (and say so).
* Cancelling a running job does not free its slot: the adapter must really stop
  the process, then call :meth:`JobSlots.finish` with ``cancelled``. Every outcome
  (success, failure, cancel, owner gone, expiry) ends in a free slot.

The published ``status`` is derived, never stored:

* ``maintenance`` when maintenance is set and no job runs (a running job keeps
  the worker ``busy`` until it ends; pausing drops the reservations at once);
* ``available`` while a slot is free;
* ``busy`` when every slot is held and at least one job runs;
* ``reserved`` when every slot is held by a reservation.

For one slot this is exactly the reference's ``available → reserved → busy →
available`` (the ``WORKER_TRANSITIONS`` table of :mod:`..protocol.states`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from ..errors import InvalidState
from ..protocol.negotiation import (
    AppMessage,
    JobAssignment,
    JobCancel,
    JobCancelled,
    JobFailed,
    JobRequest,
    JobResponse,
    JobType,
    RejectReason,
)
from ..protocol.states import JOB_TERMINAL_STATES, JobState, WorkerStatus
from .capabilities import WorkerCapabilities

__all__ = [
    "DEFAULT_RESERVATION_TIMEOUT",
    "Action",
    "Clock",
    "Estimator",
    "NOT_RESERVED_CODE",
    "IgnoreReason",
    "JobSlots",
    "Slot",
    "SlotOutcome",
    "SlotState",
    "estimate_duration_minutes",
]

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
"""Seconds on a monotonic clock (``time.monotonic`` in production)."""

Estimator = Callable[[JobRequest], float]
"""Minutes a job would take on this worker."""

DEFAULT_RESERVATION_TIMEOUT = 30.0
"""Seconds an accepted request holds a slot without a ``job_assignment``."""

NOT_RESERVED_CODE = "NOT_RESERVED"
"""``job_failed.error.code`` for an assignment of a job this worker does not hold."""


class SlotState(StrEnum):
    """What a held slot is doing."""

    RESERVED = "reserved"
    """Accepted a request; waiting for the owner's ``job_assignment``."""
    BUSY = "busy"
    """The job is assigned (and runs, or is about to)."""


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
        job_id: The client's job id.
        owner: Peer id of the client that reserved it.
        state: Reserved or busy.
        job_type: Training or inference.
        model_type: ``config.model_type`` of the request, if any.
        reserved_at: Clock time of the accepting response.
        expires_at: When the reservation lapses; ``None`` once busy.
        assigned_at: Clock time of the assignment; ``None`` while reserved.
        cancel_requested: The owner asked to cancel the running job.
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


def _number(value: Any) -> float | None:
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
        frames = _number(request.dataset_info.get("frame_count"))
        frames = 1000.0 if frames is None or frames < 0 else frames
        return max(1.0, frames / 100.0)
    epochs = _number(request.config.get("epochs"))
    if epochs is None:
        epochs = _number(request.config.get("max_epochs"))
    epochs = 100.0 if epochs is None or epochs < 0 else epochs
    return epochs * 0.5


class JobSlots:
    """The slots of one worker and the status they imply (see module docstring).

    Attributes:
        max_concurrent_jobs: Number of slots.
        capabilities: What requests are checked against.
        reservation_timeout: Seconds a reservation lasts.
    """

    def __init__(
        self,
        max_concurrent_jobs: int,
        capabilities: WorkerCapabilities,
        clock: Clock,
        reservation_timeout: float = DEFAULT_RESERVATION_TIMEOUT,
        *,
        estimator: Estimator = estimate_duration_minutes,
        free_memory_mb: Callable[[], int | None] | None = None,
    ) -> None:
        """Create the bookkeeping with every slot free and status ``available``.

        Args:
            max_concurrent_jobs: Number of slots, at least 1.
            capabilities: GPU facts and supported models and job types.
            clock: Monotonic seconds; every time stamp comes from it.
            reservation_timeout: Seconds a reservation lasts, > 0.
            estimator: Minutes a request would take here.
            free_memory_mb: Free GPU memory now for ``worker_info`` (e.g.
                ``TorchGpuProbe.free_memory_mb``); default: the GPU's memory.

        Raises:
            ValueError: for fewer than one slot or a non-positive timeout.
        """
        if max_concurrent_jobs < 1:
            raise ValueError(
                f"max_concurrent_jobs must be >= 1, not {max_concurrent_jobs}"
            )
        if not reservation_timeout > 0:
            raise ValueError(
                f"reservation_timeout must be > 0, not {reservation_timeout}"
            )
        self.max_concurrent_jobs = max_concurrent_jobs
        self.capabilities = capabilities
        self.reservation_timeout = float(reservation_timeout)
        self._clock = clock
        self._estimator = estimator
        self._free_memory_mb = free_memory_mb
        self._slots: dict[str, Slot] = {}  # job_id -> slot, in insertion order
        self._maintenance = False
        self._published: dict[str, Any] = self.status_properties()
        self._last_status = self.status

    # ------------------------------------------------------------------ views

    @property
    def status(self) -> WorkerStatus:
        """The status to publish, derived from the slots (module docstring)."""
        busy = any(s.state is SlotState.BUSY for s in self._slots.values())
        if self._maintenance:
            return WorkerStatus.BUSY if busy else WorkerStatus.MAINTENANCE
        if len(self._slots) < self.max_concurrent_jobs:
            return WorkerStatus.AVAILABLE
        return WorkerStatus.BUSY if busy else WorkerStatus.RESERVED

    @property
    def maintenance(self) -> bool:
        """Whether the owner took the worker out of service."""
        return self._maintenance

    @property
    def free_slots(self) -> int:
        """Slots neither reserved nor busy."""
        return self.max_concurrent_jobs - len(self._slots)

    @property
    def slots(self) -> tuple[Slot, ...]:
        """The held slots, oldest first."""
        return tuple(self._slots.values())

    def __iter__(self) -> Iterator[Slot]:
        return iter(self.slots)

    def job(self, job_id: str) -> Slot | None:
        """The slot holding ``job_id``, if any."""
        return self._slots.get(job_id)

    def next_deadline(self) -> float | None:
        """The earliest reservation expiry, for the adapter's timer."""
        times = [s.expires_at for s in self._slots.values() if s.expires_at is not None]
        return min(times) if times else None

    def worker_info(self) -> dict[str, Any]:
        """The ``worker_info`` of an accepting ``job_response``."""
        busy = sum(1 for s in self._slots.values() if s.state is SlotState.BUSY)
        free_mb = self._free_memory_mb() if self._free_memory_mb else None
        gpu = self.capabilities.gpu
        return {
            "gpu_utilization": busy / self.max_concurrent_jobs,
            "available_memory_mb": gpu.memory_mb if free_mb is None else free_mb,
            "gpu_model": gpu.model,
            "gpu_memory_mb": gpu.memory_mb,
            "free_slots": self.free_slots,
        }

    # ------------------------------------------------------- published state

    def _properties(self) -> dict[str, Any]:
        busy = [s.job_id for s in self._slots.values() if s.state is SlotState.BUSY]
        pending = [
            s.job_id for s in self._slots.values() if s.state is SlotState.RESERVED
        ]
        return {
            "status": self.status.value,
            "current_job_id": busy[0] if busy else None,
            "pending_job_id": pending[0] if pending else None,
            "free_slots": self.free_slots,
        }

    def status_properties(self) -> dict[str, Any]:
        """The bookkeeping's metadata properties now (``None`` values left out),
        for a ``register`` message (see ``worker_metadata(extra_properties=)``).
        """
        return {k: v for k, v in self._properties().items() if v is not None}

    def take_patch(self) -> dict[str, Any] | None:
        """The ``update_metadata`` to send for changes since the last call.

        Returns:
            ``{"properties": {...}}`` with the keys that changed (a ``null``
            value deletes a key that no longer applies), or ``None`` when
            nothing changed. The changes count as published.
        """
        now = self._properties()
        diff = {
            k: v
            for k, v in now.items()
            if v != self._published.get(k)
            and not (v is None and k not in self._published)
        }
        self._published = {k: v for k, v in now.items() if v is not None}
        return {"properties": diff} if diff else None

    def mark_published(self) -> dict[str, Any]:
        """Count the current state as published (after a fresh ``register`` that
        carried :meth:`status_properties`) and return those properties."""
        props = self.status_properties()
        self._published = dict(props)
        return props

    def _note(self) -> None:
        status = self.status
        if status is not self._last_status:
            logger.debug("= %s", status.value)
            self._last_status = status

    # ---------------------------------------------------------------- inputs

    def _reject(
        self, peer_id: str, request: JobRequest, reason: RejectReason, message: str
    ) -> SlotOutcome:
        logger.debug(
            "> job_response %s to %s: rejected (%s)", request.job_id, peer_id, reason
        )
        reply = JobResponse(
            job_id=request.job_id,
            accepted=False,
            reason=reason.value,
            extra={"message": message},
        )
        return SlotOutcome(
            Action.REJECTED, request.job_id, peer_id, reply=reply, reason=reason.value
        )

    def _accept_response(self, slot: Slot, request: JobRequest) -> JobResponse:
        return JobResponse(
            job_id=slot.job_id,
            accepted=True,
            estimated_start_time_sec=0,
            estimated_duration_minutes=float(self._estimator(request)),
            worker_info=self.worker_info(),
        )

    def _incompatibility(self, request: JobRequest) -> tuple[RejectReason, str] | None:
        caps = self.capabilities
        need = request.requirements.get("min_gpu_memory_mb")
        if need is not None:
            need_mb = _number(need)
            if need_mb is None:
                return (
                    RejectReason.INCOMPATIBLE,
                    "requirements.min_gpu_memory_mb must be a number",
                )
            if need_mb > caps.gpu.memory_mb:
                return (
                    RejectReason.INSUFFICIENT_MEMORY,
                    f"needs {need_mb:g} MB of GPU memory, this worker has "
                    f"{caps.gpu.memory_mb} MB",
                )
        model_type = request.config.get("model_type")
        if model_type is not None and model_type not in caps.supported_models:
            return (
                RejectReason.INCOMPATIBLE,
                f"model type {str(model_type)[:64]!r} is not supported",
            )
        if request.job_type not in caps.supported_job_types:
            return (
                RejectReason.INCOMPATIBLE,
                f"job type {request.job_type.value!r} is not supported",
            )
        return None

    def handle_request(self, peer_id: str, request: JobRequest) -> SlotOutcome:
        """Answer a ``job_request``; accepting reserves a slot for ``peer_id``.

        A repeated request for a job the same peer already holds is answered
        again without taking another slot (an accepted reservation is not
        extended).

        Returns:
            ``ACCEPTED`` or ``REJECTED``, with the ``job_response`` to send.
        """
        held = self._slots.get(request.job_id)
        if held is not None:
            if held.owner == peer_id and held.state is SlotState.RESERVED:
                return SlotOutcome(
                    Action.ACCEPTED,
                    held.job_id,
                    peer_id,
                    slot=held,
                    reply=self._accept_response(held, request),
                )
            return self._reject(
                peer_id, request, RejectReason.BUSY, "this job id is already taken here"
            )
        if self._maintenance:
            return self._reject(
                peer_id, request, RejectReason.MAINTENANCE, "the worker is paused"
            )
        if self.free_slots == 0:
            return self._reject(
                peer_id, request, RejectReason.BUSY, "every job slot is in use"
            )
        if any(
            s.owner == peer_id and s.state is SlotState.RESERVED
            for s in self._slots.values()
        ):
            return self._reject(
                peer_id,
                request,
                RejectReason.BUSY,
                "you already hold a reservation on this worker",
            )
        problem = self._incompatibility(request)
        if problem is not None:
            return self._reject(peer_id, request, *problem)
        now = self._clock()
        model_type = request.config.get("model_type")
        slot = Slot(
            job_id=request.job_id,
            owner=peer_id,
            state=SlotState.RESERVED,
            job_type=request.job_type,
            model_type=model_type if isinstance(model_type, str) else None,
            reserved_at=now,
            expires_at=now + self.reservation_timeout,
        )
        self._slots[slot.job_id] = slot
        self._note()
        logger.debug("> job_response %s to %s: accepted", slot.job_id, peer_id)
        return SlotOutcome(
            Action.ACCEPTED,
            slot.job_id,
            peer_id,
            slot=slot,
            reply=self._accept_response(slot, request),
        )

    def handle_assignment(self, peer_id: str, assignment: JobAssignment) -> SlotOutcome:
        """Take a ``job_assignment``: the owner's reserved job becomes busy.

        A lapsed reservation (past its expiry, even if :meth:`expire` was not
        called yet) is released rather than assigned.

        Returns:
            ``ASSIGNED``; or ``IGNORED`` with ``not_owner`` (a stranger; no
            reply), ``already_assigned`` (no reply) or ``not_reserved`` (with a
            ``job_failed`` reply so the client stops waiting); or ``RELEASED``
            for a lapsed reservation (with the same ``job_failed`` reply).
        """
        job_id = assignment.job_id
        slot = self._slots.get(job_id)
        if slot is None:
            return SlotOutcome(
                Action.IGNORED,
                job_id,
                peer_id,
                reply=_not_reserved(job_id),
                reason=IgnoreReason.NOT_RESERVED.value,
            )
        if slot.owner != peer_id:
            logger.debug("! job_assignment %s from %s: not the owner", job_id, peer_id)
            return SlotOutcome(
                Action.IGNORED, job_id, peer_id, reason=IgnoreReason.NOT_OWNER.value
            )
        if slot.state is SlotState.BUSY:
            return SlotOutcome(
                Action.IGNORED,
                job_id,
                peer_id,
                slot=slot,
                reason=IgnoreReason.ALREADY_ASSIGNED.value,
            )
        now = self._clock()
        if slot.expires_at is not None and now >= slot.expires_at:
            del self._slots[job_id]
            self._note()
            return SlotOutcome(
                Action.RELEASED,
                job_id,
                peer_id,
                slot=slot,
                reply=_not_reserved(job_id),
                reason="expired",
            )
        slot = replace(slot, state=SlotState.BUSY, expires_at=None, assigned_at=now)
        self._slots[job_id] = slot
        self._note()
        return SlotOutcome(Action.ASSIGNED, job_id, peer_id, slot=slot)

    def handle_cancel(self, peer_id: str, cancel: JobCancel) -> SlotOutcome:
        """Take a ``job_cancel``; honoured only from the job's owner.

        Returns:
            ``RELEASED`` for a reservation (slot free, ``job_cancelled`` reply);
            ``CANCELLING`` for a running job (stop it, then
            ``finish(job_id, cancelled)``); or ``IGNORED`` with ``not_owner``,
            ``not_reserved`` or ``already_cancelling`` (no reply).
        """
        job_id = cancel.job_id
        slot = self._slots.get(job_id)
        if slot is None:
            return SlotOutcome(
                Action.IGNORED, job_id, peer_id, reason=IgnoreReason.NOT_RESERVED.value
            )
        if slot.owner != peer_id:
            logger.debug("! job_cancel %s from %s: not the owner", job_id, peer_id)
            return SlotOutcome(
                Action.IGNORED, job_id, peer_id, reason=IgnoreReason.NOT_OWNER.value
            )
        if slot.state is SlotState.RESERVED:
            del self._slots[job_id]
            self._note()
            return SlotOutcome(
                Action.RELEASED,
                job_id,
                peer_id,
                slot=slot,
                reply=JobCancelled(job_id=job_id),
                reason="cancelled",
            )
        if slot.cancel_requested:
            return SlotOutcome(
                Action.IGNORED,
                job_id,
                peer_id,
                slot=slot,
                reason=IgnoreReason.ALREADY_CANCELLING.value,
            )
        slot = replace(slot, cancel_requested=True)
        self._slots[job_id] = slot
        return SlotOutcome(Action.CANCELLING, job_id, peer_id, slot=slot)

    def expire(self, now: float | None = None) -> list[SlotOutcome]:
        """Release every reservation whose time is up.

        Args:
            now: Clock time to judge by; default: the clock.

        Returns:
            One ``RELEASED`` outcome (reason ``expired``) per lapsed reservation,
            oldest first; nothing to send.
        """
        when = self._clock() if now is None else now
        lapsed = [
            s
            for s in self._slots.values()
            if s.expires_at is not None and when >= s.expires_at
        ]
        for slot in lapsed:
            del self._slots[slot.job_id]
            logger.debug("= reservation %s of %s expired", slot.job_id, slot.owner)
        self._note()
        return [
            SlotOutcome(Action.RELEASED, s.job_id, s.owner, slot=s, reason="expired")
            for s in lapsed
        ]

    def peer_gone(self, peer_id: str) -> list[SlotOutcome]:
        """A peer left the room (``peer_left``, or a send to it failed).

        Its reservations are released at once. Its running jobs are reported
        ``ORPHANED`` and keep their slots: the adapter decides whether the job
        goes on (its data channel may outlive the signaling socket) or is
        stopped and finished.
        """
        out: list[SlotOutcome] = []
        for slot in list(self._slots.values()):
            if slot.owner != peer_id:
                continue
            if slot.state is SlotState.RESERVED:
                del self._slots[slot.job_id]
                out.append(
                    SlotOutcome(
                        Action.RELEASED,
                        slot.job_id,
                        peer_id,
                        slot=slot,
                        reason="owner_gone",
                    )
                )
            else:
                out.append(
                    SlotOutcome(Action.ORPHANED, slot.job_id, peer_id, slot=slot)
                )
        self._note()
        return out

    def finish(self, job_id: str, outcome: JobState | str) -> SlotOutcome:
        """A job ended (any outcome): free its slot.

        Args:
            job_id: The job.
            outcome: ``succeeded``, ``failed`` or ``cancelled``.

        Returns:
            ``FINISHED`` with the freed slot; for ``cancelled`` the reply is the
            owner's ``job_cancelled``.

        Raises:
            InvalidState: when no slot holds ``job_id`` or ``outcome`` is not a
                final job state; nothing changes.
        """
        try:
            state = JobState(outcome)
        except ValueError:
            raise InvalidState(f"{outcome!r} is not a job outcome") from None
        if state not in JOB_TERMINAL_STATES:
            raise InvalidState(f"{state.value!r} is not a final job state")
        slot = self._slots.pop(job_id, None)
        if slot is None:
            raise InvalidState(f"no slot holds job {job_id!r}")
        self._note()
        reply = JobCancelled(job_id=job_id) if state is JobState.CANCELLED else None
        return SlotOutcome(
            Action.FINISHED,
            job_id,
            slot.owner,
            slot=slot,
            reply=reply,
            reason=state.value,
        )

    def set_maintenance(self, on: bool) -> list[SlotOutcome]:
        """Take the worker out of service (``on``) or put it back.

        Pausing releases every reservation at once and refuses new requests;
        running jobs go on, and the status turns ``maintenance`` when the last
        one finishes.

        Returns:
            One ``RELEASED`` outcome (reason ``maintenance``) per dropped
            reservation.
        """
        self._maintenance = on
        out: list[SlotOutcome] = []
        if on:
            for slot in list(self._slots.values()):
                if slot.state is SlotState.RESERVED:
                    del self._slots[slot.job_id]
                    out.append(
                        SlotOutcome(
                            Action.RELEASED,
                            slot.job_id,
                            slot.owner,
                            slot=slot,
                            reason="maintenance",
                        )
                    )
        self._note()
        return out

    def owned_by(self, peer_id: str) -> Mapping[str, Slot]:
        """The slots ``peer_id`` holds, by job id."""
        return {j: s for j, s in self._slots.items() if s.owner == peer_id}


def _not_reserved(job_id: str) -> JobFailed:
    return JobFailed(
        job_id=job_id,
        error={
            "code": NOT_RESERVED_CODE,
            "message": "this worker holds no reservation for the job "
            "(it expired or was never accepted); ask again",
            "recoverable": True,
        },
    )
