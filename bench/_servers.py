"""Starting, watching and stopping the server processes under test.

Each server runs alone in a child process (``_server_child.py``) so that its CPU
time and RSS can be read from ``/proc`` without the load generator's. Children
die with the bench (``PR_SET_PDEATHSIG``) and :func:`kill_leftovers` kills any
child not yet reaped, by its own pid only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "TARGETS",
    "Child",
    "kill_leftovers",
    "raise_fd_limit",
    "start_child",
    "start_target",
]

_BENCH = Path(__file__).resolve().parent
_CHILD_SCRIPT = _BENCH / "_server_child.py"
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_CHILD_PIDS: set[int] = set()


@dataclass
class Child:
    """A server process under test.

    Attributes:
        name: The label in the report (``bare``, ``ours-asyncio``, ...).
        proc: The process.
        port: Where it listens on 127.0.0.1.
    """

    name: str
    proc: asyncio.subprocess.Process
    port: int
    stderr_lines: Counter[str] = field(default_factory=Counter)
    _drain: asyncio.Task[None] | None = None

    def start_draining(self) -> None:
        """Read the child's stderr as it comes (a full pipe would block it)."""
        self._drain = asyncio.create_task(self._read_stderr())

    async def _read_stderr(self) -> None:
        stream = self.proc.stderr
        if stream is None:
            return
        async for raw in stream:
            self.stderr_lines[raw.decode(errors="replace").rstrip()[:120]] += 1

    @property
    def pid(self) -> int:
        """The process id."""
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process so far."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK

    def rss_kb(self) -> int:
        """Resident set size (``VmRSS``) in KiB."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; then summarize what it logged.

        A server's stderr would drown the figures (one line per write to a
        dropped socket, say), so it is counted and summarized here instead.
        """
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        _CHILD_PIDS.discard(self.pid)
        if self._drain is not None:
            try:
                await asyncio.wait_for(self._drain, 5)
            except TimeoutError:
                pass  # wait_for cancelled it
            self._drain = None
        total = sum(self.stderr_lines.values())
        if total:
            print(f"   ({self.name} wrote {total:,} lines to stderr; most frequent:")
            for line, n in self.stderr_lines.most_common(3):
                print(f"      {n:>7,} x {line!r}")
            print("   )", flush=True)


async def start_child(
    name: str,
    kind: str,
    *,
    loop: str = "asyncio",
    ping_interval: float = 20.0,
    optimize: bool = False,
) -> Child:
    """Start a server child and wait for its ``PORT <n>`` line.

    Args:
        name: The label in the report.
        kind: ``bare`` (bench/bare_relay.py) or ``ours`` (SignalingServer).
        loop: ``asyncio`` or ``uvloop`` (``ours`` only).
        ping_interval: The server's application ping interval (``ours`` only).
        optimize: Run the child with ``python -O`` (asserts stripped).

    Raises:
        RuntimeError: The child did not print its port.
    """
    argv = [sys.executable, *(["-O"] if optimize else []), str(_CHILD_SCRIPT), kind]
    if kind == "ours":
        argv += ["--loop", loop, "--ping-interval", str(ping_interval)]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(_BENCH.parent),
    )
    _CHILD_PIDS.add(proc.pid)
    line = b""
    try:
        if proc.stdout is not None:
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
    finally:
        if not line.startswith(b"PORT "):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            _CHILD_PIDS.discard(proc.pid)
    if not line.startswith(b"PORT "):
        err = b"" if proc.stderr is None else await proc.stderr.read()
        tail = err.decode(errors="replace").strip()[-2000:]
        raise RuntimeError(f"{name}: server did not start ({line!r}):\n{tail}")
    child = Child(name, proc, int(line.split()[1]))
    child.start_draining()
    return child


TARGETS: dict[str, dict[str, object]] = {
    "bare": {"kind": "bare"},
    "ours-asyncio": {"kind": "ours", "loop": "asyncio"},
    # The server asserts isinstance(transport, asyncio.Transport) in
    # connection_made, which uvloop's transports fail (bench/README.md): under
    # uvloop it only runs with asserts stripped.
    "ours-uvloop": {"kind": "ours", "loop": "uvloop", "optimize": True},
}
"""Report label → how to start that server."""


async def start_target(name: str, ping_interval: float = 20.0) -> Child:
    """Start the server of :data:`TARGETS` called ``name``."""
    spec = dict(TARGETS[name])
    kind = str(spec.pop("kind"))
    return await start_child(
        name,
        kind,
        loop=str(spec.get("loop", "asyncio")),
        optimize=bool(spec.get("optimize", False)),
        ping_interval=ping_interval,
    )


def kill_leftovers() -> None:
    """SIGKILL every child this process started and has not reaped yet."""
    for pid in list(_CHILD_PIDS):
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
    _CHILD_PIDS.clear()


def raise_fd_limit(needed: int) -> int:
    """Raise this process's soft ``RLIMIT_NOFILE`` (children inherit it).

    Returns:
        The soft limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        new = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    return soft
