"""Room announcements: subscriptions, contacts, coalescing per tick, slow peers."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from sleap_rtc_core.signaling.auth.jwt_keys import JwtKeys
from sleap_rtc_core.signaling.server.announce import MERGE, Event
from sleap_rtc_core.signaling.server.limits import Limits, limits_from, parse_limit
from sleap_rtc_core.signaling.server.registry import PeerRecord
from sleap_rtc_core.signaling.server.router_io import ServerConfig
from sleap_rtc_core.signaling.service import Service, build_service
from sleap_rtc_core.signaling.store.auth_store import Store
from tests.fixtures.router import FakeConn, RouterHarness
from tests.fixtures.signaling import RoomCreds, WsPeer
from tests.fixtures.timing import async_wait_until

NONE: dict[str, list[str]] = {"roles": []}
WORKERS = {"roles": ["worker"]}


def types(conn: FakeConn) -> list[tuple[str, str]]:
    return [(m["type"], m.get("peer_id", "")) for m in conn.pop()]


def test_merge_table_is_total() -> None:
    for old in (None, *Event):
        for new in (Event.JOINED, Event.UPDATED, Event.LEFT):
            assert (old, new) in MERGE


def test_register_validates_subscribe(router_harness: RouterHarness) -> None:
    h = router_harness
    conn = h.connect()
    for bad in ({"roles": "worker"}, {"roles": [""]}, {"who": []}, {"roles": [1]}):
        h.send(
            conn,
            {"type": "register", "peer_id": "x", "token": "t", "subscribe": bad},
        )
        assert conn.last()["code"] == "INVALID_MESSAGE"
    assert h.router.registry.get("room", "x") is None


def test_subscribed_roles_only(router_harness: RouterHarness) -> None:
    h = router_harness
    gui = h.register("gui", role="client", subscribe=WORKERS)
    quiet = h.register("w0", subscribe=NONE)
    gui.pop()
    quiet.pop()
    h.register("w1", subscribe=NONE)
    h.register("c1", role="client", subscribe=NONE)
    assert types(gui) == [("peer_joined", "w1")]
    assert quiet.pop() == []
    # registered_auth lists only the subscribed roles.
    late = h.register("gui2", role="client", subscribe=WORKERS)
    assert sorted(late.last()["peer_list"]) == ["w0", "w1"]
    assert h.register("w2", subscribe=NONE).last()["peer_list"] == []


def test_legacy_peer_hears_everything(router_harness: RouterHarness) -> None:
    """A peer that sends no ``subscribe`` (sleap-rtc 0.0.7, older tools) keeps
    today's contract: every join, update and leave, and the full peer list."""
    h = router_harness
    legacy = h.register("old", role="client")
    w = h.register("w", subscribe=NONE)
    c = h.register("c", role="client", subscribe=NONE)
    h.send(w, {"type": "update_metadata", "metadata": {"tags": ["x"]}})
    h.close(c)
    assert types(legacy) == [
        ("registered_auth", "old"),
        ("peer_joined", "w"),
        ("peer_joined", "c"),
        ("peer_updated", "w"),
        ("peer_left", "c"),
    ]
    assert sorted(h.register("old2", role="client").last()["peer_list"]) == [
        "old",
        "w",
    ]


def test_contacts_hear_each_other_leave(router_harness: RouterHarness) -> None:
    """A worker subscribes to nothing, yet hears its client go (and a client
    that subscribed to nothing hears its worker go)."""
    h = router_harness
    w = h.register("w", subscribe=NONE)
    c = h.register("c", role="client", subscribe=NONE)
    other = h.register("c2", role="client", subscribe=NONE)
    other.pop()
    h.send(
        c,
        {"type": "peer_message", "from_peer_id": "c", "to_peer_id": "w", "payload": 1},
    )
    w.pop()
    h.close(c)
    assert types(w) == [("peer_left", "c")]
    assert other.pop() == []
    c = h.register("c", role="client", subscribe=NONE)
    h.send(
        c,
        {"type": "peer_message", "from_peer_id": "c", "to_peer_id": "w", "payload": 1},
    )
    c.pop()
    h.close(w)
    assert types(c) == [("peer_left", "w")]


