"""The sans-I/O router: every message, every error code, identity and limits."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sleap_rtc_core.signaling.server.limits import Limits
from sleap_rtc_core.signaling.server.session import CLOSE_REPLACED, PING_FRAME
from tests.fixtures.router import RouterHarness

WORKER_MD = {
    "tags": ["sleap-rtc", "training-worker"],
    "properties": {"status": "available", "gpu_memory_mb": 8000},
}


def codes(conn: Any) -> list[str]:
    return [m.get("code") for m in conn.pop() if m["type"] == "error"]


def test_register_replies_with_reference_shape(router_harness: RouterHarness) -> None:
    h = router_harness
    w = h.register("w", metadata=WORKER_MD)
    reply = w.pop()[-1]
    assert reply == {
        "type": "registered_auth",
        "room_id": "room",
        "token": "t",
        "peer_id": "w",
        "admin_peer_id": None,
        "peer_list": [],
        "peer_metadata": {},
        "ice_servers": [],
        "mesh_ice_servers": [],
    }
    c = h.register("c", role="client")
    reply = c.last()
    assert reply["peer_list"] == ["w"]
    assert reply["peer_metadata"] == {"w": WORKER_MD}
    assert w.pop() == [
        {"type": "peer_joined", "peer_id": "c", "role": "client", "metadata": {}}
    ]


def test_register_failure_keeps_socket_unregistered(
    router_harness: RouterHarness,
) -> None:
    h = router_harness
    conn = h.connect()
    h.send(
        conn, {"type": "register", "peer_id": "x", "room_id": "room", "token": "bad"}
    )
    err = conn.last()
    assert err["type"] == "error"
    assert err["code"] == "AUTH_FAILED"
    assert err["reason"] == err["message"] == "Invalid token"
    h.send(conn, {"type": "discover_peers", "filters": {}})
    assert conn.last()["code"] == "NOT_IN_ROOM"
    assert len(h.router.registry) == 0


def test_generated_peer_id_is_bound_and_cleaned_up(
    router_harness: RouterHarness,
) -> None:
    h = router_harness
    conn = h.connect()
    h.send(
        conn, {"type": "register", "role": "worker", "room_id": "room", "token": "t"}
    )
    peer_id = conn.last()["peer_id"]
    assert peer_id.startswith("worker-tester-")
    h.close(conn)
    assert h.router.registry.get("room", peer_id) is None


def test_admin_conflict_comes_before_registered_auth(
    router_harness: RouterHarness,
) -> None:
    h = router_harness
    a = h.register("a", is_admin=True)
    assert a.last()["admin_peer_id"] == "a"
    b = h.connect()
    h.send(
        b,
        {
            "type": "register",
            "peer_id": "b",
            "room_id": "room",
            "token": "t",
            "is_admin": True,
        },
    )
    first, second = b.pop()
    assert first == {"type": "admin_conflict", "room_id": "room", "current_admin": "a"}
    assert second["type"] == "registered_auth"
    assert second["admin_peer_id"] == "a"
    h.close(a)
    c = h.register("c", is_admin=True)
    assert c.last()["admin_peer_id"] == "c"


def test_discover_filters_and_excludes_self(router_harness: RouterHarness) -> None:
    h = router_harness
    h.register("w1", metadata=WORKER_MD)
    h.register(
        "w2",
        metadata={
            "tags": ["sleap-rtc"],
            "properties": {"status": "busy", "gpu_memory_mb": 4000},
        },
    )
    h.register("other-room", room="elsewhere", metadata=WORKER_MD)
    c = h.register("c", role="client")
    c.pop()
    h.send(
        c,
        {
            "type": "discover_peers",
            "from_peer_id": "c",
            "filters": {
                "role": "worker",
                "tags": ["sleap-rtc"],
                "room_id": "ignored",
                "properties": {"status": "available", "gpu_memory_mb": {"$gte": 6000}},
            },
        },
    )
    reply = c.last()
    assert reply["type"] == "peer_list"
    assert reply["to_peer_id"] == "c"
    assert reply["count"] == 1
    assert [p["peer_id"] for p in reply["peers"]] == ["w1"]
    assert set(reply["peers"][0]) == {"peer_id", "role", "metadata", "connected_at"}
    h.send(c, {"type": "discover_peers", "filters": {}})
    assert {p["peer_id"] for p in c.last()["peers"]} == {"w1", "w2"}


@pytest.mark.parametrize(
    "filters",
    [
        {"properties": {"gpu_memory_mb": {"$regex": ".*"}}},
        {"tags": "sleap-rtc"},
        {"role": 3},
        {"properties": []},
    ],
)
def test_bad_filters_are_invalid_message(
    router_harness: RouterHarness, filters: dict[str, Any]
) -> None:
    h = router_harness
    c = h.register("c", role="client")
    c.pop()
    h.send(c, {"type": "discover_peers", "filters": filters})
    assert codes(c) == ["INVALID_MESSAGE"]


def test_update_metadata_deep_merges_and_tells_the_room(
    router_harness: RouterHarness,
) -> None:
    h = router_harness
    w = h.register("w", metadata=WORKER_MD)
    c = h.register("c", role="client")
    w.pop()
    c.pop()
    h.send(
        w,
        {
            "type": "update_metadata",
            "peer_id": "w",
            "metadata": {"properties": {"status": "busy", "current_job_id": "j1"}},
        },
    )
    stored = w.last()
    assert stored["type"] == "metadata_updated"
    assert stored["metadata"]["tags"] == WORKER_MD["tags"]
    assert stored["metadata"]["properties"] == {
        "status": "busy",
        "gpu_memory_mb": 8000,
        "current_job_id": "j1",
    }
    assert c.pop() == [
        {"type": "peer_updated", "peer_id": "w", "metadata": stored["metadata"]}
    ]
    h.send(
        c,
        {
            "type": "discover_peers",
            "filters": {"tags": ["sleap-rtc"], "properties": {"status": "busy"}},
        },
    )
    assert c.last()["count"] == 1
    h.send(w, {"type": "update_metadata", "metadata": {"properties": {"_x": 1}}})
    assert codes(w) == ["INVALID_MESSAGE"]


def test_server_metadata_is_hidden_from_peers(router_harness: RouterHarness) -> None:
    h = router_harness
    h.register("w", metadata=WORKER_MD)
    rec = h.router.registry.get("room", "w")
    assert rec is not None
    h.router.registry.set_metadata(rec, {**rec.metadata, "_token_id": "secret"})
    c = h.register("c", role="client")
    assert "secret" not in c.frames[-1].decode()
    h.send(c, {"type": "discover_peers", "filters": {}})
    assert "secret" not in c.frames[-1].decode()


@pytest.mark.parametrize(
    "kind", ["registered_auth", "peer_list", "ping", "mesh_offer", "fs_list_req"]
)
def test_server_only_types_are_unknown_from_peers(
    router_harness: RouterHarness, kind: str
) -> None:
    h = router_harness
    c = h.register("c", role="client")
    c.pop()
    from tests.protocol.test_codec import SAMPLES

    sample = next(s for s in SAMPLES.values() if s.TYPE.value == kind)
    h.send(c, sample.to_dict())
    assert codes(c) == ["UNKNOWN_MESSAGE_TYPE"]


def test_reconnect_replaces_stale_socket_and_stale_close_is_harmless(
    router_harness: RouterHarness,
) -> None:
    h = router_harness
    old = h.register("w", metadata=WORKER_MD)
    c = h.register("c", role="client")
    new = h.register("w", metadata=WORKER_MD)
    assert old.closes == [(CLOSE_REPLACED, "replaced by a new connection")]
    h.close(old)  # the stale socket closes after the reconnect
    assert h.router.registry.get("room", "w") is not None
    assert all(m["type"] != "peer_left" for m in c.messages())
    c.pop()
    h.send(
        c,
        {"type": "peer_message", "from_peer_id": "c", "to_peer_id": "w", "payload": 1},
    )
    assert new.last()["type"] == "peer_message"
    assert h.router.counters["reconnects"] == 1


def test_same_id_with_other_credentials_is_refused(
    router_harness: RouterHarness,
) -> None:
    h = router_harness
    victim = h.register("w", token="alice")
    thief = h.connect()
    h.send(
        thief,
        {"type": "register", "peer_id": "w", "room_id": "room", "token": "mallory"},
    )
    assert thief.last()["code"] == "IDENTITY_MISMATCH"
    assert victim.closes == []
    rec = h.router.registry.get("room", "w")
    assert rec is not None
    assert rec.conn is victim.session


def test_same_peer_id_in_two_rooms_is_independent(
    router_harness: RouterHarness,
) -> None:
    h = router_harness
    a = h.register("w", room="A", token="a")
    b = h.register("w", room="B", token="b")
    h.close(b)
    assert h.router.registry.get("A", "w") is not None
    assert a.closes == []


def test_reregister_on_same_socket_moves_the_peer(
    router_harness: RouterHarness,
) -> None:
    h = router_harness
    c = h.register("c", role="client")
    w = h.register("w")
    c.pop()
    h.send(w, {"type": "register", "peer_id": "w2", "room_id": "room", "token": "t"})
    kinds = [(m["type"], m.get("peer_id")) for m in c.pop()]
    assert kinds == [("peer_left", "w"), ("peer_joined", "w2")]


def test_disconnect_tells_the_room(router_harness: RouterHarness) -> None:
    h = router_harness
    w = h.register("w")
    c = h.register("c", role="client")
    c.pop()
    h.close(w)
    assert c.pop() == [{"type": "peer_left", "peer_id": "w"}]
    assert h.router.registry.get("room", "w") is None


def test_frames_during_register_wait_in_order() -> None:
    h = RouterHarness()
    w = h.register("w")
    conn = h.connect()
    assert conn.session is not None
    request = h.router.receive(
        conn.session,
        json.dumps(
            {"type": "register", "peer_id": "c", "room_id": "room", "token": "t"}
        ),
    )
    assert request is not None
    h.router.receive(
        conn.session,
        json.dumps(
            {
                "type": "peer_message",
                "from_peer_id": "c",
                "to_peer_id": "w",
                "payload": 1,
            }
        ),
    )
    assert conn.frames == []
    from tests.fixtures.router import StubIdentity

    h.router.complete_register(request, StubIdentity("room", "t"))
    assert [m["type"] for m in conn.messages()] == ["registered_auth"]
    assert w.last()["type"] == "peer_message"


def test_oversized_frame_is_a_typed_error() -> None:
    h = RouterHarness(Limits(max_frame_bytes=1000))
    c = h.register("c")
    c.pop()
    h.send(
        c,
        {
            "type": "peer_message",
            "from_peer_id": "c",
            "to_peer_id": "c",
            "payload": "x" * 2000,
        },
    )
    assert codes(c) == ["MESSAGE_TOO_LARGE"]
    assert c.closes == []


def test_oversized_metadata_is_a_typed_error() -> None:
    h = RouterHarness(Limits(max_metadata_bytes=100))
    c = h.register("c")
    c.pop()
    h.send(c, {"type": "update_metadata", "metadata": {"properties": {"x": "y" * 200}}})
    assert codes(c) == ["MESSAGE_TOO_LARGE"]


def test_rate_limit_answers_then_closes_on_abuse() -> None:
    h = RouterHarness(Limits(messages_per_second=0.001, burst=5, abuse_strikes=20))
    c = h.register("c")  # spends one token
    c.pop()
    for _ in range(4):
        h.send(c, {"type": "pong"})
    h.send(c, {"type": "pong"})
    assert codes(c) == ["RATE_LIMITED"]
    for _ in range(30):
        h.send(c, {"type": "pong"})
    assert c.closes
    assert c.closes[0][0] == 1008
    assert h.router.counters["limit_rate"] > 0


def test_frames_over_the_rate_are_held_in_order_not_dropped() -> None:
    """A burst past the budget is slowed down (held, then replayed as tokens
    come back), never lost; the episode ends when nothing is held."""
    h = RouterHarness(Limits(messages_per_second=0.001, burst=3, abuse_strikes=50))
    a = h.register("a")
    b = h.register("b")
    a.pop()
    b.pop()

    def delivered() -> list[int]:
        return [m["payload"]["n"] for m in b.messages() if m["type"] == "peer_message"]

    for n in range(6):
        message = {"from_peer_id": "a", "to_peer_id": "b", "payload": {"n": n}}
        h.send(a, {"type": "peer_message", **message})
    assert codes(a) == ["RATE_LIMITED"]  # once for the episode
    assert delivered() == [0, 1]  # two tokens were left after register
    session = a.session
    assert session is not None
    assert len(session.held) == 4
    assert session.throttled
    session.bucket.tokens = 2  # part of the budget came back
    assert h.router.replay(session) == []
    assert delivered() == [0, 1, 2, 3]
    assert session.throttled  # still some held: the adapter pauses again
    session.bucket.tokens = session.bucket.capacity
    h.router.replay(session)
    assert delivered() == [0, 1, 2, 3, 4, 5]
    assert not session.throttled
    assert not session.held
    assert session.held_bytes == 0


def test_room_full_is_a_typed_error() -> None:
    h = RouterHarness(Limits(max_peers_per_room=2))
    h.register("a")
    h.register("b")
    c = h.connect()
    h.send(c, {"type": "register", "peer_id": "c", "room_id": "room", "token": "t"})
    assert c.last()["code"] == "ROOM_FULL"


def test_one_credential_cannot_fill_the_room() -> None:
    """A room-token holder stops at its share; the room's other credentials
    (the owner's login, a worker key) still get in."""
    h = RouterHarness(Limits(max_peers_per_credential=2))
    h.register("a")
    h.register("b")
    c = h.connect()
    h.send(c, {"type": "register", "peer_id": "c", "room_id": "room", "token": "t"})
    assert c.last()["code"] == "ROOM_FULL"
    assert "this credential" in c.last()["message"]
    again = h.connect()  # a peer of the share may still come back
    h.send(again, {"type": "register", "peer_id": "a", "room_id": "room", "token": "t"})
    assert again.last()["type"] == "registered_auth"


def test_metadata_updates_have_a_budget_of_their_own() -> None:
    """Each update is announced to the room: a flood is refused, typed, and
    neither stored nor announced."""
    h = RouterHarness(Limits(metadata_burst=3, metadata_updates_per_second=0.001))
    w = h.register("w")
    c = h.register("c", role="client")
    w.pop()
    c.pop()
    for i in range(4):
        h.send(w, {"type": "update_metadata", "metadata": {"properties": {"n": i}}})
    replies = w.pop()
    assert [r["type"] for r in replies] == ["metadata_updated"] * 3 + ["error"]
    assert replies[-1]["code"] == "RATE_LIMITED"
    assert [u["metadata"]["properties"]["n"] for u in c.pop()] == [0, 1, 2]
    assert h.router.registry.get("room", "w").metadata["properties"]["n"] == 2


def test_ping_and_silent_drop(router_harness: RouterHarness) -> None:
    h = router_harness
    w = h.register("w")
    w.pop()
    h.router.ping_all()
    assert w.frames == [PING_FRAME]
    assert h.router.drop_silent(3600) == 0
    assert h.router.drop_silent(-1) == 1
    assert w.closes[0][0] == 1008


def test_revoked_credential_disconnects() -> None:
    h = RouterHarness()
    w = h.register("w")
    rec = h.router.registry.get("room", "w")
    assert rec is not None
    rec.revocation_ids = frozenset({"key-1", "room:room"})
    other = h.register("other")
    assert h.router.disconnect_credential("room:room", "room deleted") == 1
    assert w.closes[0][1] == "room deleted"
    assert other.closes == []


def _state(h: RouterHarness) -> Any:
    reg = h.router.registry
    return sorted(
        (r.room_id, r.peer_id, r.role, json.dumps(r.metadata, sort_keys=True))
        for r in reg.all_peers()
    )


junk = st.one_of(
    st.text(max_size=50),
    st.binary(max_size=50).map(lambda b: b.decode("latin-1")),
    st.builds(
        lambda t, k, v: json.dumps({"type": t, k: v}),
        st.sampled_from(
            [
                "register",
                "discover_peers",
                "update_metadata",
                "peer_message",
                "offer",
                "answer",
                "candidate",
                "mesh_connect",
                "error",
                "x",
            ]
        ),
        st.sampled_from(["peer_id", "metadata", "filters", "payload", "target", "sdp"]),
        st.one_of(
            st.none(),
            st.integers(),
            st.text(max_size=5),
            st.lists(st.integers()),
            st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
        ),
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(junk, min_size=1, max_size=20))
def test_hostile_frames_change_nothing(frames: list[str]) -> None:
    h = RouterHarness()
    w = h.register("w", metadata=WORKER_MD)
    attacker = h.register("c", role="client")
    before = _state(h)
    attacker.pop()
    w.pop()
    for frame in frames:
        try:
            obj = json.loads(frame)
        except ValueError:
            obj = None
        if isinstance(obj, dict) and obj.get("type") in {"register", "update_metadata"}:
            continue  # these may legitimately change state
        h.send(attacker, frame)
    assert _state(h) == before
    assert attacker.closes == []
    # A well-formed discover_peers (e.g. empty filters) is legitimately answered.
    assert {m["type"] for m in attacker.messages()} <= {"error", "peer_list"}


def test_replies_echo_request_id(router_harness: RouterHarness) -> None:
    h = router_harness
    w = h.register("w", metadata=WORKER_MD)
    w.pop()
    h.send(w, {"type": "discover_peers", "request_id": "r1"})
    h.send(
        w,
        {"type": "update_metadata", "metadata": {"tags": ["x"]}, "request_id": "r2"},
    )
    h.send(w, {"type": "peer_message", "to_peer_id": "nobody", "request_id": "r3"})
    replies = w.pop()
    assert [(m["type"], m.get("request_id")) for m in replies] == [
        ("peer_list", "r1"),
        ("metadata_updated", "r2"),
        ("error", None),
    ]
