"""What a job reports: its snapshot, progress bookkeeping, actionable failures.

Pure helpers of the job runner (:mod:`.run`): the :class:`JobInfo`
snapshot, reading sleap-nn's progress events into ``JOB_PROGRESS`` objects and
final losses, and turning an exit status plus the end of stderr into a message
a person can act on.
"""

from __future__ import annotations

import math
import re
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...protocol.states import JobState

__all__ = [
    "STDERR_TAIL_LINES",
    "JobInfo",
    "epoch_progress",
    "GPU_OOM",
    "failure_code",
    "failure_message",
    "final_losses",
]

STDERR_TAIL_LINES = 30
"""How many stderr lines a ``JOB_FAILED`` carries."""

# (text found in stderr, lower case) -> advice; the first match wins.
_HINTS: tuple[tuple[str, str], ...] = (
    (
        "out of memory",
        "the GPU ran out of memory: lower batch_size or the input scale "
        "(data_config.preprocessing.scale), or pick a worker with more memory",
    ),
    (
        "no module named",
        "sleap-nn is not installed correctly on the worker; ask its owner to "
        "reinstall the worker extra",
    ),
    (
        "filenotfounderror",
        "a file the job needs is missing on the worker: check the labels' video "
        "paths and the path mappings",
    ),
    (
        "no such file or directory",
        "a file the job needs is missing on the worker: check the labels' video "
        "paths and the path mappings",
    ),
    (
        "could not override",
        "the config does not fit this sleap-nn version: check the config keys",
    ),
    (
        "validationerror",
        "the config does not fit this sleap-nn version: check the config keys",
    ),
    (
        "permission denied",
        "the worker may not write where the model goes: check trainer_config."
        "ckpt_dir and the mount's permissions",
    ),
)


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A snapshot of one job, for the worker's status and UIs.

    Attributes:
        job_id: The worker's id (``job_`` + 8 hex).
        client_job_id: The id the client gave in ``JOB_SUBMIT``.
        owner: The peer that submitted it.
        job_type: ``train`` or ``track``.
        state: Where it is in its life.
        model_index: 0-based index of the model training now (or last).
        model_count: Models in the pipeline (1 for track jobs).
        model_type: The current model's type, if known.
        attached: Channels receiving its frames now.
        dropped: Frames dropped over its life (slow or absent channels).
        result: The final ``JOB_COMPLETE`` / ``JOB_FAILED`` object, once final.
        pid: The running sleap-nn process (leader of its own process group).
    """

    job_id: str
    client_job_id: str
    owner: str
    job_type: str
    state: JobState
    model_index: int
    model_count: int
    model_type: str | None
    attached: int
    dropped: int
    result: dict[str, Any] | None
    pid: int | None


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def epoch_progress(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``JOB_PROGRESS`` object of an ``epoch_end`` event, else ``None``.

    sleap-nn's ``train/loss`` in epoch N's event is epoch N-1's mean (it is
    logged after the event), so the running ``loss`` is preferred.
    """
    if event.get("event") != "epoch_end":
        return None
    logs = event.get("logs")
    logs = logs if isinstance(logs, Mapping) else {}
    out: dict[str, Any] = {}
    epoch = event.get("epoch")
    if isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 0:
        out["epoch"] = epoch
    loss = _finite(logs.get("loss"))
    if loss is None:
        loss = _finite(logs.get("train/loss"))
    if loss is not None:
        out["loss"] = loss
    val = _finite(logs.get("val/loss"))
    if val is None:
        val = _finite(logs.get("val_loss"))
    if val is not None:
        out["val_loss"] = val
    return out


def final_losses(event: Mapping[str, Any]) -> dict[str, float]:
    """The finite loss values (keys naming a loss) of an ``epoch_end`` event."""
    logs = event.get("logs")
    if not isinstance(logs, Mapping):
        return {}
    out = {}
    for key, value in logs.items():
        number = _finite(value)
        if isinstance(key, str) and "loss" in key and number is not None:
            out[key] = number
    return out


GPU_OOM = "GPU_OOM"
"""``JOB_FAILED``'s ``code`` when the job died of CUDA out-of-memory."""

_CUDA_OOM = (
    "cuda out of memory",
    "torch.outofmemoryerror",
    "torch.cuda.outofmemoryerror",
    "cublas_status_alloc_failed",
    "cudnn_status_alloc_failed",
)


def failure_code(exit_code: int | None, tail: Sequence[str]) -> str | None:
    """A typed cause for a failed sleap-nn run, when the output shows one:
    :data:`GPU_OOM` for CUDA out-of-memory."""
    if exit_code == 0:
        return None
    text = "\n".join(tail).lower()
    if any(needle in text for needle in _CUDA_OOM):
        return GPU_OOM
    return None


def failure_message(what: str, exit_code: int | None, tail: Sequence[str]) -> str:
    """A sentence saying what failed and what to try.

    Args:
        what: ``training``, ``inference``, ... (the step that failed).
        exit_code: The process's exit status (``-N``: killed by signal N), or
            ``None`` when it never started.
        tail: The last stderr lines.
    """
    text = "\n".join(tail).lower()
    hint = next((advice for needle, advice in _HINTS if needle in text), None)
    if exit_code is None:
        head = f"{what} could not start"
    elif exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        head = f"{what} was killed by {name}"
        if hint is None and exit_code == -signal.SIGKILL:
            hint = "the worker may have run out of memory"
    else:
        head = f"{what} failed with exit code {exit_code}"
    last = _last_error(tail)
    if hint is None:
        return (
            f"{head}: last error: {last}" if last else f"{head}: see the worker's log"
        )
    # sleap-nn's own words say which value or key it refused: keep them.
    return f"{head}: {hint} (sleap-nn: {last})" if last else f"{head}: {hint}"


_RAISED = re.compile(r"\b\w*(?:Error|Exception)\b:")


def _last_error(tail: Sequence[str], limit: int = 300) -> str:
    """The last line of ``tail`` that raises an error (``SomethingError: …``),
    else its last line."""
    lines = [line.strip() for line in tail if line.strip()]
    named = [line for line in lines if _RAISED.search(line)]
    last = (named or lines or [""])[-1]
    return last if len(last) <= limit else last[: limit - 1] + "…"
