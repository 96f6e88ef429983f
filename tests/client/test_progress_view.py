"""Progress lines from sleap-nn events (pure)."""

from __future__ import annotations

from sleap_rtc_core.client.progress_view import TrainingProgress, format_duration


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_epoch_lines_with_losses_and_eta() -> None:
    clock = Clock()
    view = TrainingProgress(total_epochs=4, clock=clock)
    assert view.feed({"event": "train_begin", "logs": {}}) == "training started"
    assert view.feed({"event": "epoch_begin", "epoch": 0}) is None
    assert view.feed({"event": "batch_end", "batch": 0, "logs": {"loss": 1.0}}) is None
    clock.now += 10
    line = view.feed(
        {"event": "epoch_end", "epoch": 0, "logs": {"train/loss": 0.5, "val/loss": 0.7}}
    )
    assert line == "epoch 1/4  loss 0.5  val 0.7  ETA 30.0s"
    clock.now += 10
    line = view.feed({"event": "epoch_end", "epoch": 1, "logs": {"val_loss": 0.4}})
    assert line == "epoch 2/4  loss 0.5  val 0.4  ETA 20.0s"
    assert view.best_val_loss == 0.4
    done = view.feed({"event": "train_end"})
    assert done == "training finished after 2 epoch(s), in 20.0s, best val loss 0.4"


def test_odd_events_never_raise() -> None:
    view = TrainingProgress()
    for event in [{}, {"event": 3}, {"event": "epoch_end", "epoch": "x", "logs": 5}]:
        view.feed(event)
    assert view.epochs_done == 1
    assert view.eta() is None


def test_format_duration() -> None:
    assert format_duration(4.24) == "4.2s"
    assert format_duration(123) == "2m03s"
    assert format_duration(3723) == "1h02m03s"
    assert format_duration(float("nan")) == "?"
