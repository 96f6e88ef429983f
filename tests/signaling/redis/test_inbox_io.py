"""Acknowledged delivery between server processes, on a real ``redis-server``.

* The scripts themselves: a send to a process nobody reads keeps nothing; a
  claim takes nothing from a live process, and from a dead one exactly the
  claimer's own entries, oldest first.
* A frame relayed to a process whose target has left is answered to its
  sender (on another process) with a typed ``PEER_NOT_FOUND``.
* The kill-instant window, reproduced deterministically with real
  ``sleap-rtc server --redis`` processes: B stops itself (SIGSTOP, through the
  test-only :data:`~sleap_rtc_core.signaling.redis.inbox_io.FAULT_ENV` hook) on
  reading the first frame for its peer, before writing it; 50 frames are then
  taken from Redis by B (``PUBLISH`` answered 1) and never written; B is
  SIGKILLed. The target registers again on C and gets all of them, in order,
  followed by what was sent after, and the sender hears no error. (Before
  acknowledged delivery those 50 were lost.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from sleap_rtc_core.signaling.redis import wire
from sleap_rtc_core.signaling.redis.inbox_io import FAULT_ENV
from sleap_rtc_core.signaling.store.auth_store import open_store
from tests.fixtures.cli import server_processes, start_server
from tests.fixtures.redis import RedisServer
from tests.fixtures.signaling import RoomCreds, WsPeer
from tests.fixtures.timing import async_wait_until, scaled
from tests.signaling.redis.test_backend import Cluster, backend, cluster, knows
from tests.signaling.redis.test_delivery import message, metrics, numbers, settle

__all__ = ["cluster"]  # the fixture, imported for the tests below

pytestmark = pytest.mark.redis


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A plain client of the test's ``redis-server``."""
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


async def send(client: aioredis.Redis, node: str, sender: str, msg: bytes) -> Any:
    keys = wire.Keys("p")
    return await client.eval(
        wire.SEND_SCRIPT,
        2,
        keys.stream(node),
        keys.inbox(node),
        sender,
        msg,
        100,
        60_000,
    )


async def claim(client: aioredis.Redis, node: str, me: str) -> Any:
    keys = wire.Keys("p")
    return await client.eval(
        wire.CLAIM_SCRIPT, 2, keys.stream(node), keys.inbox(node), me
    )


async def test_scripts_keep_frames_until_taken_back_by_their_sender(
    redis_client: aioredis.Redis,
) -> None:
    keys = wire.Keys("p")
    assert await send(redis_client, "b", "a", b"m0") == 0  # nobody reads b
    assert not await redis_client.exists(keys.stream("b"))
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(keys.inbox("b"))
    try:
        for i, sender in enumerate("acaa"):
            assert await send(redis_client, "b", sender, b"m%d" % i) == 1
        got = await pubsub.get_message(timeout=scaled(2))  # the subscription
        got = await pubsub.get_message(timeout=scaled(2))
        assert got is not None
        head, _, body = got["data"].partition(b"\n")
        assert head.endswith(b" a")
        assert body == b"m0"
        assert await claim(redis_client, "b", "a") is None  # b is alive
    finally:
        await pubsub.aclose()
    assert await claim(redis_client, "b", "a") == [b"m0", b"m2", b"m3"]
    assert await claim(redis_client, "b", "a") == []
    assert await claim(redis_client, "b", "c") == [b"m1"]
    assert not await redis_client.exists(keys.stream("b"))


async def test_a_frame_for_a_peer_that_left_is_answered_typed(
    cluster: Cluster, room: RoomCreds, redis_client: aioredis.Redis
) -> None:
    """What A relays to B for a peer that left B before it arrived (A had
    not heard yet): the sender on A gets ``PEER_NOT_FOUND``, naming the
    target. The test sends what A's writer would."""
    a, b = await cluster.add(), await cluster.add()
    sender = await WsPeer.joined(a, room, "s", "client")
    await async_wait_until(lambda: knows(b, room, "s"))
    frame = message("s", "gone", 1)
    keys = backend(b).keys
    node_b = backend(b).node
    batch = wire.join_frames([(room.room_id, "gone", json.dumps(frame).encode())])
    sent = await redis_client.eval(
        wire.SEND_SCRIPT,
        2,
        keys.stream(node_b),
        keys.inbox(node_b),
        backend(a).node,
        batch,
        100,
        60_000,
    )
    assert sent == 1
    error = await sender.expect("error", timeout=scaled(5))
    assert error["code"] == "PEER_NOT_FOUND"
    assert error["target_peer_id"] == "gone"
    router_b = b.server.router
    assert router_b.counters["redis_relayed_not_here"] == 1
    assert router_b.errors["PEER_NOT_FOUND"] == 1
    await sender.close()


