"""Run one job on a worker over an authenticated data channel.

The client half of PROTOCOL.md B §4.5: ``JOB_SUBMIT`` → ``JOB_ACCEPTED`` (or
``JOB_REJECTED`` with every field error) → the job's frames → ``JOB_COMPLETE`` or
``JOB_FAILED``. Progress goes to callbacks as it arrives; :meth:`RemoteJob.stop`
(keep the model) and :meth:`RemoteJob.cancel` go back on the same channel.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ChannelClosed, JobError, JobRejected, TrainingFailed
from ..protocol.channel import ChannelMessage
from ..protocol.channel_messages import (
    ControlCommandMsg,
    JobAcceptedMsg,
    JobAttachMsg,
    JobCancelMsg,
    JobCompleteMsg,
    JobFailedMsg,
    JobLogMsg,
    JobRejectedMsg,
    JobStateMsg,
    JobSubmitMsg,
    ModelTypeMsg,
    ProgressReportMsg,
)
from ..protocol.channel_transfer import model_run_dirs
from ..protocol.jobspec import JobSpec, TrainJobSpec
from ..protocol.states import JobState
from ..transport.channel import Channel
from .job_secrets import (
    job_for_model,
    load_job_secret,
    save_job_models,
    save_job_secret,
)

__all__ = ["JobCallbacks", "RemoteJob", "claim_models"]

logger = logging.getLogger(__name__)

Callback = Callable[[Any], Awaitable[None] | None]


@dataclass
class JobCallbacks:
    """What a caller wants to hear while the job runs (all optional)."""

    on_progress: Callback | None = None
    """A decoded sleap-nn progress event (dict)."""
    on_progress_text: Callback | None = None
    """The same event as the exact text sleap-nn published (for LossViewer,
    which gets it byte for byte)."""
    on_log: Callback | None = None
    """One output line of the worker's process."""
    on_model: Callback | None = None
    """The model type a pipeline starts training."""
    on_message: Callback | None = None
    """Every other frame (for UIs that show more)."""


async def _call(callback: Callback | None, value: Any) -> None:
    if callback is None:
        return
    result = callback(value)
    if inspect.isawaitable(result):
        await result


async def _keep_secret(worker_id: str, job_id: str, secret: str) -> None:
    """Keep a job's secret for a later attach; a failure only costs that."""
    try:
        await asyncio.to_thread(save_job_secret, worker_id, job_id, secret)
    except OSError as exc:
        logger.warning("! cannot keep the secret of job %s: %s", job_id, exc)


async def _keep_models(
    worker_id: str, job_id: str | None, data: dict[str, Any]
) -> None:
    """Note a finished job's run folders beside its kept secret."""
    dirs = model_run_dirs(data)
    if not job_id or not dirs:
        return
    try:
        await asyncio.to_thread(save_job_models, worker_id, job_id, dirs)
    except OSError as exc:
        logger.warning("! cannot note the models of job %s: %s", job_id, exc)


CLAIM_FRAMES = (
    ProgressReportMsg,
    JobLogMsg,
    ModelTypeMsg,
    JobCompleteMsg,
    JobFailedMsg,
)


async def claim_models(
    channel: Channel, model_paths: Sequence[str], timeout: float = 30.0
) -> list[str]:
    """Show the worker the secret of each finished job whose run folder one
    of ``model_paths`` names (kept by :mod:`.job_secrets`), so that jobs of
    this channel may use those models: a model trained from an upload lies
    in the worker's upload area, which only its owner may name. The finished
    job's replayed frames are drained (they belong to no job of ours).

    Returns:
        The job ids shown.

    Raises:
        JobError: (``UNKNOWN_JOB``) the worker does not know a job as ours.
        TimeoutError: no answer in time.
    """
    shown: list[str] = []
    for model in model_paths:
        found = await asyncio.to_thread(job_for_model, channel.peer_id, model)
        if found is None or found[0] in shown:
            continue
        job_id, secret = found
        with channel.subscribe(*CLAIM_FRAMES) as replayed:
            reply = await channel.request(
                JobAttachMsg(job_id, secret), (JobStateMsg,), timeout
            )
            assert isinstance(reply, JobStateMsg)
            if reply.job_state is not JobState.SUCCEEDED:
                raise JobError(
                    f"the worker has no finished job {job_id} of ours for {model}",
                    code="UNKNOWN_JOB",
                )
            while True:  # up to the job's final frame
                item = await replayed.get(timeout=timeout)
                if isinstance(item, JobCompleteMsg | JobFailedMsg):
                    break
        shown.append(job_id)
    return shown


async def _report(callbacks: JobCallbacks, msg: ProgressReportMsg) -> None:
    await _call(callbacks.on_progress, msg.data)
    await _call(callbacks.on_progress_text, msg.raw)


