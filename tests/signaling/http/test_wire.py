"""HTTP/1.1 heads and responses (:mod:`~sleap_rtc_core.signaling.http.wire`):
pure, no sockets; the server speaking them is tested in the other modules here."""

from __future__ import annotations

import pytest

from sleap_rtc_core.errors import ErrorCode, RemoteProtocolError
from sleap_rtc_core.signaling.http.wire import (
    HttpRequest,
    HttpResponse,
    parse_head,
    serialize_response,
)


def test_a_head_gives_method_target_and_lower_cased_headers() -> None:
    head = parse_head(
        b"post /api/auth/login?next=%2Fx HTTP/1.1\r\nHost: a\r\n"
        b"X-Thing: 1\r\nx-thing:  2 \r\nContent-Length: 12\r\n"
    )
    assert (head.method, head.target) == ("POST", "/api/auth/login?next=%2Fx")
    assert head.headers == {"host": "a", "x-thing": "1,2", "content-length": "12"}
    assert head.content_length == 12
    assert not head.is_websocket
    upgrade = parse_head(b"GET / HTTP/1.1\r\nUpgrade: WebSocket\r\n")
    assert upgrade.is_websocket
    assert upgrade.content_length == 0


@pytest.mark.parametrize(
    "data",
    [
        b"GET /\r\n",
        b"GET / HTTP/2\r\n",
        b"GET  / HTTP/1.1\r\n",
        b"GET / HTTP/1.1\r\nnocolon\r\n",
        b"GET / HTTP/1.1\r\n Host: a\r\n",
    ],
)
def test_a_malformed_head_is_the_peers_error(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as raised:
        parse_head(data)
    assert raised.value.code == ErrorCode.INVALID_MESSAGE


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (b"Content-Length: -1", "bad Content-Length"),
        (b"Content-Length: 1e3", "bad Content-Length"),
        (b"Transfer-Encoding: chunked", "chunked bodies"),
    ],
)
def test_only_a_declared_length_of_body_is_read(header: bytes, match: str) -> None:
    head = parse_head(b"POST / HTTP/1.1\r\n" + header + b"\r\n")
    with pytest.raises(RemoteProtocolError, match=match):
        head.content_length  # noqa: B018


def test_a_request_has_its_decoded_path_and_last_query_value() -> None:
    head = parse_head(b"GET /api/rooms/r%201/workers?a=1&a=2&b= HTTP/1.1\r\n")
    request = HttpRequest.from_head(head, b"{}", "127.0.0.1:5")
    assert request.path == "/api/rooms/r 1/workers"
    assert request.query == {"a": "2", "b": ""}
    assert (request.body, request.client) == (b"{}", "127.0.0.1:5")
    assert (
        HttpRequest.from_head(parse_head(b"GET ?x=1 HTTP/1.1\r\n"), b"", "?").path
        == "/"
    )


def test_a_response_closes_the_connection_and_is_never_cached() -> None:
    data = serialize_response(
        HttpResponse(201, b'{"ok": true}', headers={"Access-Control-Allow-Origin": "o"})
    )
    head, body = data.split(b"\r\n\r\n", 1)
    assert body == b'{"ok": true}'
    assert head.split(b"\r\n") == [
        b"HTTP/1.1 201 Created",
        b"Content-Type: application/json",
        b"Content-Length: 12",
        b"Connection: close",
        b"Cache-Control: no-store",
        b"Access-Control-Allow-Origin: o",
    ]
    odd = serialize_response(HttpResponse(599, content_type="text/plain"))
    assert odd.startswith(b"HTTP/1.1 599 Unknown\r\nContent-Type: text/plain\r\n")