async def test_every_message_to_a_peer_leaving_elsewhere_is_answered(
    cluster: Cluster, room: RoomCreds
) -> None:
    """20 rounds of: a target registers on B, A's peer sends it one message,
    the target leaves, and A's peer at once sends 5 more. Whichever process
    answers (A, if it heard the leave, or B, if the frame got there first),
    each of the 5 is delivered or answered with a typed error; none vanishes."""
    a, b = await cluster.add(), await cluster.add()
    sender = await WsPeer.joined(a, room, "s", "client")
    for round_ in range(20):
        target = await WsPeer.joined(b, room, "t", "client")
        await async_wait_until(lambda: knows(a, room, "t"))
        await sender.send(message("s", "t", 0))
        assert (await target.expect("peer_message"))["payload"]["n"] == 0
        await target.close()
        for n in range(1, 6):
            await sender.send(message("s", "t", n))
        errors = [await sender.expect("error", timeout=scaled(5)) for _ in range(5)]
        assert {e["code"] for e in errors} <= {"PEER_NOT_FOUND", "PEER_NOT_IN_ROOM"}
        assert await settle(sender) == [], round_  # one answer each, no more
    await sender.close()


# --- the kill-instant window, with real processes


def stopped(proc: subprocess.Popen[str]) -> bool:
    """Whether ``proc`` is stopped (SIGSTOP), from ``/proc``."""
    stat = Path(f"/proc/{proc.pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] == "T"


async def frames_in_streams(client: aioredis.Redis, peer_id: str) -> int:
    """How many frames for ``peer_id`` the inbox streams hold."""
    count = 0
    async for key in client.scan_iter("sleap-rtc:stream:*"):
        entries: Any = await client.xrange(key)
        for _, fields in entries:
            header, body = wire.split_message(fields[b"d"])
            if header[0] == wire.Kind.FRAME:
                count += header[2] == peer_id
            else:
                count += sum(f[1] == peer_id for f in wire.split_frames(header, body))
    return count


@dataclass
class Doomed:
    """A, C (plain) and B (stops itself on a frame for ``victim``)."""

    a: str
    b: str
    c: str
    b_proc: subprocess.Popen[str]
    room: RoomCreds

    async def peer(self, url: str, peer_id: str) -> WsPeer:
        """A client peer registered through ``url``."""
        p = await WsPeer.connect(url, max_queue=None)
        reply = await p.register(
            peer_id, "client", room_id=self.room.room_id, token=self.room.token
        )
        assert reply["type"] == "registered_auth", reply
        return p


@pytest.fixture
async def doomed(
    tmp_path: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Doomed]:
    """Three ``sleap-rtc server --redis`` processes; B alone has the hook."""
    created = open_store(tmp_path).create_room("lab")
    room = RoomCreds(created.room_id, created.token)
    extra = ("--redis", redis_server.url, "--ping-interval", str(scaled(4.0)))
    async with server_processes(tmp_path, 2, *extra) as (_, (a, c)):
        monkeypatch.setenv(FAULT_ENV, "victim")
        proc, b = await asyncio.to_thread(start_server, tmp_path, *extra)
        monkeypatch.delenv(FAULT_ENV)
        try:
            yield Doomed(a, b, c, proc, room)
        finally:
            if proc.poll() is None:
                proc.kill()
            await asyncio.to_thread(proc.wait, scaled(10))


@pytest.mark.slow
async def test_frames_a_killed_process_had_read_but_not_written_arrive(
    tmp_path: Path,
    redis_server: RedisServer,
    redis_client: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created = open_store(tmp_path).create_room("lab")
    room = RoomCreds(created.room_id, created.token)
    extra = ("--redis", redis_server.url, "--ping-interval", str(scaled(4.0)))

    async def peer(url: str, peer_id: str) -> WsPeer:
        p = await WsPeer.connect(url, max_queue=None)
        reply = await p.register(
            peer_id, "client", room_id=room.room_id, token=room.token
        )
        assert reply["type"] == "registered_auth", reply
        return p

    # Only B carries the hook (the environment is read when a process starts).
    async with contextlib.AsyncExitStack() as stack:
        _, (a,) = await stack.enter_async_context(server_processes(tmp_path, 1, *extra))
        monkeypatch.setenv(FAULT_ENV, "victim")
        (proc_b,), (b,) = await stack.enter_async_context(
            server_processes(tmp_path, 1, *extra)
        )
        monkeypatch.delenv(FAULT_ENV)
        _, (c,) = await stack.enter_async_context(server_processes(tmp_path, 1, *extra))

        sender = await peer(a, "sender")
        victim = await peer(b, "victim")
        await sender.send(message("sender", "victim", 0))
        await async_wait_until(lambda: stopped(proc_b), timeout=scaled(10))
        for n in range(1, 50):
            await sender.send(message("sender", "victim", n))

        async def all_taken() -> bool:
            return await frames_in_streams(redis_client, "victim") == 50

        await async_wait_until(all_taken, timeout=scaled(10))
        proc_b.kill()
        await asyncio.to_thread(proc_b.wait, scaled(10))
        with contextlib.suppress(Exception):
            await asyncio.wait_for(victim.close(), scaled(2))
        again = await peer(c, "victim")
        for n in range(50, 60):
            await sender.send(message("sender", "victim", n))
        assert await numbers(again, 60, scaled(10)) == list(range(60))
        assert await settle(sender) == []
        seen = dict((await asyncio.to_thread(metrics, a))["redis"])
        assert seen.get("reclaimed") == 50, seen
        assert seen.get("held_failed", 0) == 0, seen

        async def all_acknowledged() -> bool:
            return await frames_in_streams(redis_client, "victim") == 0

        await async_wait_until(all_acknowledged, timeout=scaled(10))
        await sender.close()
        await again.close()
