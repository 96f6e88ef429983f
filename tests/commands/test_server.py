"""``sleap-rtc server`` as a real process: ready line, serving, clean stop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

from sleap_rtc_core.cli import build_parser
from sleap_rtc_core.commands import server as server_command
from sleap_rtc_core.signaling.redis.backend import RedisBackend
from sleap_rtc_core.signaling.redis.config import RedisConfig
from sleap_rtc_core.signaling.store.auth_store import open_store
from tests.fixtures.cli import SLEAP_RTC, start_server
from tests.fixtures.signaling import WsPeer
from tests.fixtures.timing import scaled


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_server_prints_ready_line_serves_and_stops_cleanly(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    proc, url = start_server(tmp_path / "data")
    try:
        http_url = url.replace("ws://", "http://") + "/health"
        with urllib.request.urlopen(http_url, timeout=scaled(5)) as resp:
            assert json.load(resp)["status"] == "healthy"
        # The HTTP API is served on the same port.
        key_url = http_url.replace("/health", "/api/auth/public-key")
        with urllib.request.urlopen(key_url, timeout=scaled(5)) as resp:
            assert b"PUBLIC KEY" in resp.read()
        proc.send_signal(stop_signal)
        assert proc.wait(timeout=scaled(10)) == 0
    finally:
        proc.kill()
        proc.wait()
    # First start generated the store and the JWT key pair, private to the user.
    assert (tmp_path / "data" / "jwt_private.pem").stat().st_mode & 0o077 == 0


def test_bad_arguments_are_clear_errors(tmp_path: Path) -> None:
    result = subprocess.run(
        [SLEAP_RTC, "server", "--ping-interval", "0", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=scaled(30),
    )
    assert result.returncode == 2
    assert "--ping-interval must be positive" in result.stderr


def test_served_websocket_sees_rooms_created_while_running(tmp_path: Path) -> None:
    """The real process (on uvloop) and another process's writes to its store."""
    proc, url = start_server(tmp_path)
    try:
        room = open_store(tmp_path).create_room("made while running")

        async def register() -> dict[str, object]:
            peer = await WsPeer.connect(url)
            reply = await peer.register("w", room_id=room.room_id, token=room.token)
            await peer.close()
            return reply

        assert asyncio.run(register())["type"] == "registered_auth"
    finally:
        proc.terminate()
        assert proc.wait(timeout=scaled(10)) == 0


def test_limits_from_the_config_file_and_flags_take_effect(tmp_path: Path) -> None:
    """A lab sets limits in one file (flags on top): here the register timeout,
    which closes a socket that never registers."""
    config = tmp_path / "server.toml"
    config.write_text(
        'host = "127.0.0.1"\n[limits]\nregister_timeout = 60\nburst = 50\n'
    )
    proc, url = start_server(
        tmp_path / "data", "--config", str(config), "--limit", "register_timeout=0.3"
    )
    try:

        async def wait_closed() -> int | None:
            peer = await WsPeer.connect(url)
            try:
                await asyncio.wait_for(peer.ws.wait_closed(), scaled(10))
            finally:
                await peer.close()
            return peer.ws.close_code

        assert asyncio.run(wait_closed()) == 1008
    finally:
        proc.terminate()
        proc.wait(timeout=scaled(10))


def test_the_config_file_alone_sets_room_bounds_and_announce_default(
    tmp_path: Path,
) -> None:
    """Every bound of one file takes effect without flags: a room of at most
    two peers, and peers that send no ``subscribe`` hear nothing."""
    config = tmp_path / "server.toml"
    config.write_text('announce_default = "none"\n[limits]\nmax_peers_per_room = 2\n')
    proc, url = start_server(tmp_path, "--config", str(config))
    try:
        room = open_store(tmp_path).create_room("bounded")

        async def fill() -> list[dict[str, object]]:
            creds = {"room_id": room.room_id, "token": room.token}
            first = await WsPeer.connect(url)
            second = await WsPeer.connect(url)
            third = await WsPeer.connect(url)
            try:
                replies = [await first.register("w1", **creds)]
                replies.append(await second.register("w2", **creds))
                replies.append(await third.register("w3", **creds))
                with pytest.raises(TimeoutError):  # no peer_joined for w2
                    await first.recv(timeout=0.3)
                return replies
            finally:
                await asyncio.gather(first.close(), second.close(), third.close())

        one, two, three = asyncio.run(fill())
        assert one["type"] == two["type"] == "registered_auth"
        assert two["peer_list"] == []  # announce_default = "none"
        assert three["code"] == "ROOM_FULL"
    finally:
        proc.terminate()
        proc.wait(timeout=scaled(10))


