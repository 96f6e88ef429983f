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
from sleap_rtc_core.signaling.redis.config import RedisConfig
from sleap_rtc_core.signaling.server.router_io import ServerConfig
from sleap_rtc_core.signaling.service import Service, build_service
from sleap_rtc_core.signaling.store.auth_store import Store
from tests.fixtures.redis import RedisServer
from tests.fixtures.signaling import RoomCreds, WsPeer
from tests.fixtures.timing import async_wait_until, scaled

pytestmark = pytest.mark.redis

NONE = {"roles": []}


@pytest.fixture
async def two(
    store: Store, jwt_keys: JwtKeys, redis_server: RedisServer
) -> AsyncIterator[tuple[Service, Service]]:
    """Two servers sharing peers through Redis."""
    services: list[Service] = []
    try:
        for _ in range(2):
            config = ServerConfig(host="127.0.0.1", port=0, ping_interval=60.0)
            redis = RedisConfig(url=redis_server.url, connect_timeout=scaled(2))
            svc = build_service(config, store, jwt_keys, redis=redis)
            await svc.server.start()
            services.append(svc)
        yield services[0], services[1]
    finally:
        for svc in services:
            await svc.server.stop()


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