@dataclass
class RemoteJob:
    """One job submitted on ``channel``.

    Attributes:
        channel: The authenticated channel to the worker.
        spec: What to run.
        client_job_id: Our id for it: the negotiated ``job_request`` id, which
            the worker keeps (a job submitted without negotiation gets the
            worker's own id).
        job_id: The id the worker accepted it under.
    """

    channel: Channel
    spec: JobSpec
    client_job_id: str = field(default_factory=lambda: f"cj-{uuid.uuid4().hex[:10]}")
    job_id: str | None = None
    job_secret: str | None = field(default=None, repr=False)

    async def submit(self, timeout: float = 120.0) -> str:
        """Send the spec; returns the worker's job id.

        Raises:
            JobRejected: the worker refused it (``errors`` has every field error).
            TimeoutError: no answer in time (path checks on a slow share).
        """
        reply = await self.channel.request(
            JobSubmitMsg(self.client_job_id, self.spec.to_dict()),
            (JobAcceptedMsg, JobRejectedMsg),
            timeout,
        )
        if isinstance(reply, JobRejectedMsg):
            errors = list(reply.errors)
            listed = "; ".join(
                f"{e.get('field', '?')}: {e.get('message', '')}" for e in errors
            )
            raise JobRejected(f"the worker rejected the job: {listed}", errors=errors)
        assert isinstance(reply, JobAcceptedMsg)
        self.job_id = reply.job_id
        self.job_secret = reply.job_secret
        if reply.job_secret is not None:
            await _keep_secret(self.channel.peer_id, reply.job_id, reply.job_secret)
        return reply.job_id

    @classmethod
    async def attach(
        cls,
        channel: Channel,
        job_id: str,
        callbacks: JobCallbacks | None = None,
        timeout: float = 30.0,
        job_secret: str | None = None,
    ) -> RemoteJob:
        """Follow a job submitted earlier (from any process, any peer id):
        ``JOB_ATTACH`` with its secret (given, or the one
        :mod:`.job_secrets` kept when it was accepted), then the progress
        missed meanwhile goes to ``callbacks.on_progress``; call
        :meth:`follow` for the rest.

        Raises:
            JobError: the worker does not know the job, or not as ours (no
                secret, or a wrong one).
        """
        if job_secret is None:
            job_secret = await asyncio.to_thread(
                load_job_secret, channel.peer_id, job_id
            )
        reply = await channel.request(
            JobAttachMsg(job_id, job_secret), (JobStateMsg,), timeout
        )
        assert isinstance(reply, JobStateMsg)
        if reply.job_state is None:
            raise JobError(
                f"the worker has no job {job_id} of ours", code="UNKNOWN_JOB"
            )
        cb = callbacks or JobCallbacks()
        if reply.dropped:
            logger.info(
                "! %d progress event(s) of %s were dropped", reply.dropped, job_id
            )
        for text in reply.progress:
            await _report(cb, ProgressReportMsg(text))
        # The spec stays on the worker; this object only follows the job.
        return cls(
            channel,
            TrainJobSpec(),
            client_job_id=job_id,
            job_id=job_id,
            job_secret=job_secret,
        )

    async def follow(self, callbacks: JobCallbacks | None = None) -> dict[str, Any]:
        """Relay the job's frames until it ends; returns ``JOB_COMPLETE``'s data.

        Raises:
            TrainingFailed: ``JOB_FAILED`` (``details`` holds the worker's object),
                or the channel closed before the end.
        """
        cb = callbacks or JobCallbacks()
        while True:
            try:
                item = await self.channel.recv()
            except ChannelClosed as exc:
                raise TrainingFailed(
                    f"connection to the worker lost during job {self.job_id}: {exc}",
                    code="CONNECTION_LOST",
                ) from exc
            if isinstance(item, bytes | bytearray):
                continue
            if isinstance(item, ProgressReportMsg):
                await _report(cb, item)
            elif isinstance(item, JobLogMsg):
                await _call(cb.on_log, item.line)
            elif isinstance(item, ModelTypeMsg):
                await _call(cb.on_model, item.model_type)
            elif isinstance(item, JobCompleteMsg):
                data = _message_data(item)
                await _keep_models(self.channel.peer_id, self.job_id, data)
                return data
            elif isinstance(item, JobFailedMsg):
                data = _message_data(item)
                raise TrainingFailed(
                    item.message or "the job failed on the worker",
                    code=str(data.get("reason") or "JOB_FAILED"),
                    details=data,
                )
            else:
                await _call(cb.on_message, item)

    async def stop(self) -> None:
        """Stop training now and keep the model so far."""
        await self.channel.send(ControlCommandMsg.from_data({"command": "stop"}))

    async def cancel(self) -> None:
        """Cancel the job; nothing is kept."""
        await self.channel.send(JobCancelMsg())

    async def run(
        self,
        callbacks: JobCallbacks | None = None,
        submit_timeout: float = 120.0,
        on_accepted: Callable[[RemoteJob], None] | None = None,
    ) -> dict[str, Any]:
        """:meth:`submit`, then :meth:`follow`; cancelling the task cancels the
        job on the worker. ``on_accepted`` runs once the worker took the job."""
        await self.submit(submit_timeout)
        if on_accepted is not None:
            on_accepted(self)
        try:
            return await self.follow(callbacks)
        except asyncio.CancelledError:
            try:
                await asyncio.shield(self.cancel())
            except ChannelClosed:
                logger.info("! could not cancel job %s: channel closed", self.job_id)
            raise


def _message_data(msg: ChannelMessage) -> dict[str, Any]:
    """A final message's fields and extras as one dict."""
    data: dict[str, Any] = {}
    for name in getattr(msg, "__dataclass_fields__", {}):
        if name == "extra":
            continue
        data[name] = getattr(msg, name)
    data.update(getattr(msg, "extra", {}) or {})
    return data