def test_coalescing_within_a_tick() -> None:
    h = RouterHarness(auto_tick=False)
    gui = h.register("gui", role="client", subscribe=WORKERS)
    w = h.register("w", subscribe=NONE)
    h.send(w, {"type": "update_metadata", "metadata": {"tags": ["a"]}})
    h.send(w, {"type": "update_metadata", "metadata": {"tags": ["b"]}})
    gone = h.register("gone", subscribe=NONE)
    h.close(gone)
    gui.pop()
    assert h.tick() == 1
    assert gui.pop() == [
        {
            "type": "peer_joined",
            "peer_id": "w",
            "role": "worker",
            "metadata": {"tags": ["b"]},
        }
    ]
    h.send(w, {"type": "update_metadata", "metadata": {"tags": ["c"]}})
    h.send(w, {"type": "update_metadata", "metadata": {"tags": ["d"]}})
    h.tick()
    assert gui.pop() == [
        {"type": "peer_updated", "peer_id": "w", "metadata": {"tags": ["d"]}}
    ]
    h.close(w)
    w = h.register("w", subscribe=NONE)
    h.tick()
    assert types(gui) == [("peer_left", "w"), ("peer_joined", "w")]
    assert h.router.counters["announce_coalesced"] >= 3


def test_backed_up_peer_waits_then_gets_the_latest() -> None:
    h = RouterHarness(Limits(announce_backlog_bytes=100), auto_tick=False)
    gui = h.register("gui", role="client", subscribe=WORKERS)
    gui.backlog = 1000
    for i in range(5):
        h.register(f"w{i}", subscribe=NONE)
    gui.pop()
    assert h.tick() == 0
    assert gui.pop() == []
    assert h.router.counters["announce_deferred"] == 1
    gui.backlog = 0
    assert h.tick() == 5
    assert sorted(types(gui)) == [("peer_joined", f"w{i}") for i in range(5)]


def test_peer_too_far_behind_is_closed() -> None:
    h = RouterHarness(
        Limits(announce_backlog_bytes=100, max_pending_announcements=3),
        auto_tick=False,
    )
    gui = h.register("gui", role="client", subscribe=WORKERS)
    gui.backlog = 1000
    for i in range(4):
        h.register(f"w{i}", subscribe=NONE)
    h.tick()
    assert gui.closes == [(1008, "too slow to read room announcements")]
    assert h.router.counters["announce_closed_slow"] == 1


@pytest.mark.parametrize("n", [200, 1000])
def test_room_fill_costs_linear_frames(n: int) -> None:
    """Our peers (workers subscribing to nothing, a few clients watching
    workers) fill a room with O(n) frames, not O(n^2)."""
    h = RouterHarness(Limits(max_peers_per_credential=5000), auto_tick=False)
    watchers = [
        h.register(f"gui{i}", role="client", subscribe=WORKERS) for i in range(3)
    ]
    workers = []
    for i in range(n):
        workers.append(h.register(f"w{i}", subscribe=NONE))
        if i % 50 == 0:
            h.tick()
    h.tick()
    frames = sum(len(c.frames) for c in workers + watchers)
    # one registered_auth each, plus one join per worker per watcher
    assert frames == n + 3 + 3 * n
    assert h.router.counters["announce_sent"] == 3 * n


# --- against a real server


@pytest.fixture
def server_config() -> ServerConfig:
    """Room-token peers up to 5,000 per room; slow pings (no stray frames)."""
    limits = Limits(max_peers_per_credential=5000, max_connections_per_address=5000)
    return ServerConfig(host="127.0.0.1", port=0, ping_interval=60.0, limits=limits)


