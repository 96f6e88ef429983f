"""Tests of :mod:`sleap_rtc_core.progress.trainer_link` over real ZMQ on loopback.

A "fake trainer" plays sleap-nn's side as its callbacks do: a PUB that
*connects* to the progress port and a SUB (topic ``""``) that *connects* to the
control port and decodes commands with ``jsonpickle``. In-process fakes use
their own (blocking) ZMQ context; one test runs the fake as a subprocess.
"""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator

import pytest
import zmq

from sleap_rtc_core.errors import (
    ConcurrencyError,
    ErrorCode,
    InvalidState,
    RemoteProtocolError,
)
from sleap_rtc_core.progress.trainer_link import LOOPBACK, TrainerLink, check_command
from sleap_rtc_core.worker.jobs.process import JobProcess, Stream
from tests.fixtures.timing import async_wait_until, scaled

STOP = '{"command": "stop"}'


class FakeTrainer:
    """sleap-nn's two sockets, connected to a link's ports."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], link: TrainerLink) -> None:
        self.pub = ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.connect(f"tcp://{LOOPBACK}:{link.publish_port}")
        self.sub = ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.subscribe("")
        self.sub.connect(f"tcp://{LOOPBACK}:{link.controller_port}")
        self.link = link

    async def connect_progress(self) -> int:
        """Send hellos until one arrives (ZMQ's slow joiner); how many arrived."""
        before = self.link.received

        def arrived() -> bool:
            if self.link.received == before:
                self.pub.send_string('{"event": "hello"}')
                return False
            return True

        await async_wait_until(arrived, timeout=scaled(5), interval=0.02)
        return self.link.received - before

    async def commands(self, n: int) -> list[str]:
        """The next ``n`` commands the trainer receives."""
        out: list[str] = []

        def got() -> bool:
            while len(out) < n and self.sub.poll(0):
                out.append(self.sub.recv_string())
            return len(out) >= n

        await async_wait_until(got, timeout=scaled(5))
        return out

    def close(self) -> None:
        self.pub.close(linger=0)
        self.sub.close(linger=0)


@pytest.fixture
def zmq_ctx() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    """A blocking ZMQ context for the fake trainer's side, terminated after."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


@pytest.fixture
async def link() -> AsyncIterator[TrainerLink]:
    """An open :class:`TrainerLink`, closed after the test."""
    async with TrainerLink() as link:
        yield link


@pytest.fixture
def trainer(
    zmq_ctx: zmq.Context[zmq.Socket[bytes]], link: TrainerLink
) -> Iterator[FakeTrainer]:
    """A fake trainer connected to :func:`link`."""
    fake = FakeTrainer(zmq_ctx, link)
    yield fake
    fake.close()


async def read(link: TrainerLink, n: int) -> list[str]:
    """The next ``n`` progress messages."""
    out: list[str] = []

    async def take() -> None:
        async for raw in link.messages():
            out.append(raw)
            if len(out) == n:
                return

    await asyncio.wait_for(take(), scaled(5))
    return out


# ---------------------------------------------------------------- sockets


async def test_ports_are_ephemeral_and_distinct() -> None:
    async with TrainerLink() as a, TrainerLink() as b:
        ports = {a.publish_port, a.controller_port, b.publish_port, b.controller_port}
        assert len(ports) == 4
        assert all(1024 <= p <= 65535 for p in ports)
        assert not a.closed
    assert a.closed
    assert b.closed


async def test_misuse_is_refused() -> None:
    link = TrainerLink()
    with pytest.raises(InvalidState):
        await link.messages().__anext__()
    with pytest.raises(InvalidState):
        link.send_command(STOP)
    with pytest.raises(InvalidState):
        await link.wait_controller()
    with pytest.raises(ValueError, match="positive"):
        TrainerLink(max_buffered=0)
    link.open()
    with pytest.raises(InvalidState):
        link.open()
    first = link.messages()
    pending = asyncio.ensure_future(first.__anext__())
    await asyncio.sleep(0)  # let the first iteration start
    with pytest.raises(ConcurrencyError):
        await link.messages().__anext__()
    await link.close()
    with pytest.raises(StopAsyncIteration):
        await pending
    await link.close()  # twice is fine
    with pytest.raises(InvalidState):
        link.send_command(STOP)
    with pytest.raises(InvalidState):
        link.open()


# --------------------------------------------------------------- progress


async def test_progress_is_forwarded_verbatim_in_order(
    link: TrainerLink, trainer: FakeTrainer
) -> None:
    hellos = await trainer.connect_progress()
    await read(link, hellos)
    sent = [
        '{"what": "", "event": "train_begin", "logs": null, "wandb_url": null}',
        '{"what":"","event":"epoch_end","epoch":0,"logs":{"train/loss":0.5}}',
        '  {"odd spacing" :  "ünïcode ✓"}  ',
        "not even json",
    ] + [json.dumps({"event": "batch_end", "batch": i}) for i in range(200)]
    for raw in sent:
        trainer.pub.send_string(raw)
    assert await read(link, len(sent)) == sent
    assert link.dropped == 0


async def test_bounded_buffer_drops_oldest_and_counts(
    zmq_ctx: zmq.Context[zmq.Socket[bytes]],
) -> None:
    async with TrainerLink(max_buffered=5) as link:
        fake = FakeTrainer(zmq_ctx, link)
        try:
            hellos = await fake.connect_progress()
            for i in range(20):
                fake.pub.send_string(str(i))
            await async_wait_until(lambda: link.received == hellos + 20)
        finally:
            fake.close()
        assert link.dropped == hellos + 20 - 5
        assert await read(link, 5) == ["15", "16", "17", "18", "19"]


async def test_drain_discards_unread_progress(
    link: TrainerLink, trainer: FakeTrainer
) -> None:
    hellos = await trainer.connect_progress()
    for i in range(3):
        trainer.pub.send_string(f"old {i}")
    await async_wait_until(lambda: link.received == hellos + 3)
    assert link.drain() == hellos + 3
    trainer.pub.send_string("new")
    assert await read(link, 1) == ["new"]


async def test_settle_waits_for_the_last_messages(
    link: TrainerLink, trainer: FakeTrainer
) -> None:
    await trainer.connect_progress()
    trainer.pub.send_string('{"event": "train_end"}')
    await link.settle(quiet=0.1, timeout=scaled(5))
    assert link.drain() >= 1


async def test_close_ends_iteration(link: TrainerLink, trainer: FakeTrainer) -> None:
    hellos = await trainer.connect_progress()
    got: list[str] = []

    async def consume() -> None:
        async for raw in link.messages():
            got.append(raw)

    task = asyncio.create_task(consume())
    await async_wait_until(lambda: len(got) == hellos)
    await link.close()
    await asyncio.wait_for(task, scaled(5))


# ---------------------------------------------------------------- control


@pytest.mark.parametrize(
    "raw",
    [
        STOP,
        '{"command": "cancel"}',
        '{"command": "set_lr", "lr": 0.001, "extra": [1, {"a": null}]}',
        '{"py": "a key named py is fine", "pyx/y": 1}',
    ],
)
def test_plain_commands_pass(raw: str) -> None:
    assert check_command(raw) == json.loads(raw)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ('{"py/object": "os.system", "command": "stop"}', ErrorCode.INVALID_MESSAGE),
        ('{"command": {"py/reduce": [{"py/function": "os.system"}]}}', None),
        ('{"command": "stop", "args": [1, {"py/tuple": []}]}', None),
        ('{"command": [[{"py/id": 1}]]}', None),
        ('["stop"]', ErrorCode.INVALID_MESSAGE),
        ('"stop"', ErrorCode.INVALID_MESSAGE),
        ("{not json", ErrorCode.INVALID_JSON),
    ],
)
def test_dangerous_or_malformed_commands_are_refused(
    raw: str, code: ErrorCode | None
) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        check_command(raw)
    assert info.value.code == (code or ErrorCode.INVALID_MESSAGE)


async def test_command_reaches_the_trainer_unchanged(
    link: TrainerLink, trainer: FakeTrainer
) -> None:
    await asyncio.wait_for(link.wait_controller(), scaled(5))
    assert link.controller_connected
    raw = '{"command":"stop" , "note":"ü"}'
    assert link.send_command(raw) is True
    assert await trainer.commands(1) == [raw]


async def test_refused_command_is_never_published(
    link: TrainerLink, trainer: FakeTrainer
) -> None:
    await asyncio.wait_for(link.wait_controller(), scaled(5))
    evil = '{"py/object": "subprocess.Popen", "command": "stop"}'
    with pytest.raises(RemoteProtocolError, match="py/"):
        link.send_command(evil)
    link.send_command(STOP)
    assert await trainer.commands(1) == [STOP]  # the next one, not the refused one
    assert not trainer.sub.poll(50)


async def test_commands_wait_for_a_late_trainer(
    zmq_ctx: zmq.Context[zmq.Socket[bytes]], link: TrainerLink
) -> None:
    assert not link.controller_connected
    assert link.send_command('{"command": "first"}') is False
    assert link.send_command(STOP) is False
    fake = FakeTrainer(zmq_ctx, link)
    try:
        assert await fake.commands(2) == ['{"command": "first"}', STOP]
        assert link.controller_connected
    finally:
        fake.close()
    await async_wait_until(lambda: not link.controller_connected)
    # Held for the next model of a pipeline.
    assert link.send_command(STOP) is False
    fake = FakeTrainer(zmq_ctx, link)
    try:
        assert await fake.commands(1) == [STOP]
    finally:
        fake.close()


# ----------------------------------------------------- a trainer process

# What sleap-nn's ProgressReporterZMQ and TrainingControllerZMQ do, without
# torch: publish events, poll the controller once per batch (10 ms) and decode
# commands with jsonpickle; stop on {"command": "stop"}.
FAKE_TRAINER = """
    import sys, time, jsonpickle, zmq
    pub_port, ctl_port = sys.argv[1], sys.argv[2]
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB); pub.connect("tcp://127.0.0.1:" + pub_port)
    ctl = ctx.socket(zmq.SUB); ctl.subscribe("")
    ctl.connect("tcp://127.0.0.1:" + ctl_port)
    def send(event, **kw):
        pub.send_string(jsonpickle.encode(dict(what="", event=event, logs=None, **kw)))
    time.sleep(0.2)
    send("train_begin")
    for batch in range(100000):
        send("batch_end", batch=batch)
        if ctl.poll(10):
            msg = jsonpickle.decode(ctl.recv_string())
            print("command", msg, flush=True)
            if msg.get("command") == "stop":
                break
    send("train_end")
    pub.close(linger=1000); ctl.close(linger=0)
    print("stopped at", batch, flush=True)
"""


async def test_a_trainer_process_streams_and_stops_on_command(
    link: TrainerLink,
) -> None:
    argv = [sys.executable, "-u", "-c", textwrap.dedent(FAKE_TRAINER)]
    argv += [str(link.publish_port), str(link.controller_port)]
    events: list[dict[str, object]] = []

    async def consume() -> None:
        async for raw in link.messages():
            events.append(json.loads(raw))

    consumer = asyncio.create_task(consume())
    try:
        async with JobProcess(argv) as proc:
            await async_wait_until(
                lambda: any(e["event"] == "batch_end" for e in events),
                timeout=scaled(10),
            )
            link.send_command(STOP)
            lines = [ln.text async for ln in proc.lines() if ln.stream is Stream.STDOUT]
            assert await asyncio.wait_for(proc.wait(), scaled(10)) == 0
        assert lines[0] == "command {'command': 'stop'}"
        assert lines[-1].startswith("stopped at")
        await link.settle(quiet=0.1, timeout=scaled(5))
    finally:
        await link.close()
        await consumer
    names = [e["event"] for e in events]
    assert names[0] == "train_begin"
    assert names[-1] == "train_end"
    assert link.dropped == 0
