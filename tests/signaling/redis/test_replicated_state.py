"""State that every server process shares through Redis, not only peers.

Two real ``sleap-rtc server --redis`` processes (A and B) on one real
``redis-server`` and one data folder. An HTTP call to A acts on a peer held by
B: revoking a worker key closes its worker on B at once (with the revocation's
own reason, not the store poll's), ``/delete-peer`` closes a peer on B; the
room's admin slot granted on A is known on B; a credential's peer limit counts
the peers it holds on every process.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from sleap_rtc_core.signaling.auth.jwt_keys import JwtKeys
from sleap_rtc_core.signaling.server.session import CLOSE_REVOKED
from sleap_rtc_core.signaling.store.auth_store import open_store
from tests.fixtures.cli import server_processes
from tests.fixtures.redis import RedisServer
from tests.fixtures.signaling import WsPeer
from tests.fixtures.timing import async_wait_until, scaled

pytestmark = pytest.mark.redis

PING_INTERVAL = scaled(4.0)


@dataclass
class Lab:
    """Processes A and B, a room owned by a user, and that user's JWT."""

    a: str
    b: str
    room_id: str
    room_token: str
    jwt: str
    worker_key: str
    worker_key_id: str

    async def peer(self, url: str, peer_id: str, **creds: Any) -> WsPeer:
        """A peer registered through ``url`` (the room token by default)."""
        peer = await WsPeer.connect(url, max_queue=None)
        creds = creds or {"room_id": self.room_id, "token": self.room_token}
        reply = await peer.register(peer_id, "client", **creds)
        assert reply["type"] == "registered_auth", reply
        return peer


@pytest.fixture
async def lab(tmp_path: Path, redis_server: RedisServer) -> AsyncIterator[Lab]:
    store = open_store(tmp_path)
    user = store.add_user("alice")
    room = store.create_room("lab", owner_id=user.user_id)
    token, key = store.create_worker_token(room.room_id, "gpu-box")
    jwt = JwtKeys.load(tmp_path).issue(user.user_id, user.username)
    extra = (
        *("--redis", redis_server.url, "--ping-interval", str(PING_INTERVAL)),
        *("--limit", "max_peers_per_credential=3"),
    )
    async with server_processes(tmp_path, 2, *extra) as (procs, urls):
        yield Lab(urls[0], urls[1], room.room_id, room.token, jwt, key, token.token_id)


def call(url: str, method: str, path: str, jwt: str, body: Any = None) -> Any:
    """One HTTP request to the server at ``ws://…`` (blocking): its JSON."""
    http = url.replace("ws://", "http://", 1) + path
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(http, data=data, method=method)
    req.add_header("Authorization", f"Bearer {jwt}")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=scaled(10)) as response:
        return json.loads(response.read())


async def closed(peer: WsPeer) -> tuple[int | None, str | None]:
    """Wait until the server closes ``peer``: the close code and reason."""
    try:
        while True:
            await peer.recv(timeout=scaled(10))
    except ConnectionClosed:
        return peer.ws.close_code, peer.ws.close_reason


async def known(url: str, viewer: WsPeer, peer_id: str) -> None:
    """Wait until ``viewer``'s process lists ``peer_id``."""

    async def listed() -> bool:
        reply = await viewer.request({"type": "discover_peers"}, "peer_list")
        return peer_id in {p["peer_id"] for p in reply["peers"]}

    await async_wait_until(listed)


async def test_revoking_a_key_on_one_process_closes_its_worker_on_another(
    lab: Lab,
) -> None:
    worker = await lab.peer(lab.b, "w", api_key=lab.worker_key)
    viewer = await lab.peer(lab.a, "viewer")
    await known(lab.a, viewer, "w")
    reply = await asyncio.to_thread(
        call, lab.a, "DELETE", f"/api/auth/token/{lab.worker_key_id}", lab.jwt
    )
    assert reply["disconnected"] == 1
    # The revocation's own reason: Redis told B, not B's poll of the store.
    assert await closed(worker) == (CLOSE_REVOKED, "worker key revoked")
    await viewer.close()


async def test_delete_peer_reaches_a_peer_on_another_process(lab: Lab) -> None:
    target = await lab.peer(lab.b, "t")
    viewer = await lab.peer(lab.a, "viewer")
    await known(lab.a, viewer, "t")
    reply = await asyncio.to_thread(
        call,
        lab.a,
        "POST",
        "/delete-peer",
        lab.jwt,
        {"peer_id": "t", "room_id": lab.room_id},
    )
    assert reply == {"status": "deleted", "peer_id": "t", "room_ids": [lab.room_id]}
    code, _ = await closed(target)
    assert code is not None
    await viewer.close()


async def test_the_admin_slot_is_one_for_all_processes(lab: Lab) -> None:
    first = await WsPeer.connect(lab.a, max_queue=None)
    reply = await first.register(
        "first", "client", room_id=lab.room_id, token=lab.room_token, is_admin=True
    )
    assert reply["admin_peer_id"] == "first"
    viewer = await lab.peer(lab.b, "viewer")
    await known(lab.b, viewer, "first")
    second = await WsPeer.connect(lab.b, max_queue=None)
    await second.send(
        {"type": "register", "peer_id": "second", "role": "client"}
        | {"room_id": lab.room_id, "token": lab.room_token, "is_admin": True}
    )
    conflict = await second.expect("admin_conflict")
    assert conflict["current_admin"] == "first"
    registered = await second.expect("registered_auth")
    assert registered["admin_peer_id"] == "first"
    # The admin leaves: the slot is free on B too.
    await first.close()

    async def freed() -> bool:
        return "first" not in {
            p["peer_id"]
            for p in (await viewer.request({"type": "discover_peers"}, "peer_list"))[
                "peers"
            ]
        }

    await async_wait_until(freed)
    third = await WsPeer.connect(lab.b, max_queue=None)
    reply = await third.register(
        "third", "client", room_id=lab.room_id, token=lab.room_token, is_admin=True
    )
    assert reply["admin_peer_id"] == "third"
    for peer in (second, viewer, third):
        await peer.close()


async def test_a_credentials_peer_limit_counts_every_process(lab: Lab) -> None:
    """``max_peers_per_credential=3``: three workers of one key on A, and a
    fourth on B is refused with ROOM_FULL."""
    held = [await lab.peer(lab.a, f"w{i}", api_key=lab.worker_key) for i in range(3)]
    viewer = await lab.peer(lab.b, "viewer")
    await known(lab.b, viewer, "w2")
    fourth = await WsPeer.connect(lab.b, max_queue=None)
    reply = await fourth.register("w3", "worker", api_key=lab.worker_key)
    assert (reply["type"], reply["code"]) == ("error", "ROOM_FULL"), reply
    for peer in (*held, viewer, fourth):
        await peer.close()
