"""Run a job remotely, end to end: find a worker, open a channel, run, follow.

The one place where negotiation (:mod:`.negotiator`), the data channel
(:mod:`~sleap_rtc_core.transport`) and the job protocol (:mod:`.remote_job`) meet;
the CLI, the demo and the GUI call :func:`run_remote_job`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import NoWorkersAvailableError
from ..protocol.dialect import LEGACY_WORKER_LIMITS
from ..protocol.jobspec import JobSpec, TrackJobSpec, TrainJobSpec
from ..protocol.negotiation import JobRequest, JobType
from ..protocol.paths import map_path
from ..signaling.client.session_io import SignalingClient
from ..transport.auth import ChannelAuth
from ..transport.channel import Channel
from ..transport.peer import open_channel
from .job_size import epochs_of, frame_count
from .legacy_job import LegacyJob, is_legacy_worker
from .negotiator import JobClient, Placement
from .presence import close_when_peer_leaves
from .remote_job import JobCallbacks, RemoteJob
from .selection_report import ONLY_ONE, choice_reason, selected_line, worker_lines

__all__ = ["run_remote_job"]

logger = logging.getLogger(__name__)

Say = Callable[[str], None]


async def run_remote_job(
    signaling: SignalingClient,
    spec: JobSpec,
    *,
    auth: ChannelAuth,
    worker_id: str | None = None,
    min_gpu_memory_mb: int | None = None,
    model_type: str | None = None,
    callbacks: JobCallbacks | None = None,
    say: Say = logger.info,
    on_job: Callable[[RemoteJob], None] | None = None,
    response_deadline: float = 10.0,
    prepare: Callable[[Channel], Awaitable[JobSpec]] | None = None,
    finish: Callable[[Channel, JobSpec, dict[str, Any]], Awaitable[None]] | None = None,
    accept_legacy: bool = True,
    can_send_data: bool = False,
    on_wait: Callable[[str | None], None] | None = None,
) -> dict[str, Any]:
    """Place ``spec`` on a worker and run it there; returns ``JOB_COMPLETE``'s data.

    Args:
        signaling: A started client-role signaling client.
        spec: The train or track spec (paths as the worker sees them, or with
            ``path_mappings``).
        auth: Our channel credentials (room secret and/or Ed25519 key).
        worker_id: Skip negotiation and use this worker.
        min_gpu_memory_mb: Discovery's memory bound.
        model_type: Discovery's model-type check.
        callbacks: Progress, log and model callbacks.
        say: Where the steps are told (one line each).
        on_job: Gets the :class:`RemoteJob` once accepted (to stop or cancel).
            Cancelling the calling task cancels the job on the worker.
        response_deadline: Seconds to wait for workers' answers.
        prepare: Runs on the open channel before submitting (path checks) and
            returns the spec to submit (e.g. with ``path_mappings``).
        finish: Runs on the still-open channel after ``JOB_COMPLETE`` (e.g. to
            bring the models home).
        accept_legacy: Whether a sleap-rtc 0.0.7 worker may run the job (it is
            said once what such a worker cannot do).
        can_send_data: ``prepare`` uploads the data where the worker cannot
            see it, so the choice need not stay with workers that see it
            (workers that do still come first).
        on_wait: Told each wait before the job is accepted (discovery, the
            workers' answers, the data channel, the file checks, the
            submission), ``None`` when they are over; a display shows it with
            the time waited.

    Raises:
        NoWorkersAvailableError, NoWorkersAcceptedError: placement failed.
        TransportError: the channel could not be opened or authenticated.
        JobRejected: the worker refused the spec.
        TrainingFailed: the job failed, or the connection was lost.
    """
    job_type = JobType.INFERENCE if isinstance(spec, TrackJobSpec) else JobType.TRAINING
    job_id: str | None = None  # the negotiated id, which the job keeps

    def wait(what: str | None) -> None:
        if on_wait is not None:
            on_wait(what)

    if worker_id is None:
        jobs = JobClient(
            signaling,
            response_deadline=response_deadline,
            accept_legacy=accept_legacy,
            on_wait=wait,
        )
        config: dict[str, Any] = {"model_type": model_type} if model_type else {}
        dataset: dict[str, Any] = {}
        if isinstance(spec, TrainJobSpec):  # the workers' estimates: epochs
            epochs = epochs_of(spec)
            if epochs is not None:
                config["epochs"] = epochs
        local = spec.data_path if isinstance(spec, TrackJobSpec) else spec.labels_path
        if local:  # … and frames
            wait(f"counting the frames of {os.path.basename(local)}")
            frames = await asyncio.to_thread(
                frame_count, local, labeled=job_type is JobType.TRAINING
            )
            if frames is not None:
                dataset["frame_count"] = frames
        request = JobRequest(
            job_id=f"job-{uuid.uuid4().hex[:12]}",
            job_type=job_type,
            dataset_info=dataset,
            config=config,
            requirements=(
                {"min_gpu_memory_mb": min_gpu_memory_mb} if min_gpu_memory_mb else {}
            ),
        )
        async with signaling.subscribe("peer_message", "peer_left") as inbox:
            placement = await jobs.place(
                request,
                inbox,
                min_gpu_memory_mb,
                data_path=_worker_data_path(spec),
                can_send_data=can_send_data,
            )
        wait(None)
        worker_id = placement.worker_id
        legacy = placement.legacy
        job_id = request.job_id
        for line in _placement_lines(placement, job_type):
            say(line)
    else:
        legacy = await is_legacy_worker(signaling, worker_id)
    if legacy:
        if not accept_legacy:
            raise NoWorkersAvailableError(
                f"worker {worker_id} runs sleap-rtc 0.0.7, and this client refuses "
                "such workers (--refuse-legacy-workers)"
            )
        say(f"! worker {worker_id}: {LEGACY_WORKER_LIMITS}")
    say(f"connecting to {worker_id} over WebRTC")
    wait(f"opening an authenticated data channel to {worker_id}")
    try:
        channel = await open_channel(
            signaling, worker_id, auth=auth, legacy_worker=legacy
        )
    finally:
        wait(None)
    try:

        def accepted(job: RemoteJob) -> None:
            wait(None)
            say(f"job {job.job_id} accepted by {worker_id}")
            if on_job is not None:
                on_job(job)

        if prepare is not None:
            spec = await prepare(channel)  # it shows its own waits and questions
        wait(f"waiting for {worker_id} to accept the job")
        async with close_when_peer_leaves(signaling, worker_id, channel):
            if legacy:
                job: RemoteJob = LegacyJob(channel, spec)
            elif job_id is not None:
                job = RemoteJob(channel, spec, client_job_id=job_id)
            else:
                job = RemoteJob(channel, spec)
            result = await job.run(callbacks, on_accepted=accepted)
            if finish is not None:
                await finish(channel, spec, result)
            return result
    finally:
        await channel.close()


def _placement_lines(placement: Placement, job_type: JobType) -> list[str]:
    """The workers asked with their answers, then which one was chosen and why."""
    chosen = next(
        (p for p in placement.asked if p.get("peer_id") == placement.worker_id),
        {"peer_id": placement.worker_id},
    )
    if placement.legacy:
        reason = "sleap-rtc 0.0.7 worker with the most GPU memory"
        if len(placement.asked) <= 1:
            reason = ONLY_ONE
        return [selected_line(chosen, reason)]
    data = "data" if job_type is JobType.INFERENCE else "labels"
    reason = choice_reason(
        placement.responses, placement.worker_id, placement.prefer, data
    )
    lines = worker_lines(
        placement.asked, placement.responses, placement.reasons, placement.prefer
    )
    return [*lines, selected_line(chosen, reason)]


def _worker_data_path(spec: JobSpec) -> str | None:
    """The job's labels (training) or data (inference) as workers name it."""
    path = spec.data_path if isinstance(spec, TrackJobSpec) else spec.labels_path
    return map_path(path, spec.path_mappings) if path else None
