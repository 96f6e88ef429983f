"""Negotiation payloads: round trips, typed errors, forward-compatible extras."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sleap_rtc_core.errors import ErrorCode, RemoteProtocolError
from sleap_rtc_core.protocol import negotiation as n
from sleap_rtc_core.protocol.negotiation import AppMessageType

SAMPLES: dict[AppMessageType, n.AppMessage] = {
    AppMessageType.JOB_REQUEST: n.JobRequest(
        job_id="j1",
        job_type=n.JobType.TRAINING,
        dataset_info={"format": "slp", "frame_count": 20},
        config={"model_type": "centroid", "epochs": 2},
        requirements={"min_gpu_memory_mb": 4000},
        timeout_ms=5000,
    ),
    AppMessageType.JOB_RESPONSE: n.JobResponse(
        job_id="j1",
        accepted=True,
        estimated_start_time_sec=0,
        estimated_duration_minutes=1.0,
        worker_info={"gpu_utilization": 0.0, "available_memory_mb": 8000},
    ),
    AppMessageType.JOB_ASSIGNMENT: n.JobAssignment(job_id="j1"),
    AppMessageType.JOB_STATUS: n.JobStatus(
        job_id="j1", status="running", progress=0.5, message="epoch 1/2"
    ),
    AppMessageType.JOB_COMPLETE: n.JobComplete(
        job_id="j1", result={"training_duration_minutes": 0.2}
    ),
    AppMessageType.JOB_FAILED: n.JobFailed(
        job_id="j1",
        error={"code": "TRAINING_FAILED", "message": "boom", "recoverable": False},
    ),
    AppMessageType.JOB_CANCEL: n.JobCancel(job_id="j1", reason="not selected"),
    AppMessageType.JOB_CANCELLED: n.JobCancelled(job_id="j1"),
    AppMessageType.WORKER_HEARTBEAT: n.WorkerHeartbeat(extra={"seq": 1}),
    AppMessageType.APP_ERROR: n.AppError(message="oops"),
}


@pytest.mark.parametrize("kind", list(AppMessageType))
def test_every_payload_round_trips(kind: AppMessageType) -> None:
    payload = SAMPLES[kind].to_dict()
    assert payload["app_message_type"] == kind.value
    assert n.decode_app_message(json.loads(json.dumps(payload))) == SAMPLES[kind]


def test_unknown_keys_survive_for_forward_compatibility() -> None:
    payload = {"app_message_type": "job_assignment", "job_id": "j", "new_field": 1}
    message = n.decode_app_message(payload)
    assert message.to_dict() == {
        "app_message_type": "job_assignment",
        "job_id": "j",
        "initiate_connection": True,
        "new_field": 1,
    }


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ("text", ErrorCode.INVALID_MESSAGE),
        ({}, ErrorCode.INVALID_MESSAGE),
        ({"app_message_type": "nope"}, ErrorCode.UNKNOWN_MESSAGE_TYPE),
        ({"app_message_type": "job_request"}, ErrorCode.INVALID_MESSAGE),
        ({"app_message_type": "job_request", "job_id": ""}, ErrorCode.INVALID_MESSAGE),
        (
            {"app_message_type": "job_request", "job_id": "j", "job_type": "painting"},
            ErrorCode.INVALID_MESSAGE,
        ),
        (
            {"app_message_type": "job_response", "job_id": "j", "accepted": "yes"},
            ErrorCode.INVALID_MESSAGE,
        ),
    ],
)
def test_bad_payloads_give_typed_errors(payload: Any, code: ErrorCode) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        n.decode_app_message(payload)
    assert info.value.code == code.value


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(list(AppMessageType)), st.data())
def test_mutated_payloads_never_crash(
    kind: AppMessageType, data: st.DataObject
) -> None:
    payload = SAMPLES[kind].to_dict()
    key = data.draw(st.sampled_from(sorted(payload)))
    payload[key] = data.draw(
        st.none() | st.booleans() | st.integers() | st.text() | st.lists(st.integers())
    )
    try:
        n.decode_app_message(payload)
    except RemoteProtocolError as exc:
        assert exc.code in {c.value for c in ErrorCode}
