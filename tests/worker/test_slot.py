"""The rules about one slot: cancel secrets, running, typed failures, estimates."""

from __future__ import annotations

from sleap_rtc_core.protocol.negotiation import JobRequest, JobType
from sleap_rtc_core.worker.slot import (
    NOT_RESERVED_CODE,
    Slot,
    SlotState,
    estimate_duration_minutes,
    finite_number,
    holds_secret,
    is_running,
    not_reserved,
)


def _slot(state: SlotState = SlotState.RESERVED, secret: str | None = None) -> Slot:
    return Slot("j", "c", state, JobType.TRAINING, None, 0.0, 30.0, secret=secret)


def test_estimates() -> None:
    assert estimate_duration_minutes(JobRequest(job_id="j")) == 50.0
    assert (
        estimate_duration_minutes(JobRequest(job_id="j", config={"max_epochs": 4}))
        == 2.0
    )
    infer = JobRequest(
        job_id="j", job_type=JobType.INFERENCE, dataset_info={"frame_count": 2500}
    )
    assert estimate_duration_minutes(infer) == 25.0
    tiny = JobRequest(
        job_id="j", job_type=JobType.INFERENCE, dataset_info={"frame_count": 5}
    )
    assert estimate_duration_minutes(tiny) == 1.0
    odd = JobRequest(job_id="j", config={"epochs": "many"})
    assert estimate_duration_minutes(odd) == 50.0


def test_only_the_jobs_own_secret_cancels_a_submitted_job() -> None:
    assert holds_secret(_slot(), None)  # nothing runs yet: the owner's word
    submitted = _slot(SlotState.BUSY, secret="s3cret")
    assert holds_secret(submitted, "s3cret")
    assert not holds_secret(submitted, "other")
    assert not holds_secret(submitted, None)
    assert not holds_secret(submitted, "\udcff")  # a lone surrogate is no match


def test_a_slot_runs_once_past_its_reservation() -> None:
    assert not is_running(_slot())
    assert is_running(_slot(SlotState.ASSIGNED))
    assert is_running(_slot(SlotState.BUSY))


def test_not_reserved_is_a_recoverable_typed_failure() -> None:
    failed = not_reserved("j")
    assert failed.job_id == "j"
    assert failed.error["code"] == NOT_RESERVED_CODE
    assert failed.error["recoverable"] is True


def test_finite_numbers_only() -> None:
    assert finite_number(3) == 3.0
    assert finite_number(2.5) == 2.5
    for bad in (True, "4", float("inf"), float("nan"), None):
        assert finite_number(bad) is None
