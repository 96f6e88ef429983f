"""Offer/answer through the real signaling server, two real aiortc peers.

Every test connects a client (:func:`open_channel`) to a worker
(:class:`ChannelAcceptor`) over 127.0.0.1 and checks what both sides see.
"""

from __future__ import annotations

import asyncio
import time

import pytest

import sleap_rtc_core
from sleap_rtc_core.errors import IceFailed, PeerNotFound, TransportError
from sleap_rtc_core.protocol import signaling as sig
from sleap_rtc_core.protocol.channel_messages import JobCancelMsg, JobStopMsg
from sleap_rtc_core.signaling.service import Service
from sleap_rtc_core.transport import ChannelAuth, open_channel
from sleap_rtc_core.transport.peer import ice_configuration
from tests.fixtures.signaling import RoomCreds
from tests.fixtures.timing import async_wait_until, scaled
from tests.fixtures.transport import (
    SignalingPair,
    TransportPair,
    assert_no_new_tasks,
    make_signaling,
)


async def test_client_and_worker_get_an_authenticated_channel(
    transport_pair: TransportPair, room_secret: str
) -> None:
    auth = ChannelAuth(secret=room_secret)
    async with transport_pair.acceptor(auth):
        client = await open_channel(
            transport_pair.signaling.client, "w", auth=auth, timeout=scaled(10)
        )
        async with client:
            worker = await transport_pair.worker_channel()
            assert client.authenticated
            assert worker.authenticated
            assert client.peer_id == "w"
            assert worker.peer_id == "c"
            await client.send(JobStopMsg())
            assert await worker.recv(timeout=scaled(5)) == JobStopMsg()
            await worker.send(JobCancelMsg())
            assert await client.recv(timeout=scaled(5)) == JobCancelMsg()


async def test_the_offer_carries_sender_target_and_our_version_never_role(
    signaling_pair: SignalingPair, room_secret: str
) -> None:
    auth = ChannelAuth(secret=room_secret)
    async with signaling_pair.worker.subscribe("offer") as offers:
        opening = asyncio.create_task(
            open_channel(signaling_pair.client, "w", auth=auth, timeout=scaled(0.5))
        )
        offer = await offers.get(timeout=scaled(5))
        with pytest.raises(IceFailed):
            await opening
    assert isinstance(offer, sig.Offer)
    assert offer.sender == "c"
    assert offer.target == "w"
    # ``"role":"client"`` would make a 0.0.7 worker skip AUTH_CHALLENGE.
    assert "role" not in offer.extra
    assert offer.extra["sleap_rtc_version"] == sleap_rtc_core.__version__
    assert "m=application" in offer.sdp
    assert "127.0.0.1" in offer.sdp


async def test_only_the_worker_can_refuse_the_connection(
    signaling_pair: SignalingPair, service: Service, room: RoomCreds, room_secret: str
) -> None:
    """Another room member's relayed "refusal" is ignored (the server stamps
    who sent it); the worker's own refusal ends the attempt."""
    auth = ChannelAuth(secret=room_secret)
    refusal = sig.ErrorMessage(target="c", reason="worker_busy", message="busy")
    async with make_signaling(service.server.url, room, "mallory", "client") as m:
        async with signaling_pair.worker.subscribe("offer") as offers:
            opening = asyncio.create_task(
                open_channel(signaling_pair.client, "w", auth=auth, timeout=scaled(1))
            )
            await offers.get(timeout=scaled(5))
            await m.send(refusal)
            with pytest.raises(IceFailed, match="no answer"):
                await opening
            opening = asyncio.create_task(
                open_channel(signaling_pair.client, "w", auth=auth, timeout=scaled(5))
            )
            await offers.get(timeout=scaled(5))
            await signaling_pair.worker.send(refusal)
            with pytest.raises(TransportError, match="refused the connection: busy"):
                await opening


async def test_no_answer_is_ice_failed_within_the_timeout(
    signaling_pair: SignalingPair, room_secret: str
) -> None:
    started = time.monotonic()
    with pytest.raises(IceFailed, match="no answer"):
        await open_channel(
            signaling_pair.client,
            "w",
            auth=ChannelAuth(secret=room_secret),
            timeout=scaled(0.5),
        )
    assert time.monotonic() - started < scaled(5)


async def test_unknown_peer_is_peer_not_found(
    signaling_pair: SignalingPair, room_secret: str
) -> None:
    with pytest.raises(PeerNotFound):
        await open_channel(
            signaling_pair.client,
            "nobody",
            auth=ChannelAuth(secret=room_secret),
            timeout=scaled(5),
        )


