"""Who the user is: the saved logins, and the browser login that makes one.

:func:`login` makes a random ``state``, opens ``<server>/login?cli_state=<state>``
in a browser (or prints it), and polls
``<server>/api/auth/cli/poll?state=<state>`` until the login page deposits a JWT
for that state, or until the timeout. :func:`save_credentials` keeps it in the
user's config folder (``$XDG_CONFIG_HOME/sleap-rtc/credentials.json`` on Linux),
mode 0600. The file is a JSON object::

    {"server": URL, "jwt": TOKEN, "user": {...},          # the latest login
     "servers": {URL: {"jwt": TOKEN, "user": {...}}}}     # one entry per server

Used by ``sleap-rtc login``, the commands' connection flags and the GUI. Polling
blocks (call it from a thread in a coroutine); each request has its own short
timeout and the whole wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
import threading
import time
import urllib.error
import urllib.parse
import webbrowser
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import platformdirs

from ..errors import AuthError
from ..http_json import get_json, normalize_server

__all__ = [
    "CREDENTIALS_FILENAME",
    "credentials_path",
    "load_credentials",
    "login",
    "normalize_server",
    "save_credentials",
    "write_private_json",
]

CREDENTIALS_FILENAME = "credentials.json"
_REQUEST_TIMEOUT = 10.0


def credentials_path() -> Path:
    """Where credentials live: the platform's config folder for ``sleap-rtc``."""
    return Path(platformdirs.user_config_dir("sleap-rtc")) / CREDENTIALS_FILENAME


def load_credentials(path: Path | None = None) -> dict[str, Any]:
    """The saved credentials, or ``{}`` when there are none (or unreadable)."""
    path = path or credentials_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_credentials(
    server: str, jwt: str, user: dict[str, Any], path: Path | None = None
) -> Path:
    """Record a login, keeping other servers' entries; the file is mode 0600
    (:func:`write_private_json`)."""
    path = path or credentials_path()
    data = load_credentials(path)
    servers = data.get("servers")
    servers = servers if isinstance(servers, dict) else {}
    servers[server] = {"jwt": jwt, "user": user, "saved_at": time.time()}
    data.update({"server": server, "jwt": jwt, "user": user, "servers": servers})
    write_private_json(path, data)
    return path


def write_private_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path``, mode 0600, its folder 0700.

    Written to a private temporary file and renamed into place, so a reader
    never sees half a file and a secret in it is never world-readable.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def login(
    server: str,
    *,
    open_browser: bool = True,
    timeout: float = 120.0,
    interval: float = 2.0,
    out: TextIO | None = None,
    browser: Callable[[str], bool] = webbrowser.open,
    cancelled: threading.Event | None = None,
) -> dict[str, Any]:
    """Run the browser login and return ``{"jwt": ..., "user": ...}``.

    Args:
        server: The server's base URL (``http://HOST:PORT``).
        open_browser: Open the login page; otherwise only print its URL.
        timeout: Seconds to wait for the login to finish.
        interval: Seconds between polls.
        out: Where instructions go (default stdout).
        browser: Opens a URL (injectable).
        cancelled: Set from another thread to give up at once (the GUI's
            Cancel): the wait between polls ends, and so does the login.

    Raises:
        ValueError: ``server`` is not a URL.
        ConnectionError: The server cannot be reached.
        AuthError: The login timed out or the server refused the poll.
    """
    out = out or sys.stdout
    base = normalize_server(server)
    try:
        get_json(f"{base}/health", _REQUEST_TIMEOUT)
    except (urllib.error.URLError, OSError) as exc:
        raise ConnectionError(f"cannot reach {base}: {exc}") from None
    state = secrets.token_urlsafe(32)
    page = f"{base}/login?" + urllib.parse.urlencode({"cli_state": state})
    if open_browser and browser(page):
        out.write(f"Opened a browser to log in. If it did not open, visit:\n{page}\n")
    else:
        out.write(f"Open this URL in a browser to log in:\n{page}\n")
    out.write(f"waiting for the login in the browser (up to {timeout:g} s)\n")
    out.flush()
    poll = f"{base}/api/auth/cli/poll?" + urllib.parse.urlencode({"state": state})
    deadline = time.monotonic() + timeout
    stop = cancelled or threading.Event()
    while True:
        remaining = deadline - time.monotonic()
        if stop.is_set():
            raise AuthError("the login was cancelled")
        if remaining <= 0:
            raise AuthError(f"no login within {timeout:g} s; run the command again")
        try:
            status, body = get_json(poll, min(_REQUEST_TIMEOUT, max(remaining, 0.1)))
        except (urllib.error.URLError, OSError):
            status, body = 0, {}  # transient: keep trying until the deadline
        if status == 200 and isinstance(body.get("jwt"), str):
            user = body.get("user")
            return {"jwt": body["jwt"], "user": user if isinstance(user, dict) else {}}
        if status in (400, 401, 403, 404):
            detail = body.get("detail", f"HTTP {status}")
            raise AuthError(f"the server refused the login: {detail}")
        stop.wait(min(interval, max(deadline - time.monotonic(), 0.0)))
