"""A credential's peer count and the admin slot, decided in Redis for every process.

The scripts of :mod:`...redis.claims` run on a real ``redis-server`` directly
(liveness keys and peer hashes written by hand, as live and dead processes
leave them); then two real ``sleap-rtc server --redis`` processes race
registrations: over a credential's limit (exactly the limit is admitted, the
rest get ``ROOM_FULL``, round after round) and for one admin slot (one winner
per room, and the loser gets ``admin_conflict`` naming it). A process killed
with SIGKILL gives its peers' places back once its liveness key expires.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from sleap_rtc_core.signaling.redis.claims import (
    CLAIM_SCRIPT,
    RELEASE_SCRIPT,
    admin_key,
    credential_key,
    parse_verdict,
)
from sleap_rtc_core.signaling.redis.claims_io import ClaimsIO
from sleap_rtc_core.signaling.redis.wire import Keys
from sleap_rtc_core.signaling.server.claims import Claim, Verdict
from sleap_rtc_core.signaling.store.auth_store import Store, open_store
from tests.fixtures.cli import server_processes
from tests.fixtures.redis import RedisServer
from tests.fixtures.signaling import WsPeer
from tests.fixtures.timing import async_wait_until, scaled

pytestmark = pytest.mark.redis

KEYS = Keys("t")
ROOM = "room"
PING_INTERVAL = scaled(4.0)
LIMIT = 3


# --- the scripts, on a real redis-server


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.Redis.from_url(redis_server.url)
    try:
        yield redis
    finally:
        await redis.aclose()


async def claim(
    redis: aioredis.Redis,
    peer: str,
    node: str,
    *,
    limit: int = 2,
    admin: bool = False,
    fresh_ms: int = 60_000,
) -> Verdict:
    raw = await redis.eval(
        CLAIM_SCRIPT,
        2,
        credential_key(KEYS, ROOM, "key"),
        admin_key(KEYS, ROOM),
        peer,
        node,
        limit,
        KEYS.node_prefix,
        KEYS.peer(ROOM, ""),
        fresh_ms,
        "1" if admin else "0",
    )
    return parse_verdict(raw)


async def test_the_limit_is_exact_and_a_peer_claiming_again_is_not_counted_twice(
    client: aioredis.Redis,
) -> None:
    await client.set(KEYS.node("n1"), "1")
    assert await claim(client, "a", "n1") == Verdict(True, 0)
    assert await claim(client, "b", "n1") == Verdict(True, 1)
    assert await claim(client, "c", "n1") == Verdict(False, 2)
    assert await claim(client, "a", "n1") == Verdict(True, 1)  # a reconnect
    await client.eval(
        RELEASE_SCRIPT,
        2,
        credential_key(KEYS, ROOM, "key"),
        admin_key(KEYS, ROOM),
        "b",
        "n1",
    )
    assert await claim(client, "c", "n1") == Verdict(True, 1)


async def test_a_dead_process_entries_are_dropped_and_a_stale_one_too(
    client: aioredis.Redis,
) -> None:
    """An entry counts while its process lives and its peer's hash names it
    (or it is fresh); otherwise the next claim removes it."""
    await client.set(KEYS.node("live"), "1")
    assert (await claim(client, "a", "dead")).admitted  # no liveness key: dead
    assert (await claim(client, "b", "live", fresh_ms=1)).admitted
    await asyncio.sleep(0.01)  # b is no longer fresh, and has no peer hash
    assert await claim(client, "c", "live", fresh_ms=1) == Verdict(True, 0)
    members = await client.hkeys(credential_key(KEYS, ROOM, "key"))
    assert sorted(members) == [b"c"]
    # An old entry whose peer hash names its live process still counts.
    await client.hset(KEYS.peer(ROOM, "c"), "node", "live")
    await asyncio.sleep(0.01)
    assert await claim(client, "d", "live", fresh_ms=1) == Verdict(True, 1)


async def test_the_admin_slot_has_one_holder_until_it_leaves_or_dies(
    client: aioredis.Redis,
) -> None:
    for node in ("n1", "n2"):
        await client.set(KEYS.node(node), "1")
    assert (await claim(client, "a", "n1", admin=True)).admin == "a"
    assert (await claim(client, "b", "n2", admin=True)).admin == "a"
    assert (await claim(client, "a", "n2", admin=True)).admin == "a"  # moved
    await client.delete(KEYS.node("n2"))  # a's process now is dead
    assert (await claim(client, "b", "n1", limit=9, admin=True)).admin == "b"
    await client.eval(
        RELEASE_SCRIPT,
        2,
        credential_key(KEYS, ROOM, "key"),
        admin_key(KEYS, ROOM),
        "b",
        "n1",
    )
    assert not await client.exists(admin_key(KEYS, ROOM))


async def test_without_redis_a_claim_is_answered_none_at_once() -> None:
    """Redis down: the router decides by its replica (see server/test_claims)."""
    claims = ClaimsIO(KEYS, "n1", lambda: None, fresh=1.0, timeout=scaled(5))
    fake: Any = Claim(None, None, None, ROOM, "a", "key", 2, False)  # type: ignore[arg-type]
    assert await claims.claim(fake) is None


def test_a_bad_claim_reply_is_a_value_error() -> None:
    assert parse_verdict([1, 0, b"x"]) == Verdict(True, 0, "x")
    assert parse_verdict([0, 3, None]) == Verdict(False, 3, None)
    for bad in (None, [1, 2], [1, "2", None], [1, 2, 3]):
        with pytest.raises(ValueError, match="bad claim reply"):
            parse_verdict(bad)


# --- two real server processes racing


@dataclass
class Lab:
    a: str
    b: str
    store: Store
    procs: list[Any]


@pytest.fixture
async def lab(tmp_path: Path, redis_server: RedisServer) -> AsyncIterator[Lab]:
    extra = (
        *("--redis", redis_server.url, "--ping-interval", str(PING_INTERVAL)),
        *("--limit", f"max_peers_per_credential={LIMIT}"),
    )
    async with server_processes(tmp_path, 2, *extra) as (procs, urls):
        yield Lab(urls[0], urls[1], open_store(tmp_path), procs)


async def race(
    urls: list[str], registers: list[dict[str, Any]]
) -> tuple[list[WsPeer], list[list[dict[str, Any]]]]:
    """Connect one peer per ``register`` (to ``urls`` in turn), then send every
    ``register`` at once; each peer's messages up to its reply."""
    peers = await asyncio.gather(
        *(WsPeer.connect(urls[i % len(urls)]) for i in range(len(registers)))
    )

    async def one(peer: WsPeer, msg: dict[str, Any]) -> list[dict[str, Any]]:
        await peer.send(msg)
        seen = []
        while True:
            reply = await peer.recv(timeout=10)
            if reply["type"] in {"peer_joined", "peer_left", "peer_updated"}:
                continue
            seen.append(reply)
            if reply["type"] in {"registered_auth", "error"}:
                return seen

    replies = await asyncio.gather(*map(one, peers, registers))
    return list(peers), list(replies)


