"""Tests of :mod:`sleap_rtc_core.protocol.json_text`: the one place that decides
what malformed JSON is and which error it raises."""

from __future__ import annotations

import pytest

from sleap_rtc_core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from sleap_rtc_core.protocol.json_text import dumps, dumps_bytes, loads, loads_object


@pytest.mark.parametrize("data", ['{"a": [1, 2.5, null]}', b'{"a": [1, 2.5, null]}'])
def test_text_and_bytes_parse_alike(data: str | bytes) -> None:
    assert loads(data) == {"a": [1, 2.5, None]}


@pytest.mark.parametrize("data", ["{", "", "{'a': 1}", b"\xff\xfe", "[" * 10_000])
def test_malformed_input_is_a_remote_protocol_error(data: str | bytes) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        loads(data)
    assert info.value.code == ErrorCode.INVALID_JSON


@pytest.mark.parametrize("data", ["[1]", '"text"', "3", "null"])
def test_loads_object_refuses_json_that_is_not_an_object(data: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        loads_object(data)
    assert info.value.code == ErrorCode.INVALID_MESSAGE


def test_dumps_is_compact_and_round_trips() -> None:
    obj = {"event": "epoch_end", "logs": {"loss": 0.5}, "name": "ü"}
    text = dumps(obj)
    assert " " not in text
    assert loads_object(text) == obj
    assert dumps_bytes(obj) == text.encode()


def test_what_json_cannot_carry_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        dumps({"when": object()})
