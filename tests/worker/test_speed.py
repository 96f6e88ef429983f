"""The worker's estimates: job size × measured speed (pure)."""

from __future__ import annotations

import pytest

from sleap_rtc_core.protocol.negotiation import JobRequest, JobType
from sleap_rtc_core.worker.speed import (
    Speed,
    SpeedBook,
    inference_seconds,
    training_seconds,
)

SPEED = Speed(
    startup_seconds=20.0,
    epoch_seconds_per_frame=0.1,
    inference_startup_seconds=10.0,
    inference_frames_per_second=100.0,
)


def _train(epochs: object = None, frames: object = None) -> JobRequest:
    config = {} if epochs is None else {"epochs": epochs}
    info = {} if frames is None else {"frame_count": frames}
    return JobRequest(job_id="j", config=config, dataset_info=info)


def _track(frames: object = None) -> JobRequest:
    info = {} if frames is None else {"frame_count": frames}
    return JobRequest(job_id="j", job_type=JobType.INFERENCE, dataset_info=info)


def test_the_formulas() -> None:
    assert training_seconds(10, 50, SPEED) == 20.0 + 10 * 50 * 0.1
    assert training_seconds(0, 50, SPEED) == 0.0
    assert training_seconds(10, 0, SPEED) == 0.0
    assert inference_seconds(1000, SPEED) == 20.0
    assert inference_seconds(0, SPEED) == 0.0


def test_zero_epochs_or_frames_estimate_nothing() -> None:
    book = SpeedBook(SPEED)
    assert book.estimate_minutes(_train(epochs=0)) == 0.0
    assert book.estimate_minutes(_train(epochs=5, frames=0)) == 0.0
    assert book.estimate_minutes(_track(frames=0)) == 0.0


def test_the_request_size_counts() -> None:
    book = SpeedBook(SPEED)
    assert book.estimate_minutes(_train(epochs=1, frames=60)) == pytest.approx(
        (20 + 6) / 60
    )
    max_epochs = JobRequest(job_id="j", config={"max_epochs": 2})
    assert book.estimate_minutes(max_epochs) == pytest.approx((20 + 2 * 100 * 0.1) / 60)
    # Unknown: sleap-nn's 100 epochs, 100 labeled frames; 1000 frames to predict.
    assert book.estimate_minutes(_train()) == pytest.approx((20 + 1000) / 60)
    assert book.estimate_minutes(_track()) == pytest.approx(20 / 60)
    for odd in ("x", True, -3, float("nan")):
        assert book.estimate_minutes(_train(epochs=odd, frames=10)) == pytest.approx(
            (20 + 100 * 10 * 0.1) / 60
        )


def test_measurements_move_the_estimate() -> None:
    book = SpeedBook(SPEED)
    before = book.estimate_minutes(_train(epochs=10, frames=100))
    # This worker is slower: 2 epochs over 100 frames took 100 s (0.5 s/frame).
    book.record_training(epochs=2, frames=100, startup_seconds=40, epochs_seconds=100)
    assert book.speed.startup_seconds == pytest.approx(30.0)
    assert book.speed.epoch_seconds_per_frame == pytest.approx(0.3)
    assert book.estimate_minutes(_train(epochs=10, frames=100)) > before
    # Unknown frames or a stop before the first epoch teach only the startup.
    book.record_training(epochs=0, frames=None, startup_seconds=30, epochs_seconds=None)
    assert book.speed.epoch_seconds_per_frame == pytest.approx(0.3)
    book.record_inference(frames=500, startup_seconds=2, frames_seconds=1.0)
    assert book.speed.inference_frames_per_second == pytest.approx(300.0)
    assert book.speed.inference_startup_seconds == pytest.approx(6.0)
    book.record_inference(frames=0, startup_seconds=None, frames_seconds=0)
    assert book.speed.inference_frames_per_second == pytest.approx(300.0)
