"""The presubmission table's shape, its helpers and its diagram (pure data; the
machine following the table is tested in ``test_machine.py``)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from sleap_rtc_gui.presubmit.events import (
    AuthChecked,
    JobAccepted,
    PathsChecked,
    RunRequested,
    UserCancelled,
)
from sleap_rtc_gui.presubmit.states import (
    CONNECTED_STATES,
    GUARDS,
    PRE_ACCEPT_STATES,
    TERMINAL_STATES,
    TRANSITIONS,
    Guard,
    PresubmitState,
    render_mermaid,
    trigger_event_type,
    trigger_label,
)

S = PresubmitState
ROOT = Path(__file__).resolve().parents[3]


def test_a_trigger_names_its_event_type_with_or_without_a_guard() -> None:
    assert trigger_event_type(JobAccepted) is JobAccepted
    assert trigger_event_type((PathsChecked, Guard.VIDEOS_MISSING)) is PathsChecked
    assert trigger_label(JobAccepted) == "JobAccepted"
    assert (
        trigger_label((PathsChecked, Guard.VIDEOS_MISSING))
        == "PathsChecked (videos missing)"
    )


def test_the_table_cannot_be_edited_at_run_time() -> None:
    with pytest.raises(TypeError):
        TRANSITIONS[S.IDLE] = {}  # type: ignore[index]
    with pytest.raises(TypeError):
        TRANSITIONS[S.IDLE][UserCancelled] = S.DONE  # type: ignore[index]


def test_the_state_sets_partition_as_documented() -> None:
    assert CONNECTED_STATES <= PRE_ACCEPT_STATES
    assert not PRE_ACCEPT_STATES & TERMINAL_STATES
    assert S.RUNNING not in PRE_ACCEPT_STATES | TERMINAL_STATES
    guarded = {
        trigger_event_type(t)
        for row in TRANSITIONS.values()
        for t in row
        if isinstance(t, tuple)
    }
    assert set(GUARDS) == guarded
    assert {RunRequested, AuthChecked, PathsChecked} <= guarded


def test_guarded_rows_are_complete_and_never_bare() -> None:
    for state, row in TRANSITIONS.items():
        for event_type, guards in GUARDS.items():
            assert event_type not in row, (state, event_type)
            present = {t[1] for t in row if isinstance(t, tuple) and t[0] is event_type}
            assert present in (set(), set(guards)), (state, event_type)
        for trigger in row:
            if isinstance(trigger, tuple):
                assert trigger[1] in GUARDS[trigger[0]]


def test_terminal_states_have_no_way_out_and_others_have_one() -> None:
    for state in PresubmitState:
        assert (not TRANSITIONS[state]) == (state in TERMINAL_STATES)


def test_every_pre_accept_state_can_be_cancelled() -> None:
    for state in PRE_ACCEPT_STATES:
        assert TRANSITIONS[state][UserCancelled] is S.ABORTED
    for state in set(PresubmitState) - PRE_ACCEPT_STATES:
        assert UserCancelled not in TRANSITIONS[state]


def test_every_state_is_reachable_from_idle() -> None:
    seen, todo = {S.IDLE}, [S.IDLE]
    while todo:
        for target in TRANSITIONS[todo.pop()].values():
            if target not in seen:
                seen.add(target)
                todo.append(target)
    assert seen == set(PresubmitState)


def _load_script() -> ModuleType:
    path = ROOT / "scripts" / "make_presubmit_diagram.py"
    spec = importlib.util.spec_from_file_location("make_presubmit_diagram", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mermaid_has_every_edge() -> None:
    text = render_mermaid()
    assert text.startswith("stateDiagram-v2\n    [*] --> idle\n")
    edges = re.findall(r"^    (\w+) --> (\w+): (.+)$", text, re.MULTILINE)
    assert edges == [
        (state.value, target.value, trigger_label(trigger))
        for state, row in TRANSITIONS.items()
        for trigger, target in row.items()
    ]
    for state in TERMINAL_STATES:
        assert f"    {state.value} --> [*]\n" in text


def test_docs_diagram_is_up_to_date() -> None:
    script = _load_script()
    doc = (ROOT / "docs" / "presubmit.md").read_text(encoding="utf-8")
    assert script.render_block() in doc, (
        "docs/presubmit.md is stale: run python scripts/make_presubmit_diagram.py"
    )
