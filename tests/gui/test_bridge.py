"""AsyncBridge: coroutine outcomes arrive as queued Qt signals; tasks are owned."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from PySide6.QtCore import QObject, Signal

from sleap_rtc_gui.bridge import AsyncBridge, wait_signal
from tests.fixtures.timing import async_wait_until, scaled


async def test_result_is_delivered_to_the_callback() -> None:
    bridge = AsyncBridge()
    got: list[int] = []

    async def work() -> int:
        await asyncio.sleep(0)
        return 42

    bridge.start(work(), got.append)
    await async_wait_until(lambda: got == [42])
    assert bridge.active == 0
    await bridge.aclose()


async def test_errors_go_to_on_error_and_the_errors_signal() -> None:
    bridge = AsyncBridge()
    handled: list[BaseException] = []
    seen: list[object] = []
    bridge.errors.connect(seen.append)

    async def boom() -> None:
        raise ValueError("nope")

    bridge.start(boom(), on_error=handled.append)
    await async_wait_until(lambda: len(handled) == 1)
    assert isinstance(handled[0], ValueError)
    assert seen == handled
    await bridge.aclose()


async def test_callback_runs_from_qt_not_inside_the_task() -> None:
    bridge = AsyncBridge()
    inside: list[asyncio.Task[object] | None] = []
    task = bridge.start(asyncio.sleep(0, "x"), lambda _r: inside.append(None))
    await async_wait_until(lambda: bool(inside))
    assert task.done()
    await bridge.aclose()


async def test_stream_delivers_items_in_order_then_the_end() -> None:
    bridge = AsyncBridge()
    items: list[int] = []
    ended: list[bool] = []

    async def numbers() -> AsyncIterator[int]:
        for i in range(5):
            yield i
            await asyncio.sleep(0)

    bridge.stream(numbers(), items.append, lambda: ended.append(True))
    await async_wait_until(lambda: ended == [True])
    assert items == [0, 1, 2, 3, 4]
    await bridge.aclose()


async def test_aclose_cancels_running_tasks_and_drops_late_results() -> None:
    bridge = AsyncBridge()
    got: list[object] = []
    never = asyncio.Event()
    task = bridge.start(never.wait(), got.append)
    await asyncio.sleep(0)
    await bridge.aclose()
    assert task.cancelled()
    assert bridge.active == 0
    assert got == []
    with pytest.raises(RuntimeError):
        bridge.start(asyncio.sleep(0))


async def test_relay_turns_a_plain_callback_into_a_signal_delivery() -> None:
    bridge = AsyncBridge()
    got: list[tuple[int, str]] = []
    relay = bridge.relay(lambda a, b: got.append((a, b)))
    relay(1, "a")
    assert got == []  # queued: delivered by Qt, not by the caller
    await async_wait_until(lambda: got == [(1, "a")])
    await bridge.aclose()


class _Emitter(QObject):
    fired = Signal(int)


async def test_wait_signal_returns_the_next_emission() -> None:
    emitter = _Emitter()
    asyncio.get_running_loop().call_soon(emitter.fired.emit, 7)
    assert await wait_signal(emitter.fired, scaled(5)) == (7,)
    with pytest.raises(TimeoutError):
        await wait_signal(emitter.fired, 0.01)
