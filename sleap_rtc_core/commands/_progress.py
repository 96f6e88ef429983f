"""The one progress display of ``train``, ``track``, ``fetch`` and uploads.

It draws a :class:`~..client.progress_view.ProgressStatus` source: on a
terminal (stderr a TTY) as a live ``rich`` bar at the bottom, redrawn a few
times a second so that the time waited counts up; elsewhere (CI, pipes) as
plain lines on stderr at the rate :class:`~..client.progress_view.PlainPacer`
allows, never with escape codes. The lines a command keeps (``say``, stdout)
stay as they are: on a terminal they scroll above the bar.

One owned ticker task per display (``async with``), cancelled at its end; no
thread (``rich``'s auto refresh is off).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from ..client.progress_view import PlainPacer, ProgressStatus, Waiting

__all__ = ["ProgressDisplay", "StatusSource", "wants_live"]

StatusSource = Callable[[float], ProgressStatus]
"""What to show at a monotonic time (a view's ``status``)."""

LIVE_TICK = 0.2
"""Seconds between redraws of the bar."""

PLAIN_TICK = 0.5
"""Seconds between checks of whether a plain line is due."""


def wants_live(stream: TextIO) -> bool:
    """A live bar only on a real terminal that can draw one."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and os.environ.get("TERM", "") != "dumb"


class ProgressDisplay:
    """Shows one status source at a time (see the module docstring).

    Args:
        stream: Where it draws (default: stderr).
        live: Force the bar (``True``) or plain lines (``False``); default:
            :func:`wants_live`.
        pacer: The plain lines' pace.
        clock: Monotonic seconds.
        enabled: ``False`` draws nothing at all (``--quiet``).
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        live: bool | None = None,
        pacer: PlainPacer | None = None,
        clock: Callable[[], float] = time.monotonic,
        enabled: bool = True,
    ) -> None:
        self.enabled = enabled
        self._stream = stream
        self._live_wanted = live
        self._pacer = pacer or PlainPacer()
        self._clock = clock
        self._source: StatusSource | None = None
        self._hidden = False
        self._live: Any = None  # a rich Live while the bar is up
        self._ticker: asyncio.Task[None] | None = None

    @property
    def stream(self) -> TextIO:
        """Where it draws (stderr as it is now, unless given)."""
        return self._stream if self._stream is not None else sys.stderr

    @property
    def live(self) -> bool:
        """Whether it draws a bar (else plain lines)."""
        if self._live_wanted is None:
            self._live_wanted = wants_live(self.stream)
        return self._live_wanted

    async def __aenter__(self) -> ProgressDisplay:
        tick = LIVE_TICK if self.live else PLAIN_TICK
        self._ticker = asyncio.create_task(self._tick(tick), name="progress")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        self.show(None)

    async def _tick(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            self.refresh()

    def show(self, source: StatusSource | None) -> None:
        """Show ``source`` from now on (``None``: nothing; the bar goes). A
        plain phase that was told gets its last line (its end)."""
        if (
            self.enabled
            and source != self._source
            and self._source is not None
            and not self.live
        ):
            line = self._pacer.end(self._source(self._clock()))
            if line is not None:
                self._write(line)
        self._source = source
        if source is None:
            self._stop_live()
        self.refresh()

    def wait(self, label: str | None) -> None:
        """Show a wait with nothing to count (``label``: what it waits for),
        with the time waited; ``None`` ends it. A wait under a second stays
        unsaid on plain lines (:class:`PlainPacer`)."""
        self.show(None if label is None else Waiting(label, label).status)

    @contextlib.contextmanager
    def hidden(self) -> Any:
        """No bar while a question is asked on the terminal."""
        self._hidden = True
        self._stop_live()
        try:
            yield
        finally:
            self._hidden = False
            self.refresh()

    def refresh(self) -> None:
        """Draw the source's status now (a plain line only when due)."""
        if self._source is None or self._hidden or not self.enabled:
            return
        now = self._clock()
        status = self._source(now)
        if self.live:
            self._draw_live(status)
            return
        line = self._pacer.due(status, now)
        if line is not None:
            self._write(line)

    def _write(self, line: str) -> None:
        self.stream.write(f"  {line}\n")
        self.stream.flush()

    # ------------------------------------------------------------- the bar

    def _draw_live(self, status: ProgressStatus) -> None:
        if self._live is None:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self.stream)
            self._live = Live(
                console=console,
                auto_refresh=False,
                transient=True,
                # stdout lines go above the bar only when they share its terminal
                redirect_stdout=wants_live(sys.stdout),
                redirect_stderr=False,
            )
            self._live.start()
        self._live.update(_renderable(status), refresh=True)

    def _stop_live(self) -> None:
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()


def _renderable(status: ProgressStatus) -> Any:
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 1))
    row: list[Any] = [Text(status.label, style="bold")]
    fraction = status.fraction
    if fraction is not None:
        row.append(ProgressBar(total=1.0, completed=fraction, width=30))
    row.append(Text(status.detail))
    grid.add_row(*row)
    return grid
