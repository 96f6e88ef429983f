"""The frames of one job on their way to the channels attached to it.

A job writes text frames with :meth:`JobOutbox.emit`, which never waits: a
training run must not stall because a data channel is slow or gone. Each
attached sink (``Sink``: an async function that sends one text frame) gets its
own queue and its own sender task, so a slow channel only delays itself.

While no sink is attached, frames are *held*: bounded by ``max_buffered``, the
oldest dropped and counted. A sink that attaches later gets the frames it asks
for first (the ``JOB_STATE`` answer), then the held frames in order, then the
live stream. A sink whose send fails is detached and its undelivered frames go
back to the held ones, so the next attach still gets them.

Queues of attached sinks are bounded the same way (a channel that stops
draining cannot make the worker grow without bound).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable

__all__ = ["JobOutbox", "Sink"]

logger = logging.getLogger(__name__)

Sink = Callable[[str], Awaitable[None]]
"""Sends one encoded text frame on a data channel (raises when it cannot)."""

_PROGRESS_PREFIX = "PROGRESS_REPORT::"


class _Attachment:
    """One sink, its queue of frames and the task that sends them."""

    __slots__ = ("dropped", "queue", "sink", "task", "wake")

    def __init__(self, sink: Sink, frames: Iterable[str], limit: int) -> None:
        self.sink = sink
        self.queue: deque[str] = deque(frames)
        while len(self.queue) > limit:
            self.queue.popleft()
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.dropped = 0


class JobOutbox:
    """Fan-out of one job's frames to its sinks, holding them while none is there.

    Args:
        name: For logs (the job id).
        max_buffered: Frames held while detached, and queued per sink.

    Attributes:
        dropped: Frames dropped from the held buffer since the last attach.
        progress_dropped: Of those, ``PROGRESS_REPORT`` frames.
        total_dropped: Frames dropped over the job's life (held and queued).
    """

    def __init__(self, name: str, max_buffered: int) -> None:
        if max_buffered < 1:
            raise ValueError("max_buffered must be positive")
        self._name = name
        self._limit = max_buffered
        self._held: deque[str] = deque()
        self._attachments: dict[Sink, _Attachment] = {}
        self._finished = False
        self._closed = False
        self.dropped = 0
        self.progress_dropped = 0
        self.total_dropped = 0

    # ---------------------------------------------------------------- state

    @property
    def attached(self) -> int:
        """How many sinks are attached."""
        return len(self._attachments)

    def is_attached(self, sink: Sink) -> bool:
        """Whether ``sink`` is attached."""
        return sink in self._attachments

    @property
    def idle(self) -> bool:
        """Whether no sender task is running (everything queued was sent)."""
        return all(a.task is None or a.task.done() for a in self._attachments.values())

    @property
    def held(self) -> list[str]:
        """A copy of the frames held for the next attach, oldest first."""
        return list(self._held)

    # ---------------------------------------------------------------- write

    def emit(self, text: str) -> None:
        """Queue one frame for every attached sink, or hold it (never waits)."""
        if self._closed:
            return
        if not self._attachments:
            self._hold(text)
            return
        for att in self._attachments.values():
            att.queue.append(text)
            if len(att.queue) > self._limit:
                att.queue.popleft()
                att.dropped += 1
                self.total_dropped += 1
                if att.dropped == 1:
                    logger.warning("! %s: a channel drains too slowly", self._name)
            att.wake.set()

    def _hold(self, text: str) -> None:
        self._held.append(text)
        if len(self._held) > self._limit:
            old = self._held.popleft()
            self.dropped += 1
            self.total_dropped += 1
            if old.startswith(_PROGRESS_PREFIX):
                self.progress_dropped += 1

    def take_held_progress(self) -> tuple[list[str], int]:
        """Remove the held ``PROGRESS_REPORT`` frames; their texts after the
        prefix (oldest first) and how many progress frames were dropped."""
        progress = [t[len(_PROGRESS_PREFIX) :] for t in self._held if _is_progress(t)]
        self._held = deque(t for t in self._held if not _is_progress(t))
        dropped = self.progress_dropped
        self.progress_dropped = 0
        return progress, dropped

    def finish(self) -> None:
        """No more frames will come: sender tasks end once their queue is sent."""
        self._finished = True
        for att in self._attachments.values():
            att.wake.set()

    # --------------------------------------------------------------- attach

    def attach(self, sink: Sink, first: Iterable[str] = ()) -> None:
        """Attach ``sink``: it gets ``first``, then the held frames, then live.

        Attaching a sink that is attached already only queues ``first``.
        """
        if self._closed:
            return
        current = self._attachments.get(sink)
        if current is not None:
            current.queue.extend(first)
            current.wake.set()
            if current.task is None or current.task.done():
                self._start(current)
            return
        att = _Attachment(sink, [*first, *self._held], self._limit)
        self._held.clear()
        self.dropped = 0
        self._attachments[sink] = att
        self._start(att)
        logger.debug("= %s: channel attached (%d)", self._name, len(self._attachments))

    def _start(self, att: _Attachment) -> None:
        att.task = asyncio.get_running_loop().create_task(
            self._send_loop(att), name=f"{self._name}-sender"
        )

    def detach(self, sink: Sink) -> bool:
        """Detach ``sink``; its undelivered frames are held again.

        Returns:
            Whether it was attached.
        """
        att = self._attachments.pop(sink, None)
        if att is None:
            return False
        if att.task is not None and att.task is not asyncio.current_task():
            att.task.cancel()
        if not self._attachments:
            for text in reversed(att.queue):
                self._held.appendleft(text)
            while len(self._held) > self._limit:
                self._held.popleft()
                self.dropped += 1
                self.total_dropped += 1
        att.queue.clear()
        logger.debug("= %s: channel detached (%d)", self._name, len(self._attachments))
        return True

    async def _send_loop(self, att: _Attachment) -> None:
        while True:
            while att.queue:
                text = att.queue[0]
                try:
                    await att.sink(text)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    logger.info("! %s: send failed (%s); detaching", self._name, exc)
                    self.detach(att.sink)
                    return
                if att.queue and att.queue[0] is text:
                    att.queue.popleft()
            if self._finished or self._closed:
                return
            att.wake.clear()
            await att.wake.wait()

    async def drain(self, timeout: float) -> bool:
        """Wait until every attached sink has been sent its queue (bounded).

        Returns:
            Whether every queue emptied in time.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(a.queue for a in self._attachments.values()):
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def aclose(self) -> None:
        """Stop every sender task; nothing more is sent or held."""
        self._closed = True
        tasks = [a.task for a in self._attachments.values() if a.task is not None]
        self._attachments.clear()
        self._held.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _is_progress(text: str) -> bool:
    return text.startswith(_PROGRESS_PREFIX)
