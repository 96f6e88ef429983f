"""Runs a job's sleap-nn processes one at a time, acting on stop and cancel.

:class:`ProcessControl` is the part of a job runner that owns the process now
running: it starts it (:class:`~.process.JobProcess`, own process group, the
job's private folder as working directory), feeds its output lines to a
callback, and waits for its end while watching two requests:

* **cancel** (:meth:`ProcessControl.cancel`): SIGTERM to the whole group,
  SIGKILL after ``stop_grace`` s. Later processes of the job do not start.
* **stop escalation** (:meth:`ProcessControl.arm_stop`): the graceful stop
  itself travels over ZMQ (the runner sends it); if a *stoppable* process
  (training) has not ended ``stop_timeout`` s later it gets SIGINT (checkpoints
  are kept), and after another ``stop_timeout`` s it is terminated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .env import job_environment
from .process import JobProcess, OutputLine, Stream

__all__ = ["ProcessControl", "ProcessExit", "line_text"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class ProcessExit:
    """How one process ended.

    Attributes:
        code: Exit status (``-N``: killed by signal N); ``None`` when it never
            started (cancelled before, or the program could not start).
        tail: The last stderr lines (or why it could not start).
    """

    code: int | None
    tail: list[str] = field(default_factory=list)


def line_text(line: OutputLine) -> str:
    """An output line as a job log text: ``[stderr] `` and ``CR::`` marked."""
    text = line.text
    if line.stream is Stream.STDERR:
        text = f"[stderr] {text}"
    if line.carriage_return:
        text = f"CR::{text}"
    return text


class ProcessControl:
    """The process a job runs now, with cancel and stop escalation.

    Args:
        cwd: Working directory of every process (the job's private folder,
            also its ``HOME``).
        env: Variables set on top of the allow-listed part of the worker's
            environment (:func:`~.env.job_environment`): nothing else of
            the worker's environment reaches a job.
        stop_grace: SIGTERM-to-SIGKILL grace.
        stop_timeout: Seconds a graceful stop may take before SIGINT.
        stderr_lines: stderr lines kept for :attr:`ProcessExit.tail`.
        log: The job's logger.

    Attributes:
        cancelled: Whether :meth:`cancel` was called.
    """

    def __init__(
        self,
        *,
        cwd: Path,
        env: Mapping[str, str],
        stop_grace: float,
        stop_timeout: float,
        stderr_lines: int,
        log: logging.Logger | logging.LoggerAdapter[logging.Logger] = logger,
    ) -> None:
        self._cwd = cwd
        self._env = dict(env)
        self._stop_grace = stop_grace
        self._stop_timeout = stop_timeout
        self._stderr_lines = stderr_lines
        self._log = log
        self._proc: JobProcess | None = None
        self._wake = asyncio.Event()
        self._deadline: float | None = None
        self.cancelled = False

    @property
    def pid(self) -> int | None:
        """The running process (leader of its group), if any."""
        proc = self._proc
        return proc.pid if proc is not None and proc.running else None

    def cancel(self) -> None:
        """Terminate the running process and start no other."""
        self.cancelled = True
        self._wake.set()

    def interrupt(self) -> bool:
        """SIGINT to the running process's group now; whether there was one."""
        proc = self._proc
        return proc is not None and proc.running and proc.interrupt_group()

    def arm_stop(self) -> None:
        """Start the stop escalation clock (once per process)."""
        if self._deadline is None:
            self._deadline = asyncio.get_running_loop().time() + self._stop_timeout
        self._wake.set()

    async def run(
        self,
        argv: list[str],
        on_line: Callable[[OutputLine], None],
        *,
        stoppable: bool = False,
    ) -> ProcessExit:
        """Run one process to its end, its output lines going to ``on_line``.

        Args:
            argv: The command (no shell).
            on_line: Called for every output line, in order.
            stoppable: Escalate a graceful stop that takes too long (training).

        Returns:
            How it ended; the group is gone by then.
        """
        if self.cancelled:
            return ProcessExit(None, ["cancelled before it started"])
        proc = JobProcess(
            argv,
            env=job_environment(os.environ, Path(self._cwd), self._env),
            inherit_env=False,
            cwd=self._cwd,
            stderr_tail_lines=self._stderr_lines,
            default_grace=self._stop_grace,
        )
        try:
            await proc.start()
        except OSError as exc:
            self._log.error("! cannot start %s: %s", argv[0], exc)
            return ProcessExit(None, [str(exc)])
        self._proc = proc
        self._log.debug("= pid %d started", proc.pid)
        async with proc:
            reader = asyncio.create_task(self._pump(proc, on_line))
            try:
                code = await self._supervise(proc, stoppable)
                await reader
            finally:
                self._proc = None
                self._deadline = None
                if not reader.done():
                    reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await reader
        return ProcessExit(code, proc.stderr_tail())

    @staticmethod
    async def _pump(proc: JobProcess, on_line: Callable[[OutputLine], None]) -> None:
        async for line in proc.lines():
            on_line(line)

    async def _supervise(self, proc: JobProcess, stoppable: bool) -> int:
        loop = asyncio.get_running_loop()
        exit_task = asyncio.create_task(proc.wait())
        interrupted = False
        try:
            while True:
                if self.cancelled:
                    await proc.terminate_group(self._stop_grace)
                    return await exit_task
                timeout = None
                if stoppable and self._deadline is not None:
                    timeout = max(0.0, self._deadline - loop.time())
                    if timeout == 0.0:
                        if interrupted:
                            await proc.terminate_group(self._stop_grace)
                            return await exit_task
                        self._log.info("! the stop takes too long: SIGINT")
                        proc.interrupt_group()
                        interrupted = True
                        self._deadline = loop.time() + self._stop_timeout
                        continue
                self._wake.clear()
                waker = asyncio.create_task(self._wake.wait())
                try:
                    done, _ = await asyncio.wait(
                        {exit_task, waker},
                        timeout=timeout,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    waker.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await waker
                if exit_task in done:
                    return exit_task.result()
        finally:
            if not exit_task.done():
                exit_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await exit_task
