"""How fast this worker is, and what a job would take here (pure).

The ``job_response`` estimate (PROTOCOL.md A: ``estimated_duration_minutes``)
is a function of the job's size and the worker's speed:

* training: ``startup + epochs × labeled frames × seconds per epoch-frame``
  (``config.epochs`` / ``config.max_epochs``, default sleap-nn's 100;
  ``dataset_info.frame_count``, the labeled frames);
* inference: ``startup + frames / frames per second`` (``frame_count``, the
  frames to predict).

``0`` epochs or ``0`` frames is (almost) nothing: ``0.0``. The speeds start
from cheap defaults (a modest GPU) and follow what this worker measured on the
jobs it ran (:meth:`SpeedBook.record_training`, :meth:`SpeedBook.record_inference`),
kept in memory: a restarted worker starts from the defaults again. Clients
label the result "estimate" wherever they show it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from ..protocol.negotiation import JobRequest, JobType

__all__ = [
    "DEFAULT_EPOCHS",
    "DEFAULT_INFERENCE_FRAMES",
    "DEFAULT_TRAINING_FRAMES",
    "Speed",
    "SpeedBook",
    "inference_seconds",
    "training_seconds",
]

DEFAULT_EPOCHS = 100
"""sleap-nn's ``max_epochs`` when a request names none."""

DEFAULT_TRAINING_FRAMES = 100
"""Labeled frames assumed when a request does not say."""

DEFAULT_INFERENCE_FRAMES = 1000
"""Frames to predict assumed when a request does not say."""

WEIGHT = 0.5
"""How much a new measurement counts against what was known (a moving mean)."""


@dataclass(frozen=True, slots=True)
class Speed:
    """What one worker does per second.

    Attributes:
        startup_seconds: sleap-nn ``train``'s overhead: up to its first
            epoch (imports, loading the labels, building the model) and after
            its last (saving, exiting).
        epoch_seconds_per_frame: One epoch over one labeled frame (with its
            validation share).
        inference_startup_seconds: sleap-nn ``track`` up to its first frames.
        inference_frames_per_second: Frames predicted per second.
    """

    startup_seconds: float = 20.0
    epoch_seconds_per_frame: float = 0.05
    inference_startup_seconds: float = 10.0
    inference_frames_per_second: float = 50.0


def training_seconds(epochs: float, frames: float, speed: Speed) -> float:
    """Seconds to train ``epochs`` over ``frames`` labeled frames."""
    if epochs <= 0 or frames <= 0:
        return 0.0
    return speed.startup_seconds + epochs * frames * speed.epoch_seconds_per_frame


def inference_seconds(frames: float, speed: Speed) -> float:
    """Seconds to predict ``frames`` frames."""
    if frames <= 0:
        return 0.0
    return speed.inference_startup_seconds + frames / max(
        speed.inference_frames_per_second, 1e-6
    )


def _count(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return float(value)


def _mean(old: float, new: float) -> float:
    return (1 - WEIGHT) * old + WEIGHT * new


class SpeedBook:
    """This worker's speed: seeded, then measured (see the module docstring)."""

    def __init__(self, seed: Speed | None = None) -> None:
        self.speed = seed or Speed()

    def estimate_minutes(self, request: JobRequest) -> float:
        """Minutes ``request`` would take here (the ledger's estimator)."""
        frames = _count(request.dataset_info.get("frame_count"))
        if request.job_type is JobType.INFERENCE:
            if frames is None:
                frames = float(DEFAULT_INFERENCE_FRAMES)
            return inference_seconds(frames, self.speed) / 60.0
        epochs = _count(request.config.get("epochs"))
        if epochs is None:
            epochs = _count(request.config.get("max_epochs"))
        if epochs is None:
            epochs = float(DEFAULT_EPOCHS)
        if frames is None:
            frames = float(DEFAULT_TRAINING_FRAMES)
        return training_seconds(epochs, frames, self.speed) / 60.0

    def record_training(
        self,
        *,
        epochs: int,
        frames: int | None,
        startup_seconds: float | None,
        epochs_seconds: float | None,
    ) -> None:
        """One model's training as measured: its overhead (process start to
        ``train_begin``, ``train_end`` to the exit) and the time its
        ``epochs`` took over ``frames`` labeled frames (``None``: not known,
        that part is not learnt)."""
        speed = self.speed
        if startup_seconds is not None and startup_seconds >= 0:
            speed = replace(
                speed, startup_seconds=_mean(speed.startup_seconds, startup_seconds)
            )
        if epochs > 0 and frames and epochs_seconds is not None and epochs_seconds > 0:
            per = epochs_seconds / (epochs * frames)
            speed = replace(
                speed,
                epoch_seconds_per_frame=_mean(speed.epoch_seconds_per_frame, per),
            )
        self.speed = speed

    def record_inference(
        self, *, frames: int, startup_seconds: float | None, frames_seconds: float
    ) -> None:
        """One inference as measured: startup (to its first frames) and the
        time its ``frames`` took after that."""
        speed = self.speed
        if startup_seconds is not None and startup_seconds >= 0:
            speed = replace(
                speed,
                inference_startup_seconds=_mean(
                    speed.inference_startup_seconds, startup_seconds
                ),
            )
        if frames > 0 and frames_seconds > 0:
            speed = replace(
                speed,
                inference_frames_per_second=_mean(
                    speed.inference_frames_per_second, frames / frames_seconds
                ),
            )
        self.speed = speed
