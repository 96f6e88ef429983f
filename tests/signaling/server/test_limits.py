"""Server limits as configuration (sleap_rtc_core.signaling.server.limits)."""

from __future__ import annotations

import pytest

from sleap_rtc_core.signaling.server.limits import (
    LIMIT_NAMES,
    Limits,
    limits_from,
    parse_limit,
)


def test_every_limit_can_be_set_by_name() -> None:
    values = {
        name: (7 if isinstance(getattr(Limits(), name), int) else 0.5)
        for name in LIMIT_NAMES
    }
    limits = limits_from(values)
    assert all(getattr(limits, name) == value for name, value in values.items())
    assert limits_from({}) == Limits()
    assert limits_from({"burst": 10.0}).burst == 10  # a whole float is fine


@pytest.mark.parametrize(
    ("values", "said"),
    [
        ({"nope": 1}, "unknown limit 'nope'; the limits are: max_frame_bytes"),
        ({"burst": 0}, "above zero"),
        ({"burst": 1.5}, "whole number"),
        ({"burst": True}, "must be a number"),
        ({"head_timeout": "1"}, "must be a number"),
        ({"head_timeout": float("inf")}, "above zero"),
    ],
)
def test_bad_limits_are_refused(values: dict[str, object], said: str) -> None:
    with pytest.raises(ValueError, match=said):
        limits_from(values)


def test_parse_limit() -> None:
    assert parse_limit("burst=50") == ("burst", 50)
    assert parse_limit(" head_timeout = 2.5") == ("head_timeout", 2.5)
    for bad in ("burst", "=3", "burst=x", "burst=inf"):
        with pytest.raises(ValueError, match="NAME=NUMBER"):
            parse_limit(bad)
