"""Both ends of a real aiortc connection *without* our AUTH handshake: what a
hostile room member holds when it speaks the handshake (or relays it) by hand.

Only loopback candidates are gathered (the ``loopback_ice`` fixture) and the
server hands out no ICE servers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCSessionDescription,
)

from sleap_rtc_core import __version__
from sleap_rtc_core.protocol import signaling as sig
from sleap_rtc_core.protocol.dialect import VERSION_KEY
from sleap_rtc_core.signaling.client.session_io import SignalingClient
from sleap_rtc_core.transport import Channel
from tests.fixtures.timing import scaled

__all__ = ["accept_raw", "open_raw"]


async def open_raw(
    signaling: SignalingClient, target: str, *, current: bool
) -> Channel:
    """An open, unauthenticated channel to ``target``; the offer carries our
    version marker when ``current`` (else it looks like a 0.0.7 client's)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    channel = Channel(pc.createDataChannel("training"), target, pc=pc)
    async with signaling.subscribe("answer") as inbox:
        await pc.setLocalDescription(await pc.createOffer())
        await signaling.send(
            sig.Offer(
                target=target,
                sdp=pc.localDescription.sdp,
                sender=signaling.peer_id,
                extra={VERSION_KEY: __version__} if current else {},
            )
        )
        answer = await inbox.get(timeout=scaled(10))
    assert isinstance(answer, sig.Answer)
    await pc.setRemoteDescription(RTCSessionDescription(answer.sdp, "answer"))
    await channel.wait_open(scaled(10))
    return channel


@asynccontextmanager
async def accept_raw(
    signaling: SignalingClient,
) -> AsyncIterator[asyncio.Future[Channel]]:
    """While open, the first offer to us is answered; the future gets its
    open, unauthenticated channel."""
    loop = asyncio.get_running_loop()
    accepted: asyncio.Future[Channel] = loop.create_future()
    pcs: list[RTCPeerConnection] = []

    async def serve(offers: object) -> None:
        offer = await offers.get()  # type: ignore[attr-defined]
        assert isinstance(offer, sig.Offer)
        assert offer.sender
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pcs.append(pc)
        opened: asyncio.Future[Channel] = loop.create_future()

        def on_datachannel(dc: RTCDataChannel) -> None:
            opened.set_result(Channel(dc, offer.sender or "", pc=pc))

        pc.on("datachannel", on_datachannel)
        await pc.setRemoteDescription(RTCSessionDescription(offer.sdp, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await signaling.send(
            sig.Answer(
                target=offer.sender,
                sdp=pc.localDescription.sdp,
                sender=signaling.peer_id,
            )
        )
        channel = await opened
        await channel.wait_open(scaled(10))
        accepted.set_result(channel)

    async with signaling.subscribe("offer") as offers:
        task = asyncio.create_task(serve(offers))
        try:
            yield accepted
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            if accepted.done() and not accepted.cancelled():
                await accepted.result().close()
            for pc in pcs:
                await pc.close()
