"""Commands that never hang (issue 20, cases 2 and 3): every network wait says
what it waits for, has a bound, and a signal ends it within
:data:`~tests.cli.conftest.SIGNAL_BOUND`."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from sleap_rtc_core.sample_data import tiny_training_config, write_tiny_labels
from tests.fixtures.timing import scaled, wait_until

from .conftest import Lab, interrupt


def _dead_url() -> str:
    """A loopback ws:// URL nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"ws://127.0.0.1:{probe.getsockname()[1]}"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_worker_without_its_server_says_what_it_waits_for_and_ends_on_a_signal(
    lab: Lab, signum: int
) -> None:
    url = _dead_url()
    worker = lab.spawn(
        "worker", "--server", url, "--room", "r", "--token", "t",
        "--mount", str(lab.root), "--room-secret", "s3cret",
    )  # fmt: skip
    wait_until(lambda: "cannot reach" in worker.output, timeout=scaled(30))
    assert url in worker.output  # not only with -v: it names what it waits for
    assert interrupt(worker, signum) in (0, 130, 128 + signum), worker.output
    assert "Traceback" not in worker.output
    assert "stopped before the signaling server was reached" in worker.output


@pytest.mark.slow
def test_a_worker_whose_server_dies_ends_on_ctrl_c_without_a_traceback(
    lab: Lab,
) -> None:
    worker = lab.worker("gpu-a", lab.root / "shared")
    server = lab.procs[0]
    server.popen.kill()
    server.popen.wait()
    wait_until(
        lambda: "cannot reach" in worker.output or "lost" in worker.output,
        timeout=scaled(30),
    )
    assert interrupt(worker) in (0, 130), worker.output
    assert "Traceback" not in worker.output, worker.output


def test_a_revoked_worker_key_is_a_clear_message_and_a_non_zero_exit(
    lab: Lab,
) -> None:
    made = lab.run(
        "token", "create", "--room", lab.room_id, "--worker-name", "gpu-k",
        "--data-dir", str(lab.data), "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)["secret"]
    worker_args = [
        "worker", "--server", lab.url, "--api-key", key,
        "--mount", str(lab.root), "--room-secret", lab.secret,
    ]  # fmt: skip
    worker = lab.spawn(*worker_args)
    wait_until(lambda: "ready" in worker.stdout, timeout=scaled(60))
    revoked = lab.run("token", "revoke", key, "--data-dir", str(lab.data))
    assert revoked.returncode == 0, revoked.stderr
    code = worker.wait(30)
    assert code != 0, worker.output
    assert "revoked" in worker.stderr.lower(), worker.output
    assert "Traceback" not in worker.output
    # Started again with the revoked key: refused at once, as clearly.
    again = lab.run(*worker_args, timeout=60)
    assert again.returncode != 0
    assert "Traceback" not in again.stderr
    assert again.stderr.strip(), again.stdout


@pytest.mark.slow
@pytest.mark.parametrize("command", ["train", "check"])
def test_a_client_with_an_unreachable_server_waits_a_bounded_time(
    lab: Lab, command: str
) -> None:
    url = _dead_url()
    labels = write_tiny_labels(lab.root / "x.pkg.slp")
    config = lab.root / "cfg.yaml"
    config.write_text(tiny_training_config(max_epochs=1))
    extra = ["--config", str(config)] if command == "train" else []
    flags = ["--server", url, "--room", "r", "--token", "t", "--room-secret", "s"]
    proc = lab.spawn(command, str(labels), *extra, *flags)
    start = time.monotonic()
    # It says what it waits for long before it gives up ...
    wait_until(lambda: url in proc.stderr, timeout=scaled(10))
    said = time.monotonic() - start
    # ... and gives up within its bound (20 s), with a message and exit 1.
    assert proc.wait(60) == 1, proc.output
    assert said < time.monotonic() - start
    assert f"cannot reach {url}" in proc.stderr
    assert "Traceback" not in proc.output
    lab.assert_clean(proc.output)


def test_ctrl_c_while_a_client_waits_for_its_server_ends_it_at_once(
    lab: Lab, tmp_path: Path
) -> None:
    labels = write_tiny_labels(tmp_path / "x.pkg.slp")
    flags = ["--server", _dead_url(), "--room", "r", "--token", "t"]
    proc = lab.spawn("check", str(labels), *flags, "--room-secret", "s")
    wait_until(lambda: "cannot reach" in proc.stderr, timeout=scaled(10))
    assert interrupt(proc) == 130, proc.output
    assert "Traceback" not in proc.output


def test_the_waits_before_a_job_say_what_they_wait_for_with_the_time(
    tmp_path: Path,
) -> None:
    """A server that comes up late: ``train``, ``check`` and ``workers`` say
    that they wait for it, with the time waited, then go on once it is
    there (the room has no worker yet: no worker, exit 2; an empty list)."""
    from tests.fixtures.cli import CLI_ENV, SLEAP_RTC, Proc

    data, tmp = tmp_path / "server", tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, **CLI_ENV, "TMPDIR": str(tmp)}
    made = subprocess.run(
        [SLEAP_RTC, "room", "create", "--name", "Lab A", "--data-dir", str(data),
         "--json"],
        capture_output=True, text=True, env=env, timeout=scaled(60),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    room = json.loads(made.stdout)
    url = _dead_url()  # nobody listens there yet
    labels = write_tiny_labels(tmp_path / "x.pkg.slp")
    config = tmp_path / "cfg.yaml"
    config.write_text(tiny_training_config(max_epochs=1))
    flags = ["--server", url, "--room", "Lab A", "--token", room["room_token"],
             "--room-secret", "s3cret"]  # fmt: skip
    commands = {
        "train": ["train", str(labels), "--config", str(config), *flags],
        "check": ["check", str(labels), *flags],
        "workers": ["workers", *flags],
    }
    procs: dict[str, Proc] = {}
    server: Proc | None = None
    try:
        for name, argv in commands.items():
            procs[name] = Proc(
                subprocess.Popen(
                    [SLEAP_RTC, *argv], stdin=subprocess.DEVNULL, text=True,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                )
            )  # fmt: skip
        waiting = re.compile(
            rf"connecting to the signaling server {re.escape(url)}\s+\d+\.\ds so far"
        )
        for proc in procs.values():
            wait_until(lambda p=proc: waiting.search(p.stderr), timeout=scaled(15))
        port = url.rsplit(":", 1)[1]
        server = Proc(
            subprocess.Popen(
                [SLEAP_RTC, "server", "--port", port, "--data-dir", str(data)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            )
        )  # fmt: skip
        codes = {name: proc.wait(60) for name, proc in procs.items()}
        assert codes == {"train": 2, "check": 2, "workers": 0}, {
            n: p.output for n, p in procs.items()
        }
        assert "no worker" in procs["train"].stderr
        assert "no worker in this room" in procs["check"].stderr
        assert "no workers in this room" in procs["workers"].stdout
        for proc in procs.values():
            assert "Traceback" not in proc.output
    finally:
        for proc in [*procs.values(), *([server] if server else [])]:
            proc.end()
