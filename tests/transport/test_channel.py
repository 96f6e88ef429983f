"""The channel wrapper over a real aiortc data channel: typed messages, bytes,
keep-alives, requests, subscriptions, bad frames, flow control and close."""

from __future__ import annotations

import asyncio

import pytest

from sleap_rtc_core.errors import ChannelClosed
from sleap_rtc_core.protocol.channel import KEEP_ALIVE, LogLine
from sleap_rtc_core.protocol.channel_fs import (
    FsErrorCode,
    FsErrorMsg,
    FsGetMountsMsg,
    FsMountsResponseMsg,
)
from sleap_rtc_core.protocol.channel_legacy import ErrorMsg
from sleap_rtc_core.protocol.channel_messages import (
    JobCancelMsg,
    JobStopMsg,
    ModelTypeMsg,
    ProgressReportMsg,
)
from sleap_rtc_core.transport import ChannelAuth, open_channel
from tests.fixtures.timing import async_wait_until, scaled
from tests.fixtures.transport import ChannelPair, TransportPair


async def test_typed_messages_and_log_lines_both_ways(
    channel_pair: ChannelPair,
) -> None:
    client, worker = channel_pair.client, channel_pair.worker
    await worker.send(ModelTypeMsg("centroid"))
    await worker.send("Epoch 1/2 :: loss 0.5\n")
    assert await client.recv(scaled(5)) == ModelTypeMsg("centroid")
    assert await client.recv(scaled(5)) == LogLine("Epoch 1/2 :: loss 0.5\n")
    await client.send(JobStopMsg())
    assert await worker.recv(scaled(5)) == JobStopMsg()


async def test_bytes_keep_their_boundaries_and_content(
    channel_pair: ChannelPair,
) -> None:
    client, worker = channel_pair.client, channel_pair.worker
    await client.send_bytes(b"abc")
    await client.send_bytes(b"")  # nothing at all
    await client.send_bytes(KEEP_ALIVE)  # file data that looks like a keep-alive
    await client.send(JobStopMsg())
    got = [await worker.recv(scaled(5)) for _ in range(4)]
    assert got[0] == b"abc"
    assert b"".join(got[1:3]) == KEEP_ALIVE  # split in two frames, not dropped
    assert got[3] == JobStopMsg()


async def test_keep_alives_are_never_seen_as_data(
    transport_pair: TransportPair, room_secret: str
) -> None:
    auth = ChannelAuth(secret=room_secret)
    interval = scaled(0.02)
    async with transport_pair.acceptor(auth, keepalive_interval=interval):
        client = await open_channel(
            transport_pair.signaling.client,
            "w",
            auth=auth,
            timeout=scaled(10),
            keepalive_interval=interval,
        )
        async with client:
            worker = await transport_pair.worker_channel()
            # Keep-alives from the peer's own timer, plus raw ones by hand.
            worker._dc.send(KEEP_ALIVE)
            worker._dc.send("KEEP_ALIVE")
            await asyncio.sleep(interval * 10)  # let several timers fire
            await worker.send_bytes(b"data")
            assert await client.recv(scaled(5)) == b"data"
            with pytest.raises(TimeoutError):
                await client.recv(timeout=interval * 5)
            assert client._queued == 0


async def test_request_matches_its_reply_and_leaves_the_rest(
    channel_pair: ChannelPair,
) -> None:
    client, worker = channel_pair.client, channel_pair.worker

    async def serve() -> None:
        assert await worker.recv(scaled(5)) == FsGetMountsMsg()
        await worker.send(ModelTypeMsg("centroid"))  # not the reply
        await worker.send(FsMountsResponseMsg([{"path": "/data", "label": "d"}]))

    serving = asyncio.create_task(serve())
    reply = await client.request(
        FsGetMountsMsg(), (FsMountsResponseMsg, FsErrorMsg), scaled(5)
    )
    await serving
    assert isinstance(reply, FsMountsResponseMsg)
    assert await client.recv(scaled(5)) == ModelTypeMsg("centroid")


async def test_request_times_out_and_a_late_reply_goes_to_recv(
    channel_pair: ChannelPair,
) -> None:
    client, worker = channel_pair.client, channel_pair.worker
    with pytest.raises(TimeoutError):
        await client.request(FsGetMountsMsg(), (FsMountsResponseMsg,), scaled(0.2))
    assert await worker.recv(scaled(5)) == FsGetMountsMsg()
    await worker.send(FsMountsResponseMsg([]))
    assert await client.recv(scaled(5)) == FsMountsResponseMsg([])
    assert not client._waiters


