"""What a failed job tells its owner, and the progress it reports
(sleap_rtc_core.worker.jobs.results, pure)."""

from __future__ import annotations

import signal

from sleap_rtc_core.worker.jobs.results import epoch_progress, failure_message

# The end of what sleap-nn printed for ``batch_size: eight``.
BAD_VALUE = [
    "Traceback (most recent call last):",
    '  File "sleap_nn/train.py", line 1, in main',
    "omegaconf.errors.ValidationError: Value 'eight' could not be converted to Integer",
    "    full_key: trainer_config.train_data_loader.batch_size",
    "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.",
]


def test_a_config_mistake_keeps_sleap_nns_own_words() -> None:
    message = failure_message("training", 1, BAD_VALUE)
    assert message.startswith("training failed with exit code 1: the config does")
    assert "Value 'eight' could not be converted to Integer" in message


def test_out_of_memory_kill_and_unknown_failures() -> None:
    oom = failure_message(
        "training", 1, ["torch.cuda.OutOfMemoryError: CUDA out of memory"]
    )
    assert "lower batch_size" in oom
    killed = failure_message("inference", -signal.SIGKILL, [])
    assert killed == (
        "inference was killed by SIGKILL: the worker may have run out of memory"
    )
    other = failure_message("training", 2, ["something odd", ""])
    assert other == "training failed with exit code 2: last error: something odd"
    assert failure_message("training", None, []) == (
        "training could not start: see the worker's log"
    )
    long = failure_message("training", 1, ["ValueError: " + "x" * 1000])
    assert len(long) < 400


def test_epoch_progress_prefers_the_running_loss() -> None:
    event = {"event": "epoch_end", "epoch": 3, "logs": {"loss": 0.5, "train/loss": 9}}
    assert epoch_progress(event) == {"epoch": 3, "loss": 0.5}
    assert epoch_progress({"event": "epoch_end", "logs": {"val_loss": 0.25}}) == {
        "val_loss": 0.25
    }
    assert epoch_progress({"event": "train_begin"}) is None
    assert epoch_progress({"event": "epoch_end", "epoch": True, "logs": []}) == {}
