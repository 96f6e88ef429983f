"""Frames between peers: verbatim relays, sender identity, delivery errors."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.router import RouterHarness


def codes(conn: Any) -> list[str]:
    return [m.get("code") for m in conn.pop() if m["type"] == "error"]


def test_peer_message_is_forwarded_verbatim(router_harness: RouterHarness) -> None:
    h = router_harness
    w = h.register("w")
    c = h.register("c", role="client")
    w.pop()
    text = (
        '{"type":"peer_message","from_peer_id":"c","to_peer_id":"w","payload":{"a":1}}'
    )
    h.send(c, text)
    assert w.frames == [text.encode()]
    assert h.router.counters["total_messages"] == 1


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ({"from_peer_id": "w", "to_peer_id": "c"}, "IDENTITY_MISMATCH"),
        ({"from_peer_id": "c", "to_peer_id": "nobody"}, "PEER_NOT_IN_ROOM"),
        ({"from_peer_id": "c", "to_peer_id": "x"}, "PEER_NOT_IN_ROOM"),
        ({"from_peer_id": "c", "to_peer_id": "w", "payload": {}}, "INVALID_MESSAGE"),
    ],
)
def test_peer_message_errors(
    router_harness: RouterHarness, message: dict[str, Any], code: str
) -> None:
    h = router_harness
    h.register("w")
    h.register("x", room="elsewhere")
    c = h.register("c", role="client")
    c.pop()
    h.send(c, {"type": "peer_message", "payload": {"a": 1}, **message})
    assert codes(c) == [code]


def test_delivery_failure_is_reported(router_harness: RouterHarness) -> None:
    h = router_harness
    w = h.register("w")
    c = h.register("c", role="client")
    c.pop()
    w.open = False  # its socket can no longer send
    h.send(
        c,
        {"type": "peer_message", "from_peer_id": "c", "to_peer_id": "w", "payload": 1},
    )
    assert codes(c) == ["DELIVERY_FAILED"]


def test_unregistered_socket_can_do_nothing(router_harness: RouterHarness) -> None:
    h = router_harness
    h.register("w")
    stranger = h.connect()
    for msg in [
        {"type": "discover_peers", "from_peer_id": "w", "filters": {}},
        {"type": "update_metadata", "peer_id": "w", "metadata": {"tags": []}},
        {"type": "peer_message", "from_peer_id": "w", "to_peer_id": "w", "payload": 1},
        {"type": "offer", "sender": "w", "target": "w", "sdp": "x"},
        {
            "type": "mesh_connect",
            "from_peer_id": "w",
            "target_peer_id": "w",
            "offer": {},
        },
    ]:
        h.send(stranger, msg)
    assert codes(stranger) == ["NOT_IN_ROOM"] * 5


def test_offer_answer_candidate_relay_verbatim(router_harness: RouterHarness) -> None:
    h = router_harness
    w = h.register("w")
    c = h.register("c", role="client")
    w.pop()
    c.pop()
    offer = '{"type":"offer","sender":"c","target":"w","sdp":"v=0","role":"client"}'
    h.send(c, offer)
    assert w.frames == [offer.encode()]
    h.send(w, {"type": "answer", "target": "c", "sdp": "v=0"})
    assert c.pop() == [{"type": "answer", "target": "c", "sdp": "v=0", "sender": "w"}]
    h.send(
        c,
        {
            "type": "candidate",
            "sender": "c",
            "target": "w",
            "candidate": {"candidate": "a", "sdpMid": "0", "sdpMLineIndex": 0},
        },
    )
    assert w.last()["candidate"]["candidate"] == "a"
    h.send(c, {"type": "offer", "sender": "c", "target": "ghost", "sdp": "x"})
    assert codes(c) == ["PEER_NOT_FOUND"]
    h.send(c, {"type": "offer", "sender": "w", "target": "w", "sdp": "x"})
    assert codes(c) == ["IDENTITY_MISMATCH"]


def test_mesh_relays(router_harness: RouterHarness) -> None:
    h = router_harness
    a = h.register("a")
    b = h.register("b")
    a.pop()
    b.pop()
    h.send(
        a,
        {
            "type": "mesh_connect",
            "from_peer_id": "a",
            "target_peer_id": "b",
            "offer": {"sdp": "o", "type": "offer"},
        },
    )
    assert b.pop() == [
        {
            "type": "mesh_offer",
            "from_peer_id": "a",
            "offer": {"sdp": "o", "type": "offer"},
        }
    ]
    h.send(
        b,
        {
            "type": "mesh_answer",
            "from_peer_id": "b",
            "target_peer_id": "a",
            "answer": {"sdp": "x", "type": "answer"},
        },
    )
    assert a.pop() == [
        {
            "type": "mesh_answer",
            "from_peer_id": "b",
            "answer": {"sdp": "x", "type": "answer"},
        }
    ]
    h.send(
        a,
        {
            "type": "ice_candidate",
            "from_peer_id": "a",
            "target_peer_id": "b",
            "candidate": {"candidate": "c"},
        },
    )
    assert b.pop() == [
        {"type": "ice_candidate", "from_peer_id": "a", "candidate": {"candidate": "c"}}
    ]
    h.send(a, {"type": "mesh_connect", "target_peer_id": "zz", "offer": {}})
    err = a.pop()[-1]
    assert err["code"] == "PEER_NOT_FOUND"
    assert err["reason"] == "peer_not_found"
    assert err["target_peer_id"] == "zz"
    h.send(a, {"type": "ice_candidate", "target_peer_id": "zz", "candidate": {}})
    assert a.pop() == []


def test_worker_error_with_target_is_forwarded_not_answered(
    router_harness: RouterHarness,
) -> None:
    h = router_harness
    w = h.register("w")
    c = h.register("c", role="client")
    w.pop()
    c.pop()
    busy = {
        "type": "error",
        "target": "c",
        "reason": "worker_busy",
        "message": "busy",
        "current_status": "busy",
    }
    h.send(w, busy)
    assert c.pop() == [{**busy, "sender": "w"}]  # the verified sender, stamped
    assert w.pop() == []
    h.send(w, {"type": "error", "message": "no target"})
    assert w.pop() == []


def test_a_relayed_error_cannot_claim_another_sender(
    router_harness: RouterHarness,
) -> None:
    """A room member cannot pass its error off as the worker's (it would abort
    another client's connect)."""
    h = router_harness
    h.register("w")
    c = h.register("c", role="client")
    m = h.register("mallory", role="client")
    c.pop()
    m.pop()
    h.send(m, {"type": "error", "target": "c", "reason": "worker_busy", "sender": "w"})
    assert c.pop() == []
    (refused,) = m.pop()
    assert refused["code"] == "IDENTITY_MISMATCH"
    h.send(m, {"type": "error", "target": "c", "reason": "worker_busy"})
    assert [e.get("sender") for e in c.pop()] == ["mallory"]
