"""The worker's job ledger: negotiation, submissions, reservations, status,
patches."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from sleap_rtc_core.errors import InvalidState
from sleap_rtc_core.protocol.metadata import merge_metadata
from sleap_rtc_core.protocol.negotiation import (
    JobAssignment,
    JobCancel,
    JobCancelled,
    JobFailed,
    JobRequest,
    JobResponse,
    JobType,
    decode_app_message,
)
from sleap_rtc_core.protocol.states import JobState, WorkerStatus
from sleap_rtc_core.worker.capabilities import (
    GpuFacts,
    GpuInfo,
    StatedGpu,
    WorkerCapabilities,
    worker_metadata,
)
from sleap_rtc_core.worker.ledger import JobLedger
from sleap_rtc_core.worker.slot import (
    JOB_REJECTED_CODE,
    NO_SUBMIT_CODE,
    NOT_RESERVED_CODE,
    Action,
    IgnoreReason,
    Slot,
    SlotState,
)

GPU = GpuInfo("Test GPU", 16000, "12.4", index=0)
CAPS = WorkerCapabilities(GPU, supported_models=("centroid", "centered_instance"))
TIMEOUT = 30.0

W = WorkerStatus
ONE_SLOT_WALK = {
    W.AVAILABLE: {W.RESERVED, W.BUSY, W.MAINTENANCE},
    W.RESERVED: {W.BUSY, W.AVAILABLE, W.MAINTENANCE},
    W.BUSY: {W.AVAILABLE},
    W.MAINTENANCE: {W.AVAILABLE},
}
"""The status changes a one-slot worker may make (states.py's diagram)."""


class FakeClock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _slots(n: int = 1, **kwargs: Any) -> tuple[JobLedger, FakeClock]:
    clock = FakeClock()
    return JobLedger(n, CAPS, clock, TIMEOUT, **kwargs), clock


def _request(job_id: str = "j1", **fields: Any) -> JobRequest:
    fields.setdefault("config", {"model_type": "centroid", "epochs": 10})
    return JobRequest(job_id=job_id, **fields)


def _response(outcome: Any) -> JobResponse:
    assert isinstance(outcome.reply, JobResponse)
    return outcome.reply


# -------------------------------------------------------------- requests


def test_accepting_reserves_and_answers_with_estimate_and_worker_info() -> None:
    slots, clock = _slots()
    out = slots.handle_request("c1", _request())
    assert out.action is Action.ACCEPTED
    reply = _response(out)
    assert reply.accepted
    assert reply.estimated_duration_minutes == 5.0  # 0.5 min x 10 epochs
    assert reply.estimated_start_time_sec == 0
    assert reply.worker_info is not None
    assert reply.worker_info["available_memory_mb"] == 16000
    assert reply.worker_info["gpu_utilization"] == 0.0
    assert out.slot is not None
    assert out.slot.state is SlotState.RESERVED
    assert out.slot.owner == "c1"
    assert out.slot.expires_at == clock.now + TIMEOUT
    assert slots.status is WorkerStatus.RESERVED
    assert slots.next_deadline() == clock.now + TIMEOUT
    # The reply is a valid wire payload.
    assert decode_app_message(reply.to_dict()) == reply


@pytest.mark.parametrize(
    ("request_fields", "reason"),
    [
        ({"requirements": {"min_gpu_memory_mb": 32000}}, "insufficient_memory"),
        ({"requirements": {"min_gpu_memory_mb": "lots"}}, "incompatible"),
        ({"config": {"model_type": "bottomup"}}, "incompatible"),
        ({"job_type": JobType.INFERENCE}, "incompatible"),
    ],
)
def test_incompatible_requests_are_rejected_with_a_reason(
    request_fields: dict[str, Any], reason: str
) -> None:
    caps = WorkerCapabilities(
        GPU, supported_models=("centroid",), supported_job_types=(JobType.TRAINING,)
    )
    slots = JobLedger(1, caps, FakeClock())
    out = slots.handle_request("c1", _request(**request_fields))
    assert out.action is Action.REJECTED
    reply = _response(out)
    assert not reply.accepted
    assert reply.reason == reason
    assert reply.to_dict()["message"]  # a sentence for people
    assert slots.status is WorkerStatus.AVAILABLE
    assert slots.take_patch() is None


def test_enough_memory_and_no_model_type_are_accepted() -> None:
    slots, _ = _slots()
    out = slots.handle_request(
        "c1", _request(config={}, requirements={"min_gpu_memory_mb": 16000})
    )
    assert out.action is Action.ACCEPTED


def test_busy_worker_rejects_a_second_client() -> None:
    slots, _ = _slots()
    slots.handle_request("c1", _request("j1"))
    out = slots.handle_request("c2", _request("j2"))
    assert out.action is Action.REJECTED
    assert _response(out).reason == "busy"


def test_maintenance_rejects_requests() -> None:
    slots, _ = _slots()
    slots.set_maintenance(True)
    out = slots.handle_request("c1", _request())
    assert _response(out).reason == "maintenance"
    assert slots.status is WorkerStatus.MAINTENANCE


def test_repeated_request_is_answered_again_without_a_second_slot() -> None:
    slots, clock = _slots(2)
    first = slots.handle_request("c1", _request("j1"))
    clock.advance(5)
    again = slots.handle_request("c1", _request("j1"))
    assert again.action is Action.ACCEPTED
    assert again.slot == first.slot  # expiry not extended
    assert slots.free_slots == 1
    # The same job id from someone else is refused.
    assert _response(slots.handle_request("c2", _request("j1"))).reason == "busy"


def test_one_pending_reservation_per_client() -> None:
    slots, _ = _slots(3)
    slots.handle_request("c1", _request("j1"))
    out = slots.handle_request("c1", _request("j2"))
    assert _response(out).reason == "busy"
    # Once assigned, the client may reserve another slot.
    slots.handle_assignment("c1", JobAssignment(job_id="j1"))
    assert slots.handle_request("c1", _request("j2")).action is Action.ACCEPTED


def test_custom_estimator_and_free_memory() -> None:
    slots, _ = _slots(estimator=lambda r: 7.5, free_memory_mb=lambda: 1234)
    reply = _response(slots.handle_request("c1", _request()))
    assert reply.estimated_duration_minutes == 7.5
    assert reply.worker_info is not None
    assert reply.worker_info["available_memory_mb"] == 1234


# ----------------------------------------------------- assignment & expiry


def test_assignment_from_the_owner_makes_the_worker_busy() -> None:
    slots, clock = _slots()
    slots.handle_request("c1", _request())
    slots.take_patch()
    clock.advance(10)
    out = slots.handle_assignment("c1", JobAssignment(job_id="j1"))
    assert out.action is Action.ASSIGNED
    assert out.slot is not None
    assert out.slot.state is SlotState.BUSY
    assert out.slot.assigned_at == clock.now
    assert out.slot.expires_at is None
    assert slots.status is WorkerStatus.BUSY
    # No job id is published: the room only learns the status.
    assert slots.take_patch() == {"properties": {"status": "busy"}}
    assert slots.next_deadline() is None
    again = slots.handle_assignment("c1", JobAssignment(job_id="j1"))
    assert again.reason == IgnoreReason.ALREADY_ASSIGNED


def test_assignment_from_a_stranger_is_ignored() -> None:
    slots, _ = _slots()
    slots.handle_request("c1", _request())
    out = slots.handle_assignment("intruder", JobAssignment(job_id="j1"))
    assert out.action is Action.IGNORED
    assert out.reason == IgnoreReason.NOT_OWNER
    assert out.reply is None
    assert slots.status is WorkerStatus.RESERVED


def test_assignment_of_an_unknown_job_gets_a_typed_failure() -> None:
    slots, _ = _slots()
    out = slots.handle_assignment("c1", JobAssignment(job_id="nope"))
    assert out.action is Action.IGNORED
    assert out.reason == IgnoreReason.NOT_RESERVED
    assert isinstance(out.reply, JobFailed)
    assert out.reply.error["code"] == NOT_RESERVED_CODE


def test_reservation_expires_and_worker_is_available_again() -> None:
    slots, clock = _slots()
    slots.handle_request("c1", _request())
    slots.take_patch()
    assert slots.expire() == []
    clock.advance(TIMEOUT - 0.001)
    assert slots.expire() == []
    clock.advance(0.001)
    expired = slots.expire()
    assert [(o.action, o.job_id, o.peer_id, o.reason) for o in expired] == [
        (Action.RELEASED, "j1", "c1", "expired")
    ]
    assert slots.status is WorkerStatus.AVAILABLE
    assert slots.take_patch() == {
        "properties": {"status": "available", "free_slots": 1}
    }
    # A late assignment is told the reservation is gone.
    late = slots.handle_assignment("c1", JobAssignment(job_id="j1"))
    assert isinstance(late.reply, JobFailed)


def test_expire_with_explicit_now() -> None:
    slots, clock = _slots()
    slots.handle_request("c1", _request())
    assert slots.expire(clock.now + TIMEOUT)[0].job_id == "j1"


def test_assignment_after_expiry_time_but_before_expire_call_is_refused() -> None:
    slots, clock = _slots()
    slots.handle_request("c1", _request())
    clock.advance(TIMEOUT)
    out = slots.handle_assignment("c1", JobAssignment(job_id="j1"))
    assert out.action is Action.RELEASED
    assert out.reason == "expired"
    assert isinstance(out.reply, JobFailed)
    assert slots.status is WorkerStatus.AVAILABLE


# ------------------------------------------------------------------ cancel


def test_owner_cancels_a_reservation() -> None:
    slots, _ = _slots()
    slots.handle_request("c1", _request())
    out = slots.handle_cancel("c1", JobCancel(job_id="j1", reason="not selected"))
    assert out.action is Action.RELEASED
    assert out.reply == JobCancelled(job_id="j1")
    assert slots.status is WorkerStatus.AVAILABLE


def test_stranger_cannot_cancel() -> None:
    slots, _ = _slots()
    slots.handle_request("c1", _request())
    slots.handle_assignment("c1", JobAssignment(job_id="j1"))
    out = slots.handle_cancel("intruder", JobCancel(job_id="j1"))
    assert out.action is Action.IGNORED
    assert out.reason == IgnoreReason.NOT_OWNER
    assert out.reply is None
    assert slots.status is WorkerStatus.BUSY
    slot = slots.job("j1")
    assert slot is not None
    assert not slot.cancel_requested
    unknown = slots.handle_cancel("c1", JobCancel(job_id="other"))
    assert unknown.reason == IgnoreReason.NOT_RESERVED


def test_owner_cancels_a_running_job_which_frees_only_when_stopped() -> None:
    slots, _ = _slots()
    slots.handle_request("c1", _request())
    slots.handle_assignment("c1", JobAssignment(job_id="j1"))
    out = slots.handle_cancel("c1", JobCancel(job_id="j1"))
    assert out.action is Action.CANCELLING
    assert slots.status is WorkerStatus.BUSY  # the process still runs
    again = slots.handle_cancel("c1", JobCancel(job_id="j1"))
    assert again.reason == IgnoreReason.ALREADY_CANCELLING
    done = slots.finish("j1", JobState.CANCELLED)
    assert done.action is Action.FINISHED
    assert done.reply == JobCancelled(job_id="j1")
    assert done.peer_id == "c1"
    assert slots.status is WorkerStatus.AVAILABLE


@pytest.mark.parametrize("negotiated", [True, False], ids=["negotiated", "direct"])
def test_a_submitted_job_is_cancelled_only_with_its_secret(negotiated: bool) -> None:
    """After JOB_SUBMIT the job's secret is the authority: its owner's peer id
    without it (e.g. reused by another member) cancels nothing."""
    slots, _ = _slots(submit_timeout=120.0)  # as a worker that takes JOB_SUBMIT
    if negotiated:
        slots.handle_request("c1", _request())
        slots.handle_assignment("c1", JobAssignment(job_id="j1"))
    admitted = slots.submit("c1", "j1", JobType.TRAINING, "j1", secret="s3")
    job_id = admitted.job_id
    for shown in (None, "wrong", ""):
        out = slots.handle_cancel("c1", JobCancel(job_id=job_id, job_secret=shown))
        assert out.action is Action.IGNORED
        assert out.reason == IgnoreReason.NOT_OWNER
    out = slots.handle_cancel("c1", JobCancel(job_id=job_id, job_secret="s3"))
    assert out.action is Action.CANCELLING


# ----------------------------------------------------- finish, gone, pause


@pytest.mark.parametrize("outcome", ["succeeded", "failed", JobState.CANCELLED])
def test_every_outcome_frees_the_slot(outcome: str) -> None:
    slots, _ = _slots()
    slots.handle_request("c1", _request())
    slots.handle_assignment("c1", JobAssignment(job_id="j1"))
    out = slots.finish("j1", outcome)
    assert out.reason == JobState(outcome).value
    assert slots.status is WorkerStatus.AVAILABLE
    assert slots.free_slots == 1


def test_finish_refuses_unknown_jobs_and_non_final_states() -> None:
    slots, _ = _slots()
    slots.handle_request("c1", _request())
    with pytest.raises(InvalidState):
        slots.finish("nope", "succeeded")
    with pytest.raises(InvalidState):
        slots.finish("j1", JobState.RUNNING)
    with pytest.raises(InvalidState):
        slots.finish("j1", "exploded")
    assert slots.status is WorkerStatus.RESERVED


def test_owner_gone_releases_reservations_and_orphans_running_jobs() -> None:
    slots, _ = _slots(3)
    slots.handle_request("c1", _request("run"))
    slots.handle_assignment("c1", JobAssignment(job_id="run"))
    slots.handle_request("c1", _request("wait"))
    slots.handle_request("c2", _request("other"))
    outs = slots.peer_gone("c1")
    assert {(o.action, o.job_id) for o in outs} == {
        (Action.ORPHANED, "run"),
        (Action.RELEASED, "wait"),
    }
    assert set(slots.owned_by("c1")) == {"run"}
    assert slots.peer_gone("nobody") == []
    slots.finish("run", "cancelled")
    assert slots.status is WorkerStatus.AVAILABLE


def test_maintenance_drops_reservations_and_waits_for_running_jobs() -> None:
    slots, _ = _slots(2)
    slots.handle_request("c1", _request("run"))
    slots.handle_assignment("c1", JobAssignment(job_id="run"))
    slots.handle_request("c2", _request("wait"))
    dropped = slots.set_maintenance(True)
    assert [(o.job_id, o.reason) for o in dropped] == [("wait", "maintenance")]
    assert slots.status is WorkerStatus.BUSY
    slots.finish("run", "succeeded")
    assert slots.status is WorkerStatus.MAINTENANCE
    assert slots.set_maintenance(False) == []
    assert slots.status is WorkerStatus.AVAILABLE


# ------------------------------------------------------------- multi-slot


def test_multi_slot_worker_stays_available_while_a_slot_is_free() -> None:
    slots, _ = _slots(2)
    slots.handle_request("c1", _request("j1"))
    assert slots.status is WorkerStatus.AVAILABLE
    slots.handle_assignment("c1", JobAssignment(job_id="j1"))
    assert slots.status is WorkerStatus.AVAILABLE
    slots.handle_request("c2", _request("j2"))
    assert slots.status is WorkerStatus.BUSY  # full, and a job runs
    assert _response(slots.handle_request("c3", _request("j3"))).reason == "busy"
    info = slots.worker_info()
    assert info["gpu_utilization"] == 0.5
    assert info["free_slots"] == 0


def test_all_reserved_multi_slot_is_reserved() -> None:
    slots, _ = _slots(2)
    slots.handle_request("c1", _request("j1"))
    slots.handle_request("c2", _request("j2"))
    assert slots.status is WorkerStatus.RESERVED
    assert [s.job_id for s in slots.slots] == ["j1", "j2"]
    assert [s.job_id for s in slots] == ["j1", "j2"]


# ------------------------------------------------------------- submissions


def _negotiated(slots: JobLedger, owner: str = "alice", job: str = "j1") -> None:
    assert slots.handle_request(owner, _request(job)).action is Action.ACCEPTED
    assert slots.handle_assignment(owner, JobAssignment(job)).action is Action.ASSIGNED


def test_a_negotiated_job_keeps_its_id_from_request_to_submission() -> None:
    slots, _ = _slots(1, submit_timeout=60.0)
    _negotiated(slots)
    held = slots.job("j1")
    assert held is not None
    assert held.state is SlotState.ASSIGNED
    assert slots.status is WorkerStatus.BUSY  # the deal is made
    out = slots.submit("alice", "j1", JobType.TRAINING, "job_fresh")
    assert out.action is Action.ADMITTED
    assert out.job_id == "j1"
    slot = slots.job("j1")
    assert slot is not None
    assert slot.submitted
    assert slot.state is SlotState.BUSY
    assert slot.expires_at is None
    assert len(slots.slots) == 1


def test_a_submission_under_another_name_takes_the_owners_only_slot() -> None:
    slots, _ = _slots(2, submit_timeout=60.0)
    _negotiated(slots)
    out = slots.submit("alice", "cj-own-name", JobType.TRAINING, "job_fresh")
    assert (out.action, out.job_id) == (Action.ADMITTED, "j1")
    assert slots.free_slots == 1


def test_a_stranger_naming_a_held_job_gets_its_own_slot_or_nothing() -> None:
    slots, _ = _slots(2, submit_timeout=60.0)
    _negotiated(slots)
    out = slots.submit("mallory", "j1", JobType.TRAINING, "job_mallory")
    assert (out.action, out.job_id) == (Action.ADMITTED, "job_mallory")
    held = slots.job("j1")
    assert held is not None
    assert held.owner == "alice"
    assert not held.submitted
    full = slots.submit("mallory", "j1", JobType.TRAINING, "job_m2")
    assert (full.action, full.reason) == (Action.REFUSED, "busy")


def test_direct_submissions_fill_free_slots_and_are_refused_when_full() -> None:
    slots, _ = _slots(1)
    out = slots.submit("gui", "cj-1", JobType.TRAINING, "job_0001")
    assert (out.action, out.job_id) == (Action.ADMITTED, "job_0001")
    slot = slots.job("job_0001")
    assert slot is not None
    assert not slot.negotiated
    assert slot.submitted
    assert slots.status is WorkerStatus.BUSY
    assert slots.submit("gui", "cj-2", JobType.TRAINING, "job_0002").reason == "busy"
    # A request now finds the worker full too: one place decides capacity.
    assert slots.handle_request("alice", _request("j9")).action is Action.REJECTED


def test_maintenance_refuses_submissions_and_drops_assignments() -> None:
    slots, _ = _slots(2, submit_timeout=60.0)
    _negotiated(slots)
    dropped = slots.set_maintenance(True)
    assert [(o.job_id, o.reason) for o in dropped] == [("j1", "maintenance")]
    assert isinstance(dropped[0].reply, JobFailed)
    out = slots.submit("gui", "cj", JobType.TRAINING, "job_x")
    assert (out.action, out.reason) == (Action.REFUSED, "maintenance")
    assert slots.status is WorkerStatus.MAINTENANCE


def test_an_assignment_without_submission_expires_with_a_typed_failure() -> None:
    slots, clock = _slots(1, submit_timeout=60.0)
    _negotiated(slots)
    clock.advance(59.0)
    assert slots.expire() == []
    clock.advance(1.0)
    (out,) = slots.expire()
    assert (out.action, out.reason) == (Action.RELEASED, "no_submit")
    assert isinstance(out.reply, JobFailed)
    assert out.reply.error["code"] == NO_SUBMIT_CODE
    assert slots.status is WorkerStatus.AVAILABLE


def test_an_owner_at_work_on_its_upload_keeps_its_assignment() -> None:
    slots, clock = _slots(2, submit_timeout=60.0)
    _negotiated(slots)
    for _ in range(5):  # five minutes of upload, a step every 50 s
        clock.advance(50.0)
        assert slots.keep_assignments("alice") == ("j1",)
        assert slots.expire() == []
    # Strangers, and reservations not yet assigned, keep nothing.
    assert slots.handle_request("bob", _request("j2")).action is Action.ACCEPTED
    assert slots.keep_assignments("mallory") == ()
    assert slots.keep_assignments("bob") == ()
    held = slots.job("j1")
    assert held is not None
    assert held.expires_at == clock() + 60.0
    # The upload stalls: the assignment lapses as a silent client's does,
    # and a late step does not revive it.
    clock.advance(60.0)
    assert slots.keep_assignments("alice") == ()
    assert sorted(o.reason or "" for o in slots.expire()) == ["expired", "no_submit"]


def test_keeping_never_shortens_nor_applies_to_running_jobs() -> None:
    slots, clock = _slots(1, submit_timeout=60.0)
    _negotiated(slots)
    held = slots.job("j1")
    assert held is not None
    slots.submit_timeout = 10.0  # a shorter step than the assignment had
    assert slots.keep_assignments("alice") == ("j1",)
    assert slots.job("j1") == held
    slots.submit("alice", "j1", JobType.TRAINING, "job_x")
    assert slots.keep_assignments("alice") == ()
    assert JobLedger(1, CAPS, clock, TIMEOUT).keep_assignments("alice") == ()


def test_an_assigned_job_is_released_when_its_owner_leaves_or_cancels() -> None:
    slots, _ = _slots(1, submit_timeout=60.0)
    _negotiated(slots)
    (gone,) = slots.peer_gone("alice")
    assert (gone.action, gone.reason) == (Action.RELEASED, "owner_gone")
    _negotiated(slots)
    out = slots.handle_cancel("alice", JobCancel("j1"))
    assert out.action is Action.RELEASED
    assert isinstance(out.reply, JobCancelled)


def test_a_submitted_job_is_orphaned_not_released_when_its_owner_leaves() -> None:
    slots, _ = _slots(1, submit_timeout=60.0)
    slots.submit("gui", "cj", JobType.TRAINING, "job_1")
    (out,) = slots.peer_gone("gui")
    assert out.action is Action.ORPHANED
    assert out.slot is not None
    assert out.slot.submitted


def test_withdrawing_tells_a_negotiating_owner_only() -> None:
    slots, _ = _slots(2, submit_timeout=60.0)
    _negotiated(slots)
    slots.submit("alice", "j1", JobType.TRAINING, "unused")
    out = slots.withdraw("j1", "labels_path: not found")
    assert isinstance(out.reply, JobFailed)
    assert out.reply.error == {
        "code": JOB_REJECTED_CODE,
        "message": "labels_path: not found",
    }
    slots.submit("gui", "cj", JobType.TRAINING, "job_2")
    assert slots.withdraw("job_2", "bad").reply is None
    assert slots.free_slots == 2
    with pytest.raises(InvalidState):
        slots.withdraw("job_2", "again")


# ----------------------------------------------------------------- patches


def test_patches_deep_merge_into_registration_metadata() -> None:
    slots, _ = _slots()
    registered = worker_metadata(
        CAPS, versions={}, hostname="h", extra_properties=slots.mark_published()
    )
    slots.handle_request("c1", _request())
    patch = slots.take_patch()
    assert patch == {"properties": {"status": "reserved", "free_slots": 0}}
    assert slots.take_patch() is None  # published already
    merged = merge_metadata(registered, patch)
    assert merged["tags"] == registered["tags"]  # tags survive a status change
    assert merged["properties"]["gpu_model"] == "Test GPU"


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="max_concurrent_jobs"):
        JobLedger(0, CAPS, FakeClock())
    with pytest.raises(ValueError, match="reservation_timeout"):
        JobLedger(1, CAPS, FakeClock(), reservation_timeout=0)


