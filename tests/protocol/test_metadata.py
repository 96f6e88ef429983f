"""Tests of peer metadata merge, public view and checks
(sleap_rtc_core.protocol.metadata)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sleap_rtc_core.errors import ErrorCode, RemoteProtocolError
from sleap_rtc_core.protocol.metadata import (
    MAX_METADATA_BYTES,
    is_private_key,
    merge_metadata,
    public_metadata,
    validate_metadata,
)

STORED: dict[str, Any] = {
    "tags": ["sleap-rtc", "training-worker"],
    "properties": {
        "status": "available",
        "gpu_memory_mb": 8000,
        "mounts": [{"path": "/data", "label": "Data"}],
        "_secret": "server",
    },
    "_worker_name": "gpu-box",
    "_token_id": "slp_abc",
    "extra": {"a": 1},
}


def test_status_change_keeps_tags_and_server_keys() -> None:
    """The reference drops everything not in the update; we deep-merge."""
    new = merge_metadata(STORED, {"properties": {"status": "busy", "job": "j1"}})
    assert new["tags"] == STORED["tags"]
    assert new["_worker_name"] == "gpu-box"
    assert new["_token_id"] == "slp_abc"
    assert new["extra"] == {"a": 1}
    assert new["properties"] == {
        "status": "busy",
        "job": "j1",
        "gpu_memory_mb": 8000,
        "mounts": [{"path": "/data", "label": "Data"}],
        "_secret": "server",
    }


def test_null_property_deletes_it() -> None:
    new = merge_metadata(STORED, {"properties": {"gpu_memory_mb": None, "nope": None}})
    assert "gpu_memory_mb" not in new["properties"]
    assert "nope" not in new["properties"]
    assert new["properties"]["status"] == "available"


def test_tags_replace_the_list() -> None:
    new = merge_metadata(STORED, {"tags": ["inference-worker"]})
    assert new["tags"] == ["inference-worker"]
    assert merge_metadata(STORED, {"tags": []})["tags"] == []


def test_other_top_level_keys_replace_or_delete() -> None:
    new = merge_metadata(STORED, {"extra": {"b": 2}, "more": [1]})
    assert new["extra"] == {"b": 2}  # top-level values other than properties replace
    assert new["more"] == [1]
    assert "extra" not in merge_metadata(STORED, {"extra": None})


def test_merge_into_empty_and_empty_update() -> None:
    assert merge_metadata({}, {"properties": {"a": 1}}) == {"properties": {"a": 1}}
    assert merge_metadata(STORED, {}) == STORED
    assert merge_metadata({"properties": "junk"}, {"properties": {"a": 1}}) == {
        "properties": {"a": 1}
    }


def test_inputs_are_never_mutated_nor_shared() -> None:
    stored = copy.deepcopy(STORED)
    update = {"properties": {"status": "busy", "list": [1]}, "tags": ["x"]}
    update_before = copy.deepcopy(update)
    new = merge_metadata(stored, update)
    assert stored == STORED
    assert update == update_before
    new["properties"]["list"].append(2)
    new["tags"].append("y")
    new["extra"]["a"] = 5
    new["properties"]["mounts"][0]["path"] = "/elsewhere"
    assert update == update_before
    assert stored == STORED


@pytest.mark.parametrize(
    "update",
    [
        {"_worker_name": "evil"},
        {"_token_id": None},
        {"properties": {"_secret": "evil"}},
        {"properties": {"_secret": None}},
    ],
)
def test_server_owned_keys_are_refused(update: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        merge_metadata(STORED, update)
    assert info.value.code == ErrorCode.INVALID_MESSAGE


def test_the_server_may_write_private_keys() -> None:
    new = merge_metadata(
        {}, {"_worker_name": "w", "properties": {"_x": 1}}, allow_private=True
    )
    assert new == {"_worker_name": "w", "properties": {"_x": 1}}


@pytest.mark.parametrize(
    "update",
    [
        [],
        "metadata",
        None,
        {"tags": "sleap-rtc"},
        {"tags": [1]},
        {"tags": None},
        {"properties": []},
        {"properties": None},
        {"properties": {1: "a"}},
        {1: "a"},
    ],
)
def test_malformed_updates_are_invalid_message(update: Any) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        merge_metadata(STORED, update)
    assert info.value.code == ErrorCode.INVALID_MESSAGE


def test_public_metadata_strips_private_keys() -> None:
    pub = public_metadata(STORED)
    assert pub == {
        "tags": ["sleap-rtc", "training-worker"],
        "properties": {
            "status": "available",
            "gpu_memory_mb": 8000,
            "mounts": [{"path": "/data", "label": "Data"}],
        },
        "extra": {"a": 1},
    }
    assert "_secret" in STORED["properties"]  # input untouched
    assert public_metadata({"properties": "junk", "_x": 1}) == {"properties": "junk"}
    assert public_metadata({}) == {}


def test_is_private_key() -> None:
    assert is_private_key("_token_id")
    assert not is_private_key("token_id")
    assert not is_private_key(1)


def test_validate_metadata_accepts_conventional_shapes() -> None:
    validate_metadata(STORED)
    validate_metadata({})
    validate_metadata({"anything": [1, {"b": None}]})


@pytest.mark.parametrize(
    "md",
    [
        [],
        "x",
        None,
        {"tags": "a"},
        {"tags": [None]},
        {"properties": [1]},
        {"properties": {2: 1}},
        {3: "a"},
        {"x": object()},
    ],
)
def test_validate_metadata_refuses_malformed(md: Any) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        validate_metadata(md)
    assert info.value.code == ErrorCode.INVALID_MESSAGE


def test_validate_metadata_size_bound() -> None:
    big = {"properties": {"blob": "x" * MAX_METADATA_BYTES}}
    with pytest.raises(RemoteProtocolError) as info:
        validate_metadata(big)
    assert info.value.code == ErrorCode.MESSAGE_TOO_LARGE
    validate_metadata({"properties": {"blob": "x" * 100}}, max_bytes=200)
    with pytest.raises(RemoteProtocolError):
        validate_metadata({"properties": {"blob": "x" * 200}}, max_bytes=200)


# -------------------------------------------------------------------- hypothesis

scalars = st.sampled_from([None, True, 0, 7, 2.5, "", "a", "available"])
values = scalars | st.lists(scalars, max_size=2)
keys = st.sampled_from(["a", "b", "status", "_p"])
metadata = st.fixed_dictionaries(
    {},
    optional={
        "tags": st.lists(st.sampled_from(["x", "y"]), max_size=2),
        "properties": st.dictionaries(keys, values, max_size=3),
        "other": values,
        "_server": values,
    },
)


@settings(max_examples=60, deadline=None)
@given(stored=metadata, update=metadata)
def test_merge_laws(stored: dict[str, Any], update: dict[str, Any]) -> None:
    try:
        new = merge_metadata(stored, update)
    except RemoteProtocolError:
        assert "_server" in update or any(
            k.startswith("_") for k in update.get("properties", {})
        )
        return
    # Absent keys survive, server keys are untouched, present ones are merged.
    for key in stored.keys() - update.keys():
        assert new[key] == stored[key]
    assert new.get("_server") == stored.get("_server")
    if "tags" in update:
        assert new["tags"] == update["tags"]
    for name, value in update.get("properties", {}).items():
        if value is None:
            assert name not in new["properties"]
        else:
            assert new["properties"][name] == value
    # Merging the same update twice changes nothing more.
    assert merge_metadata(new, update) == new
    pub = public_metadata(new)
    assert not any(k.startswith("_") for k in pub)
    assert not any(k.startswith("_") for k in pub.get("properties", {}))
