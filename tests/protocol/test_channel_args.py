"""How one ``::`` argument of a data-channel text frame travels
(:mod:`~sleap_rtc_core.protocol._channel_args`): each kind decodes, encodes and
checks; hostile text is the peer's error and stays short in messages."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import pytest

from sleap_rtc_core.errors import ErrorCode, RemoteProtocolError
from sleap_rtc_core.protocol._channel_args import (
    FLAG,
    FLOAT,
    INT,
    NAME,
    OBJECTS,
    OPT_NAME,
    OPT_UINT,
    TEXT,
    UINT,
    Arg,
    clip,
    enum_arg,
    is_b64url,
    is_sha256_hex,
    parse_uint,
)


@pytest.mark.parametrize(
    ("arg", "text", "value"),
    [
        (TEXT, "", ""),
        (NAME, "/mnt/a b", "/mnt/a b"),
        (OPT_NAME, "None", None),
        (OPT_NAME, "null", None),
        (INT, "-12", -12),
        (UINT, "0", 0),
        (OPT_UINT, "", None),
        (FLAG, "1", True),
        (FLAG, "0", False),
        (FLOAT, "2.5e-3", 0.0025),
        (OBJECTS, '[{"a": 1}]', [{"a": 1}]),
    ],
)
def test_each_kind_decodes_its_text(arg: Arg, text: str, value: Any) -> None:
    assert arg.decode(text) == value
    assert arg.check(value)
    assert arg.decode(arg.encode(value)) == value


@pytest.mark.parametrize(
    ("arg", "text"),
    [
        (NAME, ""),
        (INT, "1_0"),
        (INT, " 1"),
        (INT, "١٢"),  # Arabic-Indic digits, which int() would take
        (INT, "1" * 21),  # too many digits to be worth parsing
        (UINT, "-1"),
        (OPT_UINT, "x"),
        (FLAG, "true"),
        (FLOAT, "nan"),
        (FLOAT, "1e99999"),
        (OBJECTS, '[{"a": 1}, 2]'),
    ],
)
def test_hostile_text_is_the_peers_error(arg: Arg, text: str) -> None:
    with pytest.raises(RemoteProtocolError) as raised:
        arg.decode(text)
    assert raised.value.code == ErrorCode.INVALID_MESSAGE


def test_values_built_here_are_checked_before_they_travel() -> None:
    assert not INT.check(True)
    assert not INT.check(10**20)
    assert not UINT.check(-1)
    assert not OPT_NAME.check("None")  # it would come back as None
    assert not FLOAT.check(float("inf"))
    assert OPT_UINT.encode(None) == ""
    assert FLAG.encode(True) == "1"


def test_an_enum_travels_as_its_value() -> None:
    class Mode(StrEnum):
        FAST = "fast"
        SLOW = "slow"

    mode = enum_arg(Mode)
    assert mode.decode("slow") is Mode.SLOW
    assert mode.encode(Mode.FAST) == "fast"
    assert mode.check(Mode.FAST)
    with pytest.raises(RemoteProtocolError):
        mode.decode("medium")


def test_the_small_checks() -> None:
    assert parse_uint("42") == 42
    assert parse_uint("4 2") is None
    assert is_b64url("AAAA")
    assert not is_b64url("AAAAA")  # no whole byte count
    assert not is_b64url("AA==")  # unpadded only
    assert is_sha256_hex("Ab" * 32)
    assert not is_sha256_hex("ab" * 31)
    assert not is_sha256_hex(None)
    assert clip("x" * 100) == repr("x" * 100)[:37] + "..."
    assert clip("short") == "'short'"