def test_stated_gpu_capabilities_end_to_end() -> None:
    caps = WorkerCapabilities.from_probe(StatedGpu("Small", 2000))
    slots = JobLedger(1, caps, FakeClock())
    out = slots.handle_request(
        "c1", JobRequest(job_id="j", requirements={"min_gpu_memory_mb": 4000})
    )
    assert _response(out).reason == "insufficient_memory"


# -------------------------------------------------------------- properties

CLIENTS = ["c1", "c2"]
JOBS = ["j1", "j2", "j3"]
STATUS_KEYS = {"status", "free_slots"}

_clients = st.sampled_from(CLIENTS)
_jobs = st.sampled_from(JOBS)
_assign = st.tuples(st.just("assign"), _clients, _jobs)
_finish = st.tuples(
    st.just("finish"), st.sampled_from(["succeeded", "failed", "cancelled"]), _jobs
)
# Assignments and finishes are repeated so that random sequences often reach
# busy slots (most random assignments name a job nobody reserved).
operations = st.one_of(
    st.tuples(st.just("request"), _clients, _jobs),
    _assign,
    _assign,
    _assign,
    st.tuples(st.just("cancel"), _clients, _jobs),
    _finish,
    _finish,
    st.tuples(st.just("gone"), _clients, st.just("")),
    st.tuples(st.just("tick"), st.sampled_from(["5", "12", "31"]), st.just("")),
    st.tuples(st.just("pause"), st.sampled_from(["on", "off", "off"]), st.just("")),
)


