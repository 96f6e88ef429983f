"""Delivery across real ``sleap-rtc server --redis`` processes, independent of timing.

Two server processes on one real ``redis-server``: a peer that has its
``registered_auth`` from process B is reachable from process A at once (every
message arrives, in order, none lost while A's replica catches up); a message to
a peer that is nowhere gets its typed error; and a paced load across the two
loses nothing, fails no delivery and gets no healthy process declared expired.
Each process's ``/metrics`` tells what it saw (errors by code, Redis counters).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sleap_rtc_core.signaling.store.auth_store import open_store
from tests.fixtures.cli import server_processes
from tests.fixtures.redis import RedisServer
from tests.fixtures.signaling import RoomCreds, WsPeer
from tests.fixtures.timing import async_wait_until, scaled

pytestmark = pytest.mark.redis

PING_INTERVAL = scaled(4.0)
"""The servers' ping interval; their Redis TTL is three quarters of it."""

ROOM_EVENTS = {"peer_joined", "peer_left", "peer_updated"}


@dataclass
class Pair:
    """Two server processes on one Redis, and a room both serve."""

    a: str
    b: str
    room: RoomCreds
    procs: list[subprocess.Popen[str]]

    async def peer(self, url: str, peer_id: str, role: str = "client") -> WsPeer:
        """A peer registered through ``url``. Its client queue is unbounded: a
        test peer leaves room events unread, and a full queue would stop it
        reading the server's close frame."""
        peer = await WsPeer.connect(url, max_queue=None)
        reply = await peer.register(
            peer_id, role, room_id=self.room.room_id, token=self.room.token
        )
        assert reply["type"] == "registered_auth", reply
        return peer


@pytest.fixture
async def pair(tmp_path: Path, redis_server: RedisServer) -> AsyncIterator[Pair]:
    """``sleap-rtc server --redis`` twice, sharing a data folder and a room."""
    created = open_store(tmp_path).create_room("lab")
    extra = (
        *("--redis", redis_server.url, "--ping-interval", str(PING_INTERVAL)),
        *("--limit", "burst=2000"),  # the race test's one sender sends 1,000
    )
    async with server_processes(tmp_path, 2, *extra) as (procs, urls):
        yield Pair(urls[0], urls[1], RoomCreds(created.room_id, created.token), procs)


def metrics(url: str) -> dict[str, Any]:
    """The JSON ``/metrics`` of the server at ``ws://…`` (blocking)."""
    http = url.replace("ws://", "http://", 1) + "/metrics"
    with urllib.request.urlopen(http, timeout=scaled(5)) as response:
        return dict(json.loads(response.read()))


def message(sender: str, target: str, n: int) -> dict[str, Any]:
    return {
        "type": "peer_message",
        "from_peer_id": sender,
        "to_peer_id": target,
        "payload": {"n": n, "from": sender},
    }


async def numbers(peer: WsPeer, count: int, within: float) -> list[int]:
    """The ``n`` of the next ``count`` peer_messages, within ``within`` seconds in
    all (a bound on the whole wait: the server's pings would reset a per-frame
    timeout for ever)."""

    async def collect() -> list[int]:
        got = []
        while len(got) < count:
            got.append((await peer.expect("peer_message"))["payload"]["n"])
        return got

    return await asyncio.wait_for(collect(), within)


async def settle(peer: WsPeer) -> list[dict[str, Any]]:
    """Every frame ``peer`` got before the answer to a fresh request, room
    events left out (what it was sent earlier arrives before that answer)."""
    await peer.send({"type": "discover_peers", "filters": {"role": "nobody"}})
    seen = []

    async def until_answered() -> list[dict[str, Any]]:
        while True:
            msg = await peer.recv()
            if msg["type"] == "peer_list":
                return seen
            if msg["type"] not in ROOM_EVENTS:
                seen.append(msg)

    return await asyncio.wait_for(until_answered(), scaled(10))


