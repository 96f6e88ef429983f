"""``sleap-rtc doctor``: each check against real parts, and the command itself.

Server checks run against the real embedded signaling service of
``tests/fixtures/signaling.py`` on 127.0.0.1; "unreachable" is a loopback port
that was just released. Mounts are folders in ``tmp_path``; a read-only one is
enforced by the kernel (as root, the command runs under ``setpriv`` without the
capabilities that bypass file permissions). The command runs as a real
process (``python -m sleap_rtc_core.cli doctor``); the slow torch and sleap-nn
checks are skipped there and tested once on their own.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sleap_rtc_core.doctor import (
    Check,
    DoctorOptions,
    Verdict,
    any_failed,
    check_credentials,
    check_disk,
    check_http,
    check_importable,
    check_mount,
    check_packages,
    check_python,
    check_room_secret,
    check_torch,
    check_websocket,
    check_zmq_ports,
    format_report,
    http_url,
    run_checks,
)
from sleap_rtc_core.signaling.service import Service
from tests.fixtures.signaling import RoomCreds
from tests.fixtures.timing import scaled
from tests.fixtures.transport import stated_worker

FAST = ("--skip", "torch", "--skip", "sleap-nn")
"""Flags that leave out the two slow checks (each tested on its own)."""


@pytest.fixture
def free_port() -> int:
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def held_port() -> Iterator[int]:
    """A loopback port held by a listening TCP socket for the test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


