"""A job's channel closes soon after its worker leaves the room (real peers)."""

from __future__ import annotations

import asyncio

from sleap_rtc_core.client.presence import close_when_peer_leaves
from sleap_rtc_core.signaling.service import Service
from tests.fixtures.signaling import RoomCreds
from tests.fixtures.timing import scaled
from tests.fixtures.transport import ChannelPair, make_signaling


async def test_the_channel_closes_when_the_worker_leaves(
    channel_pair: ChannelPair,
) -> None:
    client = channel_pair.transport.signaling.client
    async with close_when_peer_leaves(client, "w", channel_pair.client, grace=0.2):
        await channel_pair.transport.signaling.worker.close()  # the worker dies
        await asyncio.wait_for(channel_pair.client.closed.wait(), scaled(5))
    assert "left the room" in (channel_pair.client.close_reason or "")


async def test_a_worker_that_comes_back_keeps_its_channel(
    channel_pair: ChannelPair, service: Service, room: RoomCreds
) -> None:
    client = channel_pair.transport.signaling.client
    async with close_when_peer_leaves(client, "w", channel_pair.client, grace=5.0):
        await channel_pair.transport.signaling.worker.close()
        again = make_signaling(service.server.url, room, "w", "worker")
        await again.start(timeout=scaled(5))
        try:
            await asyncio.sleep(scaled(0.3))
            assert not channel_pair.client.closed.is_set()
        finally:
            await again.close()
