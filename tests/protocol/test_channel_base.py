"""The framing every data-channel text message shares
(:mod:`~sleap_rtc_core.protocol._channel_base`), on small message types declared
here: the greedy argument, optional trailing arguments, separator rules and
argument counts. The real message types are tested in the other
``test_channel_*.py`` modules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from sleap_rtc_core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from sleap_rtc_core.protocol._channel_args import NAME, OPT_UINT, TEXT, Arg
from sleap_rtc_core.protocol._channel_base import (
    CHANNEL_SEP,
    ChannelMessage,
    ChannelMessageType,
    is_token,
)

SOME_TYPE = next(iter(ChannelMessageType))


@dataclass(frozen=True, slots=True)
class Middle(ChannelMessage):
    """Three arguments; the middle one takes what is left (like a path)."""

    TYPE: ClassVar[ChannelMessageType | None] = SOME_TYPE
    ARGS: ClassVar[tuple[tuple[str, Arg], ...]] = (
        ("first", NAME),
        ("middle", TEXT),
        ("last", NAME),
    )
    GREEDY: ClassVar[int] = 1
    first: str
    middle: str
    last: str


@dataclass(frozen=True, slots=True)
class Trailing(ChannelMessage):
    """A name and an optional size."""

    TYPE: ClassVar[ChannelMessageType | None] = SOME_TYPE
    ARGS: ClassVar[tuple[tuple[str, Arg], ...]] = (("name", NAME), ("size", OPT_UINT))
    MIN_ARGS: ClassVar[int | None] = 1
    name: str
    size: int | None = None


@dataclass(frozen=True, slots=True)
class Bare(ChannelMessage):
    TYPE: ClassVar[ChannelMessageType | None] = SOME_TYPE


def test_the_greedy_argument_takes_the_separators_in_it() -> None:
    msg = Middle("a", "x::y::z", "b")
    text = msg.to_text()
    assert text == f"{SOME_TYPE}::a::x::y::z::b"
    assert Middle.decode_args(text.split(CHANNEL_SEP, 1)[1]) == msg


def test_the_others_may_not_hold_a_separator_or_touch_one() -> None:
    with pytest.raises(LocalProtocolError, match="first may not contain '::'"):
        Middle("a::b", "m", "c")
    with pytest.raises(LocalProtocolError, match="first may not have ':'"):
        Middle("a:", "m", "c")
    with pytest.raises(LocalProtocolError, match="last may not have ':'"):
        Middle("a", "m", ":c")
    with pytest.raises(LocalProtocolError, match="first must be non-empty text"):
        Middle("", "m", "c")


def test_missing_trailing_arguments_take_their_defaults_and_are_left_out() -> None:
    assert Trailing.decode_args("f") == Trailing("f")
    assert Trailing("f").encode_args() == "f"
    assert Trailing("f", 7).encode_args() == "f::7"
    assert Trailing.decode_args("f::") == Trailing("f")  # empty: None


@pytest.mark.parametrize(
    ("cls", "rest", "says"),
    [
        (Trailing, None, "takes 1 to 2 argument(s), got 0"),
        # Maximum split: the last argument takes the rest, and is no number.
        (Trailing, "a::1::2", "size: expected a non-negative integer, got '1::2'"),
        (Middle, "a::b", "takes 3 argument(s), got 2"),
        (Bare, "x", "takes 0 argument(s), got 1"),
        (Trailing, "f::-1", "size: expected a non-negative integer"),
    ],
)
def test_a_wrong_count_or_kind_is_the_peers_error(
    cls: type[ChannelMessage], rest: str | None, says: str
) -> None:
    with pytest.raises(RemoteProtocolError) as raised:
        cls.decode_args(rest)
    assert raised.value.code == ErrorCode.INVALID_MESSAGE
    assert says in str(raised.value)


def test_a_bare_type_travels_alone() -> None:
    assert Bare().to_text() == str(SOME_TYPE)
    assert Bare.decode_args(None) == Bare()


def test_tokens_are_what_may_sit_left_of_a_separator() -> None:
    assert is_token("job_1")
    for bad in ("", "a::b", "a:", None, 3):
        assert not is_token(bad)
