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

* ``JOB_SUBMIT::{cid}::{spec}``: the worker's :class:`.ledger.JobLedger`
  admits it (into the slot its owner negotiated under ``cid``, or a free one),
  then the spec is mapped, validated and materialised
  (:func:`~.prepare.prepare_job`, in a thread); the answer is
  ``JOB_ACCEPTED::{job_id}::{job_secret}`` (``cid`` itself for a negotiated
  job: one id from ``job_request`` to ``JOB_COMPLETE``; no secret to a 0.0.7
  client) followed by the job's frames, or
  ``JOB_REJECTED::{cid}::{"errors":[...]}`` with every field error at once
  (``spec`` for a malformed spec, ``job`` with code ``WORKER_BUSY`` when the
  ledger has no slot or the worker is paused, ``internal`` for a failure of
  ours). The ledger hears how each job ends.
* ``CONTROL_COMMAND::{raw}`` / ``ZMQ_CTRL::{raw}``: ``{"command":"stop"}`` stops
  the model training now, keeping it; ``{"command":"cancel"}`` cancels; anything
  else is forwarded to the trainer (jsonpickle tags refused).
* ``JOB_STOP``: graceful stop of the whole job (later models and inference
  skipped). ``JOB_CANCEL``: SIGTERM, SIGKILL after ``stop_grace`` s.
  These three act on the jobs attached to the channel they arrive on.
* ``JOB_ATTACH::{job_id}::{job_secret}``: a channel that shows the job's secret
  (any peer id, any process) is attached to it and gets
  ``JOB_STATE::{json}`` (state, model, last ``JOB_PROGRESS``, the
  ``PROGRESS_REPORT`` texts produced while no channel was attached, how many of
  those were dropped, the result once final), then the other frames held for it,
  then the live stream; a finished job's ``JOB_COMPLETE``/``JOB_FAILED`` always
  comes last. A wrong secret, or an unknown id, gets ``state: "unknown"``.

