"""``sleap-rtc doctor`` as a real process (``python -m sleap_rtc_core.cli doctor``).

The slow torch and sleap-nn checks are skipped here and tested once on their own
(``test_machine.py``). A read-only mount is enforced by the kernel (as root, the
command runs under ``setpriv`` without the capabilities that bypass file
permissions).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest

from sleap_rtc_core.doctor.report import Check
from sleap_rtc_core.doctor.server import (
    check_room_secret,
)
from sleap_rtc_core.signaling.service import Service
from tests.fixtures.doctor import by_name
from tests.fixtures.signaling import RoomCreds
from tests.fixtures.timing import scaled
from tests.fixtures.transport import stated_worker

FAST = ("--skip", "torch", "--skip", "sleap-nn")
"""Flags that leave out the two slow checks (each tested on its own)."""


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
