"""The pure half of acknowledged delivery: inbox ids, the ack window, replies."""

from __future__ import annotations

import json

import pytest

from sleap_rtc_core.errors import ErrorCode
from sleap_rtc_core.signaling.redis.inbox import (
    AckWindow,
    after,
    split_inbox,
    undelivered_reply,
)


def test_an_inbox_message_carries_its_entry_and_sender() -> None:
    assert split_inbox(b'17-3 host-1-ab\n["frame"]\nbody') == (
        "17-3",
        "host-1-ab",
        b'["frame"]\nbody',
    )
    for bad in (b"17-3\n[]\n", b"no newline", b" node\n", b"17-3 \n"):
        with pytest.raises(ValueError, match="inbox"):
            split_inbox(bad)


def test_after_is_the_next_stream_id() -> None:
    assert after("1700000000000-0") == "1700000000000-1"
    assert after("5-41") == "5-42"
    for bad in ("5", "x-1", "5-", "-1"):
        with pytest.raises(ValueError, match="stream id"):
            after(bad)


def test_the_window_moves_only_past_drained_connections() -> None:
    drained = {"a": True, "b": False}
    window = AckWindow[str]()
    window.read("1-0", ["a"])
    window.read("2-0", ["b"])
    window.read("3-0", ["a"])
    window.read("4-0", [])
    assert window.ready(drained.__getitem__) == "1-0"
    assert window.ready(drained.__getitem__) is None  # 2-0 holds the rest back
    assert len(window) == 3
    drained["b"] = True
    assert window.ready(drained.__getitem__) == "4-0"
    assert len(window) == 0
    assert window.ready(drained.__getitem__) is None


def test_the_window_is_bounded() -> None:
    window = AckWindow[str](limit=2)
    for n in range(4):
        window.read(f"{n}-0", ["stuck"])
    assert len(window) == 2
    assert window.ready(lambda conn: False) == "1-0"  # the oldest, forced out
    assert window.ready(lambda conn: False) is None


def test_a_relayed_message_whose_target_left_is_answered_typed() -> None:
    frame = json.dumps(
        {
            "type": "peer_message",
            "from_peer_id": "s",
            "to_peer_id": "t",
            "payload": {"n": 1},
        }
    ).encode()
    answer = undelivered_reply("t", frame)
    assert answer is not None
    sender, reply = answer
    assert sender == "s"
    assert json.loads(reply) == {
        "type": "error",
        "code": "PEER_NOT_FOUND",
        "message": "peer 't' left before the message reached it",
        "reason": "peer_not_found",
        "target_peer_id": "t",
    }
    offer = b'{"type":"offer","sender":"c","target":"w","sdp":"x","request_id":"r"}'
    assert undelivered_reply("w", offer, code=ErrorCode.DELIVERY_FAILED) == (
        "c",
        b'{"type":"error","code":"DELIVERY_FAILED",'
        b'"message":"could not deliver to \'w\'","request_id":"r",'
        b'"target_peer_id":"w"}',
    )
    mesh = b'{"type":"mesh_offer","from_peer_id":"m","offer":{}}'
    assert undelivered_reply("x", mesh) is not None


def test_what_gets_no_answer() -> None:
    ice = b'{"type":"ice_candidate","from_peer_id":"m","candidate":{}}'
    assert undelivered_reply("x", ice) is None  # silent, as in one process
    assert undelivered_reply("x", b"not json") is None
    assert undelivered_reply("x", b'{"type":"peer_message"}') is None  # no sender