async def test_pending_request_fails_when_the_channel_closes(
    channel_pair: ChannelPair,
) -> None:
    client, worker = channel_pair.client, channel_pair.worker
    pending = asyncio.create_task(
        client.request(FsGetMountsMsg(), (FsMountsResponseMsg,), scaled(10))
    )
    assert await worker.recv(scaled(5)) == FsGetMountsMsg()
    await worker.close()
    with pytest.raises(ChannelClosed):
        await pending


async def test_subscription_diverts_its_types(channel_pair: ChannelPair) -> None:
    client, worker = channel_pair.client, channel_pair.worker
    with client.subscribe(ProgressReportMsg) as progress:
        await worker.send(ProgressReportMsg('{"event": "train_begin"}'))
        await worker.send(JobCancelMsg())
        got = await progress.get(scaled(5))
        assert isinstance(got, ProgressReportMsg)
        assert await client.recv(scaled(5)) == JobCancelMsg()
    await worker.send(ProgressReportMsg('{"event": "train_end"}'))
    assert isinstance(await client.recv(scaled(5)), ProgressReportMsg)


async def test_bad_frames_are_answered_and_the_reader_survives(
    channel_pair: ChannelPair,
) -> None:
    client, worker = channel_pair.client, channel_pair.worker
    await worker.send("NOT_A_TYPE::x")
    await worker.send("JOB_SUBMIT::{broken")
    await worker.send("FS_SCAN_DIR::{not json")
    await worker.send(ModelTypeMsg("still fine"))
    assert await client.recv(scaled(5)) == ModelTypeMsg("still fine")
    first = await worker.recv(scaled(5))
    second = await worker.recv(scaled(5))
    third = await worker.recv(scaled(5))
    assert isinstance(first, ErrorMsg)
    assert first.text.startswith("UNKNOWN_MESSAGE_TYPE")
    assert isinstance(second, ErrorMsg)
    assert isinstance(third, FsErrorMsg)
    assert third.code is FsErrorCode.INVALID_REQUEST
    # An error is never answered with an error: no ping-pong.
    await worker.send("ERROR::UNKNOWN_MESSAGE_TYPE: x")
    await client.send(JobStopMsg())
    assert await worker.recv(scaled(5)) == JobStopMsg()


async def test_send_waits_on_the_buffer_and_never_overfills_it(
    channel_pair: ChannelPair,
) -> None:
    client, worker = channel_pair.client, channel_pair.worker
    high = client._high_water
    chunk = bytes(64 << 10)
    total = 4 << 20
    peak = 0

    async def drain() -> int:
        got = 0
        while got < total:
            item = await worker.recv(scaled(10))
            assert isinstance(item, bytes)
            got += len(item)
        return got

    draining = asyncio.create_task(drain())
    for _ in range(total // len(chunk)):
        await client.send_bytes(chunk)
        peak = max(peak, client.buffered_amount)
    assert await asyncio.wait_for(draining, scaled(30)) == total
    assert peak <= high + len(chunk)


async def test_an_unread_flood_closes_the_channel_instead_of_growing(
    channel_pair: ChannelPair,
) -> None:
    client, worker = channel_pair.client, channel_pair.worker
    worker._max_queue = 5
    for _ in range(20):
        await client.send_bytes(b"x" * 100)
    await asyncio.wait_for(worker.closed.wait(), scaled(5))
    assert "overflow" in worker.close_reason
    # What was queued is still delivered, then the close.
    delivered = [item async for item in worker]  # ends at the close
    assert delivered
    assert set(delivered) == {b"x" * 100}
    with pytest.raises(ChannelClosed):
        await worker.recv(scaled(1))


async def test_close_is_idempotent_and_sending_after_it_fails(
    channel_pair: ChannelPair,
) -> None:
    client, worker = channel_pair.client, channel_pair.worker
    await client.send(JobStopMsg())
    await client.close()
    await client.close()
    assert client.closed.is_set()
    assert not client.is_open
    with pytest.raises(ChannelClosed):
        await client.send(JobStopMsg())
    with pytest.raises(ChannelClosed):
        await client.send_bytes(b"x")
    with pytest.raises(ChannelClosed):
        await client.recv(scaled(1))
    await async_wait_until(lambda: worker.closed.is_set(), scaled(5))
    # The message sent before the close still arrives.
    assert await worker.recv(scaled(1)) == JobStopMsg()
    with pytest.raises(ChannelClosed):
        await worker.recv(scaled(1))
