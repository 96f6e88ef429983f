"""Shared helpers of the ``tests/cli`` suite: the terminal experience of a lab.

Every test here runs the installed ``sleap-rtc`` as a person or a script would:
a subprocess with its stdin closed (a script, a cron job) or a pseudo-terminal
(a person), against a real ``sleap-rtc server`` on 127.0.0.1 and real
``sleap-rtc worker`` processes training with real sleap-nn on the tiny dataset.

What each case must leave behind is checked the same way
(:meth:`Lab.assert_clean`): no sleap-nn process of the lab, no worker private
folder ``sleap_rtc_job_*`` (the workers' ``TMPDIR`` is the lab's own folder, so
other test runs on the machine do not count), and no ``*.partial`` download
folder unless the command printed the ``sleap-rtc fetch`` line that resumes it.
"""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sleap_rtc_core.worker.jobs.sleapnn_cmd import SLEAP_NN_MODULE
from tests.fixtures.cli import CLI_ENV, SLEAP_RTC, Proc
from tests.fixtures.timing import scaled, wait_until

SIGNAL_BOUND = 2.0
"""Seconds within which Ctrl-C or SIGTERM must end a command (issue 20)."""


def signal_bound() -> float:
    """:data:`SIGNAL_BOUND` as a test timeout: scaled, plus a margin for a
    loaded machine (the bound a test waits, not a speed it asserts)."""
    return scaled(SIGNAL_BOUND) + 3.0


@dataclass
class Lab:
    """A running server, a room on it, and the folders its processes use.

    Attributes:
        root: The lab's folder (everything it writes is below it).
        url: The server's ws:// URL.
        data: The server's data folder (for the admin commands).
        room_id: The room's id.
        room_name: The room's name (``Lab A``: a name with a space).
        token: The room token.
        secret: The room secret (a plain passphrase, as a lab picks one).
        tmp: ``TMPDIR`` of every process the lab starts.
    """

    root: Path
    url: str
    data: Path
    room_id: str
    room_name: str
    token: str
    secret: str
    tmp: Path
    procs: list[Proc] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """The environment of the lab's processes."""
        return {**os.environ, **CLI_ENV, "TMPDIR": str(self.tmp)}

    def flags(self, room: str | None = None, secret: str | None = None) -> list[str]:
        """What a client needs: the room by id (or ``room``), the secret."""
        return [
            "--server",
            self.url,
            "--room",
            room or self.room_id,
            "--token",
            self.token,
            "--room-secret",
            self.secret if secret is None else secret,
        ]

    def run(
        self,
        *args: str,
        timeout: float = 120,
        env: dict[str, str] | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``sleap-rtc ARGS`` to its end with stdin closed (a script), or
        given ``input`` (a pipe, not a terminal)."""
        return subprocess.run(
            [SLEAP_RTC, *args],
            stdin=subprocess.DEVNULL if input is None else None,
            input=input,
            capture_output=True,
            text=True,
            timeout=scaled(timeout),
            env=env or self.env,
        )

    def spawn(self, *args: str, tty: bool = False) -> Proc:
        """Start ``sleap-rtc ARGS``; stdin closed, or a pseudo-terminal
        (``tty``; answer it with :meth:`Proc.type`). Ended by the fixture."""
        master = slave = None
        if tty:
            master, slave = pty.openpty()
        popen = subprocess.Popen(
            [SLEAP_RTC, *args],
            stdin=subprocess.DEVNULL if slave is None else slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )
        if slave is not None:
            os.close(slave)
        proc = Proc(popen, master=master)
        self.procs.append(proc)
        return proc

    def worker(self, name: str, mount: Path, *extra: str) -> Proc:
        """Start a worker named ``name`` (peer id ``name`` too, unless
        ``extra`` says ``--peer-id``) serving ``mount``; wait until ready."""
        mount.mkdir(parents=True, exist_ok=True)
        peer = [] if "--peer-id" in extra else ["--peer-id", name]
        proc = self.spawn(
            "worker",
            *self.flags(),
            "--mount",
            str(mount),
            "--name",
            name,
            *peer,
            *extra,
        )
        wait_until(
            lambda: "ready" in proc.stdout or proc.popen.poll() is not None,
            timeout=scaled(60),
            interval=0.05,
        )
        assert "ready" in proc.stdout, proc.output
        return proc

    def stop_all(self) -> None:
        """End every process the lab started (SIGTERM, then SIGKILL)."""
        for proc in reversed(self.procs):
            proc.end()
        self.procs.clear()

    def assert_clean(self, *outputs: str) -> None:
        """Nothing of a job is left: no sleap-nn process, no private folder,
        no ``.partial`` folder without the resume line in ``outputs``."""
        # The worker ends a cancelled job after the client has gone: bounded.
        wait_until(
            lambda: (
                not sleap_nn_processes(self.root)
                and not list(self.tmp.glob("sleap_rtc_job_*"))
            ),
            timeout=scaled(20),
            interval=0.1,
        )
        partial = [p for p in self.root.rglob("*.partial") if p.is_dir()]
        if partial:
            said = "\n".join(outputs)
            assert "sleap-rtc fetch" in said, (partial, said)


def sleap_nn_processes(root: Path) -> list[int]:
    """Live sleap-nn processes (the worker runs ``python -m sleap_nn.cli``)
    of jobs below ``root``: by their arguments or working folder."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode().split("\0")
            cwd = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, UnicodeDecodeError):
            continue
        if state == "Z" or SLEAP_NN_MODULE not in argv:
            continue
        if any(str(root) in arg for arg in argv) or cwd.startswith(str(root)):
            found.append(int(entry.name))
    return found


def start_lab(root: Path, secret: str = "s3cret") -> Lab:
    """A server on a free loopback port and a room ``Lab A`` on it."""
    data, tmp = root / "server", root / "tmp"
    tmp.mkdir(parents=True)
    env = {**os.environ, **CLI_ENV, "TMPDIR": str(tmp)}
    server = subprocess.Popen(
        [SLEAP_RTC, "server", "--port", "0", "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    proc = Proc(server)
    assert line.startswith("listening on ws://127.0.0.1:"), line + proc.output
    created = subprocess.run(
        [
            SLEAP_RTC,
            "room",
            "create",
            "--name",
            "Lab A",
            "--data-dir",
            str(data),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=scaled(60),
    )
    assert created.returncode == 0, created.stderr
    room = json.loads(created.stdout)
    lab = Lab(
        root,
        line.split()[-1],
        data,
        room["room_id"],
        "Lab A",
        room["room_token"],
        secret,
        tmp,
    )
    lab.procs.append(proc)
    return lab


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """A lab of this test alone (its workers are the test's to start)."""
    lab = start_lab(tmp_path / "lab")
    try:
        yield lab
    finally:
        lab.stop_all()


def interrupt(proc: Proc, signum: int = signal.SIGINT) -> int:
    """Send ``signum`` (Ctrl-C by default) and return the exit status, which
    must come within :func:`signal_bound`."""
    proc.popen.send_signal(signum)
    return proc.wait_exit(signal_bound())
