"""Tests of :mod:`sleap_rtc_core.worker.jobs.process`: real child processes.

The children are small Python scripts (``python -u -c ...``) that print, spawn
grandchildren, ignore signals or hold their pipes open, so that the process
group handling is checked against the kernel rather than a mock.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sleap_rtc_core.errors import ConcurrencyError, InvalidState
from sleap_rtc_core.worker.jobs.process import (
    JobProcess,
    OutputLine,
    Stream,
    _LineSplitter,
    group_has_live_members,
    set_child_subreaper,
)
from tests.fixtures.timing import async_wait_until, scaled, wait_until

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="process groups as on Linux"
)


LEADER_OF_A_SLEEPER = """
    import os, subprocess, sys
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    print(os.getpid(), child.pid, flush=True)
"""
"""A leader that starts a sleeping child, prints both pids and exits."""


def py(code: str) -> list[str]:
    """Argv running ``code`` in an unbuffered child Python."""
    return [sys.executable, "-u", "-c", textwrap.dedent(code)]


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] != b"Z"


async def collect(proc: JobProcess) -> list[OutputLine]:
    return [line async for line in proc.lines()]


# A parent that starts a grandchild in its own group, reports both pids, then
# waits. The grandchild sleeps long enough to fail any test it outlives.
FAMILY = """
    import os, subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    print(os.getpid(), child.pid, flush=True)
    time.sleep(120)
