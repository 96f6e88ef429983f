"""What every route shares (:mod:`~sleap_rtc_core.signaling.http.base`): the
route table's errors, small JSON bodies, authentication, against a real server."""

from __future__ import annotations

import asyncio
import time

import jwt

from sleap_rtc_core.signaling.auth.jwt_keys import JwtKeys
from tests.signaling.http.conftest import (
    Lab,
)


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