def _apply(slots: JobLedger, clock: FakeClock, op: tuple[str, str, str]) -> None:
    kind, who, job = op
    if kind == "request":
        slots.handle_request(who, _request(job))
    elif kind == "assign":
        slots.handle_assignment(who, JobAssignment(job_id=job))
    elif kind == "cancel":
        slots.handle_cancel(who, JobCancel(job_id=job))
    elif kind == "finish":
        if slots.job(job) is not None:
            slots.finish(job, who)
    elif kind == "gone":
        slots.peer_gone(who)
    elif kind == "tick":
        clock.advance(float(who))
        slots.expire()
    elif kind == "pause":
        slots.set_maintenance(who == "on")


def _expected_status(slots: JobLedger) -> WorkerStatus:
    held = slots.slots
    busy = any(s.state is not SlotState.RESERVED for s in held)
    if slots.maintenance:
        return WorkerStatus.BUSY if busy else WorkerStatus.MAINTENANCE
    if len(held) < slots.max_concurrent_jobs:
        return WorkerStatus.AVAILABLE
    return WorkerStatus.BUSY if busy else WorkerStatus.RESERVED


def _check_invariants(slots: JobLedger, clock: FakeClock) -> None:
    held = slots.slots
    assert len(held) <= slots.max_concurrent_jobs
    assert slots.free_slots == slots.max_concurrent_jobs - len(held)
    assert slots.status is _expected_status(slots)
    pending_owners = [s.owner for s in held if s.state is SlotState.RESERVED]
    assert len(pending_owners) == len(set(pending_owners))
    for s in held:
        if s.state is SlotState.RESERVED:
            assert s.expires_at is not None
            assert s.expires_at <= clock.now + slots.reservation_timeout
        elif s.state is SlotState.ASSIGNED:
            assert slots.submit_timeout is not None
            assert s.expires_at is not None
            assert s.expires_at <= clock.now + slots.submit_timeout
            assert not s.submitted
        else:
            assert s.expires_at is None
            assert s.assigned_at is not None
        if s.submitted:
            assert s.state is SlotState.BUSY
    if slots.maintenance:
        assert all(s.state is SlotState.BUSY for s in held)


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=3),
    ops=st.lists(operations, max_size=40),
    outcomes=st.lists(st.sampled_from(["succeeded", "failed", "cancelled"])),
)
def test_status_is_consistent_and_every_path_returns_to_available(
    n: int, ops: list[tuple[str, str, str]], outcomes: list[str]
) -> None:
    slots, clock = _slots(n)
    metadata = worker_metadata(
        CAPS, versions={}, hostname="h", extra_properties=slots.mark_published()
    )
    for op in ops:
        _apply(slots, clock, op)
        _check_invariants(slots, clock)
        patch = slots.take_patch()
        if patch is not None:
            metadata = merge_metadata(metadata, patch)
        # What the room sees always equals the bookkeeping.
        published = {
            k: v for k, v in metadata["properties"].items() if k in STATUS_KEYS
        }
        assert published == slots.status_properties()

    # Drain: every running job ends (any outcome), reservations lapse, pause ends.
    for i, slot in enumerate([s for s in slots.slots if s.state is SlotState.BUSY]):
        slots.finish(slot.job_id, outcomes[i % len(outcomes)] if outcomes else "failed")
    clock.advance(TIMEOUT)
    slots.expire()
    slots.set_maintenance(False)
    assert slots.status is WorkerStatus.AVAILABLE
    assert slots.free_slots == n
    assert slots.next_deadline() is None