async def test_a_peer_just_registered_elsewhere_gets_every_message(
    pair: Pair,
) -> None:
    """20 rounds: a fresh peer registers on B, and A's peer at once sends it 50
    numbered messages; all 50 arrive, in order, and the sender gets no error."""
    sender = await pair.peer(pair.a, "sender")
    for round_ in range(20):
        target_id = f"fresh-{round_}"
        target = await pair.peer(pair.b, target_id)
        for n in range(50):
            await sender.send(message("sender", target_id, n))
        got = await numbers(target, 50, scaled(10))
        assert got == list(range(50)), f"round {round_}"
        assert await settle(sender) == [], f"round {round_}"
        await target.close()
    await sender.close()
    seen = await asyncio.to_thread(metrics, pair.a)
    assert seen["errors"] == {}
    assert seen["total_messages"] == 20 * 50


async def test_a_peer_that_is_nowhere_gets_the_typed_error(pair: Pair) -> None:
    """Looked up in Redis and absent: the reply each message type has in one
    process (PEER_NOT_IN_ROOM for a peer_message, PEER_NOT_FOUND otherwise)."""
    sender = await pair.peer(pair.a, "sender")
    bystander = await pair.peer(pair.b, "bystander")
    await sender.send(message("sender", "ghost", 1))
    assert (await sender.expect("error"))["code"] == "PEER_NOT_IN_ROOM"
    await sender.send(
        {"type": "offer", "sender": "sender", "target": "ghost"} | {"sdp": "v=0"}
    )
    assert (await sender.expect("error"))["code"] == "PEER_NOT_FOUND"
    await sender.send(
        {"type": "mesh_connect", "from_peer_id": "sender", "target_peer_id": "ghost"}
        | {"offer": {"sdp": "v=0", "type": "offer"}}
    )
    err = await sender.expect("error")
    assert (err["code"], err["target_peer_id"]) == ("PEER_NOT_FOUND", "ghost")
    # A peer that left is absent too, once A has heard of the leave.
    await bystander.close()

    async def forgotten() -> bool:
        listed = await sender.request({"type": "discover_peers"}, "peer_list")
        return listed["peers"] == []

    await async_wait_until(forgotten)
    await sender.send(message("sender", "bystander", 2))
    assert (await sender.expect("error"))["code"] == "PEER_NOT_IN_ROOM"
    seen = await asyncio.to_thread(metrics, pair.a)
    assert seen["remote_lookups"] >= 3
    assert "DELIVERY_FAILED" not in seen["errors"]
    await sender.close()


async def test_paced_load_across_processes_loses_nothing(pair: Pair) -> None:
    """16 senders (8 on each process) send 200 numbered messages each to a peer
    on the other process, paced under the rate limit: every message arrives in
    order, no delivery fails, no process is declared expired or re-announces."""
    senders: list[tuple[str, WsPeer]] = []
    receivers: list[tuple[str, WsPeer]] = []
    for i in range(16):
        here, there = (pair.a, pair.b) if i % 2 == 0 else (pair.b, pair.a)
        receivers.append((f"r{i}", await pair.peer(there, f"r{i}")))
        senders.append((f"s{i}", await pair.peer(here, f"s{i}")))
    count = 200

    async def send(i: int) -> None:
        sender_id, sender = senders[i]
        for start in range(0, count, 10):
            for n in range(start, start + 10):
                await sender.send(message(sender_id, f"r{i}", n))
            await asyncio.sleep(0.1)  # 100 msg/s: under the rate limit (200/s)

    async def receive(i: int) -> list[int]:
        return await numbers(receivers[i][1], count, scaled(60))

    results = await asyncio.gather(
        *(send(i) for i in range(16)), *(receive(i) for i in range(16))
    )
    for i, got in enumerate(results[16:]):
        assert got == list(range(count)), f"r{i}"
    for sender_id, sender in senders:
        assert await settle(sender) == [], sender_id
    for url in (pair.a, pair.b):
        seen = await asyncio.to_thread(metrics, url)
        assert "DELIVERY_FAILED" not in seen["errors"], seen
        assert seen["errors"] == {}, seen
        assert seen["redis"].get("nodes_expired", 0) == 0, seen
        assert seen["redis"].get("rejoined", 0) == 0, seen
        assert seen["redis"].get("relayed_not_here", 0) == 0, seen
    for _, peer in senders + receivers:
        await peer.close()
