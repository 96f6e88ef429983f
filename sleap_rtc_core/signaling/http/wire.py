"""Just enough HTTP/1.1 to serve the API beside the WebSocket on one port (pure).

The server reads a request head, decides whether it is a WebSocket upgrade (handed
to websockets' sans-I/O handshake) or a plain request (answered here, body read by
``Content-Length``, then the connection closes). websockets itself refuses request
bodies, which the auth API needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qsl, unquote, urlsplit

from ...errors import ErrorCode, RemoteProtocolError

__all__ = [
    "MAX_HEAD_BYTES",
    "HttpRequest",
    "HttpResponse",
    "RequestHead",
    "parse_head",
    "serialize_response",
]

MAX_HEAD_BYTES = 64 * 1024
"""Largest request line + headers accepted."""


@dataclass(frozen=True, slots=True)
class RequestHead:
    """A parsed request line and headers.

    Attributes:
        method: ``GET``, ``POST``...
        target: The raw request target (path and query).
        headers: Lower-cased header names → value (repeated headers joined by
            ``,``).
    """

    method: str
    target: str
    headers: dict[str, str]

    @property
    def is_websocket(self) -> bool:
        """Whether this asks for a WebSocket upgrade."""
        return "websocket" in self.headers.get("upgrade", "").lower()

    @property
    def content_length(self) -> int:
        """The declared body size (0 when absent).

        Raises:
            RemoteProtocolError: for a malformed or chunked body.
        """
        if "transfer-encoding" in self.headers:
            raise RemoteProtocolError("chunked bodies are not supported")
        raw = self.headers.get("content-length", "0").strip()
        if not raw.isdigit():
            raise RemoteProtocolError(f"bad Content-Length {raw[:32]!r}")
        return int(raw)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A complete HTTP request as the API sees it.

    Attributes:
        method: Upper-case method.
        path: The URL path, percent-decoded.
        query: Query parameters (last one wins).
        headers: Lower-cased header names → value.
        body: The request body.
        client: The peer address, for logs.
    """

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    client: str = "?"

    @classmethod
    def from_head(cls, head: RequestHead, body: bytes, client: str) -> HttpRequest:
        """Build from a parsed head and its body."""
        url = urlsplit(head.target)
        return cls(
            method=head.method,
            path=unquote(url.path) or "/",
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            headers=head.headers,
            body=body,
            client=client,
        )


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """An HTTP response to serialize.

    Attributes:
        status: The status code.
        body: The body bytes.
        content_type: Its media type.
        headers: Extra headers.
    """

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def parse_head(data: bytes) -> RequestHead:
    """Parse a request head (everything before the blank line).

    Raises:
        RemoteProtocolError: ``INVALID_MESSAGE`` for anything malformed.
    """
    try:
        text = data.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes any bytes
        raise RemoteProtocolError("bad request head") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise RemoteProtocolError(
            f"bad request line {lines[0][:80]!r}", code=ErrorCode.INVALID_MESSAGE
        )
    method, target, _ = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise RemoteProtocolError(
                f"bad header line {line[:80]!r}", code=ErrorCode.INVALID_MESSAGE
            )
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    return RequestHead(method=method.upper(), target=target, headers=headers)


def serialize_response(response: HttpResponse) -> bytes:
    """The bytes of a ``Connection: close`` HTTP/1.1 response."""
    try:
        phrase = HTTPStatus(response.status).phrase
    except ValueError:
        phrase = "Unknown"
    head = [
        f"HTTP/1.1 {response.status} {phrase}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Connection: close",
        "Cache-Control: no-store",
    ]
    head += [f"{k}: {v}" for k, v in response.headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body
