"""Several signaling servers sharing peers through a real ``redis-server``.

Most tests run in-process servers on separate ports in one loop (each with its
own router, registry and Redis connections, as separate processes would have);
one runs real ``sleap-rtc server --redis`` processes and kills one. Failure
paths use the real thing too: Redis killed and restarted while peers talk, and
Redis missing at start.

Shared suite: the ``servers`` fixture gives two servers on Redis, or one
in-memory server twice, and the tests that take it pass on both backends; and a
subset of ``server/test_router_io.py`` runs here again
against a Redis-backed ``service``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from sleap_rtc_core.signaling.auth.jwt_keys import JwtKeys
from sleap_rtc_core.signaling.redis import wire
from sleap_rtc_core.signaling.redis.backend import (
    RedisBackend,
    RedisConfig,
    RedisUnavailable,
    redact_url,
)
from sleap_rtc_core.signaling.redis.replica import Replica
from sleap_rtc_core.signaling.server.registry import PeerRecord
from sleap_rtc_core.signaling.server.router_io import ServerConfig
from sleap_rtc_core.signaling.service import Service, build_service
from sleap_rtc_core.signaling.store.auth_store import Store, open_store
from tests.fixtures.cli import run_cli, start_server
from tests.fixtures.redis import RedisServer, free_port
from tests.fixtures.router import RouterHarness
from tests.fixtures.signaling import RoomCreds, WsPeer
from tests.fixtures.timing import async_wait_until, scaled
from tests.signaling.server import test_router_io as test_server

pytestmark = pytest.mark.redis

WORKER_MD = {
    "tags": ["sleap-rtc", "training-worker"],
    "properties": {"gpu_memory_mb": 24576, "status": "available"},
}
TTL = scaled(1.0)
"""Expiry of peer entries in these tests (the default is 15 s)."""


def fast_redis(url: str) -> RedisConfig:
    """Short expiries and retries so that failures show within a test unit."""
    return RedisConfig(
        url=url,
        ttl=TTL,
        refresh_interval=TTL / 5,
        resync_interval=scaled(5),
        connect_timeout=scaled(2),
        retry_initial=0.05,
        retry_max=0.3,
    )


class Cluster:
    """In-process signaling servers on one store, one key pair and one Redis."""

    def __init__(self, store: Store, jwt_keys: JwtKeys, redis_url: str) -> None:
        self.store, self.jwt_keys, self.redis_url = store, jwt_keys, redis_url
        self.services: list[Service] = []

    async def add(self) -> Service:
        config = ServerConfig(host="127.0.0.1", port=0, ping_interval=60.0)
        svc = build_service(
            config, self.store, self.jwt_keys, redis=fast_redis(self.redis_url)
        )
        await svc.server.start()
        self.services.append(svc)
        return svc

    async def close(self) -> None:
        for svc in self.services:
            await svc.server.stop()


@pytest.fixture
async def cluster(
    store: Store, jwt_keys: JwtKeys, redis_server: RedisServer
) -> AsyncIterator[Cluster]:
    """Add servers with ``await cluster.add()``; all are stopped after the test."""
    c = Cluster(store, jwt_keys, redis_server.url)
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture(params=["memory", "redis"])
async def servers(
    request: pytest.FixtureRequest, store: Store, jwt_keys: JwtKeys
) -> AsyncIterator[tuple[Service, Service]]:
    """Two servers sharing peers: one in-memory server twice, or two on Redis."""
    if request.param == "memory":
        config = ServerConfig(host="127.0.0.1", port=0, ping_interval=60.0)
        svc = build_service(config, store, jwt_keys)
        await svc.server.start()
        try:
            yield svc, svc
        finally:
            await svc.server.stop()
        return
    redis: RedisServer = request.getfixturevalue("redis_server")
    c = Cluster(store, jwt_keys, redis.url)
    try:
        yield await c.add(), await c.add()
    finally:
        await c.close()


@pytest.fixture
async def service(
    server_config: ServerConfig,
    store: Store,
    jwt_keys: JwtKeys,
    redis_server: RedisServer,
) -> AsyncIterator[Service]:
    """The ``service`` of ``server/test_router_io.py``, on the Redis backend."""
    svc = build_service(
        server_config, store, jwt_keys, redis=fast_redis(redis_server.url)
    )
    await svc.server.start()
    try:
        yield svc
    finally:
        await svc.server.stop()


# server/test_router_io.py's tests that use the ``service`` fixture, run again here with
# the Redis-backed one above (one process: the backend must change nothing).
test_health_and_metrics_share_the_port = (
    test_server.test_health_and_metrics_share_the_port
)
test_room_token_registers_with_reference_reply = (
    test_server.test_room_token_registers_with_reference_reply
)
test_bad_credentials_are_refused = test_server.test_bad_credentials_are_refused
test_worker_key_registers_and_hides_its_secret = (
    test_server.test_worker_key_registers_and_hides_its_secret
)
test_discover_message_offer_and_metadata_round_trip = (
    test_server.test_discover_message_offer_and_metadata_round_trip
)
test_rooms_are_sealed_from_each_other = (
    test_server.test_rooms_are_sealed_from_each_other
)
test_reconnect_replaces_the_stale_socket = (
    test_server.test_reconnect_replaces_the_stale_socket
)
test_disconnect_tells_the_room = test_server.test_disconnect_tells_the_room
test_binary_and_fragmented_frames = test_server.test_binary_and_fragmented_frames


def knows(svc: Service, room: RoomCreds, *peer_ids: str) -> bool:
    """Whether ``svc``'s registry holds every one of ``peer_ids`` in ``room``."""
    registry = svc.server.router.registry
    return all(registry.get(room.room_id, p) is not None for p in peer_ids)


