"""Logins and keys over HTTP (:mod:`~sleap_rtc_core.signaling.http.auth_routes`):
password login and its throttles, the login page, the CLI hand-off, GitHub (its
two HTTPS calls faked: GitHub is unreachable from tests), account keys, public
keys and the JWT keys, against a real server."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Mapping

import jwt

from sleap_rtc_core.signaling.auth.github import TOKEN_URL, USER_URL, GitHubOAuth
from tests.fixtures.timing import scaled
from tests.signaling.http.conftest import (
    ED25519_KEY,
    PASSWORD,
    Lab,
    LabFactory,
)


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
