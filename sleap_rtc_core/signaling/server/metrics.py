"""``/metrics`` bodies: the reference JSON keys, and Prometheus text format.

The JSON keeps every key of the reference server (PROTOCOL.md B §1.8) so that
existing dashboards keep working, and adds ours (errors by code, limit crossings,
open connections, uptime). Those top-level keys always describe *this* process.

Several processes on one Redis: each publishes its body there every refresh
interval (the backend's task), and the body gains ``cluster``, the sum over the
live processes (this one's figures fresh, the others' as last published)::

    "cluster": {"processes": 3, "nodes": ["host-12-ab", ...],
                "active_connections": 812, "total_messages": 91234,
                "errors": {"PEER_NOT_FOUND": 4}, ...}

Every number is summed, nested objects key by key; ``timestamp`` and
``uptime_seconds`` are left out. Peers are held by one process each, so the
connection and peer counts are exact; ``active_rooms`` counts a room once per
process that serves one of its peers. A process that dies leaves the sum
within the Redis TTL. Without Redis there is no ``cluster`` key.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .router_io import SignalingServer

__all__ = ["local_metrics", "metrics_json", "metrics_prometheus", "sum_metrics"]

NOT_SUMMED = frozenset({"timestamp", "uptime_seconds"})
"""Keys of a process's body that mean nothing summed."""


def sum_metrics(bodies: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The sum of several processes' bodies: numbers added, objects merged key
    by key, anything else (and :data:`NOT_SUMMED`) left out."""
    out: dict[str, Any] = {}
    for body in bodies:
        for key, value in body.items():
            if key in NOT_SUMMED:
                continue
            if isinstance(value, bool):
                continue
            if isinstance(value, int | float):
                current = out.get(key, 0)
                if isinstance(current, int | float):
                    out[key] = current + value
            elif isinstance(value, Mapping):
                current = out.get(key)
                merged = sum_metrics([current, value] if current else [value])
                out[key] = merged
    return out


def metrics_json(server: SignalingServer) -> dict[str, Any]:
    """The JSON ``/metrics`` body: this process, and the sum over the live
    processes when a backend shares them."""
    body = local_metrics(server)
    others: Callable[[], dict[str, dict[str, Any]]] | None = getattr(
        server.backend, "cluster_metrics", None
    )
    if others is not None:
        bodies = {**others(), getattr(server.backend, "node", "local"): body}
        body["cluster"] = {
            "processes": len(bodies),
            "nodes": sorted(bodies),
            **sum_metrics(list(bodies.values())),
        }
    return body


def local_metrics(server: SignalingServer) -> dict[str, Any]:
    """This process's figures (what it publishes for the cluster's sum)."""
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
    cluster = m.get("cluster")
    if cluster is not None:
        gauge("cluster_processes", "Live server processes.", cluster["processes"])
        gauge(
            "cluster_active_connections",
            "Registered peers, all processes.",
            cluster.get("active_connections", 0),
        )
        gauge(
            "cluster_messages_total",
            "Messages relayed, all processes.",
            cluster.get("total_messages", 0),
            "counter",
        )
    return "\n".join(lines) + "\n"
