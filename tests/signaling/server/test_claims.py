"""A registration decided by the backend's verdict (:mod:`...server.claims`).

Pure: the router in memory (:class:`~tests.fixtures.router.RouterHarness`),
with a replicating backend's ``claim_register`` switched on and the verdicts
given by the test, as the Redis backend would give them (that backend is
tested against real processes in ``tests/signaling/redis/test_claims.py``).
"""

from __future__ import annotations

from sleap_rtc_core.signaling.server.claims import Verdict
from sleap_rtc_core.signaling.server.limits import Limits
from tests.fixtures.router import FakeConn, RouterHarness


def claiming(limits: Limits | None = None) -> RouterHarness:
    harness = RouterHarness(limits)
    harness.router.claim_register = lambda: True
    return harness


def register(harness: RouterHarness, peer_id: str, **extra: object) -> FakeConn:
    conn = harness.connect()
    harness.send(
        conn,
        {"type": "register", "peer_id": peer_id, "role": "worker"}
        | {"room_id": "room", "token": "t"}
        | extra,
    )
    return conn


def test_a_registration_waits_for_its_claim_and_frames_wait_behind_it() -> None:
    harness = claiming(Limits(max_peers_per_credential=7))
    conn = register(harness, "w", is_admin=True)
    assert conn.frames == []
    (claim,) = harness.claims
    assert (claim.room_id, claim.peer_id, claim.credential_id) == ("room", "w", None)
    assert (claim.limit, claim.admin) == (7, True)
    harness.send(conn, {"type": "discover_peers"})
    assert conn.frames == []  # waits behind the registration
    harness.claimed(Verdict(admitted=True, held=0, admin="w"))
    types = [m["type"] for m in conn.pop()]
    assert types == ["registered_auth", "peer_list"]
    assert harness.router.registry.rooms["room"].admin_peer_id == "w"
    assert not harness.router.claim_lapsed(claim)


def test_a_refused_claim_is_room_full_and_registers_nothing() -> None:
    harness = claiming()
    conn = register(harness, "w")
    claim = harness.claims[0]
    harness.claimed(Verdict(admitted=False, held=3))
    reply = conn.last()
    assert (reply["type"], reply["code"]) == ("error", "ROOM_FULL")
    assert "already holds 3 peers" in reply["message"]
    assert harness.router.registry.get("room", "w") is None
    assert harness.router.counters["limit_credential_full"] == 1
    assert harness.router.claim_lapsed(claim)


def test_an_admin_slot_held_elsewhere_is_a_typed_conflict_naming_the_holder() -> None:
    """The holder may be unknown here yet (another process's registration on
    its way): the verdict names it all the same."""
    harness = claiming()
    conn = register(harness, "second", is_admin=True)
    harness.claimed(Verdict(admitted=True, held=0, admin="first"))
    conflict, registered = conn.pop()
    assert conflict == {
        "type": "admin_conflict",
        "room_id": "room",
        "current_admin": "first",
    }
    assert registered["type"] == "registered_auth"
    assert registered["admin_peer_id"] == "first"
    assert harness.router.registry.rooms["room"].admin_peer_id is None


def test_without_a_verdict_the_local_rules_decide() -> None:
    """Redis could not answer: this process's replica decides, as alone."""
    harness = claiming(Limits(max_peers_per_credential=1))
    first = register(harness, "a", is_admin=True)
    harness.claimed(None)
    assert first.last()["admin_peer_id"] == "a"
    second = register(harness, "b")
    harness.claimed(None)
    assert second.last()["code"] == "ROOM_FULL"


def test_a_socket_closed_while_its_claim_is_out_lapses_the_claim() -> None:
    harness = claiming()
    conn = register(harness, "w")
    claim = harness.claims[0]
    harness.close(conn)
    harness.claimed(Verdict(admitted=True, held=0))
    assert conn.frames == []
    assert harness.router.registry.get("room", "w") is None
    assert harness.router.claim_lapsed(claim)


def test_without_a_backend_no_claim_is_made() -> None:
    harness = RouterHarness()
    harness.register("w")
    assert harness.claims == []


def test_a_peer_that_lost_the_slot_elsewhere_stops_holding_it_here() -> None:
    """It held the slot here; re-registering, Redis names another holder (it
    took the slot while this one was away): this process forgets its own."""
    harness = claiming()
    conn = register(harness, "w", is_admin=True)
    harness.claimed(Verdict(admitted=True, held=0, admin="w"))
    assert harness.router.registry.rooms["room"].admin_peer_id == "w"
    harness.send(
        conn,
        {"type": "register", "peer_id": "w", "role": "worker"}
        | {"room_id": "room", "token": "t", "is_admin": True},
    )
    harness.claimed(Verdict(admitted=True, held=0, admin="other"))
    assert harness.router.registry.rooms["room"].admin_peer_id is None
    types = [m["type"] for m in conn.pop()]
    assert types[-2:] == ["admin_conflict", "registered_auth"]