async def _join(
    url: str, room: RoomCreds, peer_id: str, role: str, **extra: Any
) -> WsPeer:
    peer = await WsPeer.connect(url, compression=None)
    reply = await peer.register(
        peer_id, role, room_id=room.room_id, token=room.token, **extra
    )
    assert reply["type"] == "registered_auth", reply
    return peer


async def test_room_of_idle_peers_costs_linear_frames(
    service: Service, room: RoomCreds
) -> None:
    """2,000 workers (subscribed to nothing) join a room watched by one
    subscribed client and one legacy peer: the server sends one announcement
    per worker to each watcher and none to the workers."""
    n = 2000
    url = service.server.url
    router = service.server.router
    gui = await _join(url, room, "gui", "client", subscribe=WORKERS)
    legacy = await _join(url, room, "old", "client")  # 0.0.7: no subscribe
    peers: list[WsPeer] = []
    try:
        for start in range(0, n, 100):
            peers += await asyncio.gather(
                *(
                    _join(url, room, f"w{i}", "worker", subscribe=NONE)
                    for i in range(start, start + 100)
                )
            )
        for watcher in (gui, legacy):
            seen: list[str] = []
            while len(seen) < n:
                msg = await watcher.recv()
                assert msg["type"] == "peer_joined"
                seen.append(msg["peer_id"])
            # Each join exactly once: no duplicate, none missing.
            assert sorted(seen) == sorted(f"w{i}" for i in range(n))
        assert router.counters["announce_sent"] == 2 * n
        # A subscribed client sees a worker update and leave.
        await peers[0].send({"type": "update_metadata", "metadata": {"tags": ["x"]}})
        assert (await peers[0].expect("metadata_updated"))["peer_id"] == "w0"
        await peers[0].close()
        for watcher in (gui, legacy):
            # The update and the leave may fall in one tick: then only the leave.
            got = [await watcher.recv()]
            if got[0]["type"] == "peer_updated":
                assert got[0]["metadata"] == {"tags": ["x"]}
                got.append(await watcher.recv())
            assert got[-1] == {"type": "peer_left", "peer_id": "w0"}
        assert router.counters["announce_sent"] <= 2 * n + 4
    finally:
        await asyncio.gather(*(p.close() for p in [gui, legacy, *peers]))


async def test_connections_per_address_are_capped(
    server_config: ServerConfig, store: Store, jwt_keys: JwtKeys
) -> None:
    name, value = parse_limit("max_connections_per_address=2")  # as --limit
    config = replace(server_config, limits=limits_from({name: value}))
    svc = build_service(config, store, jwt_keys)
    await svc.server.start()
    try:
        url = svc.server.url
        a = await WsPeer.connect(url)
        b = await WsPeer.connect(url)
        with pytest.raises(InvalidStatus) as refused:
            await WsPeer.connect(url)
        assert refused.value.response.status_code == 503
        assert svc.server.router.counters["limit_connections_per_address"] == 1
        await a.close()
        await async_wait_until(lambda: svc.server.per_address["127.0.0.1"] == 1)
        c = await WsPeer.connect(url)
        await asyncio.gather(b.close(), c.close())
    finally:
        await svc.server.stop()


def test_subscribe_message_changes_what_a_peer_hears(
    router_harness: RouterHarness,
) -> None:
    """After register, ``subscribe`` replaces the roles a peer hears and answers
    with a snapshot of the peers of its new roles."""
    h = router_harness
    w = h.register("w", subscribe=NONE)
    h.register("c", role="client", subscribe=NONE)
    h.register("w2", subscribe=NONE)
    w.pop()
    h.send(w, {"type": "subscribe", "roles": ["client"], "request_id": "r1"})
    assert w.pop() == [
        {
            "type": "subscribed",
            "roles": ["client"],
            "peer_list": ["c"],
            "peer_metadata": {"c": {}},
            "request_id": "r1",
        }
    ]
    h.register("w3", subscribe=NONE)
    h.register("c2", role="client", subscribe=NONE)
    assert types(w) == [("peer_joined", "c2")]
    h.send(w, {"type": "subscribe", "roles": ["*"]})
    assert sorted(w.last()["peer_list"]) == ["c", "c2", "w2", "w3"]
    h.send(w, {"type": "subscribe", "roles": []})
    assert w.pop()[-1]["peer_list"] == []
    h.register("w4", subscribe=NONE)
    assert w.pop() == []
    assert h.router.counters["subscriptions_changed"] == 3


