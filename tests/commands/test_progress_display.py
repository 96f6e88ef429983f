"""The progress display without a terminal: plain lines, paced, no escapes."""

from __future__ import annotations

import io

from sleap_rtc_core.client.progress_view import (
    PlainPacer,
    TrainingProgress,
    TransferProgress,
)
from sleap_rtc_core.commands._progress import ProgressDisplay, wants_live


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_say_the_wait_then_the_end() -> None:
    clock = Clock()
    out = io.StringIO()
    display = ProgressDisplay(
        out, live=False, pacer=PlainPacer(interval=5.0, notice=1.0), clock=clock
    )
    view = TrainingProgress(total_epochs=2, clock=clock)
    display.show(view.status)
    for _ in range(30):  # 15 s of ticks
        clock.now += 0.5
        display.refresh()
    lines = out.getvalue().splitlines()
    assert lines == [
        "  waiting for sleap-nn to start (loading the labels)  1.0s so far",
        "  waiting for sleap-nn to start (loading the labels)  6.0s so far",
        "  waiting for sleap-nn to start (loading the labels)  11.0s so far",
    ]
    upload = TransferProgress("upload", clock=clock)
    display.show(upload.status)  # the told wait ends with its last line
    assert out.getvalue().splitlines()[-1] == (
        "  waiting for sleap-nn to start (loading the labels)  15.0s so far"
    )
    upload.feed(0, 1000)
    clock.now += 0.1
    upload.feed(1000, 1000)
    display.show(None)  # too short to be told: no line
    assert len(out.getvalue().splitlines()) == 4
    assert "\x1b" not in out.getvalue()


def test_hidden_while_a_question_is_asked() -> None:
    clock = Clock()
    out = io.StringIO()
    display = ProgressDisplay(out, live=False, clock=clock)
    view = TrainingProgress(clock=clock)
    display.show(view.status)
    with display.hidden():
        clock.now += 3
        display.refresh()
        assert out.getvalue() == ""
    assert "3.0s so far" in out.getvalue()  # back once answered


def test_a_pipe_gets_no_bar() -> None:
    assert not wants_live(io.StringIO())


def test_a_wait_over_a_second_says_what_it_waits_for_with_the_time() -> None:
    clock = Clock()
    out = io.StringIO()
    display = ProgressDisplay(out, live=False, clock=clock)
    display.wait("connecting to the signaling server ws://x")
    clock.now += 0.5
    display.refresh()
    display.wait("discovering the room's workers")  # 0.5 s: unsaid
    for _ in range(4):
        clock.now += 0.5
        display.refresh()
    display.wait(None)
    assert out.getvalue().splitlines() == [
        "  discovering the room's workers  1.0s so far",
        "  discovering the room's workers  2.0s so far",  # its end
    ]


def test_a_disabled_display_draws_nothing() -> None:
    clock = Clock()
    out = io.StringIO()
    display = ProgressDisplay(out, live=False, clock=clock, enabled=False)
    display.wait("asking 2 worker(s) for an estimate")
    for _ in range(30):
        clock.now += 0.5
        display.refresh()
    display.wait(None)
    assert out.getvalue() == ""