async def test_racing_a_credentials_limit_across_processes_admits_exactly_the_limit(
    lab: Lab,
) -> None:
    """Eight workers of one key register at once, four per process, round
    after round with a fresh key: exactly LIMIT get in each time."""
    room = lab.store.create_room("race")
    for round_ in range(5):
        _, key = lab.store.create_worker_token(room.room_id, f"box-{round_}")
        registers = [
            {"type": "register", "peer_id": f"w{round_}-{i}", "role": "worker"}
            | {"api_key": key}
            for i in range(8)
        ]
        peers, replies = await race([lab.a, lab.b], registers)
        kinds = sorted(r[-1]["type"] for r in replies)
        assert kinds == ["error"] * 5 + ["registered_auth"] * LIMIT, replies
        assert {r[-1].get("code") for r in replies if r[-1]["type"] == "error"} == {
            "ROOM_FULL"
        }
        await asyncio.gather(*(p.close() for p in peers))


async def test_racing_for_the_admin_slot_across_processes_has_one_typed_loser(
    lab: Lab,
) -> None:
    """Per room, one peer on each process asks for the admin slot at once:
    one wins (its reply names itself, no conflict) and the other is told
    who holds it, before its reply, which names the same holder."""
    rooms = [lab.store.create_room(f"admin-{i}") for i in range(8)]
    for room in rooms:
        registers = [
            {"type": "register", "peer_id": name, "role": "client", "is_admin": True}
            | {"room_id": room.room_id, "token": room.token}
            for name in ("on-a", "on-b")
        ]
        peers, replies = await race([lab.a, lab.b], registers)
        holders = {r[-1]["admin_peer_id"] for r in replies}
        assert len(holders) == 1, replies
        (winner,) = holders
        for name, seen in zip(("on-a", "on-b"), replies, strict=True):
            assert seen[-1]["type"] == "registered_auth", seen
            if name == winner:
                assert [m["type"] for m in seen] == ["registered_auth"]
            else:
                assert seen[0] == {
                    "type": "admin_conflict",
                    "room_id": room.room_id,
                    "current_admin": winner,
                }
        await asyncio.gather(*(p.close() for p in peers))


async def test_a_killed_process_gives_its_peers_places_back(lab: Lab) -> None:
    """LIMIT workers of one key on B; B is killed; once its liveness key has
    expired, LIMIT workers of that key get in on A, and no more."""
    room = lab.store.create_room("killed")
    _, key = lab.store.create_worker_token(room.room_id, "box")
    creds = {"api_key": key}
    on_b = [await WsPeer.connect(lab.b) for _ in range(LIMIT)]
    for i, peer in enumerate(on_b):
        assert (await peer.register(f"b{i}", **creds))["type"] == "registered_auth"
    refused = await WsPeer.connect(lab.a)
    assert (await refused.register("a0", **creds))["code"] == "ROOM_FULL"
    await refused.close()
    lab.procs[1].send_signal(signal.SIGKILL)
    await asyncio.to_thread(lab.procs[1].wait, scaled(10))

    on_a: list[WsPeer] = []

    async def admitted() -> bool:
        peer = await WsPeer.connect(lab.a)
        reply = await peer.register(f"a{len(on_a)}", **creds)
        if reply["type"] != "registered_auth":
            await peer.close()
            return False
        on_a.append(peer)
        return True

    await async_wait_until(admitted, timeout=scaled(20), interval=0.2)
    for _ in range(LIMIT - 1):
        assert await admitted()
    assert not await admitted()
    await asyncio.gather(*(p.close() for p in on_a))
    for peer in on_b:
        await peer.ws.close()