@settings(max_examples=200, deadline=None)
@given(ops=st.lists(operations, max_size=40))
def test_single_slot_status_changes_follow_the_worker_table(
    ops: list[tuple[str, str, str]],
) -> None:
    slots, clock = _slots(1)
    before = slots.status
    for op in ops:
        _apply(slots, clock, op)
        after = slots.status
        if after is not before:
            reachable = set(ONE_SLOT_WALK[before])
            # A pause requested while busy takes effect when the job finishes.
            if before is WorkerStatus.BUSY:
                reachable.add(WorkerStatus.MAINTENANCE)
            assert after in reachable, (before, after, op)
        before = after


@settings(max_examples=200, deadline=None)
@given(
    owner=st.sampled_from(CLIENTS),
    stranger=st.sampled_from(CLIENTS),
    assign_first=st.booleans(),
)
def test_strangers_never_change_anything(
    owner: str, stranger: str, assign_first: bool
) -> None:
    if owner == stranger:
        return
    slots, _ = _slots(1)
    slots.handle_request(owner, _request("j1"))
    if assign_first:
        slots.handle_assignment(owner, JobAssignment(job_id="j1"))
    before = (slots.slots, slots.status)
    slots.take_patch()
    for out in (
        slots.handle_assignment(stranger, JobAssignment(job_id="j1")),
        slots.handle_cancel(stranger, JobCancel(job_id="j1")),
    ):
        assert out.action is Action.IGNORED
        assert out.reason == IgnoreReason.NOT_OWNER
        assert out.reply is None
    assert (slots.slots, slots.status) == before
    assert slots.take_patch() is None


