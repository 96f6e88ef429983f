"""One job subprocess in its own process group, read line by line, killed whole.

:class:`JobProcess` runs an argv list (never a shell) in a new session, so the
process and everything it starts (data-loader workers, a multi-GPU respawn,
ffmpeg) share one process group that can be signalled at once. Output from both
pipes arrives through one async iterator::

    async with JobProcess(argv, env={"PYTHONUNBUFFERED": "1"}) as proc:
        async for line in proc.lines():
            ...  # line.stream, line.text, line.carriage_return, line.partial
        code = await proc.wait()
    # leaving the block guarantees the whole group is gone

Reading never blocks the child: the event loop's pipe callbacks (no reader
tasks) fill a bounded buffer that drops its oldest lines (and counts them) when
the consumer falls behind, so a slow data channel never stalls a training run.
tqdm-style ``\\r`` updates come out as separate lines flagged
``carriage_return``; a line longer than ``max_line_chars`` comes out in pieces
flagged ``partial``. The last ``stderr_tail_lines`` lines of stderr are kept for
error reports.

Stopping: :meth:`JobProcess.interrupt_group` sends SIGINT (sleap-nn/Lightning
then exit with status 1 and keep the checkpoints written so far);
:meth:`JobProcess.terminate_group` sends SIGTERM and, after a grace period,
SIGKILL to the whole group.

Zombies: a grandchild orphaned by its parent is re-parented to PID 1 or to the
nearest "child subreaper". Where PID 1 does not reap (a worker that *is* PID 1
in a container, some sandboxes), call :func:`set_child_subreaper` once at
start-up: orphans of our jobs then become our children, and :class:`JobProcess`
reaps those of its own group, so ``os.killpg(pgid, 0)`` reports the group gone.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

from ...aio import wait_for
from ...errors import ConcurrencyError, InvalidState

__all__ = [
    "JobProcess",
    "OutputLine",
    "Stream",
    "group_has_live_members",
    "set_child_subreaper",
]

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1

_PR_SET_CHILD_SUBREAPER = 36


class Stream(StrEnum):
    """Which pipe a line came from."""

    STDOUT = "stdout"
    STDERR = "stderr"


class OutputLine(NamedTuple):
    """One line (or piece of a line) of the child's output.

    Attributes:
        stream: The pipe it came from.
        text: The text without its terminator, decoded as UTF-8 (bad bytes
            replaced).
        carriage_return: The text ended with a lone ``\\r``: a progress-bar
            update meant to overwrite the previous one.
        partial: The line was longer than the limit; more of it follows in the
            next piece(s) of the same stream.
    """

    stream: Stream
    text: str
    carriage_return: bool = False
    partial: bool = False


class _LineSplitter:
    """Sans-I/O splitter: text chunks in, complete lines out.

    ``\\n`` and ``\\r\\n`` end a line, a lone ``\\r`` ends a carriage-return
    update (a ``\\r`` at the end of a chunk waits for the next chunk to tell the
    two apart). Empty carriage-return updates (tqdm starts every update with
    ``\\r``) are dropped; empty lines are kept.
    """

    def __init__(self, stream: Stream, max_line_chars: int) -> None:
        self._stream = stream
        self._max = max_line_chars
        self._buf: list[str] = []
        self._size = 0
        self._pending_cr = False
        self._continued = False  # partial pieces of this line went out already
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> list[OutputLine]:
        return self._split(self._decoder.decode(data))

    def finish(self) -> list[OutputLine]:
        out = self._split(self._decoder.decode(b"", final=True))
        if self._pending_cr:
            self._pending_cr = False
            out.extend(self._emit(carriage_return=True))
        elif self._size:
            out.extend(self._emit())
        return out

    def _emit(self, *, carriage_return: bool = False) -> list[OutputLine]:
        text = "".join(self._buf)
        self._buf.clear()
        self._size = 0
        continued, self._continued = self._continued, False
        if carriage_return and not text and not continued:
            return []
        return [OutputLine(self._stream, text, carriage_return=carriage_return)]

    def _split(self, text: str) -> list[OutputLine]:
        out: list[OutputLine] = []
        start = 0
        if self._pending_cr and text:
            self._pending_cr = False
            if text[0] == "\n":
                out.extend(self._emit())
                start = 1
            else:
                out.extend(self._emit(carriage_return=True))
        n = len(text)
        while start < n:
            nl = text.find("\n", start)
            cr = text.find("\r", start)
            end = min(i for i in (nl, cr, n) if i >= 0)
            self._append(text[start:end], out)
            if end == n:
                break
            if text[end] == "\n":
                out.extend(self._emit())
            elif end + 1 == n:
                self._pending_cr = True
            elif text[end + 1] == "\n":
                out.extend(self._emit())
                end += 1
            else:
                out.extend(self._emit(carriage_return=True))
            start = end + 1
        return out

    def _append(self, piece: str, out: list[OutputLine]) -> None:
        while piece:
            room = self._max - self._size
            if len(piece) <= room:
                self._buf.append(piece)
                self._size += len(piece)
                return
            self._buf.append(piece[:room])
            piece = piece[room:]
            text = "".join(self._buf)
            self._buf.clear()
            self._size = 0
            self._continued = True
            out.append(OutputLine(self._stream, text, partial=True))


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when we die.

    A job runs in its own session so that it can be signalled as a group; that
    also means nothing ends it if the worker is killed (SIGKILL, OOM), and an
    orphaned training run would hold the GPU. ``PR_SET_PDEATHSIG`` closes that
    gap. The libc handle is made here, in the parent, so that the child only
    makes one system call between fork and exec. ``None`` off Linux.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None

    def set_pdeathsig() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return set_pdeathsig


def set_child_subreaper(enabled: bool = True) -> bool:
    """Make this process adopt orphaned descendants (Linux ``PR_SET_CHILD_SUBREAPER``).

    Call once at worker start-up where PID 1 does not reap orphans (the worker
    is PID 1 in a container, or a sandbox whose init never waits). Orphans of a
    job's process group then become our children, and :class:`JobProcess`
    reaps those of its own group after the job's leader exits. It is a setting
    of the whole process; ``enabled=False`` turns it off again.

    Returns:
        True when set; False where the platform has no such call.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, int(enabled), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def group_has_live_members(pgid: int) -> bool:
    """Whether any process of group ``pgid`` exists and is not a zombie."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not sys.platform.startswith("linux"):
        return True
    # killpg also succeeds on a group of zombies waiting for a parent that does
    # not reap; those are dead for our purposes.
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False


class _Protocol(asyncio.SubprocessProtocol):
    """Forwards the transport's callbacks to its :class:`JobProcess`."""

    def __init__(self, owner: JobProcess) -> None:
        self._owner = owner

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        if isinstance(data, str):  # pragma: no cover - we never ask for text mode
            data = data.encode()
        self._owner._on_data(fd, data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._owner._on_eof(fd)

    def process_exited(self) -> None:
        self._owner._on_exit()


class JobProcess:
    """An asyncio subprocess in its own process group, with line-wise output.

    Output is read by the event loop's pipe callbacks (no reader tasks), split
    into :class:`OutputLine` s and buffered for :meth:`lines`.

    Args:
        argv: The program and its arguments (no shell).
        env: Variables to set (a ``None`` value removes one) on top of this
            process's environment, or on an empty one with ``inherit_env=False``.
        cwd: Working directory of the child.
        inherit_env: Start from ``os.environ``.
        max_line_chars: Longer lines come out in ``partial`` pieces.
        max_buffered_lines: Lines held for :meth:`lines` before the oldest are
            dropped (counted in :attr:`dropped_lines`).
        stderr_tail_lines: How many stderr lines :meth:`stderr_tail` keeps.
        eof_grace: After the child exits, how long :meth:`wait` waits for its
            pipes to close (a surviving grandchild may hold them open).
        default_grace: SIGTERM-to-SIGKILL grace used when leaving ``async with``.

    Attributes:
        argv: The command line.
        dropped_lines: Lines dropped because the consumer fell behind.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str | None] | None = None,
        cwd: str | Path | None = None,
        inherit_env: bool = True,
        max_line_chars: int = 16384,
        max_buffered_lines: int = 10000,
        stderr_tail_lines: int = 200,
        eof_grace: float = 1.0,
        default_grace: float = 5.0,
    ) -> None:
        if not argv or not all(isinstance(a, str) for a in argv):
            raise TypeError("argv must be a non-empty sequence of str")
        if max_line_chars < 1 or max_buffered_lines < 1:
            raise ValueError("line and buffer limits must be positive")
        self.argv: list[str] = list(argv)
        self._env = dict(env or {})
        self._cwd = cwd
        self._inherit_env = inherit_env
        self._max_buffered = max_buffered_lines
        self._eof_grace = eof_grace
        self._default_grace = default_grace
        self._transport: asyncio.SubprocessTransport | None = None
        self._splitters = {
            1: _LineSplitter(Stream.STDOUT, max_line_chars),
            2: _LineSplitter(Stream.STDERR, max_line_chars),
        }
        self._open_fds: set[int] = set()
        self._buffer: deque[OutputLine] = deque()
        self._readable = asyncio.Event()
        self._exited = asyncio.Event()
        self._pipes_closed = asyncio.Event()
        self._iterating = False
        self._tail: deque[OutputLine] = deque(maxlen=max(1, stderr_tail_lines))
        self._tail_enabled = stderr_tail_lines > 0
        self.dropped_lines = 0

    # ------------------------------------------------------------------ start

    async def start(self) -> JobProcess:
        """Start the child (stdin from ``/dev/null``, new session).

        Raises:
            InvalidState: Already started.
            OSError: The program could not be started (e.g. not found).
        """
        if self._transport is not None:
            raise InvalidState("process already started")
        env: dict[str, str] = dict(os.environ) if self._inherit_env else {}
        for key, value in self._env.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        self._open_fds = {1, 2}
        loop = asyncio.get_running_loop()
        transport, _ = await loop.subprocess_exec(
            lambda: _Protocol(self),
            *self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self._cwd,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent(),
        )
        self._transport = transport
        logger.debug("= started pid %d: %s", self.pid, self.argv)
        return self

    async def __aenter__(self) -> JobProcess:
        if self._transport is None:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self, grace: float | None = None) -> None:
        """Make sure the whole group is gone, then stop reading its pipes.

        Args:
            grace: SIGTERM-to-SIGKILL grace for a group still alive; default
                ``default_grace``.
        """
        if self._transport is None:
            return
        try:
            if self.running or group_has_live_members(self.pgid):
                await self.terminate_group(
                    self._default_grace if grace is None else grace
                )
        finally:
            self._transport.close()

    # ------------------------------------------------------------ properties

    def _require(self) -> asyncio.SubprocessTransport:
        if self._transport is None:
            raise InvalidState("process not started")
        return self._transport

    @property
    def pid(self) -> int:
        """The child's process id."""
        pid = self._require().get_pid()
        return int(pid)

    @property
    def pgid(self) -> int:
        """The child's process group id (equal to its pid: it leads a session)."""
        return self.pid

    @property
    def returncode(self) -> int | None:
        """Exit status once the child has exited (``-N`` for signal N)."""
        if self._transport is None:
            return None
        code = self._transport.get_returncode()
        return None if code is None else int(code)

    @property
    def running(self) -> bool:
        """Started and not yet exited."""
        return self._transport is not None and self.returncode is None

    def stderr_tail(self) -> list[str]:
        """The last stderr lines (progress updates collapsed to the latest)."""
        return [line.text for line in self._tail]

    # -------------------------------------------------------------- callbacks

    def _on_data(self, fd: int, data: bytes) -> None:
        splitter = self._splitters.get(fd)
        if splitter is not None:
            for line in splitter.feed(data):
                self._push(line)

    def _on_eof(self, fd: int) -> None:
        if fd not in self._open_fds:
            return
        self._open_fds.discard(fd)
        for line in self._splitters[fd].finish():
            self._push(line)
        if not self._open_fds:
            self._pipes_closed.set()
        self._readable.set()

    def _on_exit(self) -> None:
        logger.debug("= pid %d exited with %s", self.pid, self.returncode)
        self._exited.set()

    def _push(self, line: OutputLine) -> None:
        if line.stream is Stream.STDERR and self._tail_enabled:
            # Whatever follows a ``\r`` update overwrites it on a terminal.
            if self._tail and self._tail[-1].carriage_return:
                self._tail[-1] = line
            else:
                self._tail.append(line)
        self._buffer.append(line)
        if len(self._buffer) > self._max_buffered:
            self._buffer.popleft()
            self.dropped_lines += 1
            if self.dropped_lines == 1:
                logger.warning("! output of pid %d is read too slowly", self.pid)
        self._readable.set()

    # ---------------------------------------------------------------- output

    async def lines(self) -> AsyncGenerator[OutputLine, None]:
        """Each output line in arrival order, until both pipes are closed.

        Lines of one stream keep their order; between stdout and stderr the
        order is the order in which the pipes were read.

        Raises:
            InvalidState: The process was not started.
            ConcurrencyError: Another :meth:`lines` iteration is running.
        """
        self._require()
        if self._iterating:
            raise ConcurrencyError("lines() is already being iterated")
        self._iterating = True
        try:
            while True:
                while self._buffer:
                    yield self._buffer.popleft()
                if not self._open_fds:
                    return
                self._readable.clear()
                await self._readable.wait()
        finally:
            self._iterating = False

    # ------------------------------------------------------------------ wait

    async def wait(self) -> int:
        """Wait for the child to exit and its pipes to close; its exit status.

        Output still unread stays available to :meth:`lines`. If a surviving
        grandchild keeps the pipes open, reading stops ``eof_grace`` seconds
        after the child exits (and :meth:`lines` then ends).
        """
        transport = self._require()
        await self._exited.wait()
        self._reap_group()
        if self._open_fds:
            with contextlib.suppress(TimeoutError):
                await wait_for(self._pipes_closed.wait(), self._eof_grace)
        if self._open_fds:
            logger.debug("= pid %d exited; its pipes are still open", self.pid)
            transport.close()
        code = self.returncode
        if code is None:  # pragma: no cover - set before process_exited fires
            raise InvalidState("exit status unknown")
        return code

    # --------------------------------------------------------------- signals

    def send_signal_group(self, sig: int) -> bool:
        """Send ``sig`` to the whole process group; False if it is gone."""
        self._require()
        try:
            os.killpg(self.pgid, sig)
        except ProcessLookupError:
            return False
        logger.debug("> signal %s to group %d", signal.Signals(sig).name, self.pgid)
        return True

    def interrupt_group(self) -> bool:
        """SIGINT to the group (Ctrl+C); False if it is gone.

        sleap-nn (Lightning) then shuts down, keeps checkpoints written so far,
        skips its post-training evaluation and exits with status 1.
        """
        return self.send_signal_group(signal.SIGINT)

    async def terminate_group(self, grace: float = 5.0) -> int:
        """SIGTERM to the group, SIGKILL after ``grace`` s; returns the exit status.

        Returns once the child has exited and no live process is left in its
        group (bounded: after SIGKILL it waits at most 5 s more and logs an
        error if something survives, e.g. a process stuck in the kernel).
        """
        self._require()
        self.send_signal_group(signal.SIGTERM)
        if not await self._wait_group(grace):
            logger.debug("= group %d outlived SIGTERM by %.1f s", self.pgid, grace)
            self.send_signal_group(signal.SIGKILL)
            if not await self._wait_group(5.0):
                logger.error("! process group %d survived SIGKILL", self.pgid)
        await self._exited.wait()
        self._reap_group()
        code = self.returncode
        if code is None:  # pragma: no cover - set before process_exited fires
            raise InvalidState("exit status unknown")
        return code

    async def _wait_group(self, timeout: float) -> bool:
        """Wait until the child exited and its group has no live member."""
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            if self._exited.is_set():
                self._reap_group()
                if not group_has_live_members(self.pgid):
                    return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if not self._exited.is_set():
                with contextlib.suppress(TimeoutError):
                    await wait_for(self._exited.wait(), min(remaining, 0.05))
            else:
                await asyncio.sleep(min(delay, remaining))
                delay = min(delay * 2, 0.05)

    def _reap_group(self) -> None:
        """Collect exited members of our group that were re-parented to us.

        Only called once the loop has reported the leader's exit (its child
        watcher has reaped it), so this never steals the leader's status.
        """
        if not self._exited.is_set():
            return
        while True:
            try:
                pid, _ = os.waitpid(-self.pgid, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            logger.debug("= reaped orphan %d of group %d", pid, self.pgid)
