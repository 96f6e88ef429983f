"""The peers the bench registers, and the discovery filters it times.

Shared by both sides: the server child seeds discovery rooms with these profiles
and the idle peers of the memory phase register with them, so that metadata
sizes and index shapes look like a real lab's (a fifth workers with GPU tags and
statuses, the rest clients).
"""

from __future__ import annotations

import random
from typing import Any

__all__ = ["DISCOVERY_FILTERS", "peer_profile"]

_GPUS = (
    ("a100", 80_000),
    ("h100", 80_000),
    ("rtx4090", 24_000),
    ("v100", 16_000),
    ("t4", 16_000),
)

DISCOVERY_FILTERS: dict[str, dict[str, Any]] = {
    # What a client looking for one kind of GPU sends: indexes narrow it to one tag.
    "narrow": {
        "role": "worker",
        "tags": ["gpu-a100"],
        "properties": {"status": "available", "gpu_memory_mb": {"$gte": 40000}},
    },
    # Any available worker: narrowed by the status index.
    "available": {"role": "worker", "properties": {"status": "available"}},
    # No indexed clause: every peer of the room is a candidate.
    "unindexed": {"properties": {"gpu_memory_mb": {"$gte": 40000}}},
    # Matches nothing (role index is empty): the round-trip floor.
    "empty": {"role": "nobody"},
}
"""Filter name → the ``filters`` of a ``discover_peers``."""


def peer_profile(i: int) -> tuple[str, dict[str, Any]]:
    """Role and metadata of bench peer ``i``: 20 % workers, 80 % clients.

    Workers carry one of five GPU tags and a status (40 % available, 40 % busy,
    20 % reserved/maintenance); clients are mostly ``idle``. Deterministic in
    ``i`` so that every run sees the same room.
    """
    rng = random.Random(i)
    if i % 5 == 0:
        gpu, mem = _GPUS[rng.randrange(len(_GPUS))]
        status = rng.choices(
            ["available", "busy", "reserved", "maintenance"], [4, 4, 1, 1]
        )[0]
        return "worker", {
            "tags": [
                "sleap-rtc",
                rng.choice(["training-worker", "inference-worker"]),
                f"gpu-{gpu}",
            ],
            "properties": {
                "status": status,
                "gpu_model": gpu,
                "gpu_memory_mb": mem,
                "sleap_version": "1.6.6",
                "hostname": f"gpu-node-{i:05d}",
            },
        }
    return "client", {
        "tags": ["sleap-rtc", "client"],
        "properties": {
            "status": rng.choice(["idle", "idle", "idle", "busy"]),
            "sleap_version": "1.6.6",
            "hostname": f"lab-pc-{i:05d}",
        },
    }
