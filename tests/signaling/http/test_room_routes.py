"""Rooms over HTTP (:mod:`~sleap_rtc_core.signaling.http.room_routes`): their
lifecycle, invites and members, cross-room refusals and worker keys, against a
real server."""

from __future__ import annotations

import asyncio

from tests.signaling.http.conftest import (
    Lab,
)


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
