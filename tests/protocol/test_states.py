"""Tests of the job transition table and the worker status rule
(sleap_rtc_core.protocol.states)."""

from __future__ import annotations

import logging
from enum import StrEnum
from itertools import product

import pytest

from sleap_rtc_core.errors import LocalProtocolError
from sleap_rtc_core.protocol.states import (
    JOB_TERMINAL_STATES,
    JOB_TRANSITIONS,
    JobEvent,
    JobState,
    StateMachine,
    WorkerStatus,
    allowed_events,
    check_table,
    is_terminal,
    render_mermaid,
    transition,
    worker_status,
)

J, JE = JobState, JobEvent
W = WorkerStatus

# The expected tables, spelled out independently of the module.
EXPECTED_JOB = {
    (J.QUEUED, JE.ASSIGN): J.ASSIGNED,
    (J.QUEUED, JE.FAIL): J.FAILED,
    (J.QUEUED, JE.CANCEL): J.CANCELLED,
    (J.ASSIGNED, JE.START): J.RUNNING,
    (J.ASSIGNED, JE.FAIL): J.FAILED,
    (J.ASSIGNED, JE.CANCEL): J.CANCELLED,
    (J.RUNNING, JE.STOP): J.STOPPING,
    (J.RUNNING, JE.SUCCEED): J.SUCCEEDED,
    (J.RUNNING, JE.FAIL): J.FAILED,
    (J.RUNNING, JE.CANCEL): J.CANCELLED,
    (J.STOPPING, JE.STOP): J.STOPPING,
    (J.STOPPING, JE.SUCCEED): J.SUCCEEDED,
    (J.STOPPING, JE.FAIL): J.FAILED,
    (J.STOPPING, JE.CANCEL): J.CANCELLED,
}
CASES = [
    (JOB_TRANSITIONS, state, event, EXPECTED_JOB.get((state, event)))
    for state, event in product(JobState, JobEvent)
]


@pytest.mark.parametrize(
    ("table", "state", "event", "expected"),
    CASES,
    ids=[f"{s.value}-{e.value}" for _, s, e, _ in CASES],
)
def test_every_transition(
    table: dict[StrEnum, dict[StrEnum, StrEnum]],
    state: StrEnum,
    event: StrEnum,
    expected: StrEnum | None,
) -> None:
    machine = StateMachine(table, state)
    assert machine.can(event) is (expected is not None)
    assert (event in allowed_events(table, state)) is (expected is not None)
    if expected is None:
        with pytest.raises(LocalProtocolError):
            transition(table, state, event)
        with pytest.raises(LocalProtocolError):
            machine.handle(event)
        assert machine.state is state  # unchanged
    else:
        assert transition(table, state, event) is expected
        assert machine.handle(event) is expected
        assert machine.state is expected


def test_tables_cover_every_state_and_only_known_events() -> None:
    assert set(JOB_TRANSITIONS) == set(JobState)
    for events in JOB_TRANSITIONS.values():
        assert all(isinstance(e, JobEvent) for e in events)


def test_tables_are_read_only() -> None:
    with pytest.raises(TypeError):
        JOB_TRANSITIONS[J.SUCCEEDED] = {}  # type: ignore[index]
    with pytest.raises(TypeError):
        JOB_TRANSITIONS[J.QUEUED][JE.SUCCEED] = J.SUCCEEDED  # type: ignore[index]


def test_terminal_states() -> None:
    assert {J.SUCCEEDED, J.FAILED, J.CANCELLED} == JOB_TERMINAL_STATES
    assert all(is_terminal(JOB_TRANSITIONS, s) for s in JOB_TERMINAL_STATES)
    assert not is_terminal(JOB_TRANSITIONS, J.RUNNING)
    machine = StateMachine(JOB_TRANSITIONS, J.RUNNING)
    assert not machine.is_terminal
    machine.handle(JE.SUCCEED)
    assert machine.is_terminal


def test_string_values_work_as_enum_members() -> None:
    """StrEnum members hash like their values: wire strings can drive a table."""
    assert transition(JOB_TRANSITIONS, "queued", "assign") is J.ASSIGNED  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        transition(JOB_TRANSITIONS, "nope", "assign")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        transition(JOB_TRANSITIONS, J.QUEUED, ["unhashable"])  # type: ignore[arg-type]


def test_happy_paths() -> None:
    job = StateMachine(JOB_TRANSITIONS, J.QUEUED)
    for event in (JE.ASSIGN, JE.START, JE.STOP, JE.STOP, JE.SUCCEED):
        job.handle(event)
    assert job.state is J.SUCCEEDED


def test_machine_logs_transitions(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("sleap_rtc.test.job")
    job = StateMachine(JOB_TRANSITIONS, J.QUEUED, logger=logger)
    with caplog.at_level(logging.DEBUG, logger="sleap_rtc.test.job"):
        job.handle(JE.ASSIGN)
        with pytest.raises(LocalProtocolError):
            job.handle(JE.SUCCEED)
    assert [r.getMessage() for r in caplog.records] == ["= assigned (assign)"]


def test_machine_refuses_unknown_initial_state() -> None:
    with pytest.raises(LocalProtocolError):
        StateMachine(JOB_TRANSITIONS, W.BUSY)  # type: ignore[arg-type]


def test_check_table_finds_dangling_targets() -> None:
    check_table(JOB_TRANSITIONS)
    with pytest.raises(LocalProtocolError, match="no such state"):
        check_table({J.QUEUED: {JE.ASSIGN: J.ASSIGNED}})


def test_render_mermaid_job() -> None:
    text = render_mermaid(JOB_TRANSITIONS)
    lines = text.splitlines()
    assert lines[0] == "stateDiagram-v2"
    assert lines[1] == "    [*] --> queued"
    for (state, event), target in EXPECTED_JOB.items():
        assert f"    {state.value} --> {target.value}: {event.value}" in lines
    for state in JOB_TERMINAL_STATES:
        assert f"    {state.value} --> [*]" in lines
    assert len(lines) == 2 + len(EXPECTED_JOB) + len(JOB_TERMINAL_STATES)
    assert text == render_mermaid(JOB_TRANSITIONS)  # deterministic


def test_render_mermaid_initial() -> None:
    text = render_mermaid(JOB_TRANSITIONS, initial=J.RUNNING)
    assert "    [*] --> running" in text.splitlines()
    assert render_mermaid({}) == "stateDiagram-v2\n"


@pytest.mark.parametrize(
    ("slots", "held", "running", "maintenance", "expected"),
    [
        (1, 0, 0, False, W.AVAILABLE),
        (1, 1, 0, False, W.RESERVED),
        (1, 1, 1, False, W.BUSY),
        (2, 1, 1, False, W.AVAILABLE),  # a slot is still free
        (2, 2, 0, False, W.RESERVED),
        (2, 2, 1, False, W.BUSY),
        (1, 0, 0, True, W.MAINTENANCE),
        (2, 1, 1, True, W.BUSY),  # paused: busy until the last job ends
    ],
)
def test_worker_status_rule(
    slots: int, held: int, running: int, maintenance: bool, expected: WorkerStatus
) -> None:
    got = worker_status(
        slots=slots, held=held, running=running, maintenance=maintenance
    )
    assert got is expected
