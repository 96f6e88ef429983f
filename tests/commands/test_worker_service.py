"""The headless worker as a service, end to end with real processes.

A server, workers started as ``sleap-rtc worker`` (from a config file or
flags), and ``sleap-rtc train`` / ``workers`` as clients, all on 127.0.0.1
with real WebRTC and real sleap-nn on the CPU. Covers issue 10's "a worker
started from a config file", "SIGTERM with ``wait`` and with ``cancel``" and
"the model comes home (``--download``) from a worker on separate storage".

Each test starts its own worker (with its own peer id, targeted by
``--worker``) because the SIGTERM tests end theirs; the server and room are
shared by the module.
"""

from __future__ import annotations

import base64
import json
import os
import pty
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sleap_rtc_core.sample_data import tiny_training_config, write_tiny_labels
from tests.fixtures.cli import (
    CLI_ENV,
    SLEAP_RTC,
    Proc,
    run_cli,
    start_server,
    start_worker,
)
from tests.fixtures.timing import scaled, wait_until


@dataclass
class Room:
    """A running server and a room on it."""

    url: str
    room_id: str
    token: str
    secret: str
    root: Path

    @property
    def client_flags(self) -> list[str]:
        """What a client (``train``, ``workers``) needs to reach the room."""
        return [
            "--server",
            self.url,
            "--room",
            self.room_id,
            "--token",
            self.token,
            "--room-secret",
            self.secret,
        ]

    def worker_flags(self, peer_id: str, mount: Path) -> list[str]:
        """A worker of this room serving ``mount``, with a fixed peer id."""
        return [
            "--server",
            self.url,
            "--room",
            self.room_id,
            "--token",
            self.token,
            "--room-secret",
            self.secret,
            "--peer-id",
            peer_id,
            "--mount",
            str(mount),
        ]


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Room]:
    root = tmp_path_factory.mktemp("service")
    data = root / "data"
    server, url = start_server(data)
    try:
        created = json.loads(
            run_cli(
                "room", "create", "--name", "lab", "--data-dir", str(data), "--json"
            ).stdout
        )
        secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        yield Room(url, created["room_id"], created["room_token"], secret, root)
    finally:
        server.terminate()
        server.wait(timeout=scaled(30))


def _train(room: Room, *args: str, stdin: int | None = None) -> Proc:
    """Start ``sleap-rtc train ARGS`` (``stdin`` a terminal to answer its
    Ctrl-C question, else no input)."""
    popen = subprocess.Popen(
        [SLEAP_RTC, "train", *args, *room.client_flags],
        stdin=subprocess.DEVNULL if stdin is None else stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **CLI_ENV},
    )
    return Proc(popen)


def _worker(*args: str) -> Proc:
    """``start_worker`` with its remaining output collected."""
    return Proc(start_worker(*args))


def _listed(room: Room) -> dict[str, dict[str, object]]:
    """``sleap-rtc workers --json``: peer id → properties."""
    result = run_cli("workers", *room.client_flags, "--json")
    assert result.returncode == 0, result.stderr
    return {
        peer["peer_id"]: peer["metadata"]["properties"]
        for peer in json.loads(result.stdout)
    }


def _status(room: Room, peer_id: str) -> object:
    return _listed(room).get(peer_id, {}).get("status")


