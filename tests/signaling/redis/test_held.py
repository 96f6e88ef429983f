"""The frames held for a dead process's peers (:mod:`...redis.held`), directly.

Pure: no Redis, no clock but the ``now`` each call is given. What the backend
relies on: held frames come back oldest first (frames a dead process returned
before the ones forwarded after the hold began), the two bounds are exact, a
hold and an orphan end when their grace does (an orphan extends a hold), and
``waits`` says whether a lookup should wait for a re-registration.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sleap_rtc_core.signaling.redis.held import Hold, Holds

A = ("room", "a")
B = ("room", "b")


def test_returned_frames_come_before_fresh_ones_whatever_the_arrival_order() -> None:
    """A frame forwarded after the hold began is newer than every frame the
    dead process sends back, even one that comes back later."""
    holds = Holds(grace=10)
    assert holds.returned(A, b"r1", "dead-node", now=0)
    assert holds.fresh(A, b"f1", now=1)
    assert holds.returned(A, b"r2", "dead-node", now=2)
    assert holds.fresh(A, b"f2", now=3)
    assert len(holds) == 4
    hold = holds.take(A)
    assert hold is not None
    assert hold.frames() == [b"r1", b"r2", b"f1", b"f2"]
    assert hold.dead == "dead-node"
    assert len(holds) == 0
    assert A not in holds


def test_a_hold_of_fresh_frames_only_names_no_dead_process() -> None:
    holds = Holds(grace=10)
    assert holds.fresh(A, b"f", now=0)
    hold = holds.take(A)
    assert hold is not None
    assert (hold.dead, hold.frames()) == (None, [b"f"])


def test_take_of_an_unknown_target_is_none_and_changes_nothing() -> None:
    holds = Holds(grace=10)
    holds.fresh(A, b"f", now=0)
    assert holds.take(B) is None
    assert len(holds) == 1


def test_max_per_target_refuses_the_next_frame_of_that_target_only() -> None:
    holds = Holds(grace=10, max_per_target=2, max_total=10)
    assert holds.returned(A, b"1", "n", now=0)
    assert holds.fresh(A, b"2", now=0)
    assert not holds.fresh(A, b"3", now=0)
    assert not holds.returned(A, b"4", "n", now=0)
    assert holds.fresh(B, b"x", now=0)  # another target still has room
    assert len(holds) == 3
    hold = holds.take(A)
    assert hold is not None
    assert hold.frames() == [b"1", b"2"]


def test_max_total_refuses_every_target_until_frames_are_taken() -> None:
    holds = Holds(grace=10, max_per_target=10, max_total=3)
    assert holds.fresh(A, b"1", now=0)
    assert holds.fresh(A, b"2", now=0)
    assert holds.fresh(B, b"3", now=0)
    assert not holds.fresh(A, b"4", now=0)
    assert not holds.fresh(("room", "c"), b"5", now=0)  # no new hold either
    assert ("room", "c") not in holds
    holds.take(B)
    assert holds.fresh(("room", "c"), b"6", now=0)
    assert len(holds) == 3


def test_a_hold_expires_at_its_grace_counted_from_its_first_frame() -> None:
    holds = Holds(grace=5)
    holds.returned(A, b"1", "n", now=100)
    holds.fresh(A, b"2", now=104)  # later frames do not push the deadline
    assert holds.expired(104.9) == ([], [])
    expired, orphans = holds.expired(105)
    assert orphans == []
    assert [(key, hold.frames()) for key, hold in expired] == [(A, [b"1", b"2"])]
    assert len(holds) == 0
    assert A not in holds


def test_an_orphan_waits_for_its_grace_then_is_forgotten() -> None:
    holds = Holds(grace=5)
    holds.orphan(A, now=10)
    assert holds.waits(A, now=14.9)
    assert not holds.waits(B, now=14.9)
    assert not holds.waits(A, now=15)  # its deadline has passed
    assert holds.expired(15) == ([], [A])
    assert A not in holds.orphans
    assert holds.expired(16) == ([], [])


def test_orphaning_a_held_target_gives_its_frames_the_grace_afresh() -> None:
    """Frames held for a peer whose process is found dead later wait a whole
    grace from then (the backend orphans its peers when it sees the death)."""
    holds = Holds(grace=5)
    holds.fresh(A, b"1", now=0)
    holds.orphan(A, now=4)
    assert holds.holds[A].deadline == 9
    assert holds.expired(8.9) == ([], [])
    expired, orphans = holds.expired(9)
    assert [key for key, _ in expired] == [A]
    assert orphans == [A]


def test_orphaning_never_shortens_a_hold() -> None:
    holds = Holds(grace=5)
    holds.fresh(A, b"1", now=10)
    holds.grace = 1  # a shorter grace from here on
    holds.orphan(A, now=11)
    assert holds.holds[A].deadline == 15


def test_a_held_target_waits_whatever_the_time() -> None:
    """Until taken or expired, a target with held frames makes lookups wait."""
    holds = Holds(grace=5)
    holds.fresh(A, b"1", now=0)
    assert holds.waits(A, now=1000)
    holds.take(A)
    assert not holds.waits(A, now=0)


def test_hold_length_and_frames_agree() -> None:
    hold = Hold(deadline=1.0)
    hold.returned.extend([b"a", b"b"])
    hold.fresh.append(b"c")
    assert len(hold) == 3
    assert hold.frames() == [b"a", b"b", b"c"]


_OPS = st.lists(
    st.tuples(
        st.sampled_from(["returned", "fresh", "take"]),
        st.sampled_from([A, B, ("room", "c")]),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(ops=_OPS, per_target=st.integers(1, 5), total=st.integers(1, 8))
def test_holds_keep_order_and_bounds_under_any_sequence(
    ops: list[tuple[str, tuple[str, str]]], per_target: int, total: int
) -> None:
    """Against a plain model: per target, returned frames in their order, then
    fresh ones in theirs; a frame is refused exactly when a bound is reached;
    the count is always the frames held."""
    holds = Holds(grace=10, max_per_target=per_target, max_total=total)
    model: dict[tuple[str, str], tuple[list[bytes], list[bytes]]] = {}
    for i, (op, key) in enumerate(ops):
        data = str(i).encode()
        held = sum(len(r) + len(f) for r, f in model.values())
        if op == "take":
            hold = holds.take(key)
            expected = model.pop(key, None)
            if expected is None:
                assert hold is None
            else:
                assert hold is not None
                assert hold.frames() == expected[0] + expected[1]
            continue
        mine = model.get(key)
        room = held < total and (
            mine is None or len(mine[0]) + len(mine[1]) < per_target
        )
        ok = (
            holds.returned(key, data, "n", now=0)
            if op == "returned"
            else holds.fresh(key, data, now=0)
        )
        assert ok == room
        if ok:
            returned, fresh = model.setdefault(key, ([], []))
            (returned if op == "returned" else fresh).append(data)
        assert len(holds) == sum(len(r) + len(f) for r, f in model.values())
        assert len(holds) <= total
    assert set(holds.holds) == set(model)
