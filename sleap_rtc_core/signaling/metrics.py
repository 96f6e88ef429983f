"""``/metrics`` bodies: the reference JSON keys, and Prometheus text format.

The JSON keeps every key of the reference server (PROTOCOL.md B §1.8) so that
existing dashboards keep working, and adds ours (errors by code, limit crossings,
open connections, uptime).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import SignalingServer

__all__ = ["metrics_json", "metrics_prometheus"]


def metrics_json(server: SignalingServer) -> dict[str, Any]:
    """The JSON ``/metrics`` body."""
    router = server.router
    counters = router.counters
    local_rooms = {s.peer.room_id for s in router.sessions if s.peer is not None}
    return {
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "active_rooms": len(local_rooms),
        "active_connections": sum(1 for s in router.sessions if s.peer is not None),
        "peers_by_role": router.peers_by_role(),
        "total_connections": counters["total_connections"],
        "total_messages": counters["total_messages"],
        "rooms_created": router.registry.rooms_created,
        # Ours.
        "open_connections": len(router.sessions),
        "frames_received": counters["frames_received"],
        "reconnects": counters["reconnects"],
        "errors": dict(router.errors),
        "limits_exceeded": {
            k.removeprefix("limit_"): v
            for k, v in counters.items()
            if k.startswith("limit_")
        },
        "dropped_silent": counters["dropped_silent"],
        "closed_for_abuse": counters["closed_for_abuse"],
        "remote_lookups": counters["remote_lookups"],
        "announcements": {
            k.removeprefix("announce_"): v
            for k, v in counters.items()
            if k.startswith("announce_")
        },
        "redis": {
            k.removeprefix("redis_"): v
            for k, v in counters.items()
            if k.startswith("redis_")
        },
        "uptime_seconds": round(time.time() - server.started_at, 3),
    }


def metrics_prometheus(server: SignalingServer) -> str:
    """``/metrics`` in the Prometheus text exposition format."""
    m = metrics_json(server)
    lines: list[str] = []

    def gauge(name: str, help_: str, value: float, kind: str = "gauge") -> None:
        lines.append(f"# HELP sleap_rtc_{name} {help_}")
        lines.append(f"# TYPE sleap_rtc_{name} {kind}")
        lines.append(f"sleap_rtc_{name} {value}")

    def labelled(name: str, help_: str, label: str, values: dict[str, int]) -> None:
        lines.append(f"# HELP sleap_rtc_{name} {help_}")
        lines.append(f"# TYPE sleap_rtc_{name} counter")
        for key, value in sorted(values.items()):
            lines.append(f'sleap_rtc_{name}{{{label}="{key}"}} {value}')

    gauge("active_rooms", "Rooms with at least one peer.", m["active_rooms"])
    gauge("active_connections", "Registered peers.", m["active_connections"])
    gauge("open_connections", "Open WebSocket connections.", m["open_connections"])
    labelled("peers", "Registered peers by role.", "role", m["peers_by_role"])
    gauge(
        "registrations_total",
        "Successful register messages.",
        m["total_connections"],
        "counter",
    )
    gauge("messages_total", "Messages relayed.", m["total_messages"], "counter")
    gauge("frames_total", "Frames received.", m["frames_received"], "counter")
    labelled(
        "announcements_total",
        "Room announcements by outcome.",
        "outcome",
        m["announcements"],
    )
    labelled("errors_total", "Error replies by code.", "code", m["errors"])
    labelled(
        "limits_exceeded_total",
        "Limit crossings by kind.",
        "kind",
        m["limits_exceeded"],
    )
    gauge("uptime_seconds", "Seconds since start.", m["uptime_seconds"])
    return "\n".join(lines) + "\n"
