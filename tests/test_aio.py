"""The cancellation-safe wait_for (sleap_rtc_core.aio)."""

from __future__ import annotations

import asyncio

import pytest

from sleap_rtc_core.aio import wait_for


async def test_a_cancel_racing_completion_is_not_lost() -> None:
    """The awaited future completes and the task is cancelled in the same
    loop turn: the task still ends cancelled (asyncio.wait_for on Python 3.11
    returns the result instead, and the task runs on)."""
    done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    went_on = asyncio.Event()

    async def waiter() -> None:
        await wait_for(done, 10)
        went_on.set()
        await asyncio.sleep(10)

    task = asyncio.ensure_future(waiter())
    await asyncio.sleep(0)
    done.set_result(1)
    task.cancel()
    await asyncio.wait([task], timeout=5)
    assert task.cancelled()
    assert not went_on.is_set()


async def test_timeout_and_result() -> None:
    never: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    with pytest.raises(TimeoutError):
        await wait_for(never, 0.01)
    assert never.cancelled()
    assert await wait_for(asyncio.sleep(0, result=7), None) == 7
