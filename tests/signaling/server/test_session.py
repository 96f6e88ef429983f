"""A connection's router state: frames wait behind an uncommitted reply."""

from __future__ import annotations

from sleap_rtc_core.signaling.server.limits import TokenBucket
from sleap_rtc_core.signaling.server.session import MAX_OUTBOX, Session


def session(sent: list[bytes]) -> Session:
    def send(data: bytes) -> bool:
        sent.append(data)
        return True

    return Session(send=send, close=lambda code, reason: None, bucket=TokenBucket(1, 1))


def test_push_sends_at_once_without_a_pending_reply() -> None:
    sent: list[bytes] = []
    assert session(sent).push(b"a")
    assert sent == [b"a"]


def test_push_holds_behind_a_registered_auth_not_yet_sent_up_to_a_bound() -> None:
    sent: list[bytes] = []
    s = session(sent)
    s.outbox = []
    assert all(s.push(b"%d" % i) for i in range(MAX_OUTBOX))
    assert not s.push(b"one too many")
    assert sent == []
    assert len(s.outbox) == MAX_OUTBOX
