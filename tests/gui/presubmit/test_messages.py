"""Tests of :mod:`sleap_rtc_gui.presubmit.messages`: the sentences a labeler
reads when Run Remotely stops (pure functions of what the worker said)."""

from __future__ import annotations

import pytest

from sleap_rtc_gui.presubmit import messages as m
from sleap_rtc_gui.presubmit.states import PresubmitState


def test_job_rejected_lists_each_reason_with_what_the_worker_sent() -> None:
    text = m.job_rejected(
        [
            {
                "field": "labels_path",
                "message": "not found",
                "code": "PATH_NOT_FOUND",
                "path": "/w/l.slp",
            },
            {"message": "too large"},
        ]
    )
    assert text.splitlines() == [
        m.JOB_REJECTED_HEADER,
        "- labels_path: not found (PATH_NOT_FOUND) [/w/l.slp]",
        "- job: too large",
    ]
    assert m.job_rejected([]).splitlines()[1] == "- job: no reason given"


def test_job_failed_prefers_the_workers_message() -> None:
    assert m.job_failed({"message": "CUDA out of memory"}) == "CUDA out of memory"
    assert m.job_failed({"exit_code": 1}) == m.JOB_FAILED_DEFAULT
    assert (
        m.format_details({"exit_code": 1, "message": "x"}) == "exit_code: 1\nmessage: x"
    )


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("NO_UPLOAD_AREA", m.UPLOAD_REFUSALS["NO_UPLOAD_AREA"]),
        ("QUOTA_EXCEEDED", m.UPLOAD_REFUSALS["QUOTA_EXCEEDED"]),
        (
            "SOMETHING_NEW",
            "The labels file could not be sent to the worker. Try again.",
        ),
        (None, "The labels file could not be sent to the worker. Try again."),
    ],
)
def test_upload_failed_explains_known_refusals(code: str | None, expected: str) -> None:
    assert m.upload_failed(code) == expected


def test_config_failed_and_labels_not_found_read_well() -> None:
    assert m.config_failed("  ") == "The training options are not valid."
    assert m.config_failed("bad epochs ") == (
        "The training options are not valid: bad epochs"
    )
    assert "after 1 correction." in m.labels_not_found(1)
    assert "after 3 corrections." in m.labels_not_found(3)


def test_timed_out_names_the_step_of_each_state() -> None:
    for state, step in m.TIMEOUT_STEPS.items():
        assert step in m.timed_out(state)
    assert "waiting for the worker" in m.timed_out(PresubmitState.RUNNING)
