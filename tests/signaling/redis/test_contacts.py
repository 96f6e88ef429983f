"""Contacts across processes: two in-process servers on one real Redis.

A peer that subscribed to nothing still hears ``peer_left`` from the peers it
exchanged routed frames with, when those were on the other process, in both
directions (the receiving side learns its contact from the forwarded frame).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from sleap_rtc_core.signaling.auth.jwt_keys import JwtKeys
from sleap_rtc_core.signaling.service import Service
from sleap_rtc_core.signaling.store.auth_store import Store
from tests.fixtures.redis import RedisServer, redis_services
from tests.fixtures.signaling import RoomCreds, WsPeer
from tests.fixtures.timing import async_wait_until

pytestmark = pytest.mark.redis

NONE = {"roles": []}


@pytest.fixture
async def two(
    store: Store, jwt_keys: JwtKeys, redis_server: RedisServer
) -> AsyncIterator[tuple[Service, Service]]:
    """Two servers sharing peers through Redis."""
    async with redis_services(store, jwt_keys, redis_server.url) as (a, b):
        yield a, b


def knows(svc: Service, room: RoomCreds, peer_id: str) -> bool:
    return svc.server.router.registry.get(room.room_id, peer_id) is not None


async def left(peer: WsPeer) -> str:
    """The id in the next ``peer_left`` (anything else fails the test)."""
    msg = await peer.recv(timeout=10)
    assert msg["type"] == "peer_left", msg
    return str(msg["peer_id"])


@pytest.mark.parametrize("leaver", ["client", "worker"])
async def test_contacts_on_another_process_hear_each_other_leave(
    two: tuple[Service, Service], room: RoomCreds, leaver: str
) -> None:
    a, b = two
    worker = await WsPeer.joined(a, room, "w", subscribe=NONE)
    client = await WsPeer.joined(b, room, "c", "client", subscribe=NONE)
    bystander = await WsPeer.joined(a, room, "x", subscribe=NONE)
    try:
        await async_wait_until(lambda: knows(a, room, "c") and knows(b, room, "w"))
        await client.send(
            {"type": "peer_message", "from_peer_id": "c", "to_peer_id": "w"}
            | {"payload": {"hello": 1}}
        )
        assert (await worker.expect("peer_message"))["payload"] == {"hello": 1}
        if leaver == "client":
            await client.close()
            assert await left(worker) == "c"
        else:
            await worker.close()
            assert await left(client) == "w"
        with pytest.raises(TimeoutError):  # no contact of anyone: hears nothing
            await bystander.recv(timeout=0.3)
    finally:
        await asyncio.gather(worker.close(), client.close(), bystander.close())
