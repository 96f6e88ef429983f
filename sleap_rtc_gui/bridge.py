"""The one seam between asyncio and Qt: results of coroutines become Qt signals.

Widgets never await and coroutines never touch widgets. A widget that needs
network work hands a coroutine to an :class:`AsyncBridge`; the bridge owns the
task, and when it ends delivers the result (or the error) to a plain callback
**through a queued Qt signal**, so the callback runs from Qt's event dispatch,
never inside an asyncio callback (a modal dialog opened there would re-enter
the loop). Streams (an async iterator of worker-list updates, of progress events)
are delivered item by item the same way, in order.

Pure models (napari's pattern, STYLE.md convention 11) emit plain callbacks;
:meth:`AsyncBridge.relay` turns such a callback into a signal emission.

The other direction, Qt to asyncio, is :func:`wait_signal`: await the next
emission of a signal.

Every task the bridge starts is cancelled by :meth:`AsyncBridge.aclose` (or,
without awaiting, :meth:`AsyncBridge.cancel_all`); results that arrive after
that are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, Callable, Coroutine
from typing import Any, TypeVar

from PySide6.QtCore import QObject, Qt, Signal, SignalInstance

from sleap_rtc_core.aio import wait_for

__all__ = ["AsyncBridge", "ErrorCallback", "wait_signal"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

ErrorCallback = Callable[[BaseException], None]
"""Receives the exception a task raised (never ``CancelledError``)."""


class AsyncBridge(QObject):
    """Runs coroutines for widgets and hands their outcomes back as Qt signals.

    Attributes:
        delivered: Emitted (queued) with ``(callback, args)`` for every outcome;
            connected to the slot that calls the callback. Tests may listen.
        errors: Emitted with every exception a task raised, whether or not a
            callback handled it (for logs and tests).
    """

    delivered = Signal(object)
    errors = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.delivered.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    # ------------------------------------------------------------------ tasks

    @property
    def active(self) -> int:
        """How many tasks are still running."""
        return len(self._tasks)

    def start(
        self,
        coro: Coroutine[Any, Any, T],
        on_result: Callable[[T], None] | None = None,
        on_error: ErrorCallback | None = None,
        *,
        name: str | None = None,
    ) -> asyncio.Task[T]:
        """Run ``coro`` as a task this bridge owns.

        Args:
            coro: The work.
            on_result: Called (from Qt) with the result.
            on_error: Called (from Qt) with the exception; without it the
                exception is logged. Cancellation calls neither.
            name: The task's name, for debugging.

        Raises:
            RuntimeError: The bridge is closed.
        """
        if self._closed:
            coro.close()
            raise RuntimeError("the bridge is closed")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)

        def done(t: asyncio.Task[T]) -> None:
            self._tasks.discard(t)
            if t.cancelled() or self._closed:
                return
            exc = t.exception()
            if exc is not None:
                self._emit_error(exc, on_error)
            elif on_result is not None:
                self.delivered.emit((on_result, (t.result(),)))

        task.add_done_callback(done)
        return task

    def stream(
        self,
        items: AsyncIterable[T],
        on_item: Callable[[T], None],
        on_end: Callable[[], None] | None = None,
        on_error: ErrorCallback | None = None,
        *,
        name: str | None = None,
    ) -> asyncio.Task[None]:
        """Deliver every item of ``items`` to ``on_item`` (from Qt, in order).

        ``on_end`` is called when the iterator is exhausted; ``on_error`` when it
        raised.
        """

        async def pump() -> None:
            async for item in items:
                self.delivered.emit((on_item, (item,)))
            if on_end is not None:
                self.delivered.emit((on_end, ()))

        return self.start(pump(), on_error=on_error, name=name)

    def relay(self, callback: Callable[..., None]) -> Callable[..., None]:
        """A plain callable that hands its arguments to ``callback`` through Qt.

        Give it to a pure model (or a core object) that reports by callback.
        """

        def emit(*args: Any) -> None:
            if not self._closed:
                self.delivered.emit((callback, args))

        return emit

    def cancel_all(self) -> None:
        """Cancel every running task (does not wait for them)."""
        for task in list(self._tasks):
            task.cancel()

    async def aclose(self) -> None:
        """Cancel every task, wait for them to end, and drop later outcomes."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    # ------------------------------------------------------------------ Qt side

    def _emit_error(self, exc: BaseException, on_error: ErrorCallback | None) -> None:
        self.errors.emit(exc)
        if on_error is not None:
            self.delivered.emit((on_error, (exc,)))
        else:
            logger.error("! background task failed: %r", exc)

    def _deliver(self, item: tuple[Callable[..., None], tuple[Any, ...]]) -> None:
        if self._closed:
            return
        callback, args = item
        try:
            callback(*args)
        except Exception:  # a bug in a slot must not kill the event loop
            logger.exception("! callback %r failed", callback)


async def wait_signal(
    signal: SignalInstance, timeout: float | None = None
) -> tuple[Any, ...]:
    """The arguments of the next emission of ``signal``.

    Raises:
        TimeoutError: Nothing was emitted within ``timeout`` seconds.
    """
    future: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()

    def fire(*args: Any) -> None:
        if not future.done():
            future.set_result(args)

    signal.connect(fire)
    try:
        return await wait_for(future, timeout)
    finally:
        with contextlib.suppress(RuntimeError, TypeError):
            signal.disconnect(fire)