@pytest.mark.parametrize(
    ("content", "flags", "said"),
    [
        ("[limits]\nnope = 1\n", [], "unknown limit 'nope'"),
        ("[limits]\nburst = 0\n", [], "must be above zero"),
        ('colour = "red"\n', [], "unknown setting 'colour'"),
        ("", ["--limit", "burst"], "NAME=NUMBER"),
        ("not = [toml", [], "server.toml"),
        ('announce_default = "some"\n', [], "announce_default must be one of"),
    ],
)
def test_bad_server_settings_are_clear_errors(
    tmp_path: Path, content: str, flags: list[str], said: str
) -> None:
    config = tmp_path / "server.toml"
    config.write_text(content)
    result = subprocess.run(
        [SLEAP_RTC, "server", "--config", str(config), *flags, "--port", "0"],
        capture_output=True,
        text=True,
        timeout=scaled(30),
    )
    assert result.returncode == 2
    assert said in result.stderr


def _redis_settings(tmp_path: Path, content: str, *flags: str) -> RedisConfig | None:
    """The Redis config ``sleap-rtc server`` would run with, from a config
    file with ``content`` and ``flags`` (parsed by the real CLI parser)."""
    config = tmp_path / "server.toml"
    config.write_text(content)
    args = build_parser().parse_args(["server", "--config", str(config), *flags])
    settings = server_command._settings(args)
    return server_command.redis_config(
        settings, float(settings.get("ping_interval", 20))
    )


def test_hold_grace_comes_from_the_file_and_the_flag_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``hold_grace`` in server.toml, ``--hold-grace`` on top; the Redis
    backend built from it holds frames that long."""
    monkeypatch.delenv("SLEAP_RTC_REDIS_URL", raising=False)
    url = 'redis = "redis://127.0.0.1:1/0"\n'
    default = _redis_settings(tmp_path, url + "ping_interval = 8\n")
    assert default is not None
    assert default.hold == pytest.approx(10.0)  # 1.25 x the ping interval
    from_file = _redis_settings(tmp_path, url + "hold_grace = 42\n")
    assert from_file is not None
    assert from_file.hold == 42.0
    from_flag = _redis_settings(
        tmp_path, url + "hold_grace = 42\n", "--hold-grace", "3.5"
    )
    assert from_flag is not None
    assert from_flag.hold == 3.5
    assert RedisBackend(from_flag).holds.grace == 3.5
    assert _redis_settings(tmp_path, "") is None


@pytest.mark.parametrize(
    ("content", "flags", "said"),
    [
        ('redis = "redis://127.0.0.1:1/0"\n', ["--hold-grace", "0"], "above 0"),
        ('redis = "redis://127.0.0.1:1/0"\n', ["--hold-grace", "301"], "at most 300"),
        ('redis = "redis://127.0.0.1:1/0"\nhold_grace = "soon"\n', [], "a number"),
        ("hold_grace = 5\n", [], "only with --redis"),
    ],
)
def test_bad_hold_grace_is_a_clear_error(
    tmp_path: Path, content: str, flags: list[str], said: str
) -> None:
    config = tmp_path / "server.toml"
    config.write_text(content)
    result = subprocess.run(
        [SLEAP_RTC, "server", "--config", str(config), *flags, "--port", "0"],
        capture_output=True,
        text=True,
        timeout=scaled(30),
        env={k: v for k, v in os.environ.items() if k != "SLEAP_RTC_REDIS_URL"},
    )
    assert result.returncode == 2, result.stderr
    assert said in result.stderr
