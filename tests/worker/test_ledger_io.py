"""The signaling worker against a real server that limits metadata updates: a
stranger's flood of requests cannot stop it or leave a wrong status behind."""

from __future__ import annotations

from contextlib import AsyncExitStack

import pytest

from sleap_rtc_core.protocol.negotiation import JobCancel, JobRequest
from sleap_rtc_core.signaling.server.limits import Limits
from sleap_rtc_core.signaling.server.router_io import ServerConfig
from sleap_rtc_core.signaling.service import Service
from tests.client.test_negotiator import make_client, make_worker
from tests.fixtures.signaling import RoomCreds, peer_status
from tests.fixtures.timing import async_wait_until, scaled


@pytest.fixture
def server_config() -> ServerConfig:
    limits = Limits(metadata_burst=2, metadata_updates_per_second=4.0)
    return ServerConfig(host="127.0.0.1", port=0, ping_interval=60.0, limits=limits)


async def test_a_refused_status_update_is_published_again(
    service: Service, room: RoomCreds
) -> None:
    async with AsyncExitStack() as stack:
        worker = await stack.enter_async_context(make_worker(service, room, "w"))
        client = await stack.enter_async_context(
            make_client(service.server.url, room, "mallory")
        )
        # Each request and cancel flips the status: more updates than allowed.
        for i in range(8):
            job = f"flood-{i}"
            await client.send_peer_message("w", JobRequest(job_id=job).to_dict())
            await client.send_peer_message("w", JobCancel(job_id=job).to_dict())
        await async_wait_until(
            lambda: service.server.router.counters["limit_metadata_rate"] > 0,
            timeout=scaled(10),
        )
        # The worker lives on, and the room sees its true status again.
        await async_wait_until(
            lambda: (
                peer_status(service, room, "w") == "available"
                and not worker.ledger.slots
            ),
            timeout=scaled(10),
        )
        await client.send_peer_message("w", JobRequest(job_id="real").to_dict())
        await async_wait_until(
            lambda: peer_status(service, room, "w") == "reserved", timeout=scaled(10)
        )