class SlotsMachine(RuleBasedStateMachine):
    """Drives one worker's slots through negotiations that mostly make sense.

    Rules pick held jobs and their owners, so runs reach busy slots, cancels of
    running jobs and orphaned jobs often; the ``*_any`` rules add nonsense.
    After every step the published metadata (registration + every patch,
    deep-merged as the server does) must equal the bookkeeping, and ``drain``
    checks that every path leads back to ``available``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.slots = JobLedger(1, CAPS, self.clock, TIMEOUT)
        self.metadata: dict[str, Any] = {}
        self.counter = 0

    @initialize(
        n=st.integers(min_value=1, max_value=3),
        submit_timeout=st.sampled_from([None, 60.0]),
    )
    def start(self, n: int, submit_timeout: float | None) -> None:
        self.slots = JobLedger(
            n, CAPS, self.clock, TIMEOUT, submit_timeout=submit_timeout
        )
        self.metadata = worker_metadata(
            CAPS,
            versions={},
            hostname="h",
            extra_properties=self.slots.mark_published(),
        )

    def _held(self, state: SlotState) -> list[Slot]:
        return [s for s in self.slots.slots if s.state is state]

    @rule(client=_clients)
    def request(self, client: str) -> None:
        self.counter += 1
        out = self.slots.handle_request(client, _request(f"job{self.counter}"))
        assert out.action in (Action.ACCEPTED, Action.REJECTED)

    @rule(data=st.data())
    def assign_reserved(self, data: st.DataObject) -> None:
        held = self._held(SlotState.RESERVED)
        if held:
            slot = data.draw(st.sampled_from(held))
            out = self.slots.handle_assignment(
                slot.owner, JobAssignment(job_id=slot.job_id)
            )
            assert out.action in (Action.ASSIGNED, Action.RELEASED)

    @rule(client=_clients, data=st.data())
    def assign_any(self, client: str, data: st.DataObject) -> None:
        ids = [s.job_id for s in self.slots.slots] + ["ghost"]
        self.slots.handle_assignment(
            client, JobAssignment(job_id=data.draw(st.sampled_from(ids)))
        )

    @rule(data=st.data())
    def owner_cancels(self, data: st.DataObject) -> None:
        if self.slots.slots:
            slot = data.draw(st.sampled_from(self.slots.slots))
            out = self.slots.handle_cancel(slot.owner, JobCancel(job_id=slot.job_id))
            assert out.action in (Action.RELEASED, Action.CANCELLING, Action.IGNORED)

    @rule(client=_clients, data=st.data())
    def anyone_cancels(self, client: str, data: st.DataObject) -> None:
        ids = [s.job_id for s in self.slots.slots] + ["ghost"]
        self.slots.handle_cancel(
            client, JobCancel(job_id=data.draw(st.sampled_from(ids)))
        )

    @rule(data=st.data())
    def owner_submits(self, data: st.DataObject) -> None:
        # Reserved or assigned (a busy slot's job runs already: a runner's).
        waiting = [s for s in self.slots.slots if s.state is not SlotState.BUSY]
        if waiting:
            slot = data.draw(st.sampled_from(waiting))
            out = self.slots.submit(slot.owner, slot.job_id, slot.job_type, "fresh")
            assert out.action is Action.ADMITTED
            assert out.job_id == slot.job_id

    @rule(client=_clients, job=st.sampled_from(["ghost", "job1"]))
    def anyone_submits(self, client: str, job: str) -> None:
        self.counter += 1
        fresh = f"job_{self.counter}"
        before = {s.job_id: s for s in self.slots.slots}
        out = self.slots.submit(client, job, JobType.TRAINING, fresh)
        if out.action is Action.ADMITTED:
            slot = self.slots.job(out.job_id)
            assert slot is not None
            assert slot.owner == client
            assert slot.submitted
            # Only its own waiting slot, or a new one, was taken.
            old = before.get(out.job_id)
            assert old is None or (
                old.owner == client and old.state is not SlotState.BUSY
            )
        else:
            assert out.action is Action.REFUSED
            assert {s.job_id: s for s in self.slots.slots} == before

    @rule(data=st.data())
    def submission_withdrawn(self, data: st.DataObject) -> None:
        submitted = [s for s in self.slots.slots if s.submitted]
        if submitted:
            slot = data.draw(st.sampled_from(submitted))
            out = self.slots.withdraw(slot.job_id, "bad spec")
            assert out.action is Action.RELEASED
            assert (out.reply is not None) is slot.negotiated

    @rule(data=st.data(), outcome=st.sampled_from(["succeeded", "failed", "cancelled"]))
    def job_ends(self, data: st.DataObject, outcome: str) -> None:
        busy = self._held(SlotState.BUSY)
        if busy:
            slot = data.draw(st.sampled_from(busy))
            assert self.slots.finish(slot.job_id, outcome).action is Action.FINISHED

    @rule(client=_clients)
    def client_gone(self, client: str) -> None:
        for out in self.slots.peer_gone(client):
            if out.action is Action.ORPHANED:  # the adapter stops the job
                self.slots.finish(out.job_id, JobState.CANCELLED)

    @rule(seconds=st.sampled_from([1.0, 10.0, 29.0, 31.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)
        if self.slots.next_deadline() is not None:
            self.slots.expire()

    @rule(on=st.booleans())
    def pause(self, on: bool) -> None:
        self.slots.set_maintenance(on)

    @rule(outcome=st.sampled_from(["succeeded", "failed", "cancelled"]))
    def drain(self, outcome: str) -> None:
        for slot in self._held(SlotState.BUSY):
            self.slots.finish(slot.job_id, outcome)
        self.clock.advance(max(TIMEOUT, self.slots.submit_timeout or 0.0))
        self.slots.expire()
        self.slots.set_maintenance(False)
        assert self.slots.status is WorkerStatus.AVAILABLE
        assert self.slots.free_slots == self.slots.max_concurrent_jobs

    @invariant()
    def consistent(self) -> None:
        _check_invariants(self.slots, self.clock)
        patch = self.slots.take_patch()
        if patch is not None:
            self.metadata = merge_metadata(self.metadata, patch)
        published = {
            k: v
            for k, v in self.metadata.get("properties", {}).items()
            if k in STATUS_KEYS
        }
        if self.metadata:
            assert published == self.slots.status_properties()


SlotsMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
test_slots_state_machine = SlotsMachine.TestCase


# ------------------------------------------------------------- several GPUs


def test_memory_is_checked_against_the_biggest_gpu_and_what_is_free() -> None:
    small, big = GpuInfo("S", 8000, index=0), GpuInfo("B", 40000, index=1)
    slots = JobLedger(2, WorkerCapabilities(small, gpus=(small, big)), FakeClock())
    wants = {"min_gpu_memory_mb": 30000}
    out = slots.handle_request("c1", _request("j1", requirements=wants))
    assert _response(out).accepted  # GPU 1 has it, though GPU 0 does not
    slots.note_gpu_facts({0: GpuFacts(7000, 3), 1: GpuFacts(12000, 90)})
    out = slots.handle_request("c2", _request("j2", requirements=wants))
    assert _response(out).reason == "insufficient_memory"
    assert "12000 MB are free" in _response(out).extra["message"]
    too_big = {"min_gpu_memory_mb": 50000}
    out = slots.handle_request("c3", _request("j3", requirements=too_big))
    assert "biggest GPU has 40000 MB" in _response(out).extra["message"]


def test_live_gpu_facts_are_published_rounded() -> None:
    a, b = GpuInfo("A", 8000, index=0), GpuInfo("B", 8000, index=1)
    slots = JobLedger(2, WorkerCapabilities(a, gpus=(a, b)), FakeClock())
    slots.take_patch()
    slots.note_gpu_facts({0: GpuFacts(7001, 3), 1: GpuFacts(100, None)})
    assert slots.take_patch() == {
        "properties": {
            "gpu_free_mb": [6976, 64],
            "gpu_utilization_percent": [3, None],
        }
    }
    slots.note_gpu_facts({0: GpuFacts(7010, 3), 1: GpuFacts(101, None)})
    assert slots.take_patch() is None  # noise below 64 MB is not news
    assert slots.gpu_free_mb(0) == 7010
    assert slots.worker_info()["available_memory_mb"] == 7010
