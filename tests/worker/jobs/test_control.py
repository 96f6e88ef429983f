"""Tests of :mod:`sleap_rtc_core.worker.jobs.control` with real child processes
(small Python programs standing in for sleap-nn)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from sleap_rtc_core.worker.jobs.control import ProcessControl, line_text
from sleap_rtc_core.worker.jobs.process import OutputLine, Stream
from tests.fixtures.timing import async_wait_until, scaled

SLEEPER = "import time\nprint('up', flush=True)\ntime.sleep(60)\n"


def _control(tmp_path: Path, **env: str) -> ProcessControl:
    return ProcessControl(
        cwd=tmp_path,
        env=env,
        stop_grace=scaled(2),
        stop_timeout=0.2,
        stderr_lines=5,
    )


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


async def test_output_lines_arrive_in_order_and_the_exit_is_reported(
    tmp_path: Path,
) -> None:
    control = _control(tmp_path)
    lines: list[OutputLine] = []
    code = "import sys\nprint('one')\nprint('two')\nprint('bad', file=sys.stderr)\n"
    done = await control.run(_python(code + "sys.exit(3)"), lines.append)
    assert done.code == 3
    assert done.tail == ["bad"]
    assert [(x.stream, x.text) for x in lines if x.stream is Stream.STDOUT] == [
        (Stream.STDOUT, "one"),
        (Stream.STDOUT, "two"),
    ]
    assert control.pid is None


async def test_a_job_sees_its_own_home_and_none_of_the_workers_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLEAP_RTC_API_KEY", "slp_secret")
    control = _control(tmp_path, SLEAP_JOB_MARK="set")
    lines: list[OutputLine] = []
    code = (
        "import os\n"
        "print(os.environ['HOME'])\n"
        "print(os.environ.get('SLEAP_RTC_API_KEY', 'absent'))\n"
        "print(os.environ['SLEAP_JOB_MARK'])\n"
        "print(os.getcwd())\n"
    )
    done = await control.run(_python(code), lines.append)
    assert done.code == 0
    home, key, mark, cwd = (line.text for line in lines)
    assert (home, key, mark) == (str(tmp_path), "absent", "set")
    assert cwd == str(tmp_path)


async def test_cancel_ends_the_running_process_and_starts_no_other(
    tmp_path: Path,
) -> None:
    control = _control(tmp_path)
    lines: list[OutputLine] = []
    running = asyncio.create_task(control.run(_python(SLEEPER), lines.append))
    await async_wait_until(lambda: bool(lines), timeout=scaled(10))
    assert control.pid is not None
    control.cancel()
    done = await running
    assert done.code is not None
    assert done.code != 0
    after = await control.run(_python("print('never')"), lines.append)
    assert after.code is None
    assert after.tail == ["cancelled before it started"]


async def test_a_stop_that_takes_too_long_interrupts_a_training(
    tmp_path: Path,
) -> None:
    control = _control(tmp_path)
    lines: list[OutputLine] = []
    running = asyncio.create_task(
        control.run(_python(SLEEPER), lines.append, stoppable=True)
    )
    await async_wait_until(lambda: bool(lines), timeout=scaled(10))
    control.arm_stop()
    done = await running
    # SIGINT raises KeyboardInterrupt in the sleeper: it ends, not killed.
    assert done.code not in (None, 0)
    assert any("KeyboardInterrupt" in line for line in done.tail)


async def test_a_program_that_cannot_start_says_why(tmp_path: Path) -> None:
    done = await _control(tmp_path).run([str(tmp_path / "no-such-program")], print)
    assert done.code is None
    assert done.tail


def test_line_text_marks_stderr_and_carriage_returns() -> None:
    assert line_text(OutputLine(Stream.STDOUT, "epoch 1")) == "epoch 1"
    assert line_text(OutputLine(Stream.STDERR, "warn")) == "[stderr] warn"
    assert line_text(OutputLine(Stream.STDERR, "50%", True)) == "CR::[stderr] 50%"
