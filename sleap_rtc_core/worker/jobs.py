"""The worker's job service: structured jobs over any data channel.

:class:`JobService` answers the job messages of PROTOCOL.md B §4.5 and our
``JOB_ATTACH`` without knowing the transport: a channel is a :data:`Sink`, an
async function that sends one encoded text frame, plus the id of the peer it
authenticated. The transport calls :meth:`JobService.handle` for each decoded
job message and :meth:`JobService.detach` when the channel closes::

    service = JobService(MountPolicy(["/data"]), on_state_change=set_status)
    await service.handle(decode_text(frame), channel_send, peer_id)
    ...
    service.detach(channel_send)     # the job goes on; its frames are held
    await service.close()            # cancels every job, removes temp files

Messages handled:

* ``JOB_SUBMIT::{cid}::{spec}``: the spec is mapped, validated and materialised
  (:func:`.job_prepare.prepare_job`, in a thread); the answer is
  ``JOB_ACCEPTED::{job_id}`` followed by the job's frames, or
  ``JOB_REJECTED::{cid}::{"errors":[...]}`` with every field error at once
  (``spec`` for a malformed spec, ``job`` with code ``WORKER_BUSY`` when
  ``max_jobs`` run already, ``internal`` for a failure of ours).
* ``CONTROL_COMMAND::{raw}`` / ``ZMQ_CTRL::{raw}``: ``{"command":"stop"}`` stops
  the model training now, keeping it; ``{"command":"cancel"}`` cancels; anything
  else is forwarded to the trainer (jsonpickle tags refused).
* ``JOB_STOP``: graceful stop of the whole job (later models and inference
  skipped). ``JOB_CANCEL``: SIGTERM, SIGKILL after ``stop_grace`` s.
  These three act on the jobs of the channel they arrive on, owned by its peer.
* ``JOB_ATTACH::{job_id}``: a channel of the peer that submitted the job gets
  ``JOB_STATE::{json}`` (state, model, last ``JOB_PROGRESS``, the
  ``PROGRESS_REPORT`` texts produced while no channel was attached, how many of
  those were dropped, the result once final), then the other frames held for it,
  then the live stream; a finished job's ``JOB_COMPLETE``/``JOB_FAILED`` always
  comes last. Another peer, or an unknown id, gets ``state: "unknown"``.

While no channel is attached a job's frames are held, at most ``max_buffered``
of them, the oldest dropped (and counted). Finished jobs are remembered (the
last ``keep_finished``) so that a client can still collect the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType

from ..errors import RemoteProtocolError
from ..progress.trainer_link import check_command
from ..protocol.channel import ChannelMessage, encode_text
from ..protocol.channel_messages import (
    JOB_STATE_UNKNOWN,
    ControlCommandMsg,
    JobAcceptedMsg,
    JobAttachMsg,
    JobCancelMsg,
    JobRejectedMsg,
    JobStateMsg,
    JobStopMsg,
    JobSubmitMsg,
    ZmqCtrlMsg,
)
from ..protocol.jobspec import FieldError, SpecErrorCode, spec_from_dict
from ..protocol.states import JobState
from .hardware import JobHardware
from .job_outbox import Sink
from .job_prepare import PathPolicy, PreparedJob, prepare_job
from .job_run import JobInfo, JobRun, StateCallback

__all__ = ["JobInfo", "JobService", "PathPolicy", "Sink", "StateCallback"]

logger = logging.getLogger(__name__)

WORKER_BUSY = "WORKER_BUSY"
"""``code`` of the ``job`` field error when every job slot is taken."""

_DEFAULT_ENV = {"PYTHONUNBUFFERED": "1"}


class JobService:
    """Runs the structured jobs submitted over data channels (module docstring).

    Args:
        policy: The worker's mount confinement (``mounts.MountPolicy``).
        work_dir: Where each job's private folder (configs, remapped labels,
            the trainer's working directory) is made; default the system temp.
        models_dir: Where run folders go when a config names no ``ckpt_dir``;
            default ``models/`` beside the training labels. Must be in a mount.
        python: The interpreter that runs sleap-nn; default this one.
        env: Extra environment variables for sleap-nn.
        stop_grace: Seconds between SIGTERM and SIGKILL when cancelling.
        stop_timeout: Seconds a graceful stop may take before SIGINT.
        max_buffered: Frames held per job while no channel is attached (and
            queued per slow channel).
        max_jobs: Jobs that may run at once (one per GPU).
        keep_finished: Finished jobs remembered for ``JOB_ATTACH``.
        on_state_change: Called ``(job_id, JobState)`` on every change.
        hardware: The device the jobs run on (default the CPU): it decides
            sleap-nn's accelerator, whatever the client's config says.

    Attributes:
        on_state_change: The state hook (may be set after construction).
    """

    def __init__(
        self,
        policy: PathPolicy,
        *,
        work_dir: Path | None = None,
        models_dir: Path | None = None,
        python: str | None = None,
        env: Mapping[str, str] | None = None,
        stop_grace: float = 10.0,
        stop_timeout: float = 30.0,
        max_buffered: int = 1000,
        max_jobs: int = 1,
        keep_finished: int = 32,
        on_state_change: StateCallback | None = None,
        hardware: JobHardware | None = None,
    ) -> None:
        if max_buffered < 1 or max_jobs < 1 or keep_finished < 0:
            raise ValueError("max_buffered and max_jobs must be positive")
        self._policy = policy
        self._work_dir = work_dir
        self._models_dir = models_dir
        self._python = python
        self._env = {**_DEFAULT_ENV, **(env or {})}
        self._stop_grace = stop_grace
        self._stop_timeout = stop_timeout
        self._max_buffered = max_buffered
        self._max_jobs = max_jobs
        self._keep_finished = keep_finished
        self._hardware = hardware or JobHardware()
        self.on_state_change = on_state_change
        self.paused: Callable[[], bool] = lambda: False
        """Whether new submissions are refused now (maintenance); running jobs
        go on."""
        self._runs: dict[str, JobRun] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._preparing = 0
        self._closed = False

    # ---------------------------------------------------------------- view

    @property
    def jobs(self) -> Mapping[str, JobInfo]:
        """A snapshot of every job remembered, by job id (oldest first)."""
        return MappingProxyType({k: r.info() for k, r in self._runs.items()})

    @property
    def running(self) -> int:
        """Jobs accepted and not yet finished."""
        return sum(1 for r in self._runs.values() if not r.finished)

    # -------------------------------------------------------------- handle

    async def handle(self, msg: ChannelMessage, sink: Sink, peer_id: str) -> None:
        """Act on one job message received on a channel.

        Args:
            msg: The decoded message; types other than the job messages above
                are ignored.
            sink: Sends a text frame on the channel it came from.
            peer_id: The authenticated peer of that channel. Only this peer may
                control or attach to the jobs it submitted: pass an identity that
                survives a reconnect if a new process should be able to attach.

        Raises:
            Exception: whatever ``sink`` raises for a direct answer
                (``JOB_ACCEPTED``, ``JOB_REJECTED``, an unknown ``JOB_STATE``).
        """
        if isinstance(msg, JobSubmitMsg):
            await self._submit(msg, sink, peer_id)
        elif isinstance(msg, ControlCommandMsg | ZmqCtrlMsg):
            self._control(msg.raw, sink, peer_id)
        elif isinstance(msg, JobStopMsg):
            for run in self._targets(sink, peer_id):
                run.stop(whole_job=True)
        elif isinstance(msg, JobCancelMsg):
            for run in self._targets(sink, peer_id):
                run.cancel()
        elif isinstance(msg, JobAttachMsg):
            await self._attach(msg.job_id, sink, peer_id)
        else:
            logger.debug("< ignored %s", type(msg).__name__)

    def cancel_job(self, job_id: str) -> bool:
        """Cancel a job by id (e.g. for a signaling ``job_cancel`` from its
        owner); whether it was running."""
        run = self._runs.get(job_id)
        if run is None or run.finished:
            return False
        run.cancel()
        return True

    def stop_job(self, job_id: str) -> bool:
        """Stop a whole job gracefully by id, keeping its models; whether it
        was running."""
        run = self._runs.get(job_id)
        if run is None or run.finished:
            return False
        run.stop(whole_job=True)
        return True

    def detach(self, sink: Sink) -> None:
        """A channel closed: stop sending on it; its jobs go on, frames held."""
        for run in self._runs.values():
            run.detach(sink)

    # -------------------------------------------------------------- submit

    async def _reject(
        self, sink: Sink, client_job_id: str, errors: list[FieldError]
    ) -> None:
        logger.info("> JOB_REJECTED %s: %d error(s)", client_job_id, len(errors))
        msg = JobRejectedMsg(
            errors=[e.to_dict() for e in errors], client_job_id=client_job_id
        )
        await sink(encode_text(msg))

    async def _submit(self, msg: JobSubmitMsg, sink: Sink, peer_id: str) -> None:
        cid = msg.client_job_id
        if self._closed or self.paused():
            why = "shutting down" if self._closed else "paused (maintenance)"
            await self._reject(
                sink, cid, [FieldError("job", f"the worker is {why}", WORKER_BUSY)]
            )
            return
        if self.running + self._preparing >= self._max_jobs:
            await self._reject(
                sink,
                cid,
                [FieldError("job", "the worker is busy with another job", WORKER_BUSY)],
            )
            return
        try:
            spec = spec_from_dict(msg.spec)
        except RemoteProtocolError as exc:
            await self._reject(
                sink,
                cid,
                [FieldError("spec", exc.message, SpecErrorCode.INVALID_VALUE.value)],
            )
            return
        self._preparing += 1
        try:
            prepared = await asyncio.to_thread(
                prepare_job,
                spec,
                self._policy,
                private_parent=self._work_dir,
                models_dir=self._models_dir,
            )
        except Exception as exc:
            logger.exception("! preparing job %s failed", cid)
            prepared = [
                FieldError("internal", f"the worker failed: {exc}", "INTERNAL_ERROR")
            ]
        finally:
            self._preparing -= 1
        if isinstance(prepared, list):
            await self._reject(sink, cid, prepared)
            return
        if self._closed:
            await asyncio.to_thread(prepared.cleanup)
            await self._reject(
                sink,
                cid,
                [FieldError("job", "the worker is shutting down", WORKER_BUSY)],
            )
            return
        await self._start(prepared, cid, sink, peer_id)

    async def _start(
        self, prepared: PreparedJob, cid: str, sink: Sink, peer_id: str
    ) -> None:
        job_id = self._new_id()
        try:
            await sink(encode_text(JobAcceptedMsg(job_id)))
        except BaseException:
            # Nobody learnt the id, so nobody could follow or stop the job.
            await asyncio.to_thread(prepared.cleanup)
            raise
        logger.info("> JOB_ACCEPTED %s for %s (%s)", job_id, peer_id, cid)
        run = JobRun(
            job_id,
            cid,
            peer_id,
            prepared,
            python=self._python,
            env=self._env,
            stop_grace=self._stop_grace,
            stop_timeout=self._stop_timeout,
            max_buffered=self._max_buffered,
            on_state=self._notify,
            hardware=self._hardware,
        )
        self._runs[job_id] = run
        self._notify(job_id, run.state)
        run.outbox.attach(sink)
        task = asyncio.get_running_loop().create_task(run.run(), name=job_id)
        self._tasks[job_id] = task
        task.add_done_callback(functools.partial(self._on_done, job_id))

    def _new_id(self) -> str:
        while True:
            job_id = f"job_{secrets.token_hex(4)}"
            if job_id not in self._runs:
                return job_id

    def _notify(self, job_id: str, state: JobState) -> None:
        logger.debug("= %s %s", job_id, state.value)
        hook = self.on_state_change
        if hook is None:
            return
        try:
            hook(job_id, state)
        except Exception:
            logger.exception("! on_state_change(%s, %s) failed", job_id, state)

    def _on_done(self, job_id: str, _task: asyncio.Task[None]) -> None:
        self._tasks.pop(job_id, None)
        finished = [j for j, r in self._runs.items() if r.finished]
        for old in finished[: max(0, len(finished) - self._keep_finished)]:
            if self._runs[old].outbox.idle:  # else the next job end retries
                del self._runs[old]

    # ------------------------------------------------------- control, attach

    def _targets(self, sink: Sink, peer_id: str) -> list[JobRun]:
        runs = [
            r
            for r in self._runs.values()
            if not r.finished and r.owner == peer_id and r.outbox.is_attached(sink)
        ]
        if not runs:
            logger.info("< control from %s with no running job of its own", peer_id)
        return runs

    def _control(self, raw: str, sink: Sink, peer_id: str) -> None:
        try:
            command = check_command(raw)
        except RemoteProtocolError as exc:
            logger.info("< control command refused: %s", exc.message)
            return
        for run in self._targets(sink, peer_id):
            kind = command.get("command")
            if kind == "stop":
                run.stop(raw)
            elif kind == "cancel":
                run.cancel()
            else:
                run.send_command(raw)

    async def _attach(self, job_id: str, sink: Sink, peer_id: str) -> None:
        run = self._runs.get(job_id)
        if run is None or run.owner != peer_id:
            logger.info("< JOB_ATTACH %s from %s: unknown", job_id, peer_id)
            unknown = JobStateMsg(job_id=job_id, state=JOB_STATE_UNKNOWN)
            await sink(encode_text(unknown))
            return
        logger.info("< JOB_ATTACH %s from %s", job_id, peer_id)
        run.attach(sink)

    # --------------------------------------------------------------- close

    async def close(self) -> None:
        """Cancel every job, wait for its process group to go and its files to
        be removed, and stop sending. Idempotent."""
        self._closed = True
        for run in self._runs.values():
            run.cancel()
        tasks = list(self._tasks.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self._stop_grace + 10.0)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for run in self._runs.values():
            await run.outbox.drain(timeout=1.0)
            await run.outbox.aclose()
