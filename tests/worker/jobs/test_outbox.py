"""Tests of :mod:`sleap_rtc_core.worker.jobs.outbox`: a job's frames reach the
channels attached to it, in order, and wait while none is attached.

The sinks are real coroutines that record what they were sent (a data channel's
``send`` is the same shape); a failing sink raises as a closed channel does.
"""

from __future__ import annotations

import asyncio

import pytest

from sleap_rtc_core.worker.jobs.outbox import JobOutbox
from tests.fixtures.timing import async_wait_until, scaled


class Recorder:
    """A sink that keeps every frame, and can be made to fail."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.frames: list[str] = []
        self.fail_after = fail_after

    async def __call__(self, text: str) -> None:
        if self.fail_after is not None and len(self.frames) >= self.fail_after:
            raise ConnectionError("channel closed")
        await asyncio.sleep(0)
        self.frames.append(text)


async def _sent(outbox: JobOutbox, sink: Recorder, n: int) -> list[str]:
    await async_wait_until(lambda: len(sink.frames) >= n, timeout=scaled(5))
    return sink.frames


async def test_frames_held_while_detached_follow_the_first_ones() -> None:
    outbox = JobOutbox("job_1", max_buffered=10)
    outbox.emit("JOB_LOG::a")
    outbox.emit("JOB_LOG::b")
    sink = Recorder()
    outbox.attach(sink, first=["JOB_STATE::running"])
    outbox.emit("JOB_LOG::c")
    assert await _sent(outbox, sink, 4) == [
        "JOB_STATE::running",
        "JOB_LOG::a",
        "JOB_LOG::b",
        "JOB_LOG::c",
    ]
    assert outbox.held == []
    await outbox.aclose()


async def test_every_attached_sink_gets_every_frame() -> None:
    outbox = JobOutbox("job_1", max_buffered=10)
    one, two = Recorder(), Recorder()
    outbox.attach(one)
    outbox.attach(two)
    for i in range(3):
        outbox.emit(f"f{i}")
    assert await outbox.drain(scaled(5))
    assert one.frames == two.frames == ["f0", "f1", "f2"]
    await outbox.aclose()


async def test_the_held_buffer_is_bounded_and_counts_progress_drops() -> None:
    outbox = JobOutbox("job_1", max_buffered=2)
    outbox.emit("PROGRESS_REPORT::{}")
    outbox.emit("JOB_LOG::a")
    outbox.emit('PROGRESS_REPORT::{"epoch": 1}')
    assert outbox.held == ["JOB_LOG::a", 'PROGRESS_REPORT::{"epoch": 1}']
    assert (outbox.dropped, outbox.progress_dropped) == (1, 1)
    assert outbox.take_held_progress() == (['{"epoch": 1}'], 1)
    assert outbox.held == ["JOB_LOG::a"]
    assert outbox.progress_dropped == 0


async def test_a_failing_sink_is_detached_and_its_frames_are_held_again() -> None:
    outbox = JobOutbox("job_1", max_buffered=10)
    broken = Recorder(fail_after=1)
    outbox.attach(broken)
    for text in ("a", "b", "c"):
        outbox.emit(text)
    await async_wait_until(lambda: not outbox.is_attached(broken), timeout=scaled(5))
    assert broken.frames == ["a"]
    assert outbox.held == ["b", "c"]
    later = Recorder()
    outbox.attach(later)
    assert await _sent(outbox, later, 2) == ["b", "c"]
    await outbox.aclose()


async def test_detach_holds_what_was_not_sent() -> None:
    outbox = JobOutbox("job_1", max_buffered=10)
    sink = Recorder()
    outbox.attach(sink)
    outbox.emit("x")
    assert outbox.detach(sink)
    assert not outbox.detach(sink)
    assert outbox.attached == 0
    assert outbox.held in (["x"], [])  # sent already, or held again
    assert sink.frames + outbox.held == ["x"]


async def test_finish_lets_senders_end_once_sent() -> None:
    outbox = JobOutbox("job_1", max_buffered=10)
    sink = Recorder()
    outbox.attach(sink)
    outbox.emit("last")
    outbox.finish()
    await async_wait_until(lambda: outbox.idle, timeout=scaled(5))
    assert sink.frames == ["last"]


async def test_nothing_is_sent_or_held_after_close() -> None:
    outbox = JobOutbox("job_1", max_buffered=10)
    await outbox.aclose()
    outbox.emit("late")
    outbox.attach(Recorder())
    assert outbox.held == []
    assert outbox.attached == 0


def test_the_bound_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_buffered"):
        JobOutbox("job_1", max_buffered=0)
