"""Turn job progress into what a terminal user reads.

Pure (no terminal, no sockets): fed events and a clock, each view returns the
lines to keep (one per epoch, a summary) and, at any moment, a
:class:`ProgressStatus`: what is being done or waited for, how far, with an
ETA. :mod:`~sleap_rtc_core.commands._progress` draws that status as a bar on
a terminal, or as plain lines at a bounded rate (:class:`PlainPacer`).

* :class:`TrainingProgress`: the decoded ``PROGRESS_REPORT`` objects
  (PROTOCOL.md B §5: ``event`` is ``train_begin``, ``epoch_begin``,
  ``batch_start``, ``batch_end``, ``epoch_end`` or ``train_end``, with
  ``epoch``/``batch`` and ``logs``). sleap-nn does not say how many batches an
  epoch has; the first finished epoch tells.
* :class:`InferenceProgress`: sleap-nn ``track --gui``'s JSON lines
  (``n_processed``, ``n_total``, ``rate``).
* :class:`TransferProgress`: bytes of an upload or a download.

Before the first event of a phase the status says what it waits for, with the
time waited: nothing stays silent.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "InferenceProgress",
    "PlainPacer",
    "ProgressStatus",
    "TrainingProgress",
    "TransferProgress",
    "Waiting",
    "format_bytes",
    "format_duration",
]

QUIET_AFTER = 2.0
"""Seconds without an event after which a status says how long it has been."""

_TRAIN_LOSS_KEYS = ("train/loss", "train_loss", "loss")
_VAL_LOSS_KEYS = ("val/loss", "val_loss")
_BATCH_LOSS_KEYS = ("train/loss_step", "train_loss_step", "train/loss", "loss")


def format_duration(seconds: float) -> str:
    """``1h02m03s`` / ``2m03s`` / ``4.2s``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def format_bytes(n: float) -> str:
    """``512 B`` / ``12.3 MB`` / ``1.20 GB`` (decimal units, as sizes are sold)."""
    if n < 1e3:
        return f"{int(n)} B"
    if n < 1e6:
        return f"{n / 1e3:.1f} kB"
    if n < 1e9:
        return f"{n / 1e6:.1f} MB"
    return f"{n / 1e9:.2f} GB"


@dataclass(frozen=True, slots=True)
class ProgressStatus:
    """What a progress display shows now.

    Attributes:
        phase: Which step this is (``starting``, ``training``, ``inference``,
            ``upload`` …); a new phase is worth a line at once.
        label: What is done or waited for, e.g. ``epoch 2/10`` or ``waiting
            for sleap-nn to start``.
        done: How far, in the unit of ``total`` (``None``: unknown).
        total: The end (``None``: unknown, no bar).
        detail: The numbers: batch, loss, rate, ETA, time waited.
    """

    phase: str
    label: str
    done: float | None = None
    total: float | None = None
    detail: str = ""

    @property
    def fraction(self) -> float | None:
        """``done / total`` in [0, 1], or ``None``."""
        if self.done is None or not self.total or self.total <= 0:
            return None
        return min(1.0, max(0.0, self.done / self.total))

    def line(self) -> str:
        """The status as one plain line."""
        return f"{self.label}  {self.detail}" if self.detail else self.label


def _waited(seconds: float) -> str:
    return f"{format_duration(seconds)} so far"


def _loss(logs: Mapping[str, Any], keys: tuple[str, ...]) -> float | None:
    for key in keys:
        value = logs.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


