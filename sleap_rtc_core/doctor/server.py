"""The checks of the signaling server: WebSocket, HTTP, credentials, room secret.

Each opens what a peer would (a WebSocket, an HTTP request, a throwaway signaling
client, a channel to a worker of the room) with a timeout, and turns a refusal
into a ``FAIL`` with advice.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
import urllib.error
from collections.abc import Mapping
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)

from ..aio import wait_for
from ..errors import (
    AuthError,
    ChannelAuthFailed,
    ConnectionLost,
    ErrorCode,
    SleapRTCError,
)
from ..http_json import get_json
from ..protocol.dialect import Dialect, worker_dialect
from ..protocol.signaling import Register
from ..signaling.client.session_io import Backoff, SignalingClient
from ..transport.auth import ChannelAuth
from ..transport.peer import open_channel
from .report import Check

__all__ = [
    "check_credentials",
    "check_http",
    "check_room_secret",
    "check_websocket",
    "http_url",
]

_SERVER_ADVICE = (
    "start the server (`sleap-rtc server`), check the --server URL, and that no "
    "firewall or proxy blocks the port"
)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def http_url(url: str) -> str:
    """The server's HTTP base for a ``ws(s)://`` or ``http(s)://`` URL."""
    url = url.strip().rstrip("/")
    for old, new in (("ws://", "http://"), ("wss://", "https://")):
        if url.startswith(old):
            return new + url.removeprefix(old)
    return url


def _ws_url(url: str) -> str:
    url = url.strip()
    for old, new in (("http://", "ws://"), ("https://", "wss://")):
        if url.startswith(old):
            return new + url.removeprefix(old)
    return url


async def check_websocket(url: str, *, timeout: float = 10.0) -> Check:
    """Open a WebSocket to the server and time a ping round trip."""
    url = _ws_url(url)
    started = time.monotonic()
    try:
        async with connect(
            url, open_timeout=timeout, compression=None, ping_interval=None
        ) as ws:
            opened = time.monotonic() - started
            sent = time.monotonic()
            pong = await ws.ping()
            await wait_for(pong, timeout)
            rtt = time.monotonic() - sent
    except InvalidURI:
        return Check(
            "websocket",
            False,
            f"not a WebSocket URL: {url!r}",
            "use --server ws://HOST:PORT (wss:// with TLS)",
        )
    except InvalidStatus as exc:
        return Check(
            "websocket",
            False,
            f"{url} answered HTTP {exc.response.status_code} instead of a "
            "WebSocket upgrade",
            "point --server at the signaling server itself (a proxy must "
            "forward WebSocket upgrades)",
        )
    except (InvalidHandshake, ConnectionClosed) as exc:
        return Check(
            "websocket", False, f"{url}: handshake failed: {exc}", _SERVER_ADVICE
        )
    except TimeoutError:
        return Check(
            "websocket", False, f"{url}: no answer within {timeout:g} s", _SERVER_ADVICE
        )
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        advice = _SERVER_ADVICE
        if "certificate" in str(exc).lower():
            advice = "the server's TLS certificate is not trusted here"
        return Check("websocket", False, f"cannot connect to {url}: {reason}", advice)
    return Check(
        "websocket",
        True,
        f"{url}: connected in {_ms(opened)}, round trip {_ms(rtt)}",
    )


async def check_http(url: str, *, timeout: float = 10.0) -> Check:
    """``GET /health`` on the server's HTTP side, with its round-trip time."""
    health = f"{http_url(url)}/health"
    if not health.startswith(("http://", "https://")):
        return Check(
            "http", False, f"not a server URL: {url!r}", "use --server ws://HOST:PORT"
        )
    started = time.monotonic()
    try:
        status, body = await asyncio.to_thread(get_json, health, timeout)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return Check("http", False, f"GET {health}: {reason}", _SERVER_ADVICE)
    took = time.monotonic() - started
    if status != 200 or body.get("status") != "healthy":
        return Check(
            "http",
            False,
            f"GET {health}: HTTP {status} {body.get('status', '')}".rstrip(),
            "the server is up but not healthy: read its log",
        )
    version = body.get("version", "?")
    return Check("http", True, f"GET {health}: healthy, version {version}, {_ms(took)}")


_AUTH_ADVICE: Mapping[str, str] = {
    ErrorCode.AUTH_FAILED.value: "the credential was refused: check it, or make a "
    "new one (`sleap-rtc token create`, `sleap-rtc login`)",
    ErrorCode.ROOM_NOT_FOUND.value: "no such room on this server: check --room "
    "(`sleap-rtc room list` on the server)",
    ErrorCode.ROOM_EXPIRED.value: "the room has expired: ask its owner for a new one",
    ErrorCode.ROOM_FULL.value: "the room is full: ask the admin to raise the limit",
    ErrorCode.IDENTITY_MISMATCH.value: "the peer id is held by another credential",
}


