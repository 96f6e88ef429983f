"""Timestamps for ``job_overhead.py``: where a progress event is, and when.

Worker, client and signaling server all run in the bench process, on one event
loop, so one clock (:func:`time.perf_counter`) stamps both ends of a progress
event's trip. :class:`JobProbe` wraps two methods for the duration of a
``with`` block (bench-only instrumentation; nothing else changes):

* ``TrainerLink._push``: the instant the worker's ZMQ SUB hands over one
  progress message published by the sleap-nn subprocess (the worker's side);
* ``RemoteJob.submit``: the instant the client sends ``JOB_SUBMIT``, and the
  instant the worker's ``JOB_ACCEPTED`` reaches it.

The client's side is the ``on_progress`` callback of the job. The worker
forwards every event, in order and unchanged, so the k-th event the client
hears is the k-th the worker received; the event names are compared to make
sure (a mismatch or a drop is reported, never hidden).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sleap_rtc_core.client.remote_job import RemoteJob
from sleap_rtc_core.progress.trainer_link import TrainerLink

__all__ = ["JobProbe", "event_name", "pct"]


def pct(values: list[float], q: float) -> float:
    """The ``q``-quantile (0..1) of ``values`` (nearest rank); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def event_name(raw: str | dict[str, Any]) -> str:
    """The ``event`` field of a sleap-nn progress message ("?" when absent)."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return "?"
    return str(raw.get("event", "?")) if isinstance(raw, dict) else "?"


@dataclass
class JobProbe:
    """Times of one run's progress events on both sides, and of its submit.

    Attributes:
        worker: (time, event name) of each message the worker's link received.
        client: (time, event name) of each ``on_progress`` callback.
        submitted: When the last ``JOB_SUBMIT`` was sent.
        accepted: When its ``JOB_ACCEPTED`` arrived.
    """

    worker: list[tuple[float, str]] = field(default_factory=list)
    client: list[tuple[float, str]] = field(default_factory=list)
    submitted: float | None = None
    accepted: float | None = None

    def reset(self) -> None:
        """Forget the previous run."""
        self.worker.clear()
        self.client.clear()
        self.submitted = None
        self.accepted = None

    def on_progress(self, event: Any) -> None:
        """The client's ``JobCallbacks.on_progress``."""
        self.client.append((time.perf_counter(), event_name(event)))

    @contextmanager
    def installed(self) -> Iterator[JobProbe]:
        """Wrap ``TrainerLink._push`` and ``RemoteJob.submit`` inside the block."""
        push, submit = TrainerLink._push, RemoteJob.submit
        probe = self

        def timed_push(link: TrainerLink, raw: str) -> None:
            probe.worker.append((time.perf_counter(), event_name(raw)))
            push(link, raw)

        async def timed_submit(job: RemoteJob, timeout: float = 120.0) -> str:
            probe.submitted = time.perf_counter()
            job_id = await submit(job, timeout)
            probe.accepted = time.perf_counter()
            return job_id

        TrainerLink._push = timed_push
        RemoteJob.submit = timed_submit
        try:
            yield self
        finally:
            TrainerLink._push = push
            RemoteJob.submit = submit

    def latencies_ms(self) -> tuple[list[float], int]:
        """Worker receive → client callback of each event, and the mismatches.

        Returns:
            The latencies of the events both sides saw, and how many events
            did not pair up (different counts or names at the same index).
        """
        pairs = zip(self.worker, self.client, strict=False)
        out = [(tc - tw) * 1e3 for (tw, nw), (tc, nc) in pairs if nw == nc]
        mismatched = max(len(self.worker), len(self.client)) - len(out)
        return out, mismatched