def backend(svc: Service) -> RedisBackend:
    b = svc.server.backend
    assert isinstance(b, RedisBackend)
    return b


async def next_event(peer: WsPeer, type_: str, peer_id: str) -> dict[str, Any]:
    """The next ``type_`` room event about ``peer_id`` (others skipped)."""
    while True:
        msg = await peer.recv()
        if msg["type"] == type_ and msg["peer_id"] == peer_id:
            return msg


# --- the shared suite: both backends, peers on two servers


async def test_peers_on_two_servers_discover_and_talk(
    servers: tuple[Service, Service], room: RoomCreds
) -> None:
    a, b = servers
    worker = await WsPeer.joined(a, room, "w", metadata=WORKER_MD)
    await async_wait_until(lambda: knows(b, room, "w"))
    client = await WsPeer.joined(b, room, "c", "client")
    await async_wait_until(lambda: knows(a, room, "c"))

    found = await client.request(
        {
            "type": "discover_peers",
            "filters": {"role": "worker", "properties": {"gpu_memory_mb": {"$gte": 8}}},
        },
        "peer_list",
    )
    assert [(p["peer_id"], p["metadata"]) for p in found["peers"]] == [("w", WORKER_MD)]

    payload = {"app_message_type": "job_request", "job_id": "j1"}
    message = {
        "type": "peer_message",
        "from_peer_id": "c",
        "to_peer_id": "w",
        "payload": payload,
    }
    await client.send(message)
    assert await worker.expect("peer_message") == message

    offer = {"type": "offer", "sender": "c", "target": "w", "sdp": "v=0", "role": "x"}
    await client.send(offer)
    assert await worker.expect("offer") == offer
    answer = {"type": "answer", "sender": "w", "target": "c", "sdp": "v=0 a"}
    await worker.send(answer)
    assert await client.expect("answer") == answer

    await worker.request(
        {"type": "update_metadata", "metadata": {"properties": {"status": "busy"}}},
        "metadata_updated",
    )
    updated = await next_event(client, "peer_updated", "w")
    assert updated["metadata"]["properties"]["status"] == "busy"
    assert updated["metadata"]["tags"] == WORKER_MD["tags"]
    gone = await client.request(
        {"type": "discover_peers", "filters": {"properties": {"status": "available"}}},
        "peer_list",
    )
    assert gone["peers"] == []
    await worker.close()
    await next_event(client, "peer_left", "w")
    await client.close()


