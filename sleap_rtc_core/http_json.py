"""One blocking JSON GET for the few HTTP calls the CLI and the worker make
(health checks, the browser-login poll, a room's authorized keys).

Blocking on purpose (``urllib``, no extra dependency): callers in a coroutine
run it with ``asyncio.to_thread``. Bodies are bounded; anything that is not a
JSON object reads as ``{}``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

__all__ = ["MAX_REPLY_BYTES", "get_json", "normalize_server"]

MAX_REPLY_BYTES = 1 << 20
"""The most of a reply that is read."""


def get_json(
    url: str, timeout: float, *, bearer: str | None = None
) -> tuple[int, dict[str, Any]]:
    """``GET url``: the status and the JSON object body (``{}`` if none).

    Raises:
        urllib.error.URLError, OSError: the server cannot be reached.
    """
    headers = {"Accept": "application/json"}
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            status, raw = int(resp.status), resp.read(MAX_REPLY_BYTES)
    except urllib.error.HTTPError as exc:
        status, raw = int(exc.code), exc.read(MAX_REPLY_BYTES)
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        body = {}
    return status, body if isinstance(body, dict) else {}


def normalize_server(url: str) -> str:
    """The server's HTTP base URL (``ws``/``wss`` become ``http``/``https``).

    Raises:
        ValueError: Not an http(s) or ws(s) URL with a host.
    """
    parts = urllib.parse.urlsplit(url.strip())
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    if scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not a server URL: {url!r} (expected http://HOST:PORT)")
    return urllib.parse.urlunsplit(
        (scheme, parts.netloc, parts.path.rstrip("/"), "", "")
    )
