"""``sleap-rtc worker`` and ``sleap-rtc workers`` as real processes.

The issue's "two terminals and a server": a server process, a worker process
registered with a worker key, and ``workers`` listing it with its GPU facts. The
machine has no GPU, so the worker reports the CPU fallback. How the worker's
settings reach :class:`WorkerService` is checked in process (no server needed).
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from sleap_rtc_core.cli import build_parser
from sleap_rtc_core.commands import worker as worker_command
from sleap_rtc_core.commands.worker import stable_worker_id
from sleap_rtc_core.errors import ConfigError
from sleap_rtc_core.worker.capabilities import CPU_GPU_MODEL, StatedGpu
from sleap_rtc_core.worker.files.slp_write import SlpWriteQuota
from tests.fixtures.cli import run_cli, start_server, start_worker
from tests.fixtures.timing import scaled, wait_until


def test_worker_is_listed_with_its_facts_and_leaves_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server, url = start_server(data)
    worker: subprocess.Popen[str] | None = None
    try:
        room = json.loads(
            run_cli(
                "room", "create", "--name", "lab", "--data-dir", str(data), "--json"
            ).stdout
        )
        key = json.loads(
            run_cli(
                "token",
                "create",
                "--room",
                room["room_id"],
                "--worker-name",
                "gpu-box",
                "--data-dir",
                str(data),
                "--json",
            ).stdout
        )["token_id"]
        shared = tmp_path / "shared"
        shared.mkdir()
        worker = start_worker(
            "--server",
            url,
            "--api-key",
            key,
            "--name",
            "gpu-box",
            "--mount",
            f"{shared}:lab-data",
        )

        creds = [
            "--server",
            url,
            "--room",
            room["room_id"],
            "--token",
            room["room_token"],
        ]
        table = run_cli("workers", *creds)
        assert table.returncode == 0, table.stderr
        header, row = table.stdout.splitlines()[:2]
        assert header.split()[:5] == ["PEER", "NAME", "GPU", "MEMORY", "STATUS"]
        assert "gpu-box" in row
        assert "CPU" in row
        assert "available" in row

        listed = json.loads(run_cli("workers", *creds, "--json").stdout)
        assert len(listed) == 1
        first_id = listed[0]["peer_id"]
        assert first_id.startswith("gpu-box-")  # NAME-<8 hex>, kept on restart
        props = listed[0]["metadata"]["properties"]
        assert props["gpu_model"] == "CPU"
        assert props["gpu_memory_mb"] == 0
        assert props["mounts"] == [{"path": str(shared), "label": "lab-data"}]
        assert key not in json.dumps(listed)

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=scaled(15)) == 0

        def gone() -> bool:
            return json.loads(run_cli("workers", *creds, "--json").stdout) == []

        wait_until(gone, timeout=scaled(10), interval=0.2)

        # The same worker started again comes back under the same peer id.
        worker = start_worker(
            "--server",
            url,
            "--api-key",
            key,
            "--name",
            "gpu-box",
            "--mount",
            f"{shared}:lab-data",
        )

        def back() -> bool:
            peers = json.loads(run_cli("workers", *creds, "--json").stdout)
            return [p["peer_id"] for p in peers] == [first_id]

        wait_until(back, timeout=scaled(30), interval=0.3)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=scaled(15)) == 0
    finally:
        for proc in (worker, server):
            if proc is not None:
                proc.kill()
                proc.wait()


def test_missing_credentials_are_a_clear_usage_error() -> None:
    result = run_cli("workers", "--server", "ws://127.0.0.1:9")
    assert result.returncode == 2
    assert "--room is required" in result.stderr
    result = run_cli("worker", "--server", "ws://127.0.0.1:9", "--room", "r")
    assert result.returncode == 2
    assert "sleap-rtc login" in result.stderr


def test_wrong_token_is_refused(tmp_path: Path) -> None:
    server, url = start_server(tmp_path)
    try:
        result = run_cli(
            "workers", "--server", url, "--room", "nosuchroom00", "--token", "x"
        )
        assert result.returncode == 1
        assert "error" in result.stderr.lower()
    finally:
        server.terminate()
        server.wait()


def test_a_worker_that_cannot_reach_the_server_says_so_and_stops_on_a_signal(
    tmp_path: Path,
) -> None:
    """Before the server is ever reached, the worker prints its retries and a
    SIGTERM (or Ctrl-C) stops it at once."""
    import os
    import socket

    from tests.fixtures.cli import CLI_ENV, SLEAP_RTC

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [SLEAP_RTC, "worker", "--server", f"ws://127.0.0.1:{port}"]
        + ["--room", "r", "--token", "t", "--mount", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **CLI_ENV},
    )
    try:
        assert proc.stderr is not None
        seen = ""
        while "cannot reach" not in seen:
            line = proc.stderr.readline()
            assert line, f"the worker ended without saying why: {seen}"
            seen += line
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=scaled(10))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "stopped before the signaling server was reached" in err


def test_the_slp_write_quota_reaches_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``slp_write_*`` in the config file, then ``--slp-write-*`` flags, end
    up as the quota of the worker's FS_WRITE_SLP."""
    config = tmp_path / "worker.toml"
    config.write_text(
        'room = "r"\nslp_write_files_per_peer = 3\nslp_write_bytes_total = 1000\n'
    )
    monkeypatch.setenv("SLEAP_RTC_TOKEN", "a-token")
    monkeypatch.setattr(
        worker_command, "TorchGpuProbe", lambda _gpu: StatedGpu(CPU_GPU_MODEL, 0)
    )
    base = ["worker", "--config", str(config), "--server", "ws://127.0.0.1:9"]
    args = build_parser().parse_args([*base, "--slp-write-files-total", "7"])
    service = worker_command.worker_service_from_args(args)
    assert service.fs.slp_writes.quota == SlpWriteQuota(
        max_files_per_peer=3, max_files_total=7, max_bytes_total=1000
    )
    args = build_parser().parse_args([*base, "--slp-write-bytes-per-peer", "-5"])
    with pytest.raises(ConfigError, match="--slp-write-bytes-per-peer"):
        worker_command.worker_service_from_args(args)


def test_a_worker_id_is_stable_readable_and_tells_workers_apart() -> None:
    creds = {"api_key": "slp_abc"}
    one = stable_worker_id(creds, "GPU Box #1", (0,), hostname="h")
    assert one == stable_worker_id(creds, "GPU Box #1", (0,), hostname="h")
    assert one.startswith("gpu-box-1-")
    assert "slp_abc" not in one
    others = {
        stable_worker_id({"api_key": "slp_other"}, "GPU Box #1", (0,), hostname="h"),
        stable_worker_id(creds, "GPU Box #1", (1,), hostname="h"),
        stable_worker_id(creds, "GPU Box #1", (0,), hostname="h2"),
        stable_worker_id(creds, "GPU Box #2", (0,), hostname="h"),
    }
    assert one not in others
    assert len(others) == 4
    unnamed = stable_worker_id({"room_id": "r", "jwt": "j1"}, None, "all", "Lab-PC")
    assert unnamed == stable_worker_id(
        {"room_id": "r", "jwt": "j2"}, None, "all", "Lab-PC"
    )
    assert unnamed.startswith("lab-pc-")