async def test_room_events_and_sealed_rooms_across_servers(
    servers: tuple[Service, Service], room: RoomCreds, store: Store
) -> None:
    a, b = servers
    watcher = await WsPeer.joined(a, room, "watcher", "client")
    other_room = store.create_room("other")
    outsider = await WsPeer.joined(
        a, RoomCreds(other_room.room_id, other_room.token), "outsider", "client"
    )
    worker = await WsPeer.joined(b, room, "w", metadata=WORKER_MD)
    joined = await next_event(watcher, "peer_joined", "w")
    assert joined == {
        "type": "peer_joined",
        "peer_id": "w",
        "role": "worker",
        "metadata": WORKER_MD,
    }
    await async_wait_until(lambda: knows(a, room, "w"))
    # Another room sees nothing and reaches nothing.
    seen = await outsider.request({"type": "discover_peers"}, "peer_list")
    assert seen["peers"] == []
    await outsider.send(
        {"type": "peer_message", "from_peer_id": "outsider", "to_peer_id": "w"}
        | {"payload": {"x": 1}}
    )
    assert (await outsider.expect("error"))["code"] == "PEER_NOT_IN_ROOM"
    await worker.close()
    await next_event(watcher, "peer_left", "w")
    await async_wait_until(lambda: not knows(a, room, "w"))
    await watcher.close()
    await outsider.close()


async def test_reconnect_through_the_other_server_replaces_the_stale_socket(
    servers: tuple[Service, Service], room: RoomCreds
) -> None:
    a, b = servers
    first = await WsPeer.joined(a, room, "w", metadata=WORKER_MD)
    await async_wait_until(lambda: knows(b, room, "w"))
    second = await WsPeer.joined(b, room, "w", metadata=WORKER_MD)
    await asyncio.wait_for(first.ws.wait_closed(), scaled(5))
    assert first.ws.close_code == 4000
    client = await WsPeer.joined(a, room, "c", "client")
    await async_wait_until(lambda: knows(b, room, "c"))
    await client.send(
        {"type": "peer_message", "from_peer_id": "c", "to_peer_id": "w"}
        | {"payload": {"n": 1}}
    )
    assert (await second.expect("peer_message"))["payload"] == {"n": 1}
    # The stale socket's close removed nothing anywhere.
    for svc in (a, b):
        assert knows(svc, room, "w")
    await second.close()
    await client.close()


# --- Redis only: three servers, stops, crashes and outages


async def test_three_servers_see_each_others_peers(
    cluster: Cluster, room: RoomCreds
) -> None:
    svcs = [await cluster.add() for _ in range(3)]
    peers = [
        await WsPeer.joined(svc, room, f"p{i}", metadata=WORKER_MD)
        for i, svc in enumerate(svcs)
    ]
    for svc in svcs:
        await async_wait_until(lambda svc=svc: knows(svc, room, "p0", "p1", "p2"))
    listed = await peers[0].request({"type": "discover_peers"}, "peer_list")
    assert sorted(p["peer_id"] for p in listed["peers"]) == ["p1", "p2"]
    for i, sender in enumerate(peers):
        target = (i + 1) % 3
        await sender.send(
            {
                "type": "peer_message",
                "from_peer_id": f"p{i}",
                "to_peer_id": f"p{target}",
                "payload": {"hop": i},
            }
        )
        got = await peers[target].expect("peer_message")
        assert got["payload"] == {"hop": i}
    for peer in peers:
        await peer.close()


async def test_a_stopped_server_withdraws_its_peers_at_once(
    cluster: Cluster, room: RoomCreds
) -> None:
    a, b = await cluster.add(), await cluster.add()
    watcher = await WsPeer.joined(a, room, "watcher", "client")
    await WsPeer.joined(b, room, "w")
    await next_event(watcher, "peer_joined", "w")
    await b.server.stop()
    # Well before the entries would expire.
    await asyncio.wait_for(next_event(watcher, "peer_left", "w"), TTL / 2)
    assert not knows(a, room, "w")
    await watcher.close()


