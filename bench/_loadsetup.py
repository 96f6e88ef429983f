"""The processes of ``load.py``: ``redis-server`` and ``sleap-rtc server`` children.

Both are the real programs a lab runs, started as subprocesses on free
127.0.0.1 ports: ``redis-server`` as ``tests/fixtures/redis.py`` starts it
(nothing saved to disk), ``sleap-rtc server --port 0 --data-dir D [--redis
URL]`` as ``tests/fixtures/cli.py`` does (real SQLite rooms and tokens, default
limits, uvloop when installed). The servers of one topology share one data
folder; rooms are created in it beforehand through the store, as ``sleap-rtc
room create`` does. CPU time and RSS are read from ``/proc``. Every child is
stopped by its own pid, with SIGTERM then SIGKILL, bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Proc",
    "create_rooms",
    "free_port",
    "start_redis",
    "start_server",
]

_SLEAP_RTC = str(Path(sys.executable).with_name("sleap-rtc"))
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_START_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Proc:
    """A child process under test.

    Attributes:
        name: Its label in the report.
        proc: The process.
        url: ``ws://…`` for servers, ``redis://…`` for Redis.
        port: Its TCP port.
        stderr_lines: What it wrote to stderr, counted by line (first 120 chars).
    """

    name: str
    proc: asyncio.subprocess.Process
    url: str
    port: int
    stderr_lines: Counter[str] = field(default_factory=Counter)
    _drain: asyncio.Task[None] | None = None

    def start_draining(self) -> None:
        """Read stderr as it comes (a full pipe would block the child)."""
        self._drain = asyncio.create_task(self._read_stderr())

    async def _read_stderr(self) -> None:
        stream = self.proc.stderr
        if stream is None:
            return
        async for raw in stream:
            self.stderr_lines[raw.decode(errors="replace").rstrip()[:120]] += 1

    def cpu_seconds(self) -> float:
        """User + system CPU time so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK

    def rss_kb(self) -> int:
        """Resident set size (``VmRSS``) in KiB."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    async def stop(self) -> int:
        """SIGTERM, SIGKILL after 5 s; returns how many stderr lines it wrote."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        if self._drain is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drain, 5)
            self._drain = None
        return sum(self.stderr_lines.values())


def create_rooms(data_dir: Path, n: int) -> list[tuple[str, str]]:
    """Create ``n`` rooms in ``data_dir``'s store; (room_id, token) of each."""
    from sleap_rtc_core.signaling.store.auth_store import open_store

    store = open_store(data_dir)
    try:
        rooms = [store.create_room(f"load-{i}") for i in range(n)]
        return [(room.room_id, room.token) for room in rooms]
    finally:
        store.close()


async def start_redis(workdir: Path) -> Proc:
    """``redis-server`` on a free loopback port, answering ``PING``.

    Raises:
        RuntimeError: ``redis-server`` is not installed, or did not start.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "redis-server is not installed (scripts/install-system-deps.sh)"
        )
    for _ in range(3):  # the free port may be taken before redis binds it
        port = free_port()
        proc = await asyncio.create_subprocess_exec(
            *(binary, "--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", str(workdir)),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        deadline = time.monotonic() + _START_TIMEOUT
        while proc.returncode is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"PING\r\n")
                answer = await asyncio.wait_for(reader.read(16), 1)
                writer.close()
                if answer.startswith(b"+PONG"):
                    return Proc("redis", proc, f"redis://127.0.0.1:{port}/0", port)
            await asyncio.sleep(0.02)
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    raise RuntimeError("could not start redis-server on a free port")


async def start_server(name: str, data_dir: Path, redis_url: str | None) -> Proc:
    """``sleap-rtc server --port 0`` (``--redis`` when given), once listening.

    Raises:
        RuntimeError: It did not print ``listening on ws://…`` in time.
    """
    argv = [_SLEAP_RTC, "server", "--port", "0", "--data-dir", str(data_dir)]
    # One room token fills the rooms here: lift its share of a room.
    argv += ["--limit", "max_peers_per_credential=100000"]
    if redis_url is not None:
        argv += ["--redis", redis_url]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    line = b""
    with contextlib.suppress(TimeoutError):
        if proc.stdout is not None:
            line = await asyncio.wait_for(proc.stdout.readline(), _START_TIMEOUT)
    text = line.decode(errors="replace").strip()
    if not text.startswith("listening on ws://127.0.0.1:"):
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        err = b"" if proc.stderr is None else await proc.stderr.read()
        tail = err.decode(errors="replace")[-2000:]
        raise RuntimeError(f"{name} did not start ({text!r}):\n{tail}")
    url = text.split()[-1]
    child = Proc(name, proc, url, int(url.rsplit(":", 1)[1].split("/")[0]))
    child.start_draining()
    return child
