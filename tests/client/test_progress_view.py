"""Progress lines from sleap-nn events (pure)."""

from __future__ import annotations

from sleap_rtc_core.client.progress_view import (
    InferenceProgress,
    PlainPacer,
    ProgressStatus,
    TrainingProgress,
    TransferProgress,
    Waiting,
    format_bytes,
    format_duration,
)


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


# --- statuses: what a display shows, and what it waits for


def test_training_says_what_it_waits_for_then_counts_batches() -> None:
    clock = Clock()
    view = TrainingProgress(total_epochs=2, clock=clock)
    first = view.status()
    assert first.phase == "starting"
    clock.now += 3
    assert view.status().line() == (
        "waiting for sleap-nn to start (loading the labels)  3.0s so far"
    )
    view.feed({"event": "train_begin"})
    clock.now += 2
    status = view.status()
    assert status.phase == "first batch"
    assert status.detail == "2.0s so far"
    view.feed({"event": "epoch_begin", "epoch": 0})
    for i in range(4):
        view.feed({"event": "batch_end", "epoch": 0, "batch": i, "logs": {"loss": 0.5}})
    status = view.status()
    assert status.line() == "epoch 1/2  batch 4  loss 0.5"  # no total yet
    assert status.fraction == 0.0
    clock.now += 8
    view.feed({"event": "epoch_end", "epoch": 0, "logs": {"train/loss": 0.4}})
    assert view.batches_per_epoch == 4
    view.feed({"event": "epoch_begin", "epoch": 1})
    view.feed({"event": "batch_end", "epoch": 1, "batch": 1, "logs": {}})
    status = view.status()
    assert status.label == "epoch 2/2"
    assert status.detail == "batch 2/4  loss 0.4  ETA 3.3s"
    assert status.fraction == 0.75
    clock.now += 3  # quiet: the status says since when
    assert "(3.0s since the last update)" in view.status().detail
    view.feed({"event": "train_end"})
    assert view.status().phase == "finishing"


def test_inference_counts_frames() -> None:
    clock = Clock()
    view = InferenceProgress(clock=clock)
    view.begin()
    clock.now += 1.5
    assert view.status().line() == (
        "waiting for sleap-nn track to start (loading the model)  1.5s so far"
    )
    view.feed({"n_processed": 50, "n_total": 200, "rate": 25.0, "eta": 6})
    status = view.status()
    assert status.line() == "inference  50/200 frames  25.0 frames/s  ETA 6.0s"
    assert status.fraction == 0.25
    view.feed({"n_processed": "x", "rate": True})  # odd values are ignored
    assert view.frames_done == 50
    assert view.summary() == "inference: 50 frame(s) predicted"


def test_transfer_says_bytes_rate_and_eta() -> None:
    clock = Clock()
    view = TransferProgress("download", clock=clock)
    assert view.status().line() == "download: waiting for the worker  0.0s so far"
    view.feed(10_000_000, 124_000_000)  # held from an earlier attempt
    clock.now += 2
    view.feed(30_000_000, 124_000_000)
    assert view.status().line() == (
        "download  30.0 MB of 124.0 MB  10.0 MB/s  ETA 9.4s"
    )
    view.feed(124_000_000, 124_000_000)
    assert "ETA" not in view.status().line()


def test_format_bytes() -> None:
    assert format_bytes(512) == "512 B"
    assert format_bytes(1500) == "1.5 kB"
    assert format_bytes(124e6) == "124.0 MB"
    assert format_bytes(2.5e9) == "2.50 GB"


def test_plain_lines_come_at_a_bounded_rate() -> None:
    pacer = PlainPacer(interval=5.0, notice=1.0)
    wait = ProgressStatus("starting", "waiting", detail="0.2s so far")
    assert pacer.due(wait, 0.2) is None  # a short wait stays unsaid
    wait = ProgressStatus("starting", "waiting", detail="1.2s so far")
    assert pacer.due(wait, 1.2) == "waiting  1.2s so far"
    assert pacer.due(ProgressStatus("starting", "waiting", detail="2s"), 2.0) is None
    assert pacer.due(ProgressStatus("starting", "waiting", detail="6s"), 6.5) == (
        "waiting  6s"
    )
    lines = [
        pacer.due(ProgressStatus("training", "epoch 1/9", detail=f"b{t}"), t / 10)
        for t in range(70, 200)
    ]
    told = [x for x in lines if x is not None]
    assert len(told) == 3  # 8.0 s (told once the phase lasted 1 s), 13 s, 18 s
    end = ProgressStatus("training", "epoch 9/9", detail="done")
    assert pacer.end(end) == "epoch 9/9  done"
    assert pacer.end(end) is None  # said once; a new phase starts afresh


def test_waiting_counts_up() -> None:
    clock = Clock()
    wait = Waiting("finishing", "waiting for the worker", clock=clock)
    wait.status()
    clock.now += 4
    assert wait.status().line() == "waiting for the worker  4.0s so far"
