"""Asyncio helpers that keep a cancellation intact on every supported Python.

On Python 3.11, ``asyncio.wait_for`` loses a cancellation that arrives while the
awaited thing completes (CPython gh-86296): the task goes on as if it had never
been cancelled, and a shutdown that cancels it once then waits for ever (a
worker whose ``update_metadata`` reply raced with its close did exactly that).
:func:`wait_for` is ``asyncio.timeout`` around a plain ``await``, which never
loses one; the code base uses it instead of ``asyncio.wait_for``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["wait_for"]

T = TypeVar("T")


async def wait_for(aw: Awaitable[T], timeout: float | None) -> T:
    """``await aw``, raising :class:`TimeoutError` after ``timeout`` seconds
    (``None``: no limit); a cancellation of the caller always propagates."""
    async with asyncio.timeout(timeout):
        return await aw
