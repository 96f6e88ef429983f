"""``sleap-rtc fetch``: its flags, and what it says when there is nothing to
fetch, against a separately started server and worker (real processes, real
WebRTC on 127.0.0.1).

A fetch of a real finished job (models trained by sleap-nn, fetched by a new
process naming the worker by its name) runs in ``test_jobs.py``'s
``test_train_then_track_remotely``, which trains the job it fetches; resuming a
half-copied folder is :func:`~sleap_rtc_core.client.model_download.download_models`'s
and tested in ``tests/client/test_model_download.py``.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sleap_rtc_core.cli import build_parser
from tests.commands.conftest import help_of
from tests.fixtures.cli import run_cli, start_server, start_worker


@pytest.fixture(scope="module")
def flags(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """A running server and worker (``gpu1``, named ``lab-gpu``); the flags a
    client needs to reach them."""
    root = tmp_path_factory.mktemp("fetch")
    data, shared = root / "data", root / "shared"
    shared.mkdir()
    server, url = start_server(data)
    procs: list[subprocess.Popen[str]] = [server]
    try:
        room = json.loads(
            run_cli(
                "room", "create", "--name", "lab", "--data-dir", str(data), "--json"
            ).stdout
        )
        secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        given = ["--server", url, "--room", room["room_id"]]
        given += ["--token", room["room_token"], "--room-secret", secret]
        procs.append(
            start_worker(
                *given, "--mount", str(shared), "--peer-id", "gpu1", "--name", "lab-gpu"
            )
        )
        yield given
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=30)


def test_fetch_takes_the_job_the_worker_and_where_to() -> None:
    args = build_parser().parse_args(
        ["fetch", "job_0123abcd", "--worker", "lab-gpu", "--to", "out"]
    )
    assert (args.job_id, args.worker, args.to) == ("job_0123abcd", "lab-gpu", "out")
    assert args.handler.__name__ == "run_fetch"
    text = help_of("fetch")
    assert "Copy what a finished job made" in text
    for shown in ("job_id", "--worker WORKER", "--to TO", "--server", "--room"):
        assert shown in text, shown
    assert "SLEAP_RTC_ICE_LOOPBACK" in text
    with pytest.raises(SystemExit):
        build_parser().parse_args(["fetch", "job_0123abcd"])  # --worker is required


def test_without_credentials_it_says_so_with_status_2() -> None:
    result = run_cli("fetch", "job_0123abcd", "--worker", "gpu1", "--room", "r")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("sleap-rtc: error: no credentials: pass --token")


def test_a_job_the_worker_never_had_fails_with_status_1(
    flags: list[str], tmp_path: Path
) -> None:
    result = run_cli(
        "fetch", "job_00000000", "--worker", "lab-gpu", "--to", str(tmp_path), *flags
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "failed: " in result.stderr
    assert "no job" in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing was copied


def test_a_worker_not_in_the_room_is_named_in_the_failure(flags: list[str]) -> None:
    result = run_cli("fetch", "job_00000000", "--worker", "gpu-box-9", *flags)
    assert result.returncode == 1, result.stdout
    assert "no worker 'gpu-box-9' in this room" in result.stderr
    assert "gpu1 (lab-gpu)" in result.stderr