@dataclass
class TrainingProgress:
    """Progress of one job's training, as the terminal shows it.

    Attributes:
        total_epochs: Epochs the config asks for (``None``: unknown, no ETA).
        clock: Seconds (injectable).
    """

    total_epochs: int | None = None
    clock: Callable[[], float] = time.monotonic
    started_at: float | None = None
    epochs_done: int = 0
    train_loss: float | None = None
    val_loss: float | None = None
    best_val_loss: float | None = None
    batch: int = 0
    """Batches done in the current epoch."""
    batches_per_epoch: int | None = None
    """Learned from the first finished epoch (sleap-nn does not say it)."""
    finished: bool = False
    _epoch_started: float | None = field(default=None, repr=False)
    _waiting_since: float | None = field(default=None, repr=False)
    _last_event: float | None = field(default=None, repr=False)
    _in_epoch: bool = field(default=False, repr=False)

    def feed(self, event: Mapping[str, Any]) -> str | None:
        """One event in; the line to keep (or ``None``)."""
        kind = event.get("event")
        now = self.clock()
        self._last_event = now
        logs = event.get("logs")
        logs = logs if isinstance(logs, Mapping) else {}
        if kind == "train_begin":
            self.started_at = now
            self.finished = False
            return "training started"
        if kind == "epoch_begin":
            self._epoch_started = now
            self._in_epoch = True
            self.batch = 0
            if self.started_at is None:
                self.started_at = now
            return None
        if kind == "batch_end":
            index = event.get("batch")
            self.batch = (
                index + 1
                if isinstance(index, int) and not isinstance(index, bool)
                else self.batch + 1
            )
            self.train_loss = _loss(logs, _BATCH_LOSS_KEYS) or self.train_loss
            return None
        if kind == "epoch_end":
            self._in_epoch = False
            if self.batch and self.batches_per_epoch is None:
                self.batches_per_epoch = self.batch
            return self._epoch_end(event, logs, now)
        if kind == "train_end":
            self.finished = True
            elapsed = now - self.started_at if self.started_at is not None else 0.0
            parts = [f"training finished after {self.epochs_done} epoch(s)"]
            parts.append(f"in {format_duration(elapsed)}")
            if self.best_val_loss is not None:
                parts.append(f"best val loss {self.best_val_loss:.4g}")
            return ", ".join(parts)
        return None

    def _epoch_end(
        self, event: Mapping[str, Any], logs: Mapping[str, Any], now: float
    ) -> str:
        epoch = event.get("epoch")
        self.epochs_done = (
            int(epoch) + 1
            if isinstance(epoch, int) and not isinstance(epoch, bool)
            else self.epochs_done + 1
        )
        self.train_loss = _loss(logs, _TRAIN_LOSS_KEYS) or self.train_loss
        val = _loss(logs, _VAL_LOSS_KEYS)
        if val is not None:
            self.val_loss = val
            if self.best_val_loss is None or val < self.best_val_loss:
                self.best_val_loss = val
        total = f"/{self.total_epochs}" if self.total_epochs else ""
        parts = [f"epoch {self.epochs_done}{total}"]
        if self.train_loss is not None:
            parts.append(f"loss {self.train_loss:.4g}")
        if self.val_loss is not None:
            parts.append(f"val {self.val_loss:.4g}")
        eta = self.eta(now)
        if eta is not None:
            parts.append(f"ETA {format_duration(eta)}")
        return "  ".join(parts)

    def _epochs_so_far(self) -> float:
        """Epochs done, with the current one's batches as a fraction."""
        done = float(self.epochs_done)
        if self._in_epoch and self.batches_per_epoch:
            done += min(self.batch, self.batches_per_epoch) / self.batches_per_epoch
        return done

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left, from the mean epoch time so far."""
        if not self.total_epochs or self.started_at is None or not self.epochs_done:
            return None
        now = self.clock() if now is None else now
        done = self._epochs_so_far()
        per_epoch = (now - self.started_at) / done
        return max(0.0, per_epoch * (self.total_epochs - done))

    def status(self, now: float | None = None) -> ProgressStatus:
        """What training is doing, or waiting for, at ``now``."""
        now = self.clock() if now is None else now
        if self._waiting_since is None:
            self._waiting_since = now
        if self.finished:
            since = self._last_event if self._last_event is not None else now
            return ProgressStatus(
                "finishing",
                "training finished: waiting for the worker (saving the model)",
                detail=_waited(now - since),
            )
        if self.started_at is None:
            return ProgressStatus(
                "starting",
                "waiting for sleap-nn to start (loading the labels)",
                detail=_waited(now - self._waiting_since),
            )
        if not self.epochs_done and not self.batch:
            return ProgressStatus(
                "first batch",
                "sleap-nn started: waiting for the first batch (building the model)",
                detail=_waited(now - self.started_at),
            )
        epoch = self.epochs_done + (1 if self._in_epoch else 0)
        total = self.total_epochs
        label = f"epoch {max(1, epoch)}/{total}" if total else f"epoch {epoch}"
        parts = []
        if self._in_epoch and self.batch:
            per = f"/{self.batches_per_epoch}" if self.batches_per_epoch else ""
            parts.append(f"batch {self.batch}{per}")
        if self.train_loss is not None:
            parts.append(f"loss {self.train_loss:.4g}")
        eta = self.eta(now)
        if eta is not None:
            parts.append(f"ETA {format_duration(eta)}")
        quiet = now - (self._last_event if self._last_event is not None else now)
        if quiet >= QUIET_AFTER:
            doing = "validating" if not self._in_epoch or self._epoch_full() else ""
            parts.append(
                f"({doing + ', ' if doing else ''}{format_duration(quiet)} "
                "since the last update)"
            )
        return ProgressStatus(
            "training",
            label,
            done=self._epochs_so_far(),
            total=float(total) if total else None,
            detail="  ".join(parts),
        )

    def _epoch_full(self) -> bool:
        return bool(self.batches_per_epoch) and self.batch >= (
            self.batches_per_epoch or 0
        )


@dataclass
class InferenceProgress:
    """Progress of one ``sleap-nn track`` run, in frames.

    Attributes:
        clock: Seconds (injectable).
    """

    clock: Callable[[], float] = time.monotonic
    frames_done: int = 0
    frames_total: int | None = None
    rate: float | None = None
    _since: float | None = field(default=None, repr=False)
    _first: float | None = field(default=None, repr=False)

    def begin(self) -> None:
        """Inference starts (``INFERENCE_BEGIN``): waiting for its first frames."""
        self._since = self.clock()
        self._first = None

    def feed(self, data: Mapping[str, Any]) -> None:
        """One ``{"n_processed","n_total","rate"}`` object in."""
        now = self.clock()
        if self._since is None:
            self._since = now
        if self._first is None:
            self._first = now
        done, total, rate = (
            _number(data.get(k)) for k in ("n_processed", "n_total", "rate")
        )
        if done is not None:
            self.frames_done = int(done)
        if total is not None:
            self.frames_total = int(total)
        if rate is not None and rate > 0:
            self.rate = rate

    def summary(self) -> str:
        """The line to keep when it ends."""
        return f"inference: {self.frames_done} frame(s) predicted"

    def status(self, now: float | None = None) -> ProgressStatus:
        """Frames done, or what it waits for before the first."""
        now = self.clock() if now is None else now
        if self._since is None:
            self._since = now
        if self._first is None:
            return ProgressStatus(
                "inference start",
                "waiting for sleap-nn track to start (loading the model)",
                detail=_waited(now - self._since),
            )
        total = self.frames_total
        parts = [
            f"{self.frames_done}/{total} frames"
            if total
            else f"{self.frames_done} frames"
        ]
        if self.rate:
            parts.append(f"{self.rate:.1f} frames/s")
            if total:
                left = max(0, total - self.frames_done) / self.rate
                parts.append(f"ETA {format_duration(left)}")
        return ProgressStatus(
            "inference",
            "inference",
            done=float(self.frames_done),
            total=float(total) if total else None,
            detail="  ".join(parts),
        )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass
class TransferProgress:
    """Bytes of an upload or a download, with the rate and an ETA.

    The rate counts only what moved since the first report (a resumed
    transfer's held bytes are not "sent fast").

    Attributes:
        what: ``upload`` or ``download`` (the label and the phase).
        clock: Seconds (injectable).
    """

    what: str
    clock: Callable[[], float] = time.monotonic
    done: int = 0
    total: int | None = None
    _start: tuple[float, int] | None = field(default=None, repr=False)
    _since: float | None = field(default=None, repr=False)

    def feed(self, done: int, total: int) -> None:
        """Bytes held so far, and in all."""
        now = self.clock()
        if self._start is None:
            self._start = (now, done)
        self.done, self.total = done, total

    def rate(self, now: float | None = None) -> float | None:
        """Bytes per second since the first report."""
        if self._start is None:
            return None
        now = self.clock() if now is None else now
        started, first = self._start
        elapsed = now - started
        return (self.done - first) / elapsed if elapsed > 0 else None

    def status(self, now: float | None = None) -> ProgressStatus:
        """Bytes, rate and ETA; before the first byte, what it waits for."""
        now = self.clock() if now is None else now
        if self._since is None:
            self._since = now
        if self.total is None:
            return ProgressStatus(
                f"{self.what} start",
                f"{self.what}: waiting for the worker",
                detail=_waited(now - self._since),
            )
        parts = [f"{format_bytes(self.done)} of {format_bytes(self.total)}"]
        rate = self.rate(now)
        if rate:
            parts.append(f"{format_bytes(rate)}/s")
            if self.done < self.total:
                parts.append(f"ETA {format_duration((self.total - self.done) / rate)}")
        return ProgressStatus(
            self.what,
            self.what,
            done=float(self.done),
            total=float(self.total),
            detail="  ".join(parts),
        )


@dataclass
class Waiting:
    """A wait with nothing to count: what it waits for, and for how long.

    Attributes:
        phase: The status's phase.
        label: What it waits for.
        clock: Seconds (injectable).
    """

    phase: str
    label: str
    clock: Callable[[], float] = time.monotonic
    _since: float | None = field(default=None, repr=False)

    def status(self, now: float | None = None) -> ProgressStatus:
        """The label and the time waited."""
        now = self.clock() if now is None else now
        if self._since is None:
            self._since = now
        return ProgressStatus(self.phase, self.label, detail=_waited(now - self._since))


@dataclass
class PlainPacer:
    """When a display without a terminal prints a status line.

    A new phase is told once it has lasted ``notice`` seconds (waits shorter
    than that stay unsaid), then a line at most every ``interval`` seconds
    while the text changes: a log in CI stays readable.
    """

    interval: float = 5.0
    notice: float = 1.0
    _phase: str | None = field(default=None, repr=False)
    _phase_since: float = field(default=0.0, repr=False)
    _told_phase: bool = field(default=False, repr=False)
    _last: float = field(default=-math.inf, repr=False)
    _last_text: str | None = field(default=None, repr=False)

    def due(self, status: ProgressStatus, now: float) -> str | None:
        """The line to print for ``status`` at ``now``, or ``None``."""
        if status.phase != self._phase:
            self._phase, self._phase_since, self._told_phase = status.phase, now, False
        if now - self._phase_since < self.notice:
            return None
        text = status.line()
        if not self._told_phase or (
            now - self._last >= self.interval and text != self._last_text
        ):
            self._told_phase, self._last, self._last_text = True, now, text
            return text
        return None

    def end(self, status: ProgressStatus) -> str | None:
        """The last line of a phase that was told (its end), else ``None``;
        the next status starts afresh."""
        told = self._told_phase and status.phase == self._phase
        text = status.line()
        fresh = text != self._last_text
        self._phase, self._told_phase, self._last_text = None, False, None
        return text if told and fresh else None
