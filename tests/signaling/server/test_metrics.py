"""Summing several processes' ``/metrics`` bodies."""

from __future__ import annotations

from sleap_rtc_core.signaling.server.metrics import sum_metrics


def test_numbers_add_objects_merge_and_clock_keys_are_left_out() -> None:
    a = {
        "active_connections": 2,
        "errors": {"PEER_NOT_FOUND": 1},
        "redis": {"lookups": 3},
        "timestamp": "2025-01-01T00:00:00Z",
        "uptime_seconds": 5.0,
    }
    b = {"active_connections": 3, "errors": {"RATE_LIMITED": 2, "PEER_NOT_FOUND": 1}}
    assert sum_metrics([a, b]) == {
        "active_connections": 5,
        "errors": {"PEER_NOT_FOUND": 2, "RATE_LIMITED": 2},
        "redis": {"lookups": 3},
    }
    assert sum_metrics([]) == {}