async def test_a_silent_node_expires_within_the_ttl(
    cluster: Cluster, room: RoomCreds
) -> None:
    a, b = await cluster.add(), await cluster.add()
    watcher = await WsPeer.joined(a, room, "watcher", "client")
    await WsPeer.joined(b, room, "w")
    await next_event(watcher, "peer_joined", "w")
    # b stops refreshing and announcing (as if its process hung or died).
    for task in backend(b)._tasks:
        task.cancel()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(next_event(watcher, "peer_left", "w"), TTL * 3)
    assert loop.time() - started <= TTL * 1.2 + scaled(0.5)
    await watcher.close()


async def test_a_dead_nodes_peer_is_taken_over_whatever_the_clocks_say(
    cluster: Cluster, room: RoomCreds
) -> None:
    """A peer of a dead process registers again on another whose clock is
    behind: its older ``connected_at`` must not lose to the dead one's record
    (renewing that record would keep a dead node's peer findable for ever)."""
    a, b, o = await cluster.add(), await cluster.add(), await cluster.add()
    watcher = await WsPeer.joined(o, room, "watcher", "client")
    await WsPeer.joined(a, room, "w", metadata=WORKER_MD)
    await async_wait_until(lambda: knows(b, room, "w") and knows(o, room, "w"))
    b.server.router.clock = lambda: time.time() - 3600.0
    for task in backend(a)._tasks:  # a dies: no beats, no refreshes
        task.cancel()
    moved = await WsPeer.joined(b, room, "w", metadata=WORKER_MD)

    def held_by_b() -> bool:
        rec = o.server.router.registry.get(room.room_id, "w")
        return rec is not None and rec.node == backend(b).node

    await async_wait_until(held_by_b, timeout=TTL * 5)
    await watcher.send(
        {"type": "peer_message", "from_peer_id": "watcher", "to_peer_id": "w"}
        | {"payload": {"n": 1}}
    )
    assert (await moved.expect("peer_message"))["payload"] == {"n": 1}
    await watcher.close()
    await moved.close()


async def test_metrics_sum_the_live_processes(
    cluster: Cluster, room: RoomCreds
) -> None:
    """Each ``/metrics`` keeps this process's figures at the top level and adds
    ``cluster``, the sum over the live processes; a stopped one leaves it."""
    a, b = await cluster.add(), await cluster.add()
    await WsPeer.joined(a, room, "w", metadata=WORKER_MD)
    await WsPeer.joined(b, room, "c1", "client")
    await WsPeer.joined(b, room, "c2", "client")

    async def seen(svc: Service) -> dict[str, Any]:
        _, _, body = await test_server.http_get(svc, "/metrics")
        return dict(json.loads(body))

    async def summed() -> bool:
        cluster_part = (await seen(a))["cluster"]
        return cluster_part["processes"] == 2 and (
            cluster_part["active_connections"] == 3
        )

    await async_wait_until(summed, timeout=TTL * 5)
    m = await seen(a)
    assert m["active_connections"] == 1  # this process alone, as before
    assert m["cluster"]["nodes"] == sorted([backend(a).node, backend(b).node])
    assert m["cluster"]["peers_by_role"] == {"worker": 1, "client": 2}
    _, _, text = await test_server.http_get(a, "/metrics", {"Accept": "text/plain"})
    assert b"sleap_rtc_cluster_processes 2" in text
    await b.server.stop()

    async def alone() -> bool:
        return (await seen(a))["cluster"]["processes"] == 1

    await async_wait_until(alone, timeout=TTL * 5)