def _descendants(pid: int) -> set[int]:
    """The processes below ``pid`` (from /proc), the job's sleap-nn included."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _epoch_lines(proc: Proc) -> int:
    return sum(1 for line in list(proc.out) if line.lstrip().startswith("epoch "))


def _long_job(mount: Path, tmp_path: Path, peer_id: str) -> tuple[str, ...]:
    """``train`` arguments for a job that runs until stopped (1000 epochs)."""
    labels = write_tiny_labels(mount / f"{peer_id}.pkg.slp")
    config = tmp_path / "long.yaml"
    config.write_text(tiny_training_config(max_epochs=1000))
    return (str(labels), "--config", str(config), "--worker", peer_id)


def _stop(*procs: Proc | None) -> None:
    for proc in procs:
        if proc is not None and proc.popen.poll() is None:
            proc.popen.kill()
            proc.popen.wait()


def test_worker_runs_from_its_config_file(room: Room, tmp_path: Path) -> None:
    """Server, room, credential file, name, mounts and slots come from the file;
    only the room secret (a separate flag) is on the command line."""
    data = tmp_path / "lab data"
    data.mkdir()
    token_file = tmp_path / "room-token"
    token_file.write_text(room.token + "\n")
    token_file.chmod(0o600)
    config = tmp_path / "worker.toml"
    config.write_text(
        f'server = "{room.url}"\n'
        f'room = "{room.room_id}"\n'
        'name = "box-from-config"\n'
        'token_file = "room-token"\n'  # relative to the config file's folder
        "max_concurrent_jobs = 1\n"
        "\n"
        "[[mounts]]\n"
        f"path = {json.dumps(str(data))}\n"
        'label = "lab-data"\n'
    )
    assert room.token not in config.read_text()
    worker = _worker(
        "--config", str(config), "--room-secret", room.secret, "--peer-id", "cfg1"
    )
    try:
        props = _listed(room)["cfg1"]
        assert props["worker_name"] == "box-from-config"
        assert props["mounts"] == [{"path": str(data), "label": "lab-data"}]
        assert props["status"] == "available"
        worker.popen.send_signal(signal.SIGTERM)
        assert worker.wait(15) == 0, worker.output
    finally:
        _stop(worker)
    wait_until(lambda: "cfg1" not in _listed(room), timeout=scaled(10), interval=0.2)


def test_config_file_with_an_inline_secret_is_refused(
    room: Room, tmp_path: Path
) -> None:
    config = tmp_path / "worker.toml"
    config.write_text(f'server = "{room.url}"\ntoken = "{room.token}"\n')
    result = run_cli("worker", "--config", str(config))
    assert result.returncode == 2
    assert "token_file" in result.stderr
    assert room.token not in result.stderr + result.stdout


@pytest.mark.slow
def test_sigterm_wait_lets_the_job_finish(room: Room, tmp_path: Path) -> None:
    """SIGTERM with ``--on-stop wait``: maintenance, the job goes on, and the
    worker exits 0 once the job has ended.

    With one slot the pause is not visible from outside while the job runs
    (the status is ``busy`` either way, as slots.py documents, and the worker
    leaves the room when the job ends); the two-slot test below checks it.

    Deterministic variant: the job is long (1000 epochs), so it is surely still
    running when we look at the worker's status and count more epochs after
    the signal; it then ends the graceful way a user ends it, by answering
    "stop (keep the model)" to ``train``'s Ctrl-C question (its stdin is a
    terminal). The model so far is kept, ``train`` exits 0, and the worker,
    which was waiting for that job, exits 0 by itself. (A job with few epochs
    could finish before the signal lands, and a second SIGTERM would test
    "stop at once" instead of "wait".)
    """
    mount = tmp_path / "mount"
    mount.mkdir()
    worker = _worker(*room.worker_flags("wait1", mount), "--on-stop", "wait")
    master, slave = pty.openpty()
    train: Proc | None = None
    try:
        job = _long_job(mount, tmp_path, "wait1")
        train = _train(room, *job, stdin=slave)
        wait_until(lambda: _epoch_lines(train) >= 1, timeout=scaled(90), interval=0.1)

        worker.popen.send_signal(signal.SIGTERM)
        seen = _epoch_lines(train)
        wait_until(lambda: _epoch_lines(train) > seen, timeout=scaled(30))
        assert worker.popen.poll() is None, worker.output
        assert train.popen.poll() is None, train.output

        train.popen.send_signal(signal.SIGINT)
        wait_until(lambda: "[s/c]" in train.stdout, timeout=scaled(15))
        os.write(master, b"s\n")
        assert train.wait(60) == 0, train.output
        assert "stopping: the model so far is kept" in train.stdout
        (line,) = [x for x in train.stdout.splitlines() if "model here: " in x]
        model = Path(line.split("model here: ", 1)[1])
        assert list(model.glob("*.ckpt")), train.output
        assert worker.wait(30) == 0, worker.output
    finally:
        os.close(master)
        os.close(slave)
        _stop(train, worker)


@pytest.mark.slow
def test_a_second_ctrl_c_at_the_question_cancels_at_once(
    room: Room, tmp_path: Path
) -> None:
    """Ctrl-C asks "stop or cancel?"; a second Ctrl-C cancels without waiting
    for Enter, and ``train`` exits 130 as an interrupted command does."""
    mount = tmp_path / "mount"
    mount.mkdir()
    worker = _worker(*room.worker_flags("ctrlc1", mount))
    master, slave = pty.openpty()
    train: Proc | None = None
    try:
        train = _train(room, *_long_job(mount, tmp_path, "ctrlc1"), stdin=slave)
        wait_until(lambda: _epoch_lines(train) >= 1, timeout=scaled(90), interval=0.1)
        train.popen.send_signal(signal.SIGINT)
        wait_until(lambda: "[s/c]" in train.stdout, timeout=scaled(15))
        train.popen.send_signal(signal.SIGINT)  # no answer typed
        assert train.wait(30) == 130, train.output
        assert "cancelling" in train.stdout
        wait_until(lambda: _status(room, "ctrlc1") == "available", timeout=scaled(30))
    finally:
        os.close(master)
        os.close(slave)
        _stop(train, worker)


@pytest.mark.slow
def test_sigterm_refuses_new_jobs(room: Room, tmp_path: Path) -> None:
    """After SIGTERM a worker with a free slot shows ``busy`` instead of
    ``available`` and refuses new jobs: by negotiation (exit 2, no worker) and
    when the client names it with ``--worker`` (exit 3)."""
    mount = tmp_path / "mount"
    mount.mkdir()
    worker = _worker(*room.worker_flags("pause1", mount), "--max-concurrent-jobs", "2")
    train: Proc | None = None
    try:
        train = _train(room, *_long_job(mount, tmp_path, "pause1"))
        wait_until(lambda: _epoch_lines(train) >= 1, timeout=scaled(90), interval=0.1)
        assert _status(room, "pause1") == "available"  # one slot is free

        worker.popen.send_signal(signal.SIGTERM)
        wait_until(
            lambda: _status(room, "pause1") == "busy",
            timeout=scaled(15),
            interval=0.2,
        )
        labels = write_tiny_labels(mount / "short.pkg.slp")
        config = tmp_path / "short.yaml"
        config.write_text(tiny_training_config(max_epochs=1))
        job = (str(labels), "--config", str(config), *room.client_flags)
        negotiated = run_cli("train", *job)
        assert negotiated.returncode == 2, negotiated.stdout + negotiated.stderr
        direct = run_cli("train", *job, "--worker", "pause1")
        assert direct.returncode == 3, direct.stdout + direct.stderr
    finally:
        _stop(train, worker)


@pytest.mark.slow
def test_sigterm_cancel_cancels_the_job(room: Room, tmp_path: Path) -> None:
    """SIGTERM with ``--on-stop cancel``: the running job is cancelled, the
    client is told (exit 1 with a message naming the cancellation), the worker
    exits 0, and no process of the job (sleap-nn) is left behind."""
    mount = tmp_path / "mount"
    mount.mkdir()
    worker = _worker(*room.worker_flags("cancel1", mount), "--on-stop", "cancel")
    train: Proc | None = None
    try:
        train = _train(room, *_long_job(mount, tmp_path, "cancel1"))
        wait_until(lambda: _epoch_lines(train) >= 1, timeout=scaled(90), interval=0.1)
        job_pids = _descendants(worker.popen.pid)
        assert any("sleap" in _cmdline(p) for p in job_pids), [
            _cmdline(p) for p in job_pids
        ]

        worker.popen.send_signal(signal.SIGTERM)
        assert train.wait(60) == 1, train.output
        assert "cancel" in "".join(train.err).lower(), train.output
        assert worker.wait(30) == 0, worker.output
        wait_until(lambda: not any(_alive(p) for p in job_pids), timeout=scaled(10))
    finally:
        _stop(train, worker)


@pytest.mark.slow
def test_download_brings_the_model_next_to_the_labels(
    room: Room, tmp_path: Path
) -> None:
    """The worker trains from its own copy of the labels (another folder, named
    by ``--map``); ``--download`` copies the model folder into ``models/`` next
    to the client's labels."""
    client_dir, mount = tmp_path / "client", tmp_path / "worker-disk"
    client_dir.mkdir()
    mount.mkdir()
    labels = write_tiny_labels(client_dir / "labels.pkg.slp")
    shutil.copy2(labels, mount / labels.name)
    config = tmp_path / "cfg.yaml"
    config.write_text(tiny_training_config(max_epochs=2))
    worker = _worker(*room.worker_flags("dl1", mount))
    try:
        result = subprocess.run(
            [
                SLEAP_RTC,
                "train",
                str(labels),
                "--config",
                str(config),
                "--worker",
                "dl1",
                "--map",
                f"{client_dir}={mount}",
                "--download",
                *room.client_flags,
            ],
            capture_output=True,
            text=True,
            timeout=scaled(120),
            env={**os.environ, **CLI_ENV},
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "epoch 2/2" in result.stdout
        worker_model = Path(result.stdout.split("result: ")[-1].strip())
        assert worker_model.is_relative_to(mount)
        (line,) = [
            x for x in result.stdout.splitlines() if x.startswith("model here: ")
        ]
        local = Path(line.removeprefix("model here: "))
        assert local.parent == client_dir / "models"
        assert list(local.glob("*.ckpt"))
        assert {p.name for p in local.iterdir()} >= {
            p.name for p in worker_model.iterdir() if p.is_file()
        }
    finally:
        worker.popen.terminate()
        worker.wait(30)
