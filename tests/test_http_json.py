"""Tests of :mod:`sleap_rtc_core.http_json` against a real HTTP server on
127.0.0.1 (``http.server`` in a thread)."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sleap_rtc_core.http_json import MAX_REPLY_BYTES, get_json, normalize_server

BODIES: dict[str, tuple[int, bytes]] = {
    "/ok": (200, b'{"status": "ok"}'),
    "/denied": (401, b'{"error": "login required"}'),
    "/text": (200, b"not json"),
    "/list": (200, b"[1, 2]"),
    "/empty": (204, b""),
    "/huge": (200, b'{"pad": "' + b"x" * MAX_REPLY_BYTES + b'"}'),
}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path == "/whoami":
            status, body = 200, json.dumps(dict(self.headers)).encode()
        else:
            status, body = BODIES.get(self.path, (404, b'{"error": "no"}'))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_json_object_reply(base: str) -> None:
    assert get_json(f"{base}/ok", 5) == (200, {"status": "ok"})


def test_an_error_status_still_brings_its_body(base: str) -> None:
    assert get_json(f"{base}/denied", 5) == (401, {"error": "login required"})
    assert get_json(f"{base}/missing", 5) == (404, {"error": "no"})


@pytest.mark.parametrize("path", ["/text", "/list", "/empty", "/huge"])
def test_anything_but_a_bounded_json_object_reads_as_empty(
    base: str, path: str
) -> None:
    status, body = get_json(f"{base}{path}", 5)
    assert status == BODIES[path][0]
    assert body == {}


def test_the_bearer_token_and_accept_header_are_sent(base: str) -> None:
    _, headers = get_json(f"{base}/whoami", 5, bearer="tok")
    assert headers["Authorization"] == "Bearer tok"
    assert headers["Accept"] == "application/json"
    _, anonymous = get_json(f"{base}/whoami", 5)
    assert "Authorization" not in anonymous


def _unused_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_server_raises() -> None:
    with pytest.raises(urllib.error.URLError):
        get_json(f"http://127.0.0.1:{_unused_port()}/ok", 5)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ws://host:8080", "http://host:8080"),
        ("wss://host/base/", "https://host/base"),
        ("  http://host:1/?q=1#f ", "http://host:1"),
        ("https://host", "https://host"),
    ],
)
def test_normalize_server(url: str, expected: str) -> None:
    assert normalize_server(url) == expected


@pytest.mark.parametrize("url", ["ftp://host", "host:8080", "http://", ""])
def test_normalize_server_refuses_what_is_not_a_server_url(url: str) -> None:
    with pytest.raises(ValueError, match="not a server URL"):
        normalize_server(url)