async def test_a_node_presumed_dead_announces_its_peers_again(
    cluster: Cluster, room: RoomCreds, redis_server: RedisServer
) -> None:
    a, b = await cluster.add(), await cluster.add()
    watcher = await WsPeer.joined(a, room, "watcher", "client")
    worker = await WsPeer.joined(b, room, "w")
    await next_event(watcher, "peer_joined", "w")
    # b's liveness key vanishes, as if b had stalled past its TTL.
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await client.delete(backend(b).keys.node(backend(b).node))
    finally:
        await client.aclose()
    counters = b.server.router.counters
    await async_wait_until(lambda: counters["redis_rejoined"] >= 1)
    await async_wait_until(lambda: knows(a, room, "w"))
    await watcher.send(
        {"type": "peer_message", "from_peer_id": "watcher", "to_peer_id": "w"}
        | {"payload": {"still": "here"}}
    )
    assert (await worker.expect("peer_message"))["payload"] == {"still": "here"}
    await watcher.close()
    await worker.close()


async def test_redis_lost_and_back(
    cluster: Cluster, room: RoomCreds, redis_server: RedisServer
) -> None:
    a, b = await cluster.add(), await cluster.add()
    w1 = await WsPeer.joined(a, room, "w1", metadata=WORKER_MD)
    w2 = await WsPeer.joined(a, room, "w2", metadata=WORKER_MD)
    c = await WsPeer.joined(b, room, "c", "client")
    await async_wait_until(lambda: knows(a, room, "c") and knows(b, room, "w1", "w2"))

    await redis_server.async_kill()
    await async_wait_until(lambda: not backend(a).up and not backend(b).up)
    # Each server forgets the other's peers and tells its own.
    await next_event(c, "peer_left", "w1")
    await next_event(c, "peer_left", "w2")
    await async_wait_until(lambda: not knows(a, room, "c"))
    # Peers of one server keep talking.
    await w1.send(
        {"type": "peer_message", "from_peer_id": "w1", "to_peer_id": "w2"}
        | {"payload": {"during": "outage"}}
    )
    assert (await w2.expect("peer_message"))["payload"] == {"during": "outage"}
    await c.send(
        {"type": "peer_message", "from_peer_id": "c", "to_peer_id": "w1"}
        | {"payload": {"x": 1}}
    )
    assert (await c.expect("error"))["code"] == "PEER_NOT_IN_ROOM"
    late = await WsPeer.joined(b, room, "late", "client")  # registers meanwhile

    await redis_server.async_start()  # empty, as a restarted cache is
    await async_wait_until(lambda: backend(a).up and backend(b).up, scaled(10))
    await async_wait_until(
        lambda: knows(a, room, "c", "late") and knows(b, room, "w1", "w2"),
        scaled(5),
    )
    await next_event(c, "peer_joined", "w1")
    await c.send(
        {"type": "peer_message", "from_peer_id": "c", "to_peer_id": "w1"}
        | {"payload": {"after": "outage"}}
    )
    assert (await w1.expect("peer_message"))["payload"] == {"after": "outage"}
    for svc in (a, b):
        assert all(not t.done() for t in backend(svc)._tasks)
    for peer in (w1, w2, c, late):
        await peer.close()


async def test_redis_missing_at_start_is_a_clear_error(
    server_config: ServerConfig, store: Store, jwt_keys: JwtKeys
) -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    svc = build_service(server_config, store, jwt_keys, redis=fast_redis(url))
    with pytest.raises(RedisUnavailable) as raised:
        await svc.server.start()
    assert raised.value.code == "REDIS_UNAVAILABLE"
    assert redact_url(url) in raised.value.message
    assert "hunter2" not in raised.value.message
    with pytest.raises(RuntimeError):
        _ = svc.server.port  # never listened


