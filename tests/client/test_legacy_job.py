"""Telling a sleap-rtc 0.0.7 worker by its registration
(:func:`~sleap_rtc_core.client.legacy_job.is_legacy_worker`), on a real server
with real signaling clients. A :class:`LegacyJob` training on the real 0.0.7
worker (its one-model runs, the folders found afterwards) runs in
``tests/interop/test_legacy_peers.py``."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from sleap_rtc_core.client.legacy_job import is_legacy_worker
from sleap_rtc_core.protocol import signaling as sig
from sleap_rtc_core.protocol.dialect import VERSION_KEY
from sleap_rtc_core.signaling.client.session_io import Backoff, SignalingClient
from sleap_rtc_core.signaling.service import Service
from tests.fixtures.signaling import RoomCreds
from tests.fixtures.timing import scaled

FAST = Backoff(initial=0.05, cap=0.2)


def peer(
    svc: Service, room: RoomCreds, peer_id: str, role: str, properties: dict[str, Any]
) -> SignalingClient:
    register = sig.Register(
        peer_id=peer_id,
        role=role,
        room_id=room.room_id,
        token=room.token,
        metadata={"tags": ["sleap-rtc"], "properties": properties},
    )
    return SignalingClient(svc.server.url, register, backoff=FAST)


async def test_a_worker_without_our_version_marker_is_a_0_0_7_one(
    service: Service, room: RoomCreds
) -> None:
    async with AsyncExitStack() as stack:
        workers = {
            "old": {"status": "available", "gpu_memory_mb": 24576},  # 0.0.7's
            "new": {"status": "available", VERSION_KEY: "1.0.0"},
            "bare": {},  # nothing to tell by: taken as current
        }
        for name, properties in workers.items():
            worker = await stack.enter_async_context(
                peer(service, room, name, "worker", properties)
            )
            await worker.wait_registered(scaled(10))
        client = await stack.enter_async_context(
            peer(service, room, "client", "client", {})
        )
        await client.wait_registered(scaled(10))
        assert await is_legacy_worker(client, "old")
        assert not await is_legacy_worker(client, "new")
        assert not await is_legacy_worker(client, "bare")
        assert not await is_legacy_worker(client, "gone")  # not in the room
