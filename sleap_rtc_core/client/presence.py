"""Notice at once when the worker of a running job leaves the room.

A worker that dies (SIGKILL, power loss) leaves its data channel open on our
side until aiortc's ICE consent checks give up, about 30 s later. The signaling
server announces ``peer_left`` at once, so a job's client watches for it and
closes the channel itself when the worker does not come back within ``grace``
seconds (a worker whose signaling socket merely reconnects is back quickly and
its data channel, being peer-to-peer, never dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from ..protocol import signaling as sig
from ..signaling.client.session_io import SignalingClient, Subscription
from ..transport.channel import Channel

__all__ = ["DEFAULT_GRACE", "close_when_peer_leaves"]

logger = logging.getLogger(__name__)

DEFAULT_GRACE = 3.0
"""Seconds a departed worker has to register again before its channel is
closed."""


@contextlib.asynccontextmanager
async def close_when_peer_leaves(
    signaling: SignalingClient,
    peer_id: str,
    channel: Channel,
    grace: float = DEFAULT_GRACE,
) -> AsyncIterator[None]:
    """While the block runs, close ``channel`` if ``peer_id`` leaves the room
    and stays away ``grace`` seconds (the channel's reader then sees it closed)."""
    async with signaling.subscribe("peer_left", "peer_joined") as presence:
        watcher = asyncio.create_task(
            _watch(presence, peer_id, channel, grace), name=f"presence {peer_id}"
        )
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


async def _watch(
    presence: Subscription, peer_id: str, channel: Channel, grace: float
) -> None:
    while True:
        message = await presence.get()
        if not (isinstance(message, sig.PeerLeft) and message.peer_id == peer_id):
            continue
        if await _returns(presence, peer_id, grace):
            continue
        logger.info("! worker %s left the room; closing its channel", peer_id)
        await channel.close(f"worker {peer_id} left the room")
        return


async def _returns(presence: Subscription, peer_id: str, grace: float) -> bool:
    """Whether ``peer_id`` joins again within ``grace`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while (left := deadline - loop.time()) > 0:
        try:
            message = await presence.get(timeout=left)
        except TimeoutError:
            return False
        if isinstance(message, sig.PeerJoined) and message.peer_id == peer_id:
            return True
    return False