def test_redact_url() -> None:
    assert redact_url("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    assert redact_url("redis://user:pw@h:1/0") == "redis://user:***@h:1/0"
    assert redact_url("redis://h:1/0") == "redis://h:1/0"


def test_wire_records_and_messages_round_trip() -> None:
    rec = PeerRecord(
        peer_id="w",
        room_id="r",
        role="worker",
        metadata=WORKER_MD,
        connected_at=1.5,
        principal="p",
        credential_id="wk_1",
        revocation_ids=frozenset({"wk_1", "room:r"}),
        node="n1",
    )
    back = wire.decode_record(wire.encode_record(rec))
    assert (back.peer_id, back.room_id, back.node, back.conn) == ("w", "r", "n1", None)
    assert back.metadata == WORKER_MD
    assert back.revocation_ids == rec.revocation_ids
    frame = b'{"type":"peer_message"}\nwith a newline'
    header, body = wire.split_message(wire.join_message(["frame", "r", "w"], frame))
    assert (header, body) == (["frame", "r", "w"], frame)
    for bad in (b"no header", b"[]\n", b"{}\n", b"[1]\n"):
        with pytest.raises(ValueError, match="header"):
            wire.split_message(bad)
    with pytest.raises(ValueError, match="peer record"):
        wire.decode_record(b'{"peer_id": 1}')


def test_wire_frames_for_one_process_travel_as_one_message() -> None:
    frames = [("r", "a", b'{"n":1}'), ("r", "b", b"{\n}"), ("s", "a", b"")]
    header, body = wire.split_message(wire.join_frames(frames))
    assert header[0] == "frames"
    assert wire.split_frames(header, body) == frames
    one = wire.join_frames(frames[:1])  # one frame: the plain frame message
    assert wire.split_message(one) == (["frame", "r", "a"], b'{"n":1}')
    for bad in (
        ["frames"],
        ["frames", [["r", "a", 99]]],
        ["frames", [["r", "a", -1]]],
        ["frames", [["r", 1, 0]]],
    ):
        with pytest.raises(ValueError, match="frames message"):
            wire.split_frames(bad, b"x")
    with pytest.raises(ValueError, match="longer"):
        wire.split_frames(["frames", [["r", "a", 0]]], b"x")


def test_replica_delivers_each_frame_of_a_batch(router_harness: RouterHarness) -> None:
    h = router_harness
    replica = Replica(h.router, "n1", lambda rec: None)
    a, b = h.register("a"), h.register("b")
    a.pop()
    b.pop()
    replica.apply(
        wire.join_frames([("room", "a", b'{"n":1}'), ("room", "b", b'{"n":2}')])
    )
    replica.apply(wire.join_frames([("room", "a", b'{"n":3}'), ("room", "x", b"{}")]))
    assert (a.pop(), b.pop()) == ([{"n": 1}, {"n": 3}], [{"n": 2}])
    assert h.router.counters["redis_relayed_not_here"] == 1


# --- real processes: ``sleap-rtc server --redis``


async def test_cli_servers_share_peers_and_a_killed_one_vanishes(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    created = open_store(tmp_path).create_room("lab")
    room = RoomCreds(created.room_id, created.token)
    extra = ("--redis", redis_server.url, "--ping-interval", str(TTL / 0.75))
    first, url1 = await asyncio.to_thread(start_server, tmp_path, *extra)
    second, url2 = await asyncio.to_thread(start_server, tmp_path, *extra)
    try:
        worker = await WsPeer.connect(url1)
        reply = await worker.register(
            "w", room_id=room.room_id, token=room.token, metadata=WORKER_MD
        )
        assert reply["type"] == "registered_auth", reply
        client = await WsPeer.connect(url2)
        reply = await client.register(
            "c", "client", room_id=room.room_id, token=room.token
        )
        assert reply["type"] == "registered_auth", reply

        async def found() -> bool:
            listed = await client.request({"type": "discover_peers"}, "peer_list")
            return [p["peer_id"] for p in listed["peers"]] == ["w"]

        await async_wait_until(found)
        await client.send({"type": "offer", "sender": "c", "target": "w", "sdp": "v=0"})
        assert (await worker.expect("offer"))["sdp"] == "v=0"
        await worker.send(
            {"type": "peer_message", "from_peer_id": "w", "to_peer_id": "c"}
            | {"payload": {"app_message_type": "job_response"}}
        )
        got = await client.expect("peer_message")
        assert got["payload"] == {"app_message_type": "job_response"}

        first.send_signal(signal.SIGKILL)
        await asyncio.to_thread(first.wait, scaled(10))
        # Its peers vanish within one ping interval (TTL + a refresh).
        left = await asyncio.wait_for(
            next_event(client, "peer_left", "w"), TTL * 2 + scaled(1)
        )
        assert left == {"type": "peer_left", "peer_id": "w"}
        listed = await client.request({"type": "discover_peers"}, "peer_list")
        assert listed["peers"] == []
        await client.close()
        second.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(second.wait, scaled(10)) == 0
    finally:
        for proc in (first, second):
            proc.kill()
            await asyncio.to_thread(proc.wait)


def test_cli_redis_missing_is_a_clear_error(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = run_cli(
        "server", "--port", "0", "--data-dir", str(tmp_path), "--redis", url
    )
    assert result.returncode == 1
    assert f"error: cannot use Redis at {url}" in result.stderr, result.stderr
    assert "listening" not in result.stdout
    assert "Traceback" not in result.stderr


# --- the replica alone (sans-I/O, on the in-memory router harness)


def _remote(peer_id: str, node: str = "n2", at: float = 1.0, **md: Any) -> bytes:
    rec = PeerRecord(
        peer_id=peer_id,
        room_id="room",
        role="worker",
        metadata=dict(md),
        connected_at=at,
        principal="t",
        node=node,
    )
    return wire.encode_record(rec)


def test_replica_applies_joins_updates_and_leaves(
    router_harness: RouterHarness,
) -> None:
    h = router_harness
    reasserted: list[PeerRecord] = []
    replica = Replica(h.router, "n1", reasserted.append)
    local = h.register("c", role="client")
    local.pop()

    replica.apply(wire.join_message(["join", "n2"], _remote("w", tags=["x"])))
    h.tick()
    assert local.pop() == [
        {"type": "peer_joined", "peer_id": "w", "role": "worker"}
        | {"metadata": {"tags": ["x"]}}
    ]
    replica.apply(wire.join_message(["join", "n2"], _remote("w", tags=["x"])))
    h.tick()
    assert local.pop() == []  # a re-publish of the same registration
    replica.apply(wire.join_message(["update", "n2"], _remote("w", tags=["y"])))
    h.tick()
    assert local.pop() == [
        {"type": "peer_updated", "peer_id": "w", "metadata": {"tags": ["y"]}}
    ]
    h.send(local, {"type": "discover_peers", "filters": {"tags": ["y"]}})
    assert [p["peer_id"] for p in local.pop()[-1]["peers"]] == ["w"]

    replica.apply(wire.join_message(["leave", "n3", "room", "w"]))  # not its node
    h.tick()
    assert local.pop() == []
    replica.apply(wire.join_message(["leave", "n2", "room", "w"]))
    h.tick()
    assert local.pop() == [{"type": "peer_left", "peer_id": "w"}]
    replica.apply(wire.join_message(["join", "n1"], _remote("echo", node="n1")))
    assert h.router.registry.get("room", "echo") is None  # our own echo
    with pytest.raises(ValueError, match="unknown"):
        replica.apply(wire.join_message(["nonsense", "n2"]))
    assert reasserted == []


def test_replica_resolves_a_peer_held_twice_by_registration_time(
    router_harness: RouterHarness,
) -> None:
    h = router_harness
    reasserted: list[PeerRecord] = []
    replica = Replica(h.router, "n1", reasserted.append)
    mine = h.register("w")
    # An older registration elsewhere loses: ours is written again.
    replica.apply(wire.join_message(["join", "n2"], _remote("w", at=0.0)))
    assert mine.open
    assert [r.peer_id for r in reasserted] == ["w"]
    # A newer one wins: the local socket is closed as replaced.
    replica.apply(wire.join_message(["join", "n2"], _remote("w", at=2e9)))
    assert mine.closes == [(4000, "replaced by a connection elsewhere")]
    rec = h.router.registry.get("room", "w")
    assert rec is not None
    assert (rec.node, rec.conn) == ("n2", None)
    h.close(mine)  # the stale socket's close removes nothing
    assert h.router.registry.get("room", "w") is rec
    replica.apply(wire.join_message(["down", "n2"]))
    assert h.router.registry.get("room", "w") is None
