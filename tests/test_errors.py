"""Tests of :mod:`sleap_rtc_core.errors`: the tree its docstring draws is the
real one, and every error carries a wire code."""

from __future__ import annotations

import re

import pytest

import sleap_rtc_core.errors as errors
from sleap_rtc_core.errors import (
    ChannelAuthFailed,
    ErrorCode,
    InvalidState,
    RemoteProtocolError,
    SleapRTCError,
)


def _drawn_tree() -> dict[str, str]:
    """``{class name: parent name}`` as the module docstring draws it."""
    parents: dict[str, str] = {}
    stack: list[str] = []
    for line in (errors.__doc__ or "").splitlines():
        match = re.match(r"^\s{4}((?:[│ ] {3})*)(?:[├└]── )?([A-Z]\w+)(?:\s|$)", line)
        if not match:
            continue
        depth = len(match.group(1)) // 4 + (1 if "──" in line else 0)
        name = match.group(2)
        del stack[depth:]
        if stack:
            parents[name] = stack[-1]
        stack.append(name)
    return parents


EXCEPTIONS = sorted(
    name
    for name in errors.__all__
    if isinstance(getattr(errors, name), type)
    and issubclass(getattr(errors, name), BaseException)
)


def test_the_drawn_tree_is_the_class_tree() -> None:
    drawn = _drawn_tree()
    assert drawn, "the docstring draws no tree"
    for name, parent in drawn.items():
        bases = {base.__name__ for base in getattr(errors, name).__bases__}
        assert parent in bases, f"{name} is drawn under {parent}, derives from {bases}"


@pytest.mark.parametrize("name", EXCEPTIONS)
def test_every_exported_error_is_in_the_tree_and_under_the_root(name: str) -> None:
    cls = getattr(errors, name)  # an alias is drawn by its class's name
    assert issubclass(cls, SleapRTCError)
    assert cls is SleapRTCError or cls.__name__ in _drawn_tree()


def test_a_code_is_kept_as_its_wire_text() -> None:
    exc = RemoteProtocolError("bad frame", code=ErrorCode.INVALID_MESSAGE)
    assert exc.code == "INVALID_MESSAGE"
    assert exc.message == "bad frame"
    assert repr(exc) == "RemoteProtocolError('bad frame', code='INVALID_MESSAGE')"
    assert SleapRTCError("x").code == ErrorCode.INTERNAL_ERROR.value


def test_errors_that_are_also_builtin_kinds_are_caught_as_those() -> None:
    assert issubclass(InvalidState, AssertionError)
    assert issubclass(ChannelAuthFailed, errors.AuthError)
    assert issubclass(ChannelAuthFailed, errors.TransportError)
