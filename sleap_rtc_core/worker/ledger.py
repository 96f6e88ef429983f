"""The worker's job ledger: every job, its slot, and the status they imply.

Sans-I/O (STYLE.md 1). :class:`JobLedger` is the one place that decides whether
the worker takes a job, whichever way it comes:

* negotiated over signaling (PROTOCOL.md A.2, B §3): ``job_request`` reserves a
  slot under the client's job id, ``job_assignment`` from the owner assigns it,
  and the owner's ``JOB_SUBMIT`` on its data channel (carrying that same id)
  starts it: one id from ``job_request`` to ``JOB_COMPLETE``;
* submitted straight over a data channel (a GUI session, a reference client):
  :meth:`JobLedger.submit` admits it into a free slot under a fresh id.

It is fed decoded messages with the peer that sent them, and the things an
adapter notices (time passing, a job ending, a peer leaving). Each call returns
what to do as :class:`SlotOutcome` values (a reply for the peer, if any); the
status change to publish is pulled with :meth:`JobLedger.take_patch`. It never
awaits and never reads a clock it was not given: timers live in the adapter,
which calls :meth:`JobLedger.expire` at :meth:`JobLedger.next_deadline`.

A worker has ``max_concurrent_jobs`` slots (one per GPU on a multi-GPU box). A
slot is held by one job, owned by the client that asked for it::

    job_request ─accept─▶ RESERVED ─job_assignment─▶ ASSIGNED ─JOB_SUBMIT─▶ BUSY
                            │ expire, cancel,         │ no JOB_SUBMIT,     │ finish(id,
                            │ owner gone, pause       │ cancel, gone       │  outcome)
                            └─────────▶ free ◀────────┴────────────────────┘
    JOB_SUBMIT (no reservation) ─submit─▶ BUSY

* A request is accepted only when the worker is not in maintenance, has a free
  slot, the client holds no other pending reservation here, and the job fits:
  ``requirements.min_gpu_memory_mb`` ≤ the GPU's memory, ``config.model_type``
  (when given) in ``supported_models``, ``job_type`` in ``supported_job_types``.
  Otherwise it is rejected with a reason: ``maintenance``, ``busy``,
  ``insufficient_memory`` or ``incompatible``.
* A reservation lasts ``reservation_timeout`` seconds unless its owner assigns
  the job; an assignment lasts ``submit_timeout`` seconds unless its owner
  submits it (``None``: a runner of the adapter runs assigned jobs itself).
  While the owner uploads the job's data to this worker, the adapter calls
  :meth:`JobLedger.keep_assignments` at each verified step of the upload,
  which moves the deadline to ``submit_timeout`` from then: a long upload
  keeps its slot, a stalled one loses it as a silent client does.
  ``job_assignment``, ``job_cancel`` and a submission naming a held job are
  honoured only from the owner.
* A submission is admitted into the owner's reserved or assigned slot when it
  names that job (or the owner holds just one such slot), otherwise into a free
  slot, unless the worker is in maintenance or full.
* Cancelling a running job does not free its slot: the adapter must really stop
  the process, then call :meth:`JobLedger.finish` with ``cancelled``. Every
  outcome (success, failure, cancel, owner gone, expiry) ends in a free slot.

The published ``status`` is :func:`~..protocol.states.worker_status` of the
slots: ``maintenance``, ``available``, ``busy`` or ``reserved``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from ..errors import InvalidState
from ..protocol.negotiation import (
    AppMessage,
    JobAssignment,
    JobCancel,
    JobCancelled,
    JobRequest,
    JobResponse,
    JobType,
    RejectReason,
)
from ..protocol.states import (
    JOB_TERMINAL_STATES,
    JobState,
    WorkerStatus,
    worker_status,
)
from .capabilities import GpuFacts, WorkerCapabilities
from .slot import (
    DEFAULT_RESERVATION_TIMEOUT,
    JOB_REJECTED_CODE,
    NO_SUBMIT_CODE,
    Action,
    Clock,
    Estimator,
    IgnoreReason,
    Slot,
    SlotOutcome,
    SlotState,
    estimate_duration_minutes,
    finite_number,
    holds_secret,
    is_running,
    job_failed,
    not_reserved,
)

__all__ = ["JobLedger"]

logger = logging.getLogger(__name__)


class JobLedger:
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
        submit_timeout: float | None = None,
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
            submit_timeout: Seconds an assigned job waits for its owner's
                ``JOB_SUBMIT``; ``None`` when the adapter runs assigned jobs
                itself (they are busy at once).

        Raises:
            ValueError: for fewer than one slot or a non-positive timeout.
        """
        if max_concurrent_jobs < 1:
            raise ValueError(
                f"max_concurrent_jobs must be >= 1, not {max_concurrent_jobs}"
            )
        for name, value in (
            ("reservation_timeout", reservation_timeout),
            ("submit_timeout", submit_timeout),
        ):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0, not {value}")
        self.max_concurrent_jobs = max_concurrent_jobs
        self.capabilities = capabilities
        self.reservation_timeout = float(reservation_timeout)
        self.submit_timeout = submit_timeout
        self._clock = clock
        self._estimator = estimator
        self._free_memory_mb = free_memory_mb
        self._gpu_facts: dict[int, GpuFacts] = {}
        self._slots: dict[str, Slot] = {}  # job_id -> slot, in insertion order
        self._maintenance = False
        self._published: dict[str, Any] = self.status_properties()
        self._last_status = self.status

    # ------------------------------------------------------------------ views

    @property
    def status(self) -> WorkerStatus:
        """The status to publish, derived from the slots (module docstring)."""
        return worker_status(
            slots=self.max_concurrent_jobs,
            held=len(self._slots),
            running=sum(1 for s in self._slots.values() if is_running(s)),
            maintenance=self._maintenance,
        )

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

    def note_gpu_facts(self, facts: Mapping[int, GpuFacts]) -> None:
        """The GPUs' live facts as just read (published with the status, and
        what ``min_gpu_memory_mb`` is checked against)."""
        self._gpu_facts = dict(facts)

    def gpu_free_mb(self, index: int) -> int | None:
        """Device ``index``'s free memory as last read, ``None`` unknown."""
        facts = self._gpu_facts.get(index)
        return None if facts is None else facts.free_mb

    def _most_free_mb(self) -> int | None:
        """The most free memory on one device now, ``None`` when unknown."""
        known = [f.free_mb for f in self._gpu_facts.values() if f.free_mb is not None]
        if known:
            return max(known)
        return self._free_memory_mb() if self._free_memory_mb else None

    def worker_info(self) -> dict[str, Any]:
        """The ``worker_info`` of an accepting ``job_response``."""
        busy = sum(1 for s in self._slots.values() if is_running(s))
        free_mb = self._most_free_mb()
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
        # No job ids: the room would learn what runs here and for how long
        # (the reference publishes ``current_job_id``; PROTOCOL.md A.4).
        props: dict[str, Any] = {
            "status": self.status.value,
            "free_slots": self.free_slots,
        }
        if self._gpu_facts:
            gpus = self.capabilities.gpus
            facts = [self._gpu_facts.get(g.index or 0, GpuFacts()) for g in gpus]
            # Rounded, so that noise in the driver's counters is not news.
            props["gpu_free_mb"] = [
                None if f.free_mb is None else f.free_mb // 64 * 64 for f in facts
            ]
            if any(f.utilization_percent is not None for f in facts):
                props["gpu_utilization_percent"] = [
                    f.utilization_percent for f in facts
                ]
        return props

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

    def _release(
        self, slot: Slot, reason: str, *, reply: AppMessage | None = None
    ) -> SlotOutcome:
        """Free ``slot`` without a job having run in it (the outcome is for its
        owner, the only peer whose word can release it)."""
        del self._slots[slot.job_id]
        self._note()
        return SlotOutcome(
            Action.RELEASED,
            slot.job_id,
            slot.owner,
            slot=slot,
            reply=reply,
            reason=reason,
        )

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
            need_mb = finite_number(need)
            if need_mb is None:
                return (
                    RejectReason.INCOMPATIBLE,
                    "requirements.min_gpu_memory_mb must be a number",
                )
            biggest = max(g.memory_mb for g in caps.gpus)
            if need_mb > biggest:
                return (
                    RejectReason.INSUFFICIENT_MEMORY,
                    f"needs {need_mb:g} MB of GPU memory, this worker's biggest "
                    f"GPU has {biggest} MB",
                )
            free = self._most_free_mb() if not caps.is_cpu else None
            if free is not None and need_mb > free:
                return (
                    RejectReason.INSUFFICIENT_MEMORY,
                    f"needs {need_mb:g} MB of GPU memory, {free} MB are free on "
                    "this worker's GPUs now",
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
        """Take a ``job_assignment``: the owner's reserved job is assigned
        (waiting for its ``JOB_SUBMIT``), or busy when the adapter runs it.

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
                reply=not_reserved(job_id),
                reason=IgnoreReason.NOT_RESERVED.value,
            )
        if slot.owner != peer_id:
            logger.debug("! job_assignment %s from %s: not the owner", job_id, peer_id)
            return SlotOutcome(
                Action.IGNORED, job_id, peer_id, reason=IgnoreReason.NOT_OWNER.value
            )
        if slot.state is not SlotState.RESERVED:
            return SlotOutcome(
                Action.IGNORED,
                job_id,
                peer_id,
                slot=slot,
                reason=IgnoreReason.ALREADY_ASSIGNED.value,
            )
        now = self._clock()
        if slot.expires_at is not None and now >= slot.expires_at:
            return self._release(slot, "expired", reply=not_reserved(job_id))
        if self.submit_timeout is None:
            slot = replace(slot, state=SlotState.BUSY, expires_at=None, assigned_at=now)
        else:
            slot = replace(
                slot,
                state=SlotState.ASSIGNED,
                expires_at=now + self.submit_timeout,
                assigned_at=now,
            )
        self._slots[job_id] = slot
        self._note()
        return SlotOutcome(Action.ASSIGNED, job_id, peer_id, slot=slot)

    def keep_assignments(self, peer_id: str) -> tuple[str, ...]:
        """``peer_id`` is still at work on its assigned jobs (uploading their
        data): each waits ``submit_timeout`` from now for its ``JOB_SUBMIT``.

        Deadlines only move later, reservations are untouched (an upload
        follows the assignment), and a lapsed assignment is not revived: the
        bound is the upload's own (its bytes count against a quota, and a
        sender quiet for the upload's frame timeout is cut off), so the slot
        is held no longer than the upload moves plus ``submit_timeout``.

        Returns:
            The ids of the assignments kept.
        """
        if self.submit_timeout is None:
            return ()
        now = self._clock()
        until = now + self.submit_timeout
        kept = []
        for job_id, slot in self._slots.items():
            if (
                slot.owner != peer_id
                or slot.state is not SlotState.ASSIGNED
                or slot.expires_at is None
                or now >= slot.expires_at
            ):
                continue
            if until > slot.expires_at:
                self._slots[job_id] = replace(slot, expires_at=until)
            kept.append(job_id)
        if kept:
            logger.debug("= assignments %s of %s kept until %.1f", kept, peer_id, until)
        return tuple(kept)

    def handle_cancel(self, peer_id: str, cancel: JobCancel) -> SlotOutcome:
        """Take a ``job_cancel``; honoured only from the job's owner.

        Returns:
            ``RELEASED`` for a reservation or a job not yet submitted (slot
            free, ``job_cancelled`` reply);
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
        if slot.owner != peer_id or not holds_secret(slot, cancel.job_secret):
            logger.debug("! job_cancel %s from %s: not the owner", job_id, peer_id)
            return SlotOutcome(
                Action.IGNORED, job_id, peer_id, reason=IgnoreReason.NOT_OWNER.value
            )
        if slot.state is not SlotState.BUSY:
            return self._release(slot, "cancelled", reply=JobCancelled(job_id=job_id))
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
            One ``RELEASED`` outcome per lapsed reservation (reason
            ``expired``, nothing to send) or assignment (reason ``no_submit``,
            with a ``job_failed`` for the owner), oldest first.
        """
        when = self._clock() if now is None else now
        lapsed = [
            s
            for s in self._slots.values()
            if s.expires_at is not None and when >= s.expires_at
        ]
        out = []
        for slot in lapsed:
            logger.debug("= %s %s of %s lapsed", slot.state, slot.job_id, slot.owner)
            if slot.state is SlotState.RESERVED:
                out.append(self._release(slot, "expired"))
            else:
                message = f"no JOB_SUBMIT within {self.submit_timeout:.0f} s"
                reply = job_failed(slot.job_id, NO_SUBMIT_CODE, message)
                out.append(self._release(slot, "no_submit", reply=reply))
        return out

    def peer_gone(self, peer_id: str) -> list[SlotOutcome]:
        """A peer left the room (``peer_left``, or a send to it failed).

        Its reservations (and assignments not yet submitted) are released at
        once. Its running jobs are reported ``ORPHANED`` and keep their slots:
        the adapter decides whether the job goes on (a submitted job's data
        channel may outlive the signaling socket) or is stopped and finished.
        """
        out: list[SlotOutcome] = []
        for slot in list(self._slots.values()):
            if slot.owner != peer_id:
                continue
            if slot.state is not SlotState.BUSY:
                out.append(self._release(slot, "owner_gone"))
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

    def submit(
        self,
        peer_id: str,
        job_id: str,
        job_type: JobType,
        fresh_id: str,
        secret: str | None = None,
    ) -> SlotOutcome:
        """Admit a ``JOB_SUBMIT`` from ``peer_id`` naming ``job_id``.

        The job takes its owner's reserved or assigned slot when ``job_id``
        names it, or when the owner holds just one such slot (clients that
        name their submissions themselves); otherwise a free slot under
        ``fresh_id`` (an id the adapter has never used). ``secret`` is the
        job's capability from then on (see :attr:`Slot.secret`).

        Returns:
            ``ADMITTED`` with the job's id and its busy slot, or ``REFUSED``
            with reason ``maintenance`` or ``busy`` (nothing to send over
            signaling: the channel's ``JOB_REJECTED`` says it).
        """
        held = self._slots.get(job_id)
        if held is None or held.owner != peer_id or held.state is SlotState.BUSY:
            waiting = [
                s
                for s in self._slots.values()
                if s.owner == peer_id and s.state is not SlotState.BUSY
            ]
            held = waiting[0] if len(waiting) == 1 else None
        now = self._clock()
        if held is not None:
            slot = replace(
                held,
                state=SlotState.BUSY,
                expires_at=None,
                assigned_at=held.assigned_at or now,
                job_type=job_type,
                submitted=True,
                secret=secret,
            )
        elif self._maintenance:
            return SlotOutcome(Action.REFUSED, job_id, peer_id, reason="maintenance")
        elif self.free_slots == 0:
            return SlotOutcome(Action.REFUSED, job_id, peer_id, reason="busy")
        else:
            if fresh_id in self._slots:
                raise InvalidState(f"job id {fresh_id!r} is taken")
            slot = Slot(
                job_id=fresh_id,
                owner=peer_id,
                state=SlotState.BUSY,
                job_type=job_type,
                model_type=None,
                reserved_at=now,
                expires_at=None,
                assigned_at=now,
                negotiated=False,
                submitted=True,
                secret=secret,
            )
        self._slots[slot.job_id] = slot
        self._note()
        return SlotOutcome(Action.ADMITTED, slot.job_id, peer_id, slot=slot)

    def withdraw(self, job_id: str, message: str) -> SlotOutcome:
        """An admitted submission never started (its spec was refused, or the
        worker could not tell its owner): free the slot.

        Returns:
            ``RELEASED`` (reason ``rejected``); for a negotiated job the reply
            is a ``job_failed`` with ``message`` for its owner, who may be
            waiting over signaling.

        Raises:
            InvalidState: no slot holds ``job_id``.
        """
        slot = self._slots.get(job_id)
        if slot is None:
            raise InvalidState(f"no slot holds job {job_id!r}")
        reply = (
            job_failed(job_id, JOB_REJECTED_CODE, message) if slot.negotiated else None
        )
        return self._release(slot, "rejected", reply=reply)

    def set_maintenance(self, on: bool) -> list[SlotOutcome]:
        """Take the worker out of service (``on``) or put it back.

        Pausing releases every reservation and every assignment not yet
        submitted at once, and refuses new requests and submissions; running
        jobs go on, and the status turns ``maintenance`` when the last one
        finishes.

        Returns:
            One ``RELEASED`` outcome (reason ``maintenance``) per dropped
            slot (an assignment's with a ``job_failed`` for its owner).
        """
        self._maintenance = on
        out: list[SlotOutcome] = []
        if on:
            for slot in list(self._slots.values()):
                if slot.state is SlotState.BUSY:
                    continue
                reply = (
                    job_failed(slot.job_id, "MAINTENANCE", "the worker was paused")
                    if slot.state is SlotState.ASSIGNED
                    else None
                )
                out.append(self._release(slot, "maintenance", reply=reply))
        self._note()
        return out

    def owned_by(self, peer_id: str) -> Mapping[str, Slot]:
        """The slots ``peer_id`` holds, by job id."""
        return {j: s for j, s in self._slots.items() if s.owner == peer_id}
