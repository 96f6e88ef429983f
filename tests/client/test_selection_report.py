"""The placement's lines: the workers asked, their answers, and why one won."""

from __future__ import annotations

from typing import Any

import pytest

from sleap_rtc_core.client.selection import GONE, TIMEOUT, ResponseCollector
from sleap_rtc_core.client.selection_report import (
    ONLY_ONE,
    choice_reason,
    display_name,
    format_minutes,
    selected_line,
    worker_lines,
)
from sleap_rtc_core.protocol.negotiation import JobResponse


def peer(peer_id: str, name: str | None = None, **props: Any) -> dict[str, Any]:
    if name is not None:
        props["worker_name"] = name
    return {"peer_id": peer_id, "role": "worker", "metadata": {"properties": props}}


def accept(minutes: float | None, free_mb: int = 8000, **info: Any) -> JobResponse:
    return JobResponse(
        job_id="j",
        accepted=True,
        estimated_duration_minutes=minutes,
        worker_info={"available_memory_mb": free_mb, **info},
    )


def decline(reason: str, message: str | None = None) -> JobResponse:
    extra = {"message": message} if message else {}
    return JobResponse(job_id="j", accepted=False, reason=reason, extra=extra)


def test_the_design_example() -> None:
    """Two workers answer; the faster estimate wins and the lines say so."""
    workers = [
        peer("w1", "Worker-GPU1", gpu_model="RTX 4090", gpu_memory_mb=16384),
        peer("w2", "Worker-GPU2", gpu_model="A100", gpu_memory_mb=81920),
    ]
    collector = ResponseCollector(["w1", "w2"], "j")
    collector.record("w1", accept(42.0))
    collector.record("w2", accept(17.5))
    responses, reasons = collector.responses, collector.reasons()
    assert worker_lines(workers, responses, reasons) == [
        "found 2 available workers:",
        "  - Worker-GPU2 (w2): A100, 80 GB: estimate 17.5 min",
        "  - Worker-GPU1 (w1): RTX 4090, 16 GB: estimate 42 min",
    ]
    reason = choice_reason(responses, "w2")
    assert reason == "shortest estimate"
    assert selected_line(workers[1], reason) == (
        "selected Worker-GPU2 (w2) (reason: shortest estimate)"
    )


def test_declines_say_why_and_come_after_the_accepting() -> None:
    workers = [peer("a"), peer("b"), peer("c"), peer("d"), peer("e")]
    collector = ResponseCollector(["a", "b", "c", "d", "e"], "j")
    collector.record("a", decline("busy"))
    collector.record("b", decline("insufficient_memory", "needs 40000 MB, has 8192"))
    collector.record("c", accept(None, gpu_model="CPU"))
    collector.peer_gone("d")
    collector.close()  # e never answered
    lines = worker_lines(workers, collector.responses, collector.reasons())
    assert lines == [
        "found 5 available workers:",
        "  - c: CPU: accepted (no estimate)",
        "  - a: GPU unknown: declined: busy",
        "  - b: GPU unknown: declined: insufficient GPU memory "
        "(needs 40000 MB, has 8192)",
        "  - d: GPU unknown: declined: left before answering",
        "  - e: GPU unknown: declined: no answer in time",
    ]
    assert collector.reasons()["d"] == GONE
    assert collector.reasons()["e"] == TIMEOUT
    assert choice_reason(collector.responses, "c") == ONLY_ONE


def test_the_answers_gpu_facts_win_over_the_metadata() -> None:
    (line,) = worker_lines(
        [peer("w", gpu_model="old", gpu_memory_mb=1024)],
        {"w": accept(3, gpu_model="NVIDIA RTX A5000", gpu_memory_mb=24576)},
        {},
    )[1:]
    assert line == "  - w: NVIDIA RTX A5000, 24 GB: estimate 3 min"
    assert worker_lines([peer("w")], {}, {})[0] == "found 1 available worker:"


@pytest.mark.parametrize(
    ("responses", "prefer", "data", "reason"),
    [
        ({"a": accept(50), "b": accept(5)}, {"a"}, "labels", "sees the labels"),
        ({"a": accept(50), "b": accept(5)}, {"a"}, "data", "sees the data"),
        ({"a": accept(5), "b": accept(50)}, {"a", "b"}, "labels", "shortest estimate"),
        (
            {"a": accept(5, free_mb=9000), "b": accept(5, free_mb=100)},
            (),
            "labels",
            "most free GPU memory",
        ),
        ({"a": accept(5), "b": accept(5)}, (), "labels", "first by peer id"),
        ({"a": accept(5), "b": decline("busy")}, (), "labels", ONLY_ONE),
    ],
)
def test_the_reason_is_the_rule_that_decided(
    responses: dict[str, JobResponse], prefer: Any, data: str, reason: str
) -> None:
    assert choice_reason(responses, "a", prefer, data) == reason


def test_names_and_minutes() -> None:
    assert display_name(peer("gpu1", "lab-gpu")) == "lab-gpu (gpu1)"
    assert display_name(peer("gpu1", "gpu1")) == "gpu1"
    assert display_name(peer("gpu1")) == "gpu1"
    assert format_minutes(42.0) == "42"
    assert format_minutes(1.25) == "1.2"
    assert format_minutes(float("inf")) is None
    assert format_minutes(True) is None
    assert format_minutes("5") is None
