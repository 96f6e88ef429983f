"""``sleap-rtc login`` against a real signaling server on 127.0.0.1.

The full flow runs the real command in a subprocess with ``--no-browser``: it
prints the login URL, the test plays the browser (logs in with a password over
HTTP and deposits the JWT for the URL's ``cli_state``), and the command saves
the JWT to ``$XDG_CONFIG_HOME/sleap-rtc/credentials.json`` with mode 0600.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import stat
import sys
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sleap_rtc_core.cli import main
from sleap_rtc_core.client.credentials import (
    credentials_path,
    load_credentials,
    login,
    normalize_server,
    save_credentials,
)
from sleap_rtc_core.errors import AuthError
from sleap_rtc_core.signaling.auth.jwt_keys import JwtKeys
from sleap_rtc_core.signaling.auth.passwords import hash_password
from sleap_rtc_core.signaling.http.api import http_api_factory
from sleap_rtc_core.signaling.server.router_io import ServerConfig, SignalingServer
from sleap_rtc_core.signaling.service import build_service
from sleap_rtc_core.signaling.store.auth_store import Store
from tests.fixtures.timing import scaled

PASSWORD = "correct horse battery"


@pytest.fixture
async def server() -> AsyncIterator[SignalingServer]:
    """A running server whose store has the user ``alice`` (:data:`PASSWORD`)."""
    store = Store(":memory:")
    pw_hash = await asyncio.to_thread(hash_password, PASSWORD)
    await asyncio.to_thread(store.add_user, "alice", pw_hash)
    srv = build_service(
        ServerConfig(port=0), store, JwtKeys.generate(), http=http_api_factory()
    ).server
    await srv.start()
    yield srv
    await srv.stop()
    store.close()


def base_url(srv: SignalingServer) -> str:
    return f"http://127.0.0.1:{srv.port}"


def post_json(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """A blocking JSON POST (run it with ``asyncio.to_thread``)."""
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=scaled(10)) as resp:
        return int(resp.status), json.loads(resp.read())


async def test_login_receives_and_stores_the_jwt(server: SignalingServer) -> None:
    base = base_url(server)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sleap_rtc_core.cli",
        "login",
        "--server",
        base + "/",
        "--no-browser",
        "--timeout",
        str(scaled(30)),
        "--poll-interval",
        "0.05",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        url = ""
        while not url.startswith(base):
            line = await asyncio.wait_for(proc.stdout.readline(), scaled(30))
            assert line, "the command exited before printing the login URL"
            url = line.decode().strip()
        parts = urllib.parse.urlsplit(url)
        assert parts.path == "/login"
        (state,) = urllib.parse.parse_qs(parts.query)["cli_state"]

        # Play the browser: the login page's two requests.
        status, login = await asyncio.to_thread(
            post_json,
            base + "/api/auth/login",
            {"username": "alice", "password": PASSWORD},
        )
        assert status == 200
        status, _ = await asyncio.to_thread(
            post_json,
            base + "/api/auth/cli/deposit",
            {"state": state, "jwt": login["jwt"], "user": login["user"]},
        )
        assert status == 200
        out, err = await asyncio.wait_for(proc.communicate(), scaled(30))
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    assert "as alice" in out.decode()

    path = Path(os.environ["XDG_CONFIG_HOME"]) / "sleap-rtc" / "credentials.json"
    assert path == credentials_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = load_credentials(path)
    assert saved["jwt"] == login["jwt"]
    assert saved["server"] == base
    assert saved["user"]["username"] == "alice"
    assert saved["servers"][base]["jwt"] == login["jwt"]


async def test_login_times_out(
    server: SignalingServer, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "login",
        "--server",
        base_url(server),
        "--no-browser",
        "--timeout",
        "0.3",
        "--poll-interval",
        "0.05",
    ]
    assert await asyncio.to_thread(main, argv) == 1
    out, err = capsys.readouterr()
    assert "/login?cli_state=" in out
    assert "no login within 0.3 s" in err
    assert not credentials_path().exists()


async def test_login_reports_an_unreachable_server(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Bind and close a port so nothing listens on it.
    srv = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    srv.close()
    await srv.wait_closed()
    argv = ["login", "--server", f"http://127.0.0.1:{port}", "--no-browser"]
    assert await asyncio.to_thread(main, argv) == 1
    assert "cannot reach" in capsys.readouterr().err


async def test_login_takes_the_server_the_other_commands_take(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``$SLEAP_RTC_SERVER`` with its ``ws://`` URL, as for train and worker."""
    srv = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    srv.close()
    await srv.wait_closed()
    monkeypatch.setenv("SLEAP_RTC_SERVER", f"ws://127.0.0.1:{port}")
    assert await asyncio.to_thread(main, ["login", "--no-browser"]) == 1
    assert f"cannot reach http://127.0.0.1:{port}" in capsys.readouterr().err


def test_login_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["login", "--no-browser"]) == 2
    assert "--server" in capsys.readouterr().err
    assert main(["login", "--server", "ftp://x", "--no-browser"]) == 2
    assert "not a server URL" in capsys.readouterr().err
    assert main(["login", "--server", "http://x", "--timeout", "0"]) == 2


def test_normalize_server() -> None:
    assert normalize_server("ws://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    assert normalize_server("wss://lab.example/rtc/") == "https://lab.example/rtc"
    with pytest.raises(ValueError, match="not a server URL"):
        normalize_server("127.0.0.1:8080")


def test_save_credentials_keeps_other_servers(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "credentials.json"
    save_credentials("http://a", "jwt-a", {"username": "alice"}, path)
    save_credentials("http://b", "jwt-b", {"username": "bob"}, path)
    saved = load_credentials(path)
    assert (saved["server"], saved["jwt"]) == ("http://b", "jwt-b")
    assert saved["servers"]["http://a"]["jwt"] == "jwt-a"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["credentials.json"]
    path.write_text("not json")
    assert load_credentials(path) == {}


async def test_a_cancelled_login_ends_at_once(server: SignalingServer) -> None:
    """The GUI's Cancel sets the event: the poll loop ends, no thread lingers."""
    import threading

    cancelled = threading.Event()
    waiting = asyncio.ensure_future(
        asyncio.to_thread(
            login,
            base_url(server),
            open_browser=False,
            timeout=scaled(60),
            interval=0.05,
            out=io.StringIO(),
            cancelled=cancelled,
        )
    )
    await asyncio.sleep(0.2)
    assert not waiting.done()  # polling, nobody logged in
    cancelled.set()
    with pytest.raises(AuthError, match="cancelled"):
        await asyncio.wait_for(waiting, scaled(5))
