"""The auth HTTP API against a real signaling server on 127.0.0.1.

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
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from sleap_rtc_core.signaling.auth.github import TOKEN_URL, USER_URL, GitHubOAuth
from sleap_rtc_core.signaling.auth.jwt_keys import JwtKeys
from sleap_rtc_core.signaling.auth.passwords import hash_password
from sleap_rtc_core.signaling.http.api import (
    http_api_factory,
)
from sleap_rtc_core.signaling.http.base import HttpApiConfig
from sleap_rtc_core.signaling.server.router_io import ServerConfig, SignalingServer
from sleap_rtc_core.signaling.server.session import CLOSE_REVOKED
from sleap_rtc_core.signaling.service import build_service
from sleap_rtc_core.signaling.store.auth_store import Store
from tests.fixtures.timing import async_wait_until, scaled

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


# --- routing, errors, bodies


async def test_unknown_path_and_method_are_json_errors(lab: Lab) -> None:
    reply = await lab.call("GET", "/no/such/thing")
    assert (reply.status, reply.detail) == (404, "Not Found")
    assert reply.headers["content-type"] == "application/json"
    reply = await lab.call("PUT", "/api/auth/rooms")
    assert reply.status == 405
    assert reply.headers["allow"] == "GET, POST"
    health = await lab.call("GET", "/health")
    assert health.json["status"] == "healthy"


async def test_bodies_must_be_small_json_objects(lab: Lab) -> None:
    _, token = await lab.user("alice")
    for raw in (b"{not json", b"[1, 2]", b'"text"'):
        reply = await lab.call("POST", "/api/auth/rooms", token=token, raw=raw)
        assert (reply.status, reply.detail) == (400, "Body must be a JSON object")
    big = {"name": "x" * 5000}
    reply = await lab.call("POST", "/api/auth/rooms", big, token=token)
    assert (reply.status, reply.detail) == (413, "Request body too large")
    huge = {"Content-Length": str(2 << 20)}
    reply = await lab.call("POST", "/api/auth/rooms", headers=huge)
    assert reply.status == 413  # refused by the server before it reads the body
    reply = await lab.call("POST", "/api/auth/rooms", {"name": 5}, token=token)
    assert (reply.status, reply.detail) == (400, "'name' must be a string")
    bad_days = {"expires_in_days": 0}
    reply = await lab.call("POST", "/api/auth/rooms", bad_days, token=token)
    assert (reply.status, reply.detail) == (
        400,
        "'expires_in_days' must be between 1 and 365",
    )


async def test_every_protected_endpoint_requires_auth(lab: Lab) -> None:
    for method, path in [
        ("GET", "/api/auth/rooms"),
        ("POST", "/api/auth/rooms"),
        ("GET", "/api/auth/rooms/abc"),
        ("DELETE", "/api/auth/rooms/abc"),
        ("POST", "/api/auth/rooms/abc/invite"),
        ("POST", "/api/auth/rooms/join"),
        ("GET", "/api/auth/rooms/abc/members"),
        ("POST", "/api/auth/token"),
        ("GET", "/api/auth/tokens"),
        ("DELETE", "/api/auth/token/wk_x"),
        ("GET", "/api/auth/tokens/wk_x/workers"),
        ("GET", "/api/auth/account-keys"),
        ("POST", "/api/auth/public-keys"),
        ("GET", "/api/rooms/abc/authorized-keys"),
        ("GET", "/api/rooms/abc/workers"),
        ("POST", "/delete-peer"),
        ("GET", "/api/auth/me"),
    ]:
        reply = await lab.call(method, path)
        assert reply.status == 401, (method, path)
        assert reply.detail == "Not authenticated"
        assert reply.headers["www-authenticate"] == "Bearer"


async def test_bad_credentials_are_refused(lab: Lab, jwt_keys: JwtKeys) -> None:
    user_id, token = await lab.user("alice")
    forged = JwtKeys.generate().issue(user_id, "alice")
    expired = jwt_keys.issue(user_id, "alice", ttl=60, now=time.time() - 3600)
    unsigned = jwt.encode(
        {"sub": user_id, "iss": "sleap-rtc", "aud": "sleap-rtc"}, "", "none"
    )
    for credential in (forged, expired, unsigned, "garbage", "slp_nope"):
        reply = await lab.call("GET", "/api/auth/rooms", token=credential)
        assert reply.status == 401, credential
    reply = await lab.call("GET", "/api/auth/rooms", headers={"Authorization": token})
    assert reply.status == 401
    await asyncio.to_thread(lab.store.delete_user, user_id)
    reply = await lab.call("GET", "/api/auth/rooms", token=token)
    assert (reply.status, reply.detail) == (401, "User not found")


# --- login


async def test_local_login_issues_a_working_jwt(lab: Lab) -> None:
    user_id, _ = await lab.user("alice")
    body = {"username": "ALICE", "password": PASSWORD}
    reply = await lab.call("POST", "/api/auth/login", body)
    assert reply.status == 200
    assert reply.json["token"] == reply.json["jwt"]
    assert reply.json["user"] == {
        "user_id": user_id,
        "username": "alice",
        "avatar_url": None,
    }
    claims = lab.keys.verify(reply.json["jwt"])
    assert (claims["sub"], claims["iss"], claims["aud"]) == (
        user_id,
        "sleap-rtc",
        "sleap-rtc",
    )
    me = await lab.call("GET", "/api/auth/me", token=reply.json["jwt"])
    assert (me.json["username"], me.json["via"]) == ("alice", "jwt")
    missing = await lab.call("POST", "/api/auth/login", {"username": "alice"})
    assert (missing.status, missing.detail) == (400, "'password' is required")


async def test_failed_logins_are_rate_limited(lab: Lab) -> None:
    await lab.user("alice")
    for password in ("wrong-1", "wrong-2"):
        body = {"username": "alice", "password": password}
        reply = await lab.call("POST", "/api/auth/login", body)
        assert (reply.status, reply.detail) == (401, "Invalid username or password")
    unknown = {"username": "nobody", "password": PASSWORD}
    assert (await lab.call("POST", "/api/auth/login", unknown)).status == 401
    body = {"username": "alice", "password": "wrong-3"}
    assert (await lab.call("POST", "/api/auth/login", body)).status == 401
    # The limit is reached: even the right password is refused for a while.
    good = {"username": "alice", "password": PASSWORD}
    reply = await lab.call("POST", "/api/auth/login", good)
    assert reply.status == 429
    assert reply.detail == "Too many failed logins; try again later"
    assert int(reply.headers["retry-after"]) > 0


async def test_spraying_user_names_from_one_address_is_throttled(
    make_lab: LabFactory,
) -> None:
    """The per-user limit alone would let one address try every name."""
    lab = await make_lab(login_failures=3, login_failures_per_address=5)
    await lab.user("alice")
    for i in range(5):
        body = {"username": f"guess{i}", "password": PASSWORD}
        assert (await lab.call("POST", "/api/auth/login", body)).status == 401
    good = {"username": "alice", "password": PASSWORD}
    reply = await lab.call("POST", "/api/auth/login", good)
    assert reply.status == 429


async def test_a_login_flood_cannot_starve_register(make_lab: LabFactory) -> None:
    """Password checks run in their own pool: while a flood of logins is being
    checked, a peer's ``register`` round trip stays within a small multiple of
    its idle value (a ratio measured here, not a time)."""
    lab = await make_lab(login_failures=1000, login_failures_per_address=1000)
    await lab.user("alice")
    room = lab.store.create_room("lab")
    peers = iter(range(1000))

    async def register_rtt(n: int = 8) -> float:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            ws = await lab.register(
                peer_id=f"p{next(peers)}", room_id=room.room_id, token=room.token
            )
            times.append(time.perf_counter() - t0)
            await ws.close()
        return statistics.median(times)

    async def flood() -> list[int]:
        body = {"username": "alice", "password": "wrong"}
        replies = await asyncio.gather(
            *(lab.call("POST", "/api/auth/login", body) for _ in range(24))
        )
        return [r.status for r in replies]

    idle = await register_rtt()
    task = asyncio.ensure_future(flood())
    try:
        await asyncio.sleep(0.05)
        loaded = await register_rtt()
        statuses = await asyncio.wait_for(task, scaled(60))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert set(statuses) == {401}
    assert loaded / max(idle, 1e-6) < 25, (loaded, idle)


async def test_login_page_is_self_contained(lab: Lab) -> None:
    reply = await lab.call("GET", "/login?cli_state=" + "s" * 32)
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/html")
    csp = reply.headers["content-security-policy"]
    nonce = csp.split("'nonce-")[1].split("'")[0]
    page = reply.raw.decode()
    assert f'<script nonce="{nonce}">' in page
    assert "default-src 'none'" in csp
    assert reply.headers["x-frame-options"] == "DENY"
    assert '"github_client_id": null' in page
    assert "/api/auth/cli/deposit" in page


# --- the CLI hand-off


async def test_cli_deposit_and_poll(lab: Lab) -> None:
    user_id, token = await lab.user("alice")
    state = "s" * 40
    poll = f"/api/auth/cli/poll?state={state}"
    reply = await lab.call("GET", poll)
    assert (reply.status, reply.json) == (202, {"status": "pending"})
    bad = await lab.call(
        "POST", "/api/auth/cli/deposit", {"state": state, "jwt": "not-a-jwt"}
    )
    assert bad.status == 401
    short = await lab.call(
        "POST", "/api/auth/cli/deposit", {"state": "short", "jwt": token}
    )
    assert (short.status, short.detail) == (
        400,
        "'state' must have 16 to 256 characters",
    )
    deposit = {"state": state, "jwt": token, "user": {"username": "evil"}}
    reply = await lab.call("POST", "/api/auth/cli/deposit", deposit)
    assert (reply.status, reply.json) == (200, {"status": "ok"})
    again = await lab.call("POST", "/api/auth/cli/deposit", deposit)
    assert again.status == 409  # the first deposit wins
    reply = await lab.call("GET", poll)
    assert reply.status == 200
    assert reply.json["jwt"] == token
    assert reply.json["user"]["user_id"] == user_id  # from the JWT, not the body
    assert reply.json["user"]["username"] == "alice"
    assert (await lab.call("GET", poll)).status == 202  # one-shot
    assert (await lab.call("GET", "/api/auth/cli/poll")).status == 400


# --- GitHub (faked boundary)


class FakeGitHub:
    """Stands in for github.com: knows one code and one user."""

    def __init__(self, code: str = "good-code") -> None:
        self.code = code
        self.calls: list[tuple[str, str]] = []

    async def __call__(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> tuple[int, bytes]:
        self.calls.append((method, url))
        if url == TOKEN_URL:
            if body is not None and f"code={self.code}".encode() in body:
                return 200, b'{"access_token": "gho_secret", "token_type": "bearer"}'
            return 200, b'{"error": "bad_verification_code"}'
        if url == USER_URL and headers.get("Authorization") == "Bearer gho_secret":
            return 200, json.dumps(
                {"id": 4242, "login": "octo", "avatar_url": "https://a/x.png"}
            ).encode()
        return 401, b"{}"


async def test_github_login_only_when_configured(
    lab: Lab, make_lab: LabFactory
) -> None:
    reply = await lab.call("POST", "/api/auth/github/callback", {"code": "x"})
    assert (reply.status, reply.detail) == (404, "GitHub login is not configured")

    fake = FakeGitHub()
    app = GitHubOAuth("client-123", "secret", "http://127.0.0.1/login", fetch=fake)
    gh_lab = await make_lab(github=app)
    page = await gh_lab.call("GET", "/login")
    assert '"github_client_id": "client-123"' in page.raw.decode()
    reply = await gh_lab.call(
        "POST", "/api/auth/github/callback", {"code": "good-code"}
    )
    assert reply.status == 200
    assert reply.json["user"] == {
        "user_id": "4242",
        "username": "octo",
        "avatar_url": "https://a/x.png",
    }
    assert gh_lab.keys.verify(reply.json["jwt"])["sub"] == "4242"
    for _ in range(3):
        bad = await gh_lab.call("POST", "/api/auth/github/callback", {"code": "nope"})
        assert (bad.status, bad.detail) == (401, "GitHub authentication failed")
    limited = await gh_lab.call(
        "POST", "/api/auth/github/callback", {"code": "good-code"}
    )
    assert limited.status == 429


# --- rooms


async def test_room_lifecycle(lab: Lab) -> None:
    _, alice = await lab.user("alice")
    reply = await lab.call(
        "POST",
        "/api/auth/rooms",
        {"name": "Lab A", "expires_in_days": 2},
        token=alice,
    )
    assert reply.status == 200
    room = reply.json
    assert room["name"] == "Lab A"
    assert len(room["room_token"]) >= 32
    rid = room["room_id"]
    await lab.room(alice, "Beta")
    listing = await lab.call("GET", "/api/auth/rooms?sort_by=name", token=alice)
    assert [r["name"] for r in listing.json["rooms"]] == ["Beta", "Lab A"]
    listing = await lab.call(
        "GET", "/api/auth/rooms?search=lab&role=owner", token=alice
    )
    assert [r["room_id"] for r in listing.json["rooms"]] == [rid]
    bad_sort = await lab.call("GET", "/api/auth/rooms?sort_by=token", token=alice)
    assert bad_sort.status == 400
    shown = await lab.call("GET", f"/api/auth/rooms/{rid}", token=alice)
    assert shown.json["token"] == room["room_token"]
    assert [m["username"] for m in shown.json["members"]] == ["alice"]
    renamed = await lab.call(
        "PATCH", f"/api/auth/rooms/{rid}", {"name": "Renamed"}, token=alice
    )
    assert renamed.json == {"room_id": rid, "name": "Renamed"}
    empty = await lab.call("PATCH", f"/api/auth/rooms/{rid}", {"name": ""}, token=alice)
    assert empty.status == 400
    deleted = await lab.call("DELETE", f"/api/auth/rooms/{rid}", token=alice)
    assert deleted.json["status"] == "deleted"
    gone = await lab.call("GET", f"/api/auth/rooms/{rid}", token=alice)
    assert (gone.status, gone.detail) == (404, "Room not found")


async def test_invite_join_and_members(lab: Lab) -> None:
    _, alice = await lab.user("alice")
    bob_id, bob = await lab.user("bob")
    rid = await lab.room(alice)
    not_yet = await lab.call("GET", f"/api/auth/rooms/{rid}/members", token=bob)
    assert not_yet.status == 404
    invite = await lab.call("POST", f"/api/auth/rooms/{rid}/invite", token=alice)
    code = invite.json["invite_code"]
    assert len(code) == 8
    assert code.isupper()
    assert invite.json["expires_in_seconds"] == 3600
    join = {"invite_code": code.lower()}
    reply = await lab.call("POST", "/api/auth/rooms/join", join, token=bob)
    assert reply.json == {"message": "Joined successfully", "room_id": rid}
    reply = await lab.call("POST", "/api/auth/rooms/join", join, token=bob)
    assert reply.json["message"] == "Already a member"
    members = await lab.call("GET", f"/api/auth/rooms/{rid}/members", token=bob)
    assert [(m["username"], m["role"]) for m in members.json["members"]] == [
        ("alice", "owner"),
        ("bob", "member"),
    ]
    # A member sees the room, but neither its token nor its member list there.
    shown = await lab.call("GET", f"/api/auth/rooms/{rid}", token=bob)
    assert shown.json["role"] == "member"
    assert "token" not in shown.json
    for method, path in [
        ("POST", f"/api/auth/rooms/{rid}/invite"),
        ("DELETE", f"/api/auth/rooms/{rid}"),
        ("PATCH", f"/api/auth/rooms/{rid}"),
    ]:
        reply = await lab.call(method, path, {"name": "x"}, token=bob)
        assert (reply.status, reply.detail) == (403, "Only the room owner can do this")


async def test_member_removal_rules(lab: Lab) -> None:
    alice_id, alice = await lab.user("alice")
    bob_id, bob = await lab.user("bob")
    carol_id, carol = await lab.user("carol")
    rid = await lab.room(alice)
    for uid in (bob_id, carol_id):
        await asyncio.to_thread(lab.store.add_member, rid, uid)
    path = f"/api/auth/rooms/{rid}/members"
    reply = await lab.call("DELETE", f"{path}/{carol_id}", token=bob)
    assert (reply.status, reply.detail) == (
        403,
        "Only the room owner can remove members",
    )
    reply = await lab.call("DELETE", f"{path}/{alice_id}", token=alice)
    assert reply.status == 400
    assert reply.detail == "The room owner cannot leave the room"
    reply = await lab.call("DELETE", f"{path}/u-nobody", token=alice)
    assert reply.status == 404
    reply = await lab.call("DELETE", f"{path}/{bob_id}", token=bob)
    assert reply.json["status"] == "left"
    reply = await lab.call("DELETE", f"{path}/{carol_id}", token=alice)
    assert reply.json["status"] == "removed"
    assert (await lab.call("GET", path, token=carol)).status == 404


async def test_invite_codes_are_rate_limited(lab: Lab) -> None:
    _, bob = await lab.user("bob")
    for code in ("AAAAAAAA", "BBBBBBBB", "CCCCCCCC"):
        reply = await lab.call(
            "POST", "/api/auth/rooms/join", {"invite_code": code}, token=bob
        )
        assert (reply.status, reply.detail) == (404, "Invalid or expired invite code")
    reply = await lab.call(
        "POST", "/api/auth/rooms/join", {"invite_code": "DDDDDDDD"}, token=bob
    )
    assert reply.status == 429


async def test_cross_room_access_is_refused(lab: Lab) -> None:
    _, alice = await lab.user("alice")
    _, eve = await lab.user("eve")
    rid = await lab.room(alice)
    eve_room = await lab.room(eve, "eve's")
    key, key_id = await lab.worker_key(alice, rid)
    eve_key, _ = await lab.worker_key(eve, eve_room)
    for method, path, body in [
        ("GET", f"/api/auth/rooms/{rid}", None),
        ("GET", f"/api/auth/rooms/{rid}/members", None),
        ("POST", f"/api/auth/rooms/{rid}/invite", None),
        ("DELETE", f"/api/auth/rooms/{rid}", None),
        ("PATCH", f"/api/auth/rooms/{rid}", {"name": "mine"}),
        ("POST", "/api/auth/token", {"room_id": rid, "worker_name": "w"}),
        ("GET", f"/api/auth/tokens?room_id={rid}", None),
        ("DELETE", f"/api/auth/token/{key_id}", None),
        ("DELETE", f"/api/auth/tokens/{key_id}", None),
        ("GET", f"/api/auth/tokens/{key_id}/workers", None),
        ("GET", f"/api/rooms/{rid}/workers", None),
        ("GET", f"/api/rooms/{rid}/authorized-keys", None),
    ]:
        reply = await lab.call(method, path, body, token=eve)
        assert reply.status == 404, (method, path, reply.raw)
    # A worker key reads its own room only, and nothing that needs a user.
    for path in (f"/api/rooms/{rid}/workers", f"/api/rooms/{rid}/authorized-keys"):
        assert (await lab.call("GET", path, token=key)).status == 200
        assert (await lab.call("GET", path, token=eve_key)).status == 404
    reply = await lab.call("GET", "/api/auth/rooms", token=key)
    assert reply.status == 403
    unknown = await lab.call("GET", "/api/auth/rooms/zzzzzzzzzzzz", token=alice)
    assert unknown.status == 404


# --- worker keys


async def test_worker_keys(lab: Lab) -> None:
    _, alice = await lab.user("alice")
    bob_id, bob = await lab.user("bob")
    rid = await lab.room(alice)
    await asyncio.to_thread(lab.store.add_member, rid, bob_id)
    reply = await lab.call(
        "POST",
        "/api/auth/token",
        {"room_id": rid, "worker_name": "gpu-1", "expires_in_days": 0},
        token=alice,
    )
    created = reply.json
    assert created["token_id"].startswith("slp_")
    assert created["id"].startswith("wk_")
    assert created["expires_at"] is None
    assert created["worker_name"] == "gpu-1"
    bob_key, bob_key_id = await lab.worker_key(bob, rid)
    listing = await lab.call("GET", "/api/auth/tokens?sort_by=created_at", token=alice)
    ids = [t["token_id"] for t in listing.json["tokens"]]
    assert ids == [created["id"], bob_key_id]  # the owner sees every key
    assert not any(t.startswith("slp_") for t in ids)  # never the key itself
    listing = await lab.call("GET", f"/api/auth/tokens?room_id={rid}", token=bob)
    assert [t["token_id"] for t in listing.json["tokens"]] == [bob_key_id]
    assert listing.json["tokens"][0]["room_name"] == "lab"
    bad = await lab.call(
        "POST",
        "/api/auth/token",
        {"room_id": rid, "worker_name": "w", "expires_in_days": -1},
        token=alice,
    )
    assert bad.status == 400
    missing = await lab.call("POST", "/api/auth/token", {"room_id": rid}, token=alice)
    assert (missing.status, missing.detail) == (400, "'worker_name' is required")
    # Bob may not revoke Alice's key; deleting needs a revoked key first.
    other = await lab.call("DELETE", f"/api/auth/token/{created['id']}", token=bob)
    assert other.status == 404
    active = await lab.call("DELETE", f"/api/auth/tokens/{bob_key_id}", token=bob)
    assert (active.status, active.detail) == (
        400,
        "Revoke the token before deleting it",
    )
    revoked = await lab.call("DELETE", f"/api/auth/token/{bob_key}", token=alice)
    assert revoked.json["revoked"] is True
    assert revoked.json["token_id"] == bob_key_id
    listing = await lab.call("GET", "/api/auth/tokens?active_only=true", token=alice)
    assert [t["token_id"] for t in listing.json["tokens"]] == [created["id"]]
    reply = await lab.call("GET", f"/api/rooms/{rid}/workers", token=bob_key)
    assert reply.status == 401  # a revoked key no longer works
    deleted = await lab.call("DELETE", f"/api/auth/tokens/{bob_key_id}", token=bob)
    assert deleted.json == {"deleted": bob_key_id}
    await lab.call("DELETE", f"/api/auth/token/{created['id']}", token=alice)
    bulk = await lab.call("DELETE", f"/api/auth/tokens?room_id={rid}", token=alice)
    assert bulk.json == {"deleted_count": 1}
    assert (await lab.call("GET", "/api/auth/tokens", token=alice)).json == {
        "tokens": []
    }


# --- account keys, public keys, JWT keys


async def test_account_keys(lab: Lab) -> None:
    _, alice = await lab.user("alice")
    _, bob = await lab.user("bob")
    reply = await lab.call(
        "POST", "/api/auth/account-keys", {"name": "laptop"}, token=alice
    )
    secret, key_id = reply.json["key_id"], reply.json["id"]
    assert secret.startswith("slp_acct_")
    assert key_id.startswith("ak_")
    listing = await lab.call("GET", "/api/auth/account-keys", token=secret)
    assert listing.json["keys"] == [
        {
            "key_id": key_id,
            "name": "laptop",
            "created_at": reply.json["created_at"],
            "revoked_at": None,
            "is_active": True,
        }
    ]
    me = await lab.call("GET", "/api/auth/me", token=secret)
    assert (me.json["username"], me.json["via"]) == ("alice", "account_key")
    other = await lab.call("DELETE", f"/api/auth/account-keys/{key_id}", token=bob)
    assert other.status == 404
    nameless = await lab.call("POST", "/api/auth/account-keys", {}, token=alice)
    assert nameless.status == 400
    revoked = await lab.call("DELETE", f"/api/auth/account-keys/{key_id}", token=alice)
    assert revoked.json["revoked"] is True
    reply = await lab.call("GET", "/api/auth/account-keys", token=secret)
    assert (reply.status, reply.detail) == (401, "Invalid API key")


async def test_public_keys_and_authorized_keys(lab: Lab) -> None:
    _, alice = await lab.user("alice")
    _, bob = await lab.user("bob")
    rid = await lab.room(alice)
    key, _ = await lab.worker_key(alice, rid)
    body = {"public_key": ED25519_KEY + "=", "device_name": "laptop"}
    reply = await lab.call("POST", "/api/auth/public-keys", body, token=alice)
    assert reply.json == {
        "status": "ok",
        "public_key": ED25519_KEY,
        "device_name": "laptop",
    }
    await lab.call(
        "POST", "/api/auth/public-keys", {"public_key": ED25519_KEY}, token=bob
    )
    for bad in ("short", ED25519_KEY[:-2], "+" * 43):
        reply = await lab.call(
            "POST", "/api/auth/public-keys", {"public_key": bad}, token=alice
        )
        assert reply.status == 400, bad
    listing = await lab.call("GET", "/api/auth/public-keys", token=alice)
    assert [k["public_key"] for k in listing.json["public_keys"]] == [ED25519_KEY]
    # Only members' keys are authorized in a room (Bob is not a member).
    reply = await lab.call("GET", f"/api/rooms/{rid}/authorized-keys", token=key)
    assert reply.json == {
        "authorized_keys": [
            {"public_key": ED25519_KEY, "username": "alice", "device_name": "laptop"}
        ]
    }
    path = f"/api/auth/public-keys/{ED25519_KEY}"
    assert (await lab.call("DELETE", path, token=alice)).status == 200
    assert (await lab.call("DELETE", path, token=alice)).status == 404
    reply = await lab.call("GET", f"/api/rooms/{rid}/authorized-keys", token=alice)
    assert reply.json == {"authorized_keys": []}


async def test_jwt_public_keys_verify_issued_tokens(lab: Lab) -> None:
    user_id, token = await lab.user("alice")
    pem = await lab.call("GET", "/api/auth/public-key")
    assert pem.json["algorithm"] == "RS256"
    claims = jwt.decode(token, pem.json["public_key"], ["RS256"], audience="sleap-rtc")
    assert claims["sub"] == user_id
    for path in ("/api/auth/jwks", "/.well-known/jwks.json"):
        jwks = await lab.call("GET", path)
        (jwk,) = jwks.json["keys"]
        assert jwk["kid"] == jwt.get_unverified_header(token)["kid"]
        key = jwt.PyJWK(jwk)
        assert jwt.decode(token, key, ["RS256"], audience="sleap-rtc")["sub"] == (
            user_id
        )


async def test_cors(lab: Lab) -> None:
    preflight = await lab.call("OPTIONS", "/api/auth/rooms", headers={"Origin": ORIGIN})
    assert preflight.status == 204
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "Authorization" in preflight.headers["access-control-allow-headers"]
    foreign = await lab.call(
        "OPTIONS", "/api/auth/rooms", headers={"Origin": "http://evil.test"}
    )
    assert foreign.status == 403
    assert "access-control-allow-origin" not in foreign.headers
    reply = await lab.call("GET", "/api/auth/public-key", headers={"Origin": ORIGIN})
    assert reply.headers["access-control-allow-origin"] == ORIGIN


# --- live peers


async def test_workers_listing_and_revocation_disconnects(lab: Lab) -> None:
    _, alice = await lab.user("alice")
    rid = await lab.room(alice)
    key, key_id = await lab.worker_key(alice, rid)
    worker = await lab.register(
        peer_id="worker-1",
        role="worker",
        api_key=key,
        metadata={"tags": ["gpu"], "properties": {"status": "available"}},
    )
    await lab.register(peer_id="client-1", role="client", room_id=rid, jwt=alice)
    reply = await lab.call("GET", f"/api/rooms/{rid}/workers", token=alice)
    (entry,) = reply.json["workers"]
    assert reply.json["count"] == 1
    assert entry["peer_id"] == "worker-1"
    assert entry["worker_name"] == "gpu-box"
    assert entry["properties"] == {"status": "available"}
    assert entry["tags"] == ["gpu"]
    reply = await lab.call("GET", f"/api/auth/tokens/{key_id}/workers", token=alice)
    assert [w["peer_id"] for w in reply.json["workers"]] == ["worker-1"]

    revoked = await lab.call("DELETE", f"/api/auth/token/{key_id}", token=alice)
    assert revoked.json["disconnected"] == 1
    assert await closed_with(worker) == CLOSE_REVOKED
    await async_wait_until(lambda: not lab.server.router.registry.get(rid, "worker-1"))
    reply = await lab.call("GET", f"/api/rooms/{rid}/workers", token=alice)
    assert reply.json == {"workers": [], "count": 0}


async def test_removing_a_member_or_the_room_disconnects(lab: Lab) -> None:
    _, alice = await lab.user("alice")
    bob_id, bob = await lab.user("bob")
    rid = await lab.room(alice)
    await asyncio.to_thread(lab.store.add_member, rid, bob_id)
    owner_ws = await lab.register(peer_id="a", role="client", room_id=rid, jwt=alice)
    bob_ws = await lab.register(peer_id="b", role="client", room_id=rid, jwt=bob)
    await lab.call("DELETE", f"/api/auth/rooms/{rid}/members/{bob_id}", token=alice)
    assert await closed_with(bob_ws) == CLOSE_REVOKED
    assert lab.server.router.registry.get(rid, "a") is not None
    reply = await lab.call("DELETE", f"/api/auth/rooms/{rid}", token=alice)
    assert reply.json["disconnected"] == 1
    assert await closed_with(owner_ws) == CLOSE_REVOKED


async def test_revocations_made_elsewhere_disconnect(lab: Lab) -> None:
    """The admin CLI writes to the store directly; the server's poll acts on it.

    A removed membership is logged as ``member:<room>:<user>``, not as the JWT
    peer's credential id, and still disconnects that peer (and only it).
    """
    _, alice = await lab.user("alice")
    bob_id, bob = await lab.user("bob")
    rid = await lab.room(alice)
    await asyncio.to_thread(lab.store.add_member, rid, bob_id)
    bob_ws = await lab.register(peer_id="b", role="client", room_id=rid, jwt=bob)
    alice_ws = await lab.register(peer_id="a", role="client", room_id=rid, jwt=alice)
    await asyncio.to_thread(lab.store.remove_member, rid, bob_id)
    assert await closed_with(bob_ws) == CLOSE_REVOKED
    assert not alice_ws.close_code


async def test_delete_peer(lab: Lab) -> None:
    _, alice = await lab.user("alice")
    bob_id, bob = await lab.user("bob")
    _, eve = await lab.user("eve")
    rid = await lab.room(alice)
    await asyncio.to_thread(lab.store.add_member, rid, bob_id)
    key, _ = await lab.worker_key(alice, rid)
    worker = await lab.register(peer_id="w", role="worker", api_key=key)
    client = await lab.register(peer_id="c", role="client", room_id=rid, jwt=bob)
    for token in (eve, bob):  # an outsider, and a member who does not own "w"
        reply = await lab.call("POST", "/delete-peer", {"peer_id": "w"}, token=token)
        assert (reply.status, reply.detail) == (404, "Peer not found")
    missing = await lab.call("POST", "/delete-peer", {}, token=alice)
    assert (missing.status, missing.detail) == (400, "'peer_id' is required")
    reply = await lab.call(
        "POST", "/delete-peer", {"peer_id": "w", "room_id": rid}, token=alice
    )
    assert reply.json == {"status": "deleted", "peer_id": "w", "room_ids": [rid]}
    assert await closed_with(worker) is not None
    # A peer's own credential may remove it too.
    reply = await lab.call("POST", "/delete-peer", {"peer_id": "c"}, token=bob)
    assert reply.status == 200
    assert await closed_with(client) is not None