**Who owns a job.** The job secret ``JOB_ACCEPTED`` hands the submitter is the
job's one capability: the submitting channel and the channels attached with
the secret may stop, cancel and download it, and a signaling ``job_cancel``
of a submitted job must carry it. A peer id is routing, never authority: a
peer that reuses a departed owner's id gets nothing.

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
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ...errors import InvalidState, RemoteProtocolError
from ...progress.trainer_link import check_command
from ...protocol.channel import ChannelMessage, encode_text
from ...protocol.channel_messages import (
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
from ...protocol.jobspec import TrackJobSpec, spec_from_dict
from ...protocol.jobspec_check import FieldError, SpecErrorCode
from ...protocol.negotiation import JobType
from ...protocol.states import JOB_TERMINAL_STATES, JobState
from ..capabilities import CPU_INFO, WorkerCapabilities
from ..gpu_pool import GpuPool
from ..hardware import JobHardware
from ..ledger import JobLedger
from ..slot import Action, SlotOutcome
from ..speed import SpeedBook
from .outbox import Sink
from .prepare import (
    ModelsDir,
    PathPolicy,
    PreparedJob,
    prepare_job,
    remove_abandoned_job_dirs,
)
from .run import JobInfo, JobRun, StateCallback

__all__ = ["JobInfo", "JobService", "PathPolicy", "Sink", "StateCallback"]

logger = logging.getLogger(__name__)

JOB_SECRET_BYTES = 24
"""Random bytes in a job's secret (32 base64url characters)."""

WORKER_BUSY = "WORKER_BUSY"
"""``code`` of the ``job`` field error when every job slot is taken."""

_DEFAULT_ENV = {"PYTHONUNBUFFERED": "1"}

_REFUSALS = {
    "maintenance": "the worker is paused (maintenance)",
    "busy": "the worker is busy with another job",
}

LedgerHook = Callable[[SlotOutcome, Mapping[str, Any]], None]
"""Hears each ledger change the channel side makes (with the job's result)."""


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
        keep_finished: Finished jobs remembered for ``JOB_ATTACH``.
        on_state_change: Called ``(job_id, JobState)`` on every change.
        hardware: Where the jobs run (default the CPU): one device for every
            job, or the worker's :class:`~..gpu_pool.GpuPool`, which gives
            each job a GPU of its own. It decides sleap-nn's accelerator and
            devices, whatever the client's config says.
        ledger: The worker's job ledger, which alone decides whether a job may
            start (default: one of its own with a single slot).
        on_ledger: Hears every change made to ``ledger`` here (the signaling
            side publishes the status and tells the owner).
        speed: Learns from each job how fast this worker is (the
            ``job_response`` estimates); ``None``: nothing is learnt.

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
        keep_finished: int = 32,
        on_state_change: StateCallback | None = None,
        hardware: JobHardware | GpuPool | None = None,
        ledger: JobLedger | None = None,
        on_ledger: LedgerHook | None = None,
        speed: SpeedBook | None = None,
    ) -> None:
        if max_buffered < 1 or keep_finished < 0:
            raise ValueError("max_buffered must be positive")
        self._policy = policy
        self._work_dir = work_dir
        self._models_dir = models_dir
        self._python = python
        self._env = {**_DEFAULT_ENV, **(env or {})}
        self._stop_grace = stop_grace
        self._stop_timeout = stop_timeout
        self._max_buffered = max_buffered
        self._keep_finished = keep_finished
        self.ledger = ledger or JobLedger(
            1, WorkerCapabilities(CPU_INFO), time.monotonic
        )
        self._on_ledger = on_ledger
        self._hardware: JobHardware | GpuPool = hardware or JobHardware()
        self.speed = speed
        self.on_state_change = on_state_change
        self._runs: dict[str, JobRun] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._closed = False

    async def remove_abandoned(self) -> int:
        """Remove the private folders dead workers left (run at start)."""
        return await asyncio.to_thread(remove_abandoned_job_dirs, self._work_dir)

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

    async def handle(
        self,
        msg: ChannelMessage,
        sink: Sink,
        peer_id: str,
        *,
        legacy: bool = False,
        policy: PathPolicy | None = None,
        models_dir: Callable[[str], Path | None] | None = None,
    ) -> None:
        """Act on one job message received on a channel.

        Args:
            msg: The decoded message; types other than the job messages above
                are ignored.
            sink: Sends a text frame on the channel it came from. A job is
                controlled only from the channels attached to it: the one that
                submitted it, and those that attached with its secret.
            peer_id: The authenticated peer of that channel: for routing and
                logs (and the ledger's reservations), never authority.
            legacy: The channel is a sleap-rtc 0.0.7 client's, which reads no
                job secret in ``JOB_ACCEPTED``.
            policy: The path policy of this channel's jobs (default the
                service's), e.g. one that also admits the channel's uploads.
            models_dir: Chooses the run folders' parent for given training
                labels (``None`` from it: the service's default), and the
                folder of a track job's default predictions for its data.

        Raises:
            Exception: whatever ``sink`` raises for a direct answer
                (``JOB_ACCEPTED``, ``JOB_REJECTED``, an unknown ``JOB_STATE``).
        """
        if isinstance(msg, JobSubmitMsg):
            await self._submit(msg, sink, peer_id, legacy, policy, models_dir)
        elif isinstance(msg, ControlCommandMsg | ZmqCtrlMsg):
            self._control(msg.raw, sink, peer_id)
        elif isinstance(msg, JobStopMsg):
            for run in self._targets(sink, peer_id):
                run.stop(whole_job=True)
        elif isinstance(msg, JobCancelMsg):
            for run in self._targets(sink, peer_id):
                run.cancel()
        elif isinstance(msg, JobAttachMsg):
            await self._attach(msg, sink, peer_id)
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

    def authorized_job(
        self, job_id: str, sink: Sink, secret: object = None
    ) -> JobInfo | None:
        """The job ``job_id`` if the channel of ``sink`` may act on it (it is
        attached to the job) or ``secret`` is the job's; else ``None``."""
        run = self._runs.get(job_id)
        if run is None:
            return None
        if run.outbox.is_attached(sink) or run.holds(secret):
            return run.info()
        return None

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

    async def _submit(
        self,
        msg: JobSubmitMsg,
        sink: Sink,
        peer_id: str,
        legacy: bool,
        policy: PathPolicy | None = None,
        models_dir: Callable[[str], Path | None] | None = None,
    ) -> None:
        cid = msg.client_job_id
        if self._closed:
            await self._reject(
                sink,
                cid,
                [FieldError("job", "the worker is shutting down", WORKER_BUSY)],
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
        job_type = (
            JobType.INFERENCE if isinstance(spec, TrackJobSpec) else JobType.TRAINING
        )
        secret = secrets.token_urlsafe(JOB_SECRET_BYTES)
        admitted = self.ledger.submit(
            peer_id, cid, job_type, self._new_id(), secret=secret
        )
        if admitted.action is Action.REFUSED:
            why = _REFUSALS.get(admitted.reason or "", "the worker cannot take it")
            await self._reject(sink, cid, [FieldError("job", why, WORKER_BUSY)])
            return
        job_id = admitted.job_id
        self._ledger_changed(admitted)
        if job_id in self._runs:  # a negotiation reused a remembered job's id
            await self._withdraw(
                sink,
                cid,
                job_id,
                [FieldError("job", "this job id is taken here", WORKER_BUSY)],
            )
            return
        try:
            prepared = await asyncio.to_thread(
                prepare_job,
                spec,
                policy or self._policy,
                private_parent=self._work_dir,
                models_dir=self._models_dir_for(models_dir),
                predictions_dir=models_dir,
            )
        except Exception as exc:
            logger.exception("! preparing job %s failed", job_id)
            prepared = [
                FieldError("internal", f"the worker failed: {exc}", "INTERNAL_ERROR")
            ]
        if isinstance(prepared, list):
            await self._withdraw(sink, cid, job_id, prepared)
            return
        if self._closed:
            await asyncio.to_thread(prepared.cleanup)
            await self._withdraw(
                sink,
                cid,
                job_id,
                [FieldError("job", "the worker is shutting down", WORKER_BUSY)],
            )
            return
        await self._start(prepared, job_id, cid, sink, peer_id, secret, legacy)

    async def _withdraw(
        self, sink: Sink, cid: str, job_id: str, errors: list[FieldError]
    ) -> None:
        """An admitted job will not start: free its slot, then say why."""
        self._leave_ledger(job_id, None, errors)
        await self._reject(sink, cid, errors)

    def _leave_ledger(
        self, job_id: str, state: JobState | None, errors: Sequence[FieldError] = ()
    ) -> None:
        """Free ``job_id``'s slot: finished in ``state``, or withdrawn."""
        run = self._runs.get(job_id)
        try:
            if state is None:
                listed = "; ".join(f"{e.field}: {e.message}" for e in errors)
                outcome = self.ledger.withdraw(job_id, listed)
            else:
                outcome = self.ledger.finish(job_id, state)
        except InvalidState:
            return  # not in the ledger (already freed)
        result = dict(run.result or {}) if run is not None and state else {}
        self._ledger_changed(outcome, result)

    def _ledger_changed(
        self, outcome: SlotOutcome, result: Mapping[str, Any] | None = None
    ) -> None:
        if self._on_ledger is None:
            return
        try:
            self._on_ledger(outcome, result or {})
        except Exception:
            logger.exception("! on_ledger(%s) failed", outcome.action)

    async def _start(
        self,
        prepared: PreparedJob,
        job_id: str,
        cid: str,
        sink: Sink,
        peer_id: str,
        secret: str,
        legacy: bool,
    ) -> None:
        accepted = JobAcceptedMsg(job_id, None if legacy else secret)
        try:
            await sink(encode_text(accepted))
        except BaseException:
            # Nobody learnt the id, so nobody could follow or stop the job.
            await asyncio.to_thread(prepared.cleanup)
            self._leave_ledger(
                job_id,
                None,
                [FieldError("job", "its channel closed at once", WORKER_BUSY)],
            )
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
            hardware=self._device_for(job_id),
            secret=secret,
            speed=self.speed,
        )
        self._runs[job_id] = run
        self._notify(job_id, run.state)
        run.outbox.attach(sink)
        task = asyncio.get_running_loop().create_task(run.run(), name=job_id)
        self._tasks[job_id] = task
        task.add_done_callback(functools.partial(self._on_done, job_id))

    def _device_for(self, job_id: str) -> JobHardware:
        if isinstance(self._hardware, GpuPool):
            return self._hardware.take(job_id)
        return self._hardware

    def _models_dir_for(self, choose: Callable[[str], Path | None] | None) -> ModelsDir:
        """The service's models folder, or ``choose``'s pick where it has one."""
        if choose is None:
            return self._models_dir
        default = self._models_dir

        def pick(labels: str) -> Path | None:
            return choose(labels) or default

        return pick

    def _new_id(self) -> str:
        while True:
            job_id = f"job_{secrets.token_hex(4)}"
            if job_id not in self._runs and self.ledger.job(job_id) is None:
                return job_id

    def _notify(self, job_id: str, state: JobState) -> None:
        logger.debug("= %s %s", job_id, state.value)
        if state in JOB_TERMINAL_STATES:
            if isinstance(self._hardware, GpuPool):
                self._hardware.release(job_id)
            self._leave_ledger(job_id, state)
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
            if not r.finished and r.outbox.is_attached(sink)
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

    async def _attach(self, msg: JobAttachMsg, sink: Sink, peer_id: str) -> None:
        job_id = msg.job_id
        run = self._runs.get(job_id)
        if run is None or not run.holds(msg.job_secret):
            # One answer for "unknown" and "not yours": ids are not probed.
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
