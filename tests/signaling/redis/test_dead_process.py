"""Messages to a peer whose server process died are held, never lost silently.

Three real ``sleap-rtc server --redis`` processes on one real ``redis-server``. A
target registered on B, a sender on A; B is killed (SIGKILL). What the sender
sends the target meanwhile is held by A and delivered, in order, once the
target registers again on C: quickly (before A notices B is dead), or late
(after A dropped B's peers). A target that never comes back costs each of its
senders' messages a typed error, never silence.
"""

from __future__ import annotations

import asyncio
import subprocess
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
from tests.signaling.redis.test_delivery import message, metrics, numbers, settle

pytestmark = [pytest.mark.slow, pytest.mark.redis]

PING_INTERVAL = scaled(4.0)
"""The servers' ping interval; their Redis TTL is three quarters of it."""


@dataclass
class Trio:
    """Three server processes on one Redis, and a room they all serve."""

    urls: list[str]
    room: RoomCreds
    procs: list[subprocess.Popen[str]]

    async def peer(self, url: str, peer_id: str) -> WsPeer:
        """A client peer registered through ``url``."""
        peer = await WsPeer.connect(url, max_queue=None)
        reply = await peer.register(
            peer_id, "client", room_id=self.room.room_id, token=self.room.token
        )
        assert reply["type"] == "registered_auth", reply
        return peer

    async def kill(self, i: int) -> None:
        """SIGKILL process ``i`` and reap it."""
        self.procs[i].kill()
        await asyncio.to_thread(self.procs[i].wait, scaled(10))


@pytest.fixture
async def trio(tmp_path: Path, redis_server: RedisServer) -> AsyncIterator[Trio]:
    """``sleap-rtc server --redis`` three times on one data folder and room."""
    created = open_store(tmp_path).create_room("lab")
    extra = ("--redis", redis_server.url, "--ping-interval", str(PING_INTERVAL))
    async with server_processes(tmp_path, 3, *extra) as (procs, urls):
        yield Trio(urls, RoomCreds(created.room_id, created.token), procs)


def redis_counters(url: str) -> dict[str, Any]:
    """The ``redis`` counters of one process's ``/metrics`` (blocking)."""
    return dict(metrics(url)["redis"])


async def test_a_quick_reconnect_elsewhere_gets_every_message(trio: Trio) -> None:
    """B dies; the sender on A sends 100 numbered messages while the target
    registers again on C: all 100 arrive in order, the sender hears no error."""
    a, b, c = trio.urls
    sender = await trio.peer(a, "sender")
    target = await trio.peer(b, "t")
    await trio.kill(1)

    async def send() -> None:
        for start in range(0, 100, 10):
            for n in range(start, start + 10):
                await sender.send(message("sender", "t", n))
            await asyncio.sleep(0.05)

    sending = asyncio.create_task(send())
    await asyncio.sleep(0.2)
    again = await trio.peer(c, "t")
    await sending
    assert await numbers(again, 100, scaled(20)) == list(range(100))
    assert await settle(sender) == []
    seen = await asyncio.to_thread(redis_counters, a)
    assert seen.get("held", 0) > 0, seen
    assert seen.get("held_failed", 0) == 0, seen
    await target.close()
    await sender.close()
    await again.close()


async def test_a_late_reconnect_gets_what_was_held_and_what_waited(
    trio: Trio,
) -> None:
    """Messages sent before and after A dropped the dead process's peers all
    reach the target once it registers again on C, in order."""
    a, b, c = trio.urls
    sender = await trio.peer(a, "sender")
    await trio.peer(b, "t")
    await trio.kill(1)
    for n in range(10):
        await sender.send(message("sender", "t", n))

    async def expired() -> bool:
        seen = await asyncio.to_thread(redis_counters, a)
        return bool(seen.get("nodes_expired", 0))

    await async_wait_until(expired, timeout=scaled(20))
    for n in range(10, 20):
        await sender.send(message("sender", "t", n))
    again = await trio.peer(c, "t")
    assert await numbers(again, 20, scaled(20)) == list(range(20))
    assert await settle(sender) == []
    await sender.close()
    await again.close()


async def test_a_target_that_never_returns_costs_typed_errors(trio: Trio) -> None:
    """Every message to a target that does not come back is answered with a
    typed error once the grace period is over; none vanishes."""
    a, _, c = trio.urls
    sender = await trio.peer(a, "sender")
    await trio.peer(trio.urls[1], "t")
    bystander = await trio.peer(c, "bystander")
    await trio.kill(1)
    for n in range(20):
        await sender.send(message("sender", "t", n))

    async def errors() -> list[dict[str, Any]]:
        got = []
        while len(got) < 20:
            got.append(await sender.expect("error", timeout=scaled(30)))
        return got

    got = await asyncio.wait_for(errors(), scaled(40))
    assert {e["code"] for e in got} <= {"DELIVERY_FAILED", "PEER_NOT_IN_ROOM"}, got
    assert await settle(sender) == []  # one error per message, no more
    await sender.close()
    await bystander.close()