def test_subscribe_keeps_a_pending_leave() -> None:
    """A contact's ``peer_left`` waiting for the tick survives a ``subscribe``
    (the snapshot cannot tell that peer is gone); a pending join does not (the
    snapshot lists it)."""
    h = RouterHarness(auto_tick=False)
    w = h.register("w", subscribe=NONE)
    c = h.register("c", role="client", subscribe=NONE)
    h.send(
        c,
        {"type": "peer_message", "from_peer_id": "c", "to_peer_id": "w", "payload": 1},
    )
    h.tick()
    w.pop()
    h.close(c)
    h.register("c2", role="client", subscribe=NONE)
    h.send(w, {"type": "subscribe", "roles": ["client"]})
    assert w.last()["peer_list"] == ["c2"]
    w.pop()
    h.tick()
    assert types(w) == [("peer_left", "c")]


@pytest.mark.parametrize(
    "bad",
    [
        {"roles": "worker"},
        {"roles": [1]},
        {"roles": [""]},
        {"roles": ["x"] * 33},
        {},
        {"roles": [], "who": 1},
        {"roles": [], "request_id": 5},
        {"roles": None},
    ],
)
def test_subscribe_message_is_validated(
    router_harness: RouterHarness, bad: dict[str, Any]
) -> None:
    h = router_harness
    w = h.register("w", subscribe=NONE)
    h.send(w, {"type": "subscribe", **bad})
    assert w.last()["code"] == "INVALID_MESSAGE"
    assert h.router.announcer.wants(w.session, "worker") is False  # type: ignore[arg-type]
    stranger = h.connect()
    h.send(stranger, {"type": "subscribe", "roles": ["worker"]})
    assert stranger.last()["code"] == "NOT_IN_ROOM"


def test_announce_default_none_for_peers_that_send_no_subscribe() -> None:
    h = RouterHarness(announce_default="none")
    h.register("w1")
    legacy = h.register("old", role="client")
    assert legacy.last()["peer_list"] == []
    h.register("w2")
    assert types(legacy) == [("registered_auth", "old")]
    watcher = h.register("gui", role="client", subscribe=WORKERS)
    assert sorted(watcher.last()["peer_list"]) == ["w1", "w2"]
    with pytest.raises(ValueError, match="announce_default"):
        RouterHarness(announce_default="some")


def test_a_frame_forwarded_from_another_node_makes_a_contact(
    router_harness: RouterHarness,
) -> None:
    """A local worker that received a frame from a client on another node hears
    that client leave, even though its record here was replaced meanwhile; the
    index forgets a local peer once it leaves."""
    h = router_harness
    router = h.router
    w = h.register("w", subscribe=NONE)
    w.pop()

    def remote(connected_at: float) -> PeerRecord:
        return PeerRecord(
            peer_id="c",
            room_id="room",
            role="client",
            metadata={},
            connected_at=connected_at,
            principal="t",
            node="other",
        )

    router.registry.add(remote(1.0))
    frame = b'{"type":"peer_message","from_peer_id":"c","to_peer_id":"w","payload":1}'
    assert router.deliver_local("room", "w", frame)
    router.registry.add(remote(2.0))  # a re-publish replaces the replica
    gone = router.registry.get("room", "c")
    assert gone is not None
    router.registry.remove("room", "c")
    router.announce(gone, Event.LEFT)
    h.tick()
    assert types(w) == [("peer_message", ""), ("peer_left", "c")]
    assert ("room", "c") not in router.contact_index
    h.close(w)
    assert not router.contact_index
