"""The application the server mounts (:mod:`~sleap_rtc_core.signaling.http.api`):
CORS and the live-peer routes, against a real server with real ``websockets``
peers (routes are tested in ``test_base``, ``test_auth_routes`` and
``test_room_routes``, their shared set-up is in ``conftest.py``)."""

from __future__ import annotations

import asyncio

from sleap_rtc_core.signaling.server.session import CLOSE_REVOKED
from tests.fixtures.timing import async_wait_until
from tests.signaling.http.conftest import (
    ORIGIN,
    Lab,
    closed_with,
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
