"""Job and inference messages: both JOB_X forms, JOB_STATE checks, verbatim
raw-JSON payloads and finite numbers."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sleap_rtc_core.errors import LocalProtocolError, RemoteProtocolError
from sleap_rtc_core.protocol import channel_messages as m
from sleap_rtc_core.protocol.channel import decode_text, encode_text
from sleap_rtc_core.protocol.states import JobState

# ------------------------------------------------------------------ JOB_X forms


@pytest.mark.parametrize(
    "text",
    [
        'JOB_COMPLETE::{"job_id":"j1","job_type":"train","success":true}',
        'JOB_COMPLETE::j1::{"job_type":"train","success":true}',
        'JOB_COMPLETE::j1::{"job_id":null,"job_type":"train","success":true}',
        'JOB_COMPLETE::  {"job_id":"j1","job_type":"train","success":true}',
    ],
)
def test_json_and_id_forms_read_the_same(text: str) -> None:
    assert decode_text(text) == m.JobCompleteMsg(job_id="j1", job_type="train")


def test_a_value_in_the_json_wins_over_the_prefix() -> None:
    msg = decode_text('JOB_FAILED::outer::{"job_id":"inner","message":"x"}')
    assert msg == m.JobFailedMsg(message="x", job_id="inner")


def test_job_failed_two_part_form_keeps_the_message() -> None:
    # The reference API client split JOB_FAILED in three and lost the message.
    msg = decode_text('JOB_FAILED::{"job_id":"j","message":"a::b","exit_code":1}')
    assert isinstance(msg, m.JobFailedMsg)
    assert msg.message == "a::b"
    assert msg.exit_code == 1


def test_job_rejected_sends_the_client_id_first() -> None:
    msg = m.JobRejectedMsg(errors=[{"field": "f", "message": "x"}], client_job_id="c1")
    text = encode_text(msg)
    assert text == 'JOB_REJECTED::c1::{"errors":[{"field":"f","message":"x"}]}'
    assert decode_text(text) == msg
    bare = m.JobRejectedMsg(errors=[])
    assert encode_text(bare) == 'JOB_REJECTED::{"errors":[]}'


@pytest.mark.parametrize("ident", ["a::b", "a:", "{x", " {x", "", "::"])
def test_an_id_that_cannot_lead_stays_in_the_json(ident: str) -> None:
    msg = m.JobRejectedMsg(client_job_id=ident)
    assert decode_text(encode_text(msg)) == msg


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=10), st.text(max_size=10))
def test_job_rejected_round_trips_any_id(ident: str, message: str) -> None:
    msg = m.JobRejectedMsg(
        errors=[{"field": "x", "message": message}], client_job_id=ident
    )
    assert decode_text(encode_text(msg)) == msg


def test_progress_extra_fields_survive() -> None:
    text = 'JOB_PROGRESS::{"epoch":2,"loss":0.1,"train/lr":0.001}'
    msg = decode_text(text)
    assert isinstance(msg, m.JobProgressMsg)
    assert msg.extra == {"train/lr": 0.001}
    assert json.loads(encode_text(msg).split("::", 1)[1]) == json.loads(
        text.split("::", 1)[1]
    )


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_numbers_must_be_finite(value: float) -> None:
    # JSON has no inf; the encoder would silently write null.
    with pytest.raises(LocalProtocolError):
        m.JobProgressMsg(epoch=1, loss=value)
    with pytest.raises(LocalProtocolError):
        m.JobCompleteMsg(job_id="j", duration_seconds=value)


def test_job_submit() -> None:
    spec = {"type": "train", "config_content": "a: '::'\n"}
    msg = m.JobSubmitMsg("abcd1234", spec)
    assert encode_text(msg).startswith("JOB_SUBMIT::abcd1234::{")
    assert decode_text(encode_text(msg)) == msg
    for bad_id in ("", "a::b", "a:"):
        with pytest.raises(LocalProtocolError):
            m.JobSubmitMsg(bad_id, spec)
    with pytest.raises(LocalProtocolError):
        m.JobSubmitMsg("c", [])  # type: ignore[arg-type]


# ------------------------------------------------------------------ JOB_STATE


def test_job_state() -> None:
    msg = m.JobStateMsg(job_id="j", state=JobState.RUNNING.value, model_count=1)
    assert msg.job_state is JobState.RUNNING
    unknown = m.JobStateMsg(job_id="j", state=m.JOB_STATE_UNKNOWN)
    assert unknown.job_state is None
    assert decode_text(encode_text(unknown)) == unknown
    for kwargs in (
        {"state": "nope"},
        {"state": "running", "job_id": ""},
        {"state": "running", "dropped": -1},
        {"state": "running", "model_index": -1},
        {"state": "running", "model_index": 1, "model_count": 1},
        {"state": "running", "progress": [1]},
    ):
        with pytest.raises(LocalProtocolError):
            m.JobStateMsg(**({"job_id": "j"} | kwargs))  # type: ignore[arg-type]


# ------------------------------------------------------------------ raw JSON


@pytest.mark.parametrize(
    "cls",
    [m.ProgressReportMsg, m.ControlCommandMsg, m.ZmqCtrlMsg, m.InferenceProgressMsg],
)
def test_raw_json_is_forwarded_byte_for_byte(cls: type[m.RawJsonMessage]) -> None:
    raw = '{ "event" : "epoch_end",  "logs": {"train/loss": 1.50} }'
    msg = decode_text(f"{cls.TYPE}::{raw}")
    assert isinstance(msg, cls)
    assert msg.raw == raw
    assert encode_text(msg) == f"{cls.TYPE}::{raw}"
    assert msg.data == {"event": "epoch_end", "logs": {"train/loss": 1.5}}
    assert cls.from_data({"command": "stop"}).raw == '{"command":"stop"}'


def test_raw_json_that_is_not_an_object_is_kept_as_text() -> None:
    msg = decode_text("PROGRESS_REPORT::not json")
    assert isinstance(msg, m.ProgressReportMsg)
    assert msg.data == "not json"
    with pytest.raises(LocalProtocolError):
        m.ProgressReportMsg.from_data({"x": object()})


# ------------------------------------------------------------------ inference


def test_inference_messages() -> None:
    assert encode_text(m.InferenceCompleteMsg()) == "INFERENCE_COMPLETE"
    assert decode_text("INFERENCE_COMPLETE::{}") == m.InferenceCompleteMsg()
    assert decode_text("INFERENCE_BEGIN") == m.InferenceBeginMsg()
    assert decode_text("INFERENCE_BEGIN:: ") == m.InferenceBeginMsg()
    assert encode_text(m.InferenceBeginMsg()) == "INFERENCE_BEGIN::{}"
    skipped = decode_text('INFERENCE_SKIPPED::{"reason":"cancelled"}')
    assert skipped == m.InferenceSkippedMsg("cancelled")
    with pytest.raises(RemoteProtocolError):
        decode_text("INFERENCE_SKIPPED")


def test_job_log_may_wrap_anything() -> None:
    for line in ("CR::50%", "[stderr] oops", "JOB_LOG::x", ""):
        msg = m.JobLogMsg(line)
        assert decode_text(encode_text(msg)) == msg