def _probe_client(
    url: str, role: str, credentials: Mapping[str, Any], timeout: float
) -> SignalingClient:
    """A throwaway signaling client for one check (a fresh peer id).

    Raises:
        SleapRTCError, TypeError: credentials ``register`` cannot carry.
    """
    register = Register(
        peer_id=f"doctor-{secrets.token_hex(4)}",
        role=role,
        metadata={"tags": ["sleap-rtc", "doctor"], "properties": {}},
        **dict(credentials),
    )
    return SignalingClient(
        _ws_url(url),
        register,
        backoff=Backoff(initial=0.2, cap=1.0),
        give_up_after=timeout,
        request_timeout=timeout,
    )


async def check_credentials(
    url: str,
    credentials: Mapping[str, Any],
    *,
    described: str = "credentials",
    timeout: float = 10.0,
) -> Check:
    """Register with a throwaway peer id, then disconnect at once.

    Args:
        url: The server.
        credentials: ``register`` fields (``room_id`` + ``token``, ``api_key``,
            or ``jwt`` + ``room_id``).
        described: How the credentials were found (for the report; no secret).
        timeout: Seconds for the whole attempt.
    """
    try:
        client = _probe_client(url, "doctor", credentials, timeout)
    except (SleapRTCError, TypeError) as exc:
        return Check("credentials", False, f"{described}: unusable: {exc}", "")
    try:
        reply = await client.start(timeout=timeout)
    except AuthError as exc:
        advice = _AUTH_ADVICE.get(exc.code, "check the credentials and the room")
        return Check(
            "credentials", False, f"{described}: refused: {exc.message}", advice
        )
    except ConnectionLost as exc:
        return Check("credentials", False, f"{described}: not tried: {exc.message}", "")
    except TimeoutError:
        return Check(
            "credentials",
            False,
            f"{described}: no answer to register within {timeout:g} s",
            "the server is overloaded or a proxy holds the WebSocket",
        )
    except SleapRTCError as exc:
        return Check(
            "credentials",
            False,
            f"{described}: refused: {exc.message} ({exc.code})",
            _AUTH_ADVICE.get(exc.code, "read the server's log"),
        )
    finally:
        await client.close()
    workers = sum(
        1
        for meta in reply.peer_metadata.values()
        if isinstance(meta, dict)
        and {"training-worker", "inference-worker"} & set(meta.get("tags") or [])
    )
    others = len(reply.peer_list)
    return Check(
        "credentials",
        True,
        f"{described}: accepted in room {reply.room_id} "
        f"({others} other peer(s), {workers} worker(s))",
    )


async def check_room_secret(
    url: str,
    credentials: Mapping[str, Any],
    secret: str | None,
    *,
    worker: bool = False,
    timeout: float = 10.0,
) -> Check:
    """Open a data channel to a worker of the room with ``secret``: both ends
    must prove it (a mismatch fails either way), then close it.

    Args:
        url: The server.
        credentials: ``register`` fields that the credentials check accepted.
        secret: The room secret this machine would use (``None``: none found).
        worker: This machine runs a worker (without a secret it refuses every
            channel).
        timeout: Seconds for registering, discovery and the channel each.
    """
    if secret is None:
        if credentials.get("api_key"):
            return Check(
                "room secret",
                None,
                "no room secret: only clients that sign with a room member's key "
                "can open a channel",
                "give the room's secret too if its members use one",
            )
        who = "this worker refuses every channel" if worker else "no channel opens"
        return Check(
            "room secret",
            False,
            f"no room secret: {who}",
            "give the secret `sleap-rtc room create` printed: --room-secret, "
            "$SLEAP_ROOM_SECRET or ~/.sleap-rtc/room-secrets/ROOM",
        )
    try:
        auth = ChannelAuth(secret=secret)
    except SleapRTCError as exc:
        return Check("room secret", False, f"unusable: {exc.message}", "")
    client = _probe_client(url, "client", credentials, timeout)
    try:
        await client.start(timeout=timeout)
        peers = await client.discover({"role": "worker"}, timeout=timeout)
        current = [p for p in peers if worker_dialect(p) is Dialect.CURRENT]
        if not current:
            return Check(
                "room secret",
                None,
                "not tried: no sleap-rtc worker of this version is in the room",
                "run the check again while a worker runs",
            )
        target = str(current[0]["peer_id"])
        try:
            channel = await open_channel(client, target, auth=auth, timeout=timeout)
        except ChannelAuthFailed as exc:
            return Check(
                "room secret",
                False,
                f"worker {target}: {exc.message}",
                "this machine's room secret is not the worker's: give both the "
                "one `sleap-rtc room create` printed",
            )
        except (SleapRTCError, TimeoutError) as exc:
            return Check(
                "room secret", None, f"not tried: no channel to {target}: {exc}", ""
            )
        await channel.close()
    except (SleapRTCError, TimeoutError) as exc:
        return Check("room secret", None, f"not tried: {exc}", "")
    finally:
        await client.close()
    return Check(
        "room secret",
        True,
        f"worker {target} accepted it and proved it holds the same secret",
    )
