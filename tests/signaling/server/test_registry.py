"""The discovery index (sleap_rtc_core.signaling.server.registry), pure: what
``discover`` finds always equals a scan of the room, whatever joins, leaves,
changes its metadata or reconnects under another id."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sleap_rtc_core.protocol.filters import compile_filters, matches
from sleap_rtc_core.signaling.server.registry import PeerRecord, Registry


def record(
    peer_id: str,
    room: str = "r",
    *,
    role: str = "worker",
    status: str | None = "available",
    tags: tuple[str, ...] = ("sleap-rtc",),
    conn: object | None = None,
    credential: str | None = "tok",
) -> PeerRecord:
    properties: dict[str, Any] = {} if status is None else {"status": status}
    return PeerRecord(
        peer_id=peer_id,
        room_id=room,
        role=role,
        metadata={"tags": list(tags), "properties": properties},
        connected_at=0.0,
        principal="p",
        credential_id=credential,
        conn=conn,
    )


def test_add_replace_remove_and_rooms() -> None:
    reg = Registry()
    assert reg.add(record("w1")) is None
    again = record("w1", status="busy")
    assert reg.add(again) is not None  # replaced
    assert reg.get("r", "w1") is again
    reg.add(record("w1", room="other"))  # ids are unique per room only
    assert len(reg) == 2
    assert reg.remove("r", "w1", conn=object()) is None  # not that connection's
    assert reg.remove("r", "w1") is again
    assert reg.get("r", "w1") is None
    assert reg.rooms_created == 2


def test_a_connection_that_registers_again_owns_one_record() -> None:
    reg = Registry()
    conn = object()
    reg.add(record("first", conn=conn))
    reg.add(record("second", conn=conn))
    assert [p.peer_id for p in reg.peers("r")] == ["second"]


def test_the_credential_counter_follows_joins_changes_and_leaves() -> None:
    reg = Registry()
    reg.add(record("a"))
    reg.add(record("b"))
    reg.add(record("k", credential="key"))
    room = reg.rooms["r"]
    assert (room.by_credential["tok"], room.by_credential["key"]) == (2, 1)
    rec = reg.get("r", "a")
    assert rec is not None
    reg.set_metadata(rec, {"properties": {"status": "busy"}})
    assert room.by_credential["tok"] == 2
    reg.remove("r", "a")
    reg.remove("r", "k")
    assert dict(room.by_credential) == {"tok": 1}


_ids = st.sampled_from(["a", "b", "c", "d"])
_status = st.sampled_from(["available", "busy", None])
_role = st.sampled_from(["worker", "client"])
_tags = st.lists(st.sampled_from(["sleap-rtc", "training-worker", "x"]), max_size=2)
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), _ids, _role, _status, _tags),
        st.tuples(st.just("remove"), _ids, _role, _status, _tags),
        st.tuples(st.just("meta"), _ids, _role, _status, _tags),
    ),
    max_size=30,
)
_filters = st.fixed_dictionaries(
    {},
    optional={
        "role": _role,
        "tags": st.lists(st.sampled_from(["sleap-rtc", "x", "y"]), max_size=2),
        "properties": st.fixed_dictionaries(
            {"status": st.one_of(_status, st.just({"$in": ["available", "busy"]}))}
        ),
    },
)


@settings(max_examples=200, deadline=None)
@given(ops=_ops, filters=_filters)
def test_discovery_equals_a_scan(ops: list[Any], filters: dict[str, Any]) -> None:
    reg = Registry()
    for kind, peer_id, role, status, tags in ops:
        if kind == "add":
            reg.add(record(peer_id, role=role, status=status, tags=tuple(tags)))
        elif kind == "remove":
            reg.remove("r", peer_id)
        elif (rec := reg.get("r", peer_id)) is not None:
            props = {} if status is None else {"status": status}
            reg.set_metadata(rec, {"tags": tags, "properties": props})
    flt = compile_filters(filters)
    found = {p.peer_id for p in reg.discover("r", flt)}
    scanned = {p.peer_id for p in reg.peers("r") if matches(filters, p.public)}
    assert found == scanned