"""


async def read_family(proc: JobProcess) -> tuple[int, int]:
    async for line in proc.lines():
        if line.stream is Stream.STDOUT:
            parent, child = (int(x) for x in line.text.split())
            return parent, child
    raise AssertionError("the family never reported")


# ------------------------------------------------------------------ output


async def test_lines_from_both_streams_and_exit_status() -> None:
    code = """
        import sys
        print("one"); print("two")
        print("err", file=sys.stderr)
        sys.exit(3)
    """
    async with JobProcess(py(code)) as proc:
        lines = await collect(proc)
        assert await proc.wait() == 3
    assert [ln.text for ln in lines if ln.stream is Stream.STDOUT] == ["one", "two"]
    assert [ln.text for ln in lines if ln.stream is Stream.STDERR] == ["err"]
    assert proc.returncode == 3
    assert not proc.running
    assert proc.stderr_tail() == ["err"]


async def test_carriage_returns_crlf_and_unterminated_last_line() -> None:
    code = r"""
        import sys
        sys.stdout.write("\r10%\r50%\r100%\n")
        sys.stdout.write("dos\r\n")
        sys.stdout.write("")
        sys.stdout.write("\n")
        sys.stdout.write("tail")
    """
    async with JobProcess(py(code)) as proc:
        lines = await collect(proc)
        await proc.wait()
    assert [(ln.text, ln.carriage_return) for ln in lines] == [
        ("10%", True),
        ("50%", True),
        ("100%", False),
        ("dos", False),
        ("", False),
        ("tail", False),
    ]


async def test_long_lines_come_in_partial_pieces() -> None:
    async with JobProcess(py("print('x' * 25)"), max_line_chars=10) as proc:
        lines = await collect(proc)
        await proc.wait()
    assert lines == [
        OutputLine(Stream.STDOUT, "x" * 10, partial=True),
        OutputLine(Stream.STDOUT, "x" * 10, partial=True),
        OutputLine(Stream.STDOUT, "x" * 5),
    ]


def test_splitter_keeps_utf8_and_crlf_across_chunks() -> None:
    splitter = _LineSplitter(Stream.STDOUT, 100)
    data = "é✓\r\nnext\r".encode()
    out: list[OutputLine] = []
    for i in range(len(data)):  # one byte at a time
        out += splitter.feed(data[i : i + 1])
    out += splitter.finish()
    assert [(ln.text, ln.carriage_return) for ln in out] == [
        ("é✓", False),
        ("next", True),
    ]


async def test_bounded_buffer_drops_oldest_and_counts() -> None:
    code = "for i in range(100): print(i)"
    async with JobProcess(py(code), max_buffered_lines=5) as proc:
        assert await proc.wait() == 0  # nobody reads while it prints
        lines = await collect(proc)
    assert [ln.text for ln in lines] == ["95", "96", "97", "98", "99"]
    assert proc.dropped_lines == 95


async def test_stderr_tail_keeps_the_last_lines_and_latest_update() -> None:
    code = r"""
        import sys
        for i in range(10): print(f"e{i}", file=sys.stderr)
        sys.stderr.write("\r1/3\r2/3\r3/3")
    """
    async with JobProcess(py(code), stderr_tail_lines=3) as proc:
        await proc.wait()
    assert proc.stderr_tail() == ["e8", "e9", "3/3"]


async def test_env_and_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLEAP_RTC_TEST_DROP", "parent")
    code = """
        import os
        print(os.getcwd())
        print(os.environ.get("SLEAP_RTC_TEST_SET"))
        print(os.environ.get("SLEAP_RTC_TEST_DROP"))
    """
    env = {"SLEAP_RTC_TEST_SET": "yes", "SLEAP_RTC_TEST_DROP": None}
    async with JobProcess(py(code), env=env, cwd=tmp_path) as proc:
        lines = await collect(proc)
        await proc.wait()
    assert [ln.text for ln in lines] == [str(tmp_path), "yes", "None"]


async def test_empty_environment() -> None:
    code = "import os; print(sorted(os.environ))"
    async with JobProcess(py(code), inherit_env=False, env={"ONLY": "1"}) as proc:
        lines = await collect(proc)
        await proc.wait()
    assert "'ONLY'" in lines[0].text
    assert "'PATH'" not in lines[0].text


async def test_child_leads_its_own_session() -> None:
    code = "import os; print(os.getpgid(0), os.getsid(0))"
    async with JobProcess(py(code)) as proc:
        lines = await collect(proc)
        await proc.wait()
    assert lines[0].text == f"{proc.pid} {proc.pid}"
    assert proc.pgid == proc.pid
    assert os.getpgid(0) != proc.pid


# --------------------------------------------------------------- misuse


async def test_misuse_is_refused() -> None:
    with pytest.raises(TypeError):
        JobProcess([])
    with pytest.raises(TypeError):
        JobProcess(["python", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="positive"):
        JobProcess(["x"], max_buffered_lines=0)
    proc = JobProcess(py("print(1)"))
    with pytest.raises(InvalidState):
        _ = proc.pid
    with pytest.raises(InvalidState):
        await proc.wait()
    assert proc.returncode is None
    await proc.aclose()  # nothing started: nothing to do
    async with proc:
        with pytest.raises(InvalidState):
            await proc.start()
        first = proc.lines()
        await first.__anext__()
        with pytest.raises(ConcurrencyError):
            await proc.lines().__anext__()
        await first.aclose()
        await proc.wait()


async def test_missing_program_raises() -> None:
    with pytest.raises(FileNotFoundError):
        await JobProcess(["/nonexistent/sleap-nn"]).start()


# --------------------------------------------------------------- signals


async def test_interrupt_ends_the_whole_group() -> None:
    async with JobProcess(py(FAMILY)) as proc:
        parent, child = await read_family(proc)
        assert parent == proc.pid
        assert os.getpgid(child) == proc.pgid
        assert proc.running
        assert proc.interrupt_group()
        code = await asyncio.wait_for(proc.wait(), scaled(10))
        # Python turns SIGINT into KeyboardInterrupt, prints the traceback and
        # then exits through SIGINT again, so that its parent can tell.
        assert code == -signal.SIGINT
        assert "KeyboardInterrupt" in "\n".join(proc.stderr_tail())
        await async_wait_until(lambda: not alive(child), timeout=scaled(10))
    assert not group_has_live_members(proc.pgid)
    # (killpg may still find the grandchild's zombie until PID 1 reaps it.)


async def test_terminate_escalates_to_kill_for_stubborn_groups() -> None:
    code = """
        import os, signal, subprocess, sys, time
        ignore = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        child = subprocess.Popen([sys.executable, "-c", ignore + "time.sleep(120)"])
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(0.2)  # let the grandchild install its handler
        print(os.getpid(), child.pid, flush=True)
        time.sleep(120)
    """
    async with JobProcess(py(code)) as proc:
        _, child = await read_family(proc)
        code_ = await asyncio.wait_for(proc.terminate_group(grace=0.3), scaled(15))
        assert code_ == -signal.SIGKILL
        assert not alive(child)
        assert not group_has_live_members(proc.pgid)


async def test_terminate_is_enough_for_polite_groups() -> None:
    async with JobProcess(py(FAMILY)) as proc:
        _, child = await read_family(proc)
        assert await proc.terminate_group(grace=scaled(10)) == -signal.SIGTERM
        await async_wait_until(lambda: not alive(child), timeout=scaled(10))


async def test_leaving_the_block_kills_what_is_left() -> None:
    """A leader that exits first leaves no orphan behind once the block ends."""
    async with JobProcess(py(LEADER_OF_A_SLEEPER), default_grace=scaled(5)) as proc:
        _, child = await read_family(proc)
        assert await proc.wait() == 0
        assert alive(child)  # orphaned, still in the job's group
    await async_wait_until(lambda: not alive(child), timeout=scaled(10))
    assert not group_has_live_members(proc.pgid)


async def test_leaving_the_block_on_error_kills_the_group() -> None:
    proc = JobProcess(py(FAMILY), default_grace=scaled(5))
    child = 0

    async def fail() -> None:
        nonlocal child
        async with proc:
            _, child = await read_family(proc)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fail()
    assert not proc.running
    await async_wait_until(lambda: not alive(child), timeout=scaled(10))


async def test_wait_gives_up_on_pipes_held_by_a_grandchild() -> None:
    """A grandchild that keeps stdout open does not make wait() hang."""
    code = """
        import os, subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        print(os.getpid(), child.pid, flush=True)
    """
    async with JobProcess(py(code), eof_grace=0.2) as proc:
        _, child = await read_family(proc)
        assert await asyncio.wait_for(proc.wait(), scaled(5)) == 0
        assert alive(child)
        assert [ln async for ln in proc.lines()] == []  # reading has stopped
    await async_wait_until(lambda: not alive(child), timeout=scaled(10))


async def test_subreaper_makes_orphans_ours_and_they_are_reaped() -> None:
    if not set_child_subreaper(True):
        pytest.skip("no PR_SET_CHILD_SUBREAPER here")
    try:
        async with JobProcess(py(LEADER_OF_A_SLEEPER), default_grace=scaled(5)) as proc:
            _, child = await read_family(proc)
            await proc.wait()
            await async_wait_until(
                lambda: os.getppid() != child and _parent_of(child) == os.getpid(),
                timeout=scaled(5),
            )
        # Killed and reaped by us: not even a zombie is left.
        await async_wait_until(
            lambda: not os.path.exists(f"/proc/{child}"), timeout=scaled(10)
        )
    finally:
        set_child_subreaper(False)


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return None
    return int(stat[stat.rfind(b")") + 2 :].split()[1])


def test_the_job_dies_with_a_killed_worker() -> None:
    """SIGKILL the worker (a real process running JobProcess): its job follows."""
    script = (
        "import asyncio, sys\n"
        "from sleap_rtc_core.worker.jobs.process import JobProcess\n"
        "async def main():\n"
        "    proc = await JobProcess(['sleep', '120']).start()\n"
        "    print(proc.pid, flush=True)\n"
        "    await asyncio.sleep(120)\n"
        "asyncio.run(main())\n"
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    )
    assert worker.stdout is not None
    job_pid = int(worker.stdout.readline())
    worker.kill()
    worker.wait()

    def gone() -> bool:
        try:
            with open(f"/proc/{job_pid}/stat") as fh:
                return fh.read().split()[2] == "Z"  # a zombie awaiting its reaper
        except FileNotFoundError:
            return True

    wait_until(gone, timeout=scaled(10))
