"""ProgressBridge against real ZMQ sockets that stand in for SLEAP's LossViewer.

The stand-in binds what LossViewer binds (a SUB for progress, a PUB for
commands) on free loopback ports; the bridge connects to them like a local
trainer would. Events must arrive exactly as the trainer's JSON text.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import zmq
import zmq.asyncio

from sleap_rtc_core.errors import InvalidState, RemoteProtocolError
from sleap_rtc_core.progress.zmq_bridge import (
    DEFAULT_CONTROLLER_PORT,
    DEFAULT_PUBLISH_PORT,
    ProgressBridge,
    encode_event,
)
from tests.fixtures.timing import async_wait_until, scaled

# What sleap-nn's ProgressReporterZMQ sends (jsonpickle of a plain dict).
TRAINER_EVENTS = [
    '{"what": "", "event": "train_begin", "logs": null, "wandb_url": null}',
    '{"what": "", "event": "epoch_begin", "logs": null, "epoch": 0}',
    '{"what": "", "event": "batch_end", "logs": {"train/loss": 0.9}, '
    '"epoch": 0, "batch": 0}',
    '{"what": "", "event": "epoch_end", "logs": {"train/loss": 0.8, '
    '"val/loss": 0.7}, "epoch": 0}',
    '{"what": "", "event": "train_end", "logs": null}',
]


class LossViewerStandIn:
    """Binds a SUB (progress) and a PUB (controller) as LossViewer does."""

    def __init__(self) -> None:
        self.ctx = zmq.asyncio.Context.instance()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.subscribe("")
        self.sub.bind("tcp://127.0.0.1:0")
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.bind("tcp://127.0.0.1:0")

    @property
    def publish_port(self) -> int:
        return int(self.sub.getsockopt_string(zmq.LAST_ENDPOINT).rsplit(":", 1)[1])

    @property
    def controller_port(self) -> int:
        return int(self.pub.getsockopt_string(zmq.LAST_ENDPOINT).rsplit(":", 1)[1])

    async def recv(self) -> str:
        return str(await asyncio.wait_for(self.sub.recv_string(), scaled(5)))

    def close(self) -> None:
        self.sub.close(linger=0)
        self.pub.close(linger=0)


@pytest.fixture
def viewer() -> AsyncIterator[LossViewerStandIn]:
    stand_in = LossViewerStandIn()
    yield stand_in
    stand_in.close()


def test_defaults_are_sleaps_ports() -> None:
    assert (DEFAULT_PUBLISH_PORT, DEFAULT_CONTROLLER_PORT) == (9001, 9000)
    bridge = ProgressBridge()
    assert (bridge.publish_port, bridge.controller_port) == (9001, 9000)


async def test_trainer_events_arrive_verbatim(viewer: LossViewerStandIn) -> None:
    async with ProgressBridge(viewer.publish_port, viewer.controller_port) as bridge:
        for raw in TRAINER_EVENTS:
            bridge.publish(raw)
        received = [await viewer.recv() for _ in TRAINER_EVENTS]
    assert received == TRAINER_EVENTS
    assert bridge.published == len(TRAINER_EVENTS)


async def test_mapping_events_use_the_trainer_shape(viewer: LossViewerStandIn) -> None:
    event = {"what": "", "event": "epoch_end", "logs": {"train/loss": 0.5}, "epoch": 1}
    async with ProgressBridge(viewer.publish_port, viewer.controller_port) as bridge:
        bridge.publish(event)
        text = await viewer.recv()
    assert json.loads(text) == event
    assert list(json.loads(text)) == ["what", "event", "logs", "epoch"]


async def test_events_before_the_viewer_subscribes_are_held() -> None:
    # The viewer binds only after the first events were published.
    bridge = ProgressBridge(*_free_ports())
    viewer: LossViewerStandIn | None = None
    try:
        bridge.open()
        assert bridge.publish(TRAINER_EVENTS[0]) is False
        ctx = zmq.asyncio.Context.instance()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.subscribe("")
        sub.bind(f"tcp://127.0.0.1:{bridge.publish_port}")
        try:
            text = await asyncio.wait_for(sub.recv_string(), scaled(5))
            assert text == TRAINER_EVENTS[0]
            assert bridge.viewer_connected
        finally:
            sub.close(linger=0)
    finally:
        await bridge.close()
        if viewer is not None:
            viewer.close()


async def test_held_events_are_bounded() -> None:
    async with ProgressBridge(*_free_ports(), max_pending=2) as bridge:
        for raw in TRAINER_EVENTS[:4]:
            bridge.publish(raw)
        assert bridge.dropped == 2


async def test_stop_from_the_viewer_reaches_the_callback(
    viewer: LossViewerStandIn,
) -> None:
    commands: list[dict[str, Any]] = []
    async with ProgressBridge(
        viewer.publish_port, viewer.controller_port, on_command=commands.append
    ):

        async def stopped() -> bool:
            # A PUB drops what it sends before the SUB joined: send until heard.
            await viewer.pub.send_string('{"command": "stop"}')
            return bool(commands)

        await async_wait_until(stopped, interval=0.02)
    assert commands[0] == {"command": "stop"}


async def test_async_callbacks_are_awaited(viewer: LossViewerStandIn) -> None:
    done = asyncio.Event()

    async def forward(command: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        if command.get("command") == "cancel":
            done.set()

    async with ProgressBridge(
        viewer.publish_port, viewer.controller_port, on_command=forward
    ):

        async def cancelled() -> bool:
            await viewer.pub.send_string('{"command": "cancel"}')
            return done.is_set()

        await async_wait_until(cancelled, interval=0.02)


async def test_pickle_tagged_commands_are_refused(viewer: LossViewerStandIn) -> None:
    commands: list[dict[str, Any]] = []
    async with ProgressBridge(
        viewer.publish_port, viewer.controller_port, on_command=commands.append
    ) as bridge:

        async def refused() -> bool:
            await viewer.pub.send_string('{"py/object": "os.system"}')
            await viewer.pub.send_string("not json")
            return bridge.rejected >= 2

        await async_wait_until(refused, interval=0.02)
    assert commands == []


async def test_publish_needs_an_open_bridge() -> None:
    bridge = ProgressBridge(*_free_ports())
    with pytest.raises(InvalidState):
        bridge.publish(TRAINER_EVENTS[0])
    bridge.open()
    await bridge.close()
    await bridge.close()  # idempotent
    with pytest.raises(InvalidState):
        bridge.publish(TRAINER_EVENTS[0])
    with pytest.raises(InvalidState):
        bridge.open()


def test_encode_event_checks_texts() -> None:
    assert encode_event(b'{"event": "x"}') == '{"event": "x"}'
    with pytest.raises(RemoteProtocolError):
        encode_event("[1, 2]")
    with pytest.raises(TypeError):
        encode_event(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="port"):
        ProgressBridge(0)


def _free_ports() -> tuple[int, int]:
    """Two ports nobody listens on, below the ephemeral range.

    The bridge *connects* before the viewer binds (as with LossViewer's fixed
    ports 9001/9000). A port from the ephemeral range could be taken meanwhile by
    that very connect attempt (a TCP self-connect on loopback), so the ports come
    from below it; they are probed with plain sockets, which release the port
    when closed (a ZMQ socket closes in its I/O thread, later).
    """
    rng = random.Random()
    ports: list[int] = []
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in ports:
            ports.append(port)
        if len(ports) == 2:
            return ports[0], ports[1]
    raise RuntimeError("no free port below the ephemeral range")
