"""The HTTP API's tests' server: a real signaling server on 127.0.0.1 (:class:`Lab`).

Every test starts a server (``build_server``, store ``:memory:``) on a free port
and speaks real HTTP/1.1 to it over asyncio streams; live-peer tests connect real
``websockets`` clients. GitHub is the one boundary that is faked: its two HTTPS
calls go through :class:`FakeGitHub` (GitHub is unreachable from tests).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from sleap_rtc_core.signaling.auth.github import GitHubOAuth
from sleap_rtc_core.signaling.auth.jwt_keys import JwtKeys
from sleap_rtc_core.signaling.auth.passwords import hash_password
from sleap_rtc_core.signaling.http.api import (
    http_api_factory,
)
from sleap_rtc_core.signaling.http.base import HttpApiConfig
from sleap_rtc_core.signaling.server.router_io import ServerConfig, SignalingServer
from sleap_rtc_core.signaling.service import build_service
from sleap_rtc_core.signaling.store.auth_store import Store
from tests.fixtures.timing import scaled

PASSWORD = "correct horse battery"
ORIGIN = "http://dashboard.test"
ED25519_KEY = base64.urlsafe_b64encode(bytes(range(32))).rstrip(b"=").decode()


@functools.cache
def password_hash() -> str:
    """One argon2 hash shared by every test user (hashing is slow on purpose)."""
    return hash_password(PASSWORD)


@pytest.fixture(scope="module")
def jwt_keys() -> JwtKeys:
    """One RSA key pair for the module (generating one takes a moment)."""
    return JwtKeys.generate()


@dataclass
class Reply:
    """An HTTP response: status, lower-cased headers, body (JSON when JSON)."""

    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)

    @property
    def detail(self) -> str:
        return str(self.json["detail"])


@dataclass
class Lab:
    """A running server with its store, and helpers to talk to it."""

    server: SignalingServer
    store: Store
    keys: JwtKeys
    sockets: list[ClientConnection] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.server.port

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Reply:
        """One HTTP request on a fresh connection."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        data = raw if raw is not None else b""
        if body is not None:
            data = json.dumps(body).encode()
        head = {"Host": f"127.0.0.1:{self.port}", "Content-Length": str(len(data))}
        if body is not None:
            head["Content-Type"] = "application/json"
        if token is not None:
            head["Authorization"] = f"Bearer {token}"
        head.update(headers or {})
        lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in head.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), scaled(10))
        writer.close()
        await writer.wait_closed()
        head_bytes, _, payload = response.partition(b"\r\n\r\n")
        status_line, *header_lines = head_bytes.decode("latin-1").split("\r\n")
        parsed = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            parsed[name.strip().lower()] = value.strip()
        return Reply(int(status_line.split()[1]), parsed, payload)

    async def user(self, name: str) -> tuple[str, str]:
        """A new local user (password :data:`PASSWORD`): its id and a JWT."""
        user = await asyncio.to_thread(self.store.add_user, name, password_hash())
        return user.user_id, self.keys.issue(user.user_id, user.username)

    async def room(self, token: str, name: str = "lab") -> str:
        """A room the JWT's user owns."""
        reply = await self.call("POST", "/api/auth/rooms", {"name": name}, token=token)
        assert reply.status == 200, reply.raw
        return str(reply.json["room_id"])

    async def worker_key(self, token: str, room_id: str) -> tuple[str, str]:
        """A worker key for a room: the key itself and its public id."""
        reply = await self.call(
            "POST",
            "/api/auth/token",
            {"room_id": room_id, "worker_name": "gpu-box"},
            token=token,
        )
        assert reply.status == 200, reply.raw
        return str(reply.json["token_id"]), str(reply.json["id"])

    async def register(self, **fields: Any) -> ClientConnection:
        """A websocket peer registered with ``fields``; fails if refused."""
        ws = await connect(f"ws://127.0.0.1:{self.port}/")
        self.sockets.append(ws)
        await ws.send(json.dumps({"type": "register", **fields}))
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), scaled(5)))
            if msg["type"] == "registered_auth":
                return ws
            assert msg["type"] != "error", msg


async def closed_with(ws: ClientConnection) -> int | None:
    """Wait for the server to close ``ws``; its close code."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), scaled(5))
    except ConnectionClosed:
        return ws.close_code


LabFactory = Callable[..., Awaitable[Lab]]


@pytest.fixture
async def make_lab(jwt_keys: JwtKeys) -> AsyncIterator[LabFactory]:
    """Start servers (stopped at teardown); kwargs go to :class:`HttpApiConfig`.

    Servers are built as ``sleap-rtc server`` builds them: ``build_service``
    with :func:`http_api_factory`, revocations polled every 50 ms.
    """
    labs: list[Lab] = []

    async def make(github: GitHubOAuth | None = None, **options: Any) -> Lab:
        options.setdefault("login_failures", 3)
        options.setdefault("max_body_bytes", 4096)
        options.setdefault("cors_origins", (ORIGIN,))
        factory = http_api_factory(HttpApiConfig(**options), github=github)
        store = Store(":memory:")
        config = ServerConfig(port=0, revocation_poll=0.05)
        server = build_service(config, store, jwt_keys, http=factory).server
        await server.start()
        lab = Lab(server, store, jwt_keys)
        labs.append(lab)
        return lab

    yield make
    for lab in labs:
        for ws in lab.sockets:
            await ws.close()
        await lab.server.stop()
        lab.store.close()


@pytest.fixture
async def lab(make_lab: LabFactory) -> Lab:
    """A server with the default test options."""
    return await make_lab()
