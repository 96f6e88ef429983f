"""Tests of :mod:`sleap_rtc_core.progress.held_xpub` over real ZMQ on loopback.

The owner's side is an asyncio XPUB bound to a free port with a task that hands
each subscription frame to the :class:`HeldXPub`, as ``TrainerLink`` and
``ProgressBridge`` do; the subscriber is a plain blocking SUB that connects late.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import zmq
import zmq.asyncio

from sleap_rtc_core.errors import InvalidState
from sleap_rtc_core.progress.held_xpub import HeldXPub, bound_port
from tests.fixtures.timing import async_wait_until, scaled


@dataclass
class Owner:
    """The XPUB side: its socket, its publisher, and the port it is bound to."""

    socket: zmq.asyncio.Socket
    out: HeldXPub
    port: int


@pytest.fixture
def sync_ctx() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


async def _pump(owner: Owner) -> None:
    while True:
        owner.out.on_subscription(await owner.socket.recv())


@contextlib.asynccontextmanager
async def _owner(max_held: int = 10) -> AsyncIterator[Owner]:
    socket = zmq.asyncio.Context.instance().socket(zmq.XPUB)
    out = HeldXPub(socket, max_held=max_held, name="test subscriber")
    socket.bind("tcp://127.0.0.1:0")
    owner = Owner(socket, out, bound_port(socket))
    reader = asyncio.get_running_loop().create_task(_pump(owner))
    try:
        yield owner
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        out.discard()
        socket.close(linger=0)


def _subscriber(ctx: zmq.Context[zmq.Socket[bytes]], port: int) -> zmq.Socket[bytes]:
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RCVTIMEO, int(scaled(5) * 1000))
    sub.subscribe("")
    sub.connect(f"tcp://127.0.0.1:{port}")
    return sub


async def _receive(sub: zmq.Socket[bytes], n: int) -> list[str]:
    return await asyncio.to_thread(lambda: [sub.recv_string() for _ in range(n)])


async def test_messages_before_the_first_subscriber_arrive_in_order(
    sync_ctx: zmq.Context[zmq.Socket[bytes]],
) -> None:
    async with _owner() as owner:
        assert [owner.out.publish(f"m{i}") for i in range(3)] == [False] * 3
        assert owner.out.held == 3
        sub = _subscriber(sync_ctx, owner.port)
        await owner.out.wait_subscribed()
        assert owner.out.publish("m3") is True
        assert await _receive(sub, 4) == ["m0", "m1", "m2", "m3"]
        assert owner.out.sent == 4
        assert owner.out.dropped == 0


async def test_the_oldest_held_messages_are_dropped_beyond_the_bound(
    sync_ctx: zmq.Context[zmq.Socket[bytes]],
) -> None:
    async with _owner(max_held=2) as owner:
        for i in range(5):
            owner.out.publish(f"m{i}")
        assert owner.out.dropped == 3
        sub = _subscriber(sync_ctx, owner.port)
        await owner.out.wait_subscribed()
        owner.out.publish("last")
        assert await _receive(sub, 3) == ["m3", "m4", "last"]


async def test_messages_are_held_again_once_the_subscriber_leaves(
    sync_ctx: zmq.Context[zmq.Socket[bytes]],
) -> None:
    async with _owner() as owner:
        first = _subscriber(sync_ctx, owner.port)
        await owner.out.wait_subscribed()
        assert owner.out.subscribed
        first.close(linger=0)
        await async_wait_until(lambda: not owner.out.subscribed, timeout=scaled(5))
        assert owner.out.publish("for the next one") is False
        second = _subscriber(sync_ctx, owner.port)
        assert await _receive(second, 1) == ["for the next one"]


async def test_discard_counts_what_was_held_and_stops_publishing() -> None:
    async with _owner() as owner:
        owner.out.publish("never sent")
        owner.out.publish("nor this")
        assert owner.out.discard() == 2
        assert owner.out.dropped == 2
        with pytest.raises(InvalidState):
            owner.out.publish("too late")


async def test_only_an_xpub_socket_is_accepted() -> None:
    socket = zmq.asyncio.Context.instance().socket(zmq.PUB)
    try:
        with pytest.raises(InvalidState):
            HeldXPub(socket, max_held=1, name="x")
        with pytest.raises(ValueError, match="max_held"):
            HeldXPub(socket, max_held=0, name="x")
    finally:
        socket.close(linger=0)
