"""Turn sleap-nn progress events into the lines a terminal user reads.

Pure: fed the decoded ``PROGRESS_REPORT`` objects (PROTOCOL.md B §5: ``event`` is
``train_begin``, ``epoch_begin``, ``batch_start``, ``batch_end``, ``epoch_end`` or
``train_end``, with ``epoch``/``batch`` and ``logs``) and a clock, it returns the
line to print, if any: one per epoch with the losses and an ETA, and a summary.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TrainingProgress", "format_duration"]

_TRAIN_LOSS_KEYS = ("train/loss", "train_loss", "loss")
_VAL_LOSS_KEYS = ("val/loss", "val_loss")


def format_duration(seconds: float) -> str:
    """``1h02m03s`` / ``2m03s`` / ``4.2s``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _loss(logs: Mapping[str, Any], keys: tuple[str, ...]) -> float | None:
    for key in keys:
        value = logs.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


@dataclass
class TrainingProgress:
    """Progress of one model's training, as the terminal shows it.

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
    _epoch_started: float | None = field(default=None, repr=False)

    def feed(self, event: Mapping[str, Any]) -> str | None:
        """One event in; the line to print (or ``None``)."""
        kind = event.get("event")
        now = self.clock()
        logs = event.get("logs")
        logs = logs if isinstance(logs, Mapping) else {}
        if kind == "train_begin":
            self.started_at = now
            return "training started"
        if kind == "epoch_begin":
            self._epoch_started = now
            if self.started_at is None:
                self.started_at = now
            return None
        if kind == "epoch_end":
            return self._epoch_end(event, logs, now)
        if kind == "train_end":
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

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left, from the mean epoch time so far."""
        if not self.total_epochs or self.started_at is None or not self.epochs_done:
            return None
        now = self.clock() if now is None else now
        per_epoch = (now - self.started_at) / self.epochs_done
        return max(0.0, per_epoch * (self.total_epochs - self.epochs_done))
