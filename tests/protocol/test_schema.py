"""The field checks every JSON wire message shares
(:mod:`~sleap_rtc_core.protocol._schema`), on small messages declared here."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pytest

from sleap_rtc_core.errors import ErrorCode, RemoteProtocolError
from sleap_rtc_core.protocol._schema import WireObject, extra_field, wire_field


class Color(StrEnum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True, slots=True)
class Sample(WireObject):
    name: str
    count: int
    ratio: float = 1.0
    color: Color = Color.RED
    tags: list[str] = wire_field(default_factory=list)
    note: str | None = None
    kept: str | None = wire_field(default=None, keep_null=True)
    payload: dict[str, Any] = wire_field(default_factory=dict, non_empty=False)


@dataclass(frozen=True, slots=True)
class Relayed(WireObject):
    to: str
    payload: dict[str, Any] = wire_field(non_empty=True)
    rest: dict[str, Any] = extra_field()


def refused(cls: type[WireObject], obj: dict[str, Any]) -> str:
    with pytest.raises(RemoteProtocolError) as raised:
        cls.from_dict(obj)
    assert raised.value.code == ErrorCode.INVALID_MESSAGE
    return str(raised.value)


def test_a_message_round_trips_with_defaults_enums_and_nulls() -> None:
    msg = Sample.from_dict({"name": "a", "count": 2, "ratio": 3, "color": "blue"})
    assert (msg.ratio, msg.color, msg.tags) == (3, Color.BLUE, [])
    assert msg.to_dict() == {
        "name": "a",
        "count": 2,
        "ratio": 3,
        "color": "blue",
        "tags": [],
        "kept": None,  # keep_null: sent as null; note: omitted
        "payload": {},
    }
    assert Sample.from_dict(msg.to_dict()) == msg


@pytest.mark.parametrize(
    ("obj", "says"),
    [
        ({"count": 1}, "missing field 'name'"),
        ({"name": None, "count": 1}, "field 'name' must be string, not null"),
        ({"name": "a", "count": True}, "field 'count' must be integer, not boolean"),
        ({"name": "a", "count": 1.5}, "field 'count' must be integer, not number"),
        (
            {"name": "a", "count": 1, "color": "green"},
            "field 'color' must be Color, not string",
        ),
        (
            {"name": "a", "count": 1, "tags": ["x", 2]},
            "field 'tags' must be list of string, not list",
        ),
        ({"name": "a", "count": 1, "extra": 1}, "unknown field 'extra'"),
    ],
)
def test_a_bad_field_is_named_in_the_peers_error(
    obj: dict[str, Any], says: str
) -> None:
    assert f"Sample: {says}" in refused(Sample, obj)


def test_a_null_is_accepted_only_where_the_annotation_allows_it() -> None:
    msg = Sample.from_dict({"name": "a", "count": 1, "note": None})
    assert msg.note is None
    assert "note" not in msg.to_dict()


def test_unknown_keys_of_a_relayed_message_go_back_verbatim() -> None:
    obj = {"to": "w1", "payload": {"x": 1}, "ttl": 3, "trace": ["a"]}
    msg = Relayed.from_dict(obj)
    assert msg.rest == {"ttl": 3, "trace": ["a"]}
    assert msg.to_dict() == obj
    assert "field 'payload' must not be empty" in refused(
        Relayed, {"to": "w1", "payload": {}}
    )


def test_the_label_names_what_was_read() -> None:
    with pytest.raises(RemoteProtocolError, match="^register: missing field 'name'"):
        Sample.from_dict({}, what="register")