async def doctor(*args: str, enforce_permissions: bool = False) -> tuple[int, str, str]:
    """Run ``sleap-rtc doctor ARGS`` as a process; (exit status, stdout, stderr)."""
    prefix = _privilege_prefix() if enforce_permissions else []
    proc = await asyncio.create_subprocess_exec(
        *prefix,
        sys.executable,
        "-m",
        "sleap_rtc_core.cli",
        "doctor",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), scaled(60))
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _privilege_prefix() -> list[str]:
    """As root, drop the capabilities that ignore file permissions."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions are not enforced")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"]


def by_name(checks: list[dict[str, Any]] | list[Check]) -> dict[str, Any]:
    """The (last) check of each name."""
    out: dict[str, Any] = {}
    for check in checks:
        name = check["name"] if isinstance(check, dict) else check.name
        out[name] = check
    return out


# --- the Check record and the report


def test_check_verdicts_lines_and_json() -> None:
    ok = Check("zmq", True, "bound")
    bad = Check("websocket", False, "refused", "start the server")
    skipped = Check("torch", None, "skipped (--skip)")
    assert [c.verdict for c in (ok, bad, skipped)] == [
        Verdict.OK,
        Verdict.FAIL,
        Verdict.SKIP,
    ]
    assert bad.line().startswith("FAIL  websocket")
    assert bad.line().endswith("refused  -> start the server")
    assert "\n" not in bad.line()
    assert bad.to_dict() == {
        "name": "websocket",
        "verdict": "FAIL",
        "ok": False,
        "detail": "refused",
        "advice": "start the server",
    }
    assert any_failed([ok, bad])
    assert not any_failed([ok, skipped])
    assert format_report([ok, bad, skipped]).endswith(
        "1 of 3 checks failed (1 skipped)\n"
    )
    assert format_report([ok]).endswith("all 1 checks passed\n")


def test_http_url() -> None:
    assert http_url("ws://h:1/") == "http://h:1"
    assert http_url("wss://h") == "https://h"
    assert http_url("http://h:2") == "http://h:2"


# --- this machine


def test_python_and_packages() -> None:
    python = check_python()
    assert python.ok is True
    assert sys.executable in python.detail
    packages = check_packages(worker=True)
    assert packages.ok is True, packages
    for name in ("sleap-rtc", "websockets", "aiortc", "sleap-nn", "sleap-io", "torch"):
        assert f"{name} " in packages.detail


def test_torch_reports_the_devices() -> None:
    check = check_torch(0, worker=True)
    assert check.ok is True, check
    assert check.detail.startswith("torch ")
    # A GPU index that no machine has fails where CUDA works; without CUDA the
    # worker trains on the CPU, which is reported, not failed.
    far = check_torch(999, worker=True)
    if "no CUDA GPU visible" in check.detail:
        assert far.ok is True
        assert "CPU" in far.advice
    else:
        assert far.ok is False
        assert "does not exist" in far.advice


async def test_importable_in_a_child_process() -> None:
    ok = await check_importable("json", timeout=scaled(30))
    assert ok.ok is True, ok
    missing = await check_importable("no_such_module_xyz", timeout=scaled(30))
    assert missing.ok is False
    assert "pip install" in missing.advice
    optional = await check_importable(
        "no_such_module_xyz", timeout=scaled(30), required=False
    )
    assert optional.ok is None
    broken = await check_importable("sleap_rtc_core._no_such_part", timeout=scaled(30))
    assert broken.ok is False
    assert "ModuleNotFoundError" in broken.detail


async def test_import_timeout_kills_the_child() -> None:
    check = await check_importable("sleap_nn.train", name="sleap-nn", timeout=0.01)
    assert check.ok is False
    assert "did not finish within" in check.detail


@pytest.mark.slow
async def test_sleap_nn_imports_for_real() -> None:
    check = await check_importable("sleap_nn.train", timeout=scaled(180))
    assert check.ok is True, check
    assert "sleap_nn 0.3" in check.detail


def test_mount_readable_and_writable(tmp_path: Path) -> None:
    check = check_mount(tmp_path)
    assert check.ok is True, check
    assert list(tmp_path.iterdir()) == []  # the probe file is gone


def test_mount_through_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    check = check_mount(tmp_path / "link")
    assert check.ok is True
    assert str(tmp_path / "real") in check.detail


def test_mount_missing_or_not_a_folder(tmp_path: Path) -> None:
    missing = check_mount(tmp_path / "nope")
    assert missing.ok is False
    assert "does not exist" in missing.detail
    (tmp_path / "file").write_text("x", encoding="utf-8")
    file = check_mount(tmp_path / "file")
    assert file.ok is False
    assert "not a folder" in file.detail


def test_disk_space(tmp_path: Path) -> None:
    assert check_disk(tmp_path, min_free=0).ok is True
    full = check_disk(tmp_path, min_free=1 << 60)
    assert full.ok is False
    assert "GiB free" in full.detail
    assert "free at least" in full.advice


def test_zmq_ports(held_port: int, free_port: int) -> None:
    assert check_zmq_ports().ok is True
    assert check_zmq_ports([free_port]).ok is True
    taken = check_zmq_ports([held_port])
    assert taken.ok is False
    assert str(held_port) in taken.detail
    assert "ss -ltnp" in taken.advice


# --- the server


async def test_server_reachable(service: Service) -> None:
    ws = await check_websocket(service.server.url, timeout=scaled(5))
    assert ws.ok is True, ws
    assert "round trip" in ws.detail
    http = await check_http(service.server.url, timeout=scaled(5))
    assert http.ok is True, http
    assert "healthy" in http.detail
    assert " ms" in http.detail


async def test_server_unreachable(free_port: int) -> None:
    url = f"ws://127.0.0.1:{free_port}"
    ws = await check_websocket(url, timeout=scaled(5))
    assert ws.ok is False
    assert "Connection refused" in ws.detail
    assert "sleap-rtc server" in ws.advice
    http = await check_http(url, timeout=scaled(5))
    assert http.ok is False
    assert "sleap-rtc server" in http.advice


async def test_websocket_bad_url() -> None:
    bad = await check_websocket("not a url", timeout=scaled(5))
    assert bad.ok is False
    assert "ws://HOST:PORT" in bad.advice


async def test_credentials_valid(service: Service, room: RoomCreds) -> None:
    check = await check_credentials(
        service.server.url,
        {"room_id": room.room_id, "token": room.token},
        described="room token",
        timeout=scaled(5),
    )
    assert check.ok is True, check
    assert room.room_id in check.detail


async def test_credentials_invalid(service: Service, room: RoomCreds) -> None:
    wrong = await check_credentials(
        service.server.url,
        {"room_id": room.room_id, "token": "not-the-token"},
        timeout=scaled(5),
    )
    assert wrong.ok is False
    assert "refused" in wrong.detail
    assert wrong.advice
    no_room = await check_credentials(
        service.server.url,
        {"room_id": "no-such-room", "token": "x"},
        timeout=scaled(5),
    )
    assert no_room.ok is False
    assert no_room.advice


async def test_run_checks_all_green(
    service: Service, room: RoomCreds, tmp_path: Path
) -> None:
    checks = await run_checks(
        DoctorOptions(
            server=service.server.url,
            credentials={"room_id": room.room_id, "token": room.token},
            room_secret="the room's secret",
            mounts=[tmp_path],
            worker=True,
            timeout=scaled(5),
            min_free=0,
            skip=frozenset({"torch", "sleap-nn"}),
        )
    )
    assert [c.name for c in checks] == [
        "python",
        "packages",
        "torch",
        "sleap-nn",
        "websocket",
        "http",
        "credentials",
        "room secret",
        "mount",
        "disk",
        "zmq",
    ]
    assert not any_failed(checks), format_report(checks)


async def test_run_checks_server_down(free_port: int) -> None:
    checks = by_name(
        await run_checks(
            DoctorOptions(
                server=f"ws://127.0.0.1:{free_port}",
                credentials={"room_id": "r", "token": "t"},
                timeout=scaled(5),
                skip=frozenset({"torch", "sleap-nn"}),
            )
        )
    )
    assert checks["websocket"].ok is False
    assert checks["credentials"].ok is None
    assert "unreachable" in checks["credentials"].detail


# --- the command


async def test_command_json_all_green(
    service: Service, room: RoomCreds, tmp_path: Path
) -> None:
    code, out, err = await doctor(
        "--server",
        service.server.url,
        "--room",
        room.room_id,
        "--token",
        room.token,
        "--room-secret",
        "the room's secret",
        "--mount",
        str(tmp_path),
        "--json",
        *FAST,
    )
    checks = json.loads(out)
    assert code == 0, out + err
    assert isinstance(checks, list)
    for check in checks:
        assert set(check) == {"name", "verdict", "ok", "detail", "advice"}
        assert check["verdict"] in {"OK", "SKIP"}
    named = by_name(checks)
    assert named["credentials"]["ok"] is True
    assert "room token from the command line" in named["credentials"]["detail"]
    assert named["mount"]["ok"] is True
    assert room.token not in out


async def test_command_wrong_credentials_exit_1(
    service: Service, room: RoomCreds
) -> None:
    code, out, _ = await doctor(
        "--server", service.server.url, "--room", room.room_id, "--token", "bad", *FAST
    )
    assert code == 1
    line = next(x for x in out.splitlines() if x.startswith("FAIL  credentials"))
    assert "->" in line


async def test_command_server_down_exit_1(free_port: int) -> None:
    code, out, _ = await doctor(
        "--server", f"ws://127.0.0.1:{free_port}", "--timeout", "5", *FAST
    )
    assert code == 1
    assert "FAIL  websocket" in out
    assert "sleap-rtc server" in out
    assert "SKIP  credentials" in out
    assert out.rstrip().endswith("skipped)")


async def test_command_port_taken_exit_1(service: Service, held_port: int) -> None:
    code, out, _ = await doctor(
        "--server", service.server.url, "--zmq-port", str(held_port), "--json", *FAST
    )
    assert code == 1
    assert by_name(json.loads(out))["zmq"]["ok"] is False


async def test_command_read_only_mount_exit_1(service: Service, tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    hidden.chmod(0)
    try:
        code, out, _ = await doctor(
            "--server",
            service.server.url,
            "--mount",
            str(ro),
            "--mount",
            f"{hidden}:secret",
            "--mount",
            str(hidden / "inner"),
            "--json",
            *FAST,
            enforce_permissions=True,
        )
    finally:
        ro.chmod(0o700)
        hidden.chmod(0o700)
    assert code == 1
    mounts = [c for c in json.loads(out) if c["name"] == "mount"]
    assert [m["ok"] for m in mounts] == [False, False, False]
    assert "not writable" in mounts[0]["detail"]
    assert "not readable" in mounts[1]["detail"]
    assert "not accessible" in mounts[2]["detail"]
    assert list(ro.iterdir()) == []


async def test_command_from_worker_config(
    service: Service, room: RoomCreds, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text(room.token + "\n", encoding="utf-8")
    (tmp_path / "data").mkdir()
    config = tmp_path / "worker.toml"
    config.write_text(
        f'server = "{service.server.url}"\nroom = "{room.room_id}"\n'
        'token_file = "token"\n\n[[mounts]]\npath = "data"\n',
        encoding="utf-8",
    )
    code, out, err = await doctor("--config", str(config), "--json", *FAST)
    named = by_name(json.loads(out))
    assert named["room secret"]["ok"] is False  # a worker without one is useless
    assert code == 1
    monkeypatch.setenv("SLEAP_ROOM_SECRET", "the room's secret")
    code, out, err = await doctor("--config", str(config), "--json", *FAST)
    named = by_name(json.loads(out))
    assert named["config"]["ok"] is True
    assert named["credentials"]["ok"] is True, named["credentials"]
    assert str(tmp_path / "data") in named["mount"]["detail"]
    assert code == 0, out + err


async def test_command_bad_worker_config(tmp_path: Path, free_port: int) -> None:
    config = tmp_path / "worker.toml"
    config.write_text('api_key = "slp_secret"\n', encoding="utf-8")
    code, out, _ = await doctor(
        "--config", str(config), "--server", f"ws://127.0.0.1:{free_port}", *FAST
    )
    assert code == 1
    line = next(x for x in out.splitlines() if x.startswith("FAIL  config"))
    assert str(config) in line
    assert "api_key_file" in line
    assert "slp_secret" not in out


async def test_the_room_secret_is_tried_against_a_worker(
    service: Service, room: RoomCreds, tmp_path: Path, room_secret: str
) -> None:
    """A real worker (stated GPU) in the room: its secret passes both ways, another
    fails and says so, none fails; no worker: not tried."""
    creds = {"room_id": room.room_id, "token": room.token}

    async def check(secret: str | None) -> Check:
        return await check_room_secret(
            service.server.url, creds, secret, timeout=scaled(10)
        )

    alone = await check(room_secret)
    assert alone.ok is None
    assert "no sleap-rtc worker" in alone.detail
    async with stated_worker(service.server.url, room, tmp_path, room_secret):
        good = await check(room_secret)
        assert good.ok is True, good
        assert "proved" in good.detail
        bad = await check("not the room's secret")
        assert bad.ok is False
        assert "not the worker's" in bad.advice
    missing = await check(None)
    assert missing.ok is False
    assert "room create" in missing.advice