async def test_an_answer_that_never_connects_is_ice_failed(
    signaling_pair: SignalingPair, room_secret: str
) -> None:
    """The worker answers with an SDP whose candidates lead nowhere."""
    from aiortc import RTCPeerConnection, RTCSessionDescription

    worker = signaling_pair.worker
    pc = RTCPeerConnection(ice_configuration(worker))

    async def answer_badly() -> None:
        async with worker.subscribe("offer") as offers:
            offer = await offers.get(timeout=scaled(5))
            assert isinstance(offer, sig.Offer)
            await pc.setRemoteDescription(RTCSessionDescription(offer.sdp, "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            sdp = pc.localDescription.sdp.replace("127.0.0.1", "127.0.0.254")
            sdp = "\n".join(
                line for line in sdp.splitlines() if "a=candidate" not in line
            )
            await worker.send(sig.Answer(target="c", sdp=sdp + "\n", sender="w"))

    answering = asyncio.create_task(answer_badly())
    started = time.monotonic()
    try:
        with pytest.raises(IceFailed):
            await open_channel(
                signaling_pair.client,
                "w",
                auth=ChannelAuth(secret=room_secret),
                timeout=scaled(2),
            )
        assert time.monotonic() - started < scaled(8)
        await answering
    finally:
        await pc.close()


async def test_clean_close_from_the_client_reaches_the_worker(
    transport_pair: TransportPair, room_secret: str
) -> None:
    auth = ChannelAuth(secret=room_secret)
    before = asyncio.all_tasks()
    async with transport_pair.acceptor(auth) as acceptor:
        client = await open_channel(
            transport_pair.signaling.client, "w", auth=auth, timeout=scaled(10)
        )
        worker = await transport_pair.worker_channel()
        await client.close()
        assert client.closed.is_set()
        await asyncio.wait_for(worker.closed.wait(), scaled(10))
        await async_wait_until(lambda: not acceptor.channels, scaled(5))
    await assert_no_new_tasks(before)


async def test_clean_close_from_the_worker_reaches_the_client(
    transport_pair: TransportPair, room_secret: str
) -> None:
    auth = ChannelAuth(secret=room_secret)
    before = asyncio.all_tasks()
    async with transport_pair.acceptor(auth):
        client = await open_channel(
            transport_pair.signaling.client, "w", auth=auth, timeout=scaled(10)
        )
        await transport_pair.worker_channel()
        transport_pair.release.set()  # the handler returns: the worker closes
        await asyncio.wait_for(client.closed.wait(), scaled(10))
        await client.close()
    await assert_no_new_tasks(before)


async def test_closing_the_acceptor_closes_its_channels(
    transport_pair: TransportPair, room_secret: str
) -> None:
    auth = ChannelAuth(secret=room_secret)
    before = asyncio.all_tasks()
    acceptor = transport_pair.acceptor(auth)
    await acceptor.start()
    client = await open_channel(
        transport_pair.signaling.client, "w", auth=auth, timeout=scaled(10)
    )
    worker = await transport_pair.worker_channel()
    await acceptor.close()
    assert worker.closed.is_set()
    await asyncio.wait_for(client.closed.wait(), scaled(10))
    await client.close()
    await assert_no_new_tasks(before)


async def test_offers_beyond_max_connections_are_not_answered(
    transport_pair: TransportPair, room_secret: str
) -> None:
    auth = ChannelAuth(secret=room_secret)
    before = asyncio.all_tasks()
    async with transport_pair.acceptor(auth, max_connections=0):
        with pytest.raises(IceFailed, match="no answer"):
            await open_channel(
                transport_pair.signaling.client, "w", auth=auth, timeout=scaled(0.5)
            )
    await assert_no_new_tasks(before)


async def test_failed_set_up_leaves_no_tasks(
    signaling_pair: SignalingPair, room_secret: str
) -> None:
    before = asyncio.all_tasks()
    with pytest.raises(IceFailed):
        await open_channel(
            signaling_pair.client,
            "w",
            auth=ChannelAuth(secret=room_secret),
            timeout=scaled(0.3),
        )
    await assert_no_new_tasks(before)


async def test_offers_that_never_complete_cannot_lock_out_a_real_client(
    transport_pair: TransportPair,
    service: Service,
    room: RoomCreds,
    room_secret: str,
) -> None:
    """A room member floods the worker with 20 offers whose peer connections it
    drops at once: at most two of them are set up at a time, each for a few
    seconds, and a real client connects meanwhile."""
    from aiortc import RTCPeerConnection

    auth = ChannelAuth(secret=room_secret)
    async with make_signaling(service.server.url, room, "evil", "client") as evil:
        async with transport_pair.acceptor(auth, setup_timeout=scaled(2)) as acceptor:
            for _ in range(20):
                pc = RTCPeerConnection(ice_configuration(evil))
                pc.createDataChannel("x")
                await pc.setLocalDescription(await pc.createOffer())
                await evil.send(
                    sig.Offer(target="w", sdp=pc.localDescription.sdp, sender="evil")
                )
                await pc.close()  # never completes
            await async_wait_until(lambda: len(acceptor._tasks) >= 1, scaled(5))
            assert len(acceptor._tasks) <= acceptor.max_setups_per_peer
            client = await open_channel(
                transport_pair.signaling.client, "w", auth=auth, timeout=scaled(10)
            )
            await transport_pair.worker_channel()
            await client.close()
            # The hostile set-ups are dropped after setup_timeout.
            await async_wait_until(lambda: not acceptor._setups, scaled(10))


async def test_a_worker_refusing_legacy_clients_says_why_and_serves_ours(
    transport_pair: TransportPair, room_secret: str
) -> None:
    """An offer without our version marker (as sleap-rtc 0.0.7 sends it) gets a
    relayed ``error`` with a reason; our own client still connects."""
    auth = ChannelAuth(secret=room_secret)
    client = transport_pair.signaling.client
    async with transport_pair.acceptor(auth, accept_legacy=False):
        async with client.subscribe("error", "answer") as inbox:
            await client.send(sig.Offer(target="w", sdp="v=0", sender="c"))
            refusal = await inbox.get(timeout=scaled(5))
        assert isinstance(refusal, sig.ErrorMessage)
        assert refusal.reason == "legacy_client_refused"
        assert refusal.target == "c"
        assert "0.0.7" in (refusal.message or "")
        channel = await open_channel(client, "w", auth=auth, timeout=scaled(10))
        async with channel:
            assert channel.authenticated
