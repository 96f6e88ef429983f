"""Frames for peers another process may hold, and registrations committed first.

On the in-memory router harness (no sockets, no Redis): the router's side of the
Redis backend's delivery guarantee. A frame for an unknown peer parks while the
backend looks it up, later frames for that peer park behind it (order kept),
and the answer delivers them or answers each sender with its typed error; a
registration that needs a commit answers ``registered_auth`` only once released,
and frames for it meanwhile follow the reply.
"""

from __future__ import annotations

import json
from typing import Any

from sleap_rtc_core.signaling.server.registry import PeerRecord
from sleap_rtc_core.signaling.server.unresolved import Unresolved, Waiting
from tests.fixtures.router import RouterHarness


def remote(peer_id: str, node: str = "n2") -> PeerRecord:
    return PeerRecord(
        peer_id=peer_id,
        room_id="room",
        role="worker",
        metadata={},
        connected_at=1.0,
        principal="t",
        node=node,
    )


def message(to: str, n: int) -> dict[str, Any]:
    return {
        "type": "peer_message",
        "from_peer_id": "c",
        "to_peer_id": to,
        "payload": {"n": n},
    }


class Backend:
    """What the router sees of a replicating backend: lookups and forwards."""

    def __init__(self, h: RouterHarness, up: bool = True) -> None:
        self.up = up
        self.lookups: list[tuple[str, str]] = []
        self.forwarded: list[tuple[str, str, Any]] = []
        h.router.node = "n1"
        h.router.lookup_remote = self.lookup
        h.router.forward_remote = self.forward

    def lookup(self, room_id: str, peer_id: str) -> bool:
        if self.up:
            self.lookups.append((room_id, peer_id))
        return self.up

    def forward(self, target: PeerRecord, data: bytes) -> bool:
        self.forwarded.append((target.node, target.peer_id, json.loads(data)))
        return True


def test_unresolved_keeps_order_and_bounds() -> None:
    parked = Unresolved(max_per_target=2, max_total=3)
    entry = Waiting("s", b"1", lambda: None)
    assert parked.park(("r", "a"), entry)
    assert parked.park(("r", "a"), Waiting("s", b"2", lambda: None))
    assert not parked.park(("r", "a"), entry)  # per target
    assert parked.park(("r", "b"), entry)
    assert not parked.park(("r", "c"), entry)  # in all
    assert (len(parked), ("r", "a") in parked) == (3, True)
    assert [w.data for w in parked.take(("r", "a"))] == [b"1", b"2"]
    assert parked.take(("r", "a")) == []
    assert (len(parked), parked.targets()) == (1, [("r", "b")])


def test_frames_for_an_unknown_peer_wait_for_one_lookup_and_keep_order(
    router_harness: RouterHarness,
) -> None:
    h = router_harness
    backend = Backend(h)
    c = h.register("c", role="client")
    c.pop()
    for n in range(3):
        h.send(c, message("w", n))
    assert c.pop() == []  # parked, not refused
    assert backend.lookups == [("room", "w")]  # one lookup for all three
    # The announcement arrives meanwhile: later frames still wait their turn.
    h.router.registry.add(remote("w"))
    h.send(c, message("w", 3))
    assert backend.forwarded == []
    h.router.resolved("room", "w", remote("w"))
    assert [f[2]["payload"]["n"] for f in backend.forwarded] == [0, 1, 2, 3]
    assert {f[0] for f in backend.forwarded} == {"n2"}
    h.send(c, message("w", 4))  # known now: straight through
    assert backend.forwarded[-1][2]["payload"]["n"] == 4
    assert h.router.unresolved.targets() == []


def test_an_absent_peer_gets_each_types_error_and_a_failed_lookup_fails(
    router_harness: RouterHarness,
) -> None:
    h = router_harness
    backend = Backend(h)
    c = h.register("c", role="client")
    c.pop()
    h.send(c, message("ghost", 1))
    h.send(c, {"type": "offer", "sender": "c", "target": "ghost", "sdp": "v=0"})
    h.send(
        c,
        {"type": "ice_candidate", "from_peer_id": "c"}
        | {
            "target_peer_id": "ghost",
            "candidate": {"candidate": "x", "sdpMid": "0", "sdpMLineIndex": 0},
        },
    )
    h.router.resolved("room", "ghost", None)
    errors = c.pop()
    # As in one process; the ice_candidate stays silent.
    assert [e["code"] for e in errors] == ["PEER_NOT_IN_ROOM", "PEER_NOT_FOUND"]
    h.send(c, message("gone", 1))
    h.router.resolved("room", "gone", None, failed=True)
    assert [e["code"] for e in c.pop()] == ["DELIVERY_FAILED"]
    # Redis down: nobody else to ask, the peer is absent at once.
    backend.up = False
    h.send(c, message("ghost", 2))
    assert [e["code"] for e in c.pop()] == ["PEER_NOT_IN_ROOM"]
    assert backend.forwarded == []


def test_a_closed_sender_and_too_many_waiting(router_harness: RouterHarness) -> None:
    h = router_harness
    Backend(h)
    h.router.unresolved = Unresolved(max_per_target=2)
    c = h.register("c", role="client")
    c.pop()
    for n in range(3):
        h.send(c, message("w", n))
    assert [e["code"] for e in c.pop()] == ["DELIVERY_FAILED"]  # the third
    h.close(c)
    h.router.resolved("room", "w", None)
    assert c.pop() == []  # nobody left to answer


def test_a_registration_is_answered_after_its_commit(
    router_harness: RouterHarness,
) -> None:
    h = router_harness
    committed: list[str] = []
    h.router.commit_register = lambda rec: committed.append(rec.peer_id) is None
    w = h.connect()
    h.send(w, {"type": "register", "peer_id": "w", "role": "worker", "token": "t"})
    h.send(w, {"type": "discover_peers"})  # waits behind the reply
    assert (committed, w.pop()) == (["w"], [])
    assert h.router.registry.get("room", "w") is not None  # routable here already
    h.router.commit_register = None
    other = h.register("o", role="client")
    h.send(
        other,
        {"type": "peer_message", "from_peer_id": "o", "to_peer_id": "w"}
        | {"payload": {"early": True}},
    )
    assert w.pop() == []  # held until its own reply is out
    h.commit()
    got = w.pop()
    assert [m["type"] for m in got] == [
        "registered_auth",
        "peer_joined",
        "peer_message",
        "peer_list",
    ]
