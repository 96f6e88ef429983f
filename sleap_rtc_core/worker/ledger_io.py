"""The worker on the signaling side: registration, status, negotiation.

:class:`SignalingWorker` registers with role ``worker`` and the metadata of
:func:`.capabilities.worker_metadata`, then serves one loop: every
``peer_message`` is decoded (:func:`~..protocol.negotiation.decode_app_message`)
and fed to the pure :class:`.ledger.JobLedger`, whose outcomes are replies to
send and jobs to start or stop; every change of the derived status is published
with ``update_metadata`` (awaiting ``metadata_updated``) before the next message
is handled, so what discovery shows is never older than one message.

The ledger is shared with the data-channel side (:class:`.jobs.service.JobService`),
which admits ``JOB_SUBMIT`` into it and finishes jobs there; it reports each
outcome with :meth:`SignalingWorker.ledger_changed`, and the owner hears
``job_complete``/``job_failed`` over signaling too.

Without a data channel, a :data:`JobRunner` can run assigned jobs as tasks the
worker owns (a test harness, a signaling-only worker). Whatever happens
(success, failure, cancel by its owner, the owner leaving before assignment, an
expired reservation) the slot is freed and the worker is ``available`` again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import RemoteProtocolError, ServerError, SleapRTCError
from ..protocol import signaling as sig
from ..protocol.negotiation import (
    AppMessage,
    JobAssignment,
    JobCancel,
    JobComplete,
    JobFailed,
    JobRequest,
    JobStatus,
    decode_app_message,
)
from ..protocol.states import JobState, WorkerStatus
from ..signaling.client.session_io import Backoff, SignalingClient
from .capabilities import GpuFacts, WorkerCapabilities, worker_metadata
from .ledger import JobLedger
from .slot import Action, Estimator, SlotOutcome, estimate_duration_minutes

__all__ = ["JobContext", "JobRunner", "SignalingWorker"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class JobContext:
    """What a :data:`JobRunner` gets for one assigned job."""

    job_id: str
    owner: str
    request: JobRequest
    worker: SignalingWorker = field(repr=False)

    async def report(
        self,
        progress: float | None = None,
        message: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Send ``job_status`` to the job's owner."""
        await self.worker.send_to(
            self.owner,
            JobStatus(
                job_id=self.job_id,
                progress=progress,
                message=message,
                details=dict(details) if details is not None else None,
            ),
        )


JobRunner = Callable[[JobContext], Awaitable[Mapping[str, Any]]]
"""Runs one job; returns its ``result`` or raises (:class:`JobError` carries a
code). Cancelling the task must stop the job for real."""

SUBMIT_TIMEOUT = 120.0
"""Seconds an assigned job waits for its owner's ``JOB_SUBMIT``."""

GPU_FACTS_INTERVAL = 10.0
"""Seconds between two readings of the GPUs' live facts (each may publish)."""

PUBLISH_RETRY = 1.0
"""Seconds before a status the server refused (rate) is published again."""


def final_message(
    job_id: str, state: JobState, result: Mapping[str, Any]
) -> AppMessage | None:
    """The ``job_complete``/``job_failed`` an owner hears when a job ends
    (``None`` for a cancel: the ledger's ``job_cancelled`` says it)."""
    if state is JobState.SUCCEEDED:
        return JobComplete(job_id=job_id, result=dict(result))
    if state is JobState.FAILED:
        message = result.get("message") or result.get("error") or "the job failed"
        code = result.get("code") or "JOB_FAILED"
        return JobFailed(
            job_id=job_id, error={"code": str(code), "message": str(message)}
        )
    return None


class SignalingWorker:
    """A worker registered with a signaling server.

    Args:
        url: The server's ``ws://``/``wss://`` address, or several processes
            of one deployment (tried in turn when one is lost).
        credentials: ``register`` credential fields (``room_id`` + ``token``,
            ``api_key``, or ``jwt`` + ``room_id``).
        capabilities: GPU facts and what the worker supports.
        peer_id: The id to register with (the server picks one if ``None``).
        max_concurrent_jobs: Job slots (one per GPU).
        mounts: Folders the worker exposes (``{"path", "label"}``).
        name: Shown by ``sleap-rtc workers``.
        uploads: It has an upload area (published, so that clients offer to
            send files only where that works).
        runner: Runs assigned jobs itself; ``None`` (the default): an assigned
            job waits for its owner's ``JOB_SUBMIT`` on a data channel.
        reservation_timeout: Seconds an accepted request waits for assignment.
        submit_timeout: Seconds an assigned job waits for its ``JOB_SUBMIT``.
        on_cancel: Stops a submitted job by id (its owner's ``job_cancel``, or
            the owner left while it waited); the job's end frees its slot.
        estimator: Minutes a request would take here (``job_response``).
        free_memory_mb: Free GPU memory now (e.g. the probe's), for
            ``worker_info``.
        gpu_facts: Reads the GPUs' live facts (blocking; run in a thread)
            every ``gpu_facts_interval`` seconds and at every job start and
            end, for the published metadata and ``min_gpu_memory_mb``.
        gpu_facts_interval: Seconds between two readings.
        backoff: Reconnect delays.
        give_up_after: Seconds offline before :class:`ConnectionLost`
            (``None``: retry for ever, the default for a service).
        clock: Monotonic seconds (injectable).
    """

    def __init__(
        self,
        url: str | Sequence[str],
        credentials: Mapping[str, Any],
        capabilities: WorkerCapabilities,
        *,
        peer_id: str | None = None,
        max_concurrent_jobs: int = 1,
        mounts: Sequence[Mapping[str, Any]] = (),
        name: str | None = None,
        uploads: bool = False,
        runner: JobRunner | None = None,
        reservation_timeout: float = 30.0,
        submit_timeout: float = SUBMIT_TIMEOUT,
        on_cancel: Callable[[str], object] = lambda _job_id: None,
        estimator: Estimator = estimate_duration_minutes,
        free_memory_mb: Callable[[], int | None] | None = None,
        gpu_facts: Callable[[], Mapping[int, GpuFacts]] | None = None,
        gpu_facts_interval: float = GPU_FACTS_INTERVAL,
        backoff: Backoff | None = None,
        give_up_after: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ledger = JobLedger(
            max_concurrent_jobs,
            capabilities,
            clock,
            reservation_timeout,
            estimator=estimator,
            free_memory_mb=free_memory_mb,
            submit_timeout=None if runner is not None else submit_timeout,
        )
        metadata = worker_metadata(
            capabilities,
            max_concurrent_jobs=max_concurrent_jobs,
            mounts=mounts,
            worker_name=name,
            uploads=uploads,
            extra_properties=self.ledger.status_properties(),
        )
        # A worker needs no other peer's joins: it hears the clients it talks
        # with leave (contacts) whatever it subscribed to.
        register = sig.Register(
            peer_id=peer_id,
            role="worker",
            metadata=metadata,
            subscribe={"roles": []},
            **dict(credentials),
        )
        self.client = SignalingClient(
            url, register, backoff=backoff, give_up_after=give_up_after
        )
        self.runner = runner
        self.on_cancel = on_cancel
        self._clock = clock
        self._jobs: dict[str, asyncio.Task[None]] = {}  # runner tasks
        self._tells: set[asyncio.Task[None]] = set()
        self._unsent: dict[str, Any] = {}  # properties a refused update held
        self._retry_at: float | None = None
        self._requests: dict[str, JobRequest] = {}  # accepted, not yet assigned
        self._gpu_facts = gpu_facts
        self._facts_interval = gpu_facts_interval
        self._facts_at: float | None = None if gpu_facts is None else clock()
        self._loop_task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._lock = asyncio.Lock()

    # --- lifecycle

    @property
    def peer_id(self) -> str:
        """The registered peer id."""
        return self.client.peer_id

    @property
    def status(self) -> WorkerStatus:
        """The derived status (what was last published, or is about to be)."""
        return self.ledger.status

    async def start(self, timeout: float | None = None) -> None:
        """Connect, register and start serving.

        Raises:
            AuthError: the server refused the credentials.
            ConnectionLost: the server stayed unreachable.
        """
        await self.client.start(timeout)
        self._loop_task = asyncio.create_task(self._serve(), name="worker loop")
        await self._ready.wait()
        logger.info("worker %s registered; status %s", self.peer_id, self.status.value)

    async def close(self) -> None:
        """Stop every job, then disconnect."""
        tasks = [*self._jobs.values(), *self._tells]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        await self.client.close()

    async def __aenter__(self) -> SignalingWorker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def wait_closed(self) -> None:
        """Until the serving loop ends (e.g. the connection was lost for good)."""
        if self._loop_task is not None:
            await self._loop_task

    # --- status

    async def update_status(self, status: WorkerStatus | str, **extra: Any) -> None:
        """Publish ``status`` (and extra properties); awaits ``metadata_updated``.

        ``maintenance`` takes the worker out of service (reservations are
        released at once; running jobs finish); ``available`` puts it back.
        Other statuses follow from the slots and cannot be forced.
        """
        status = WorkerStatus(status)
        async with self._lock:
            if status is WorkerStatus.MAINTENANCE:
                for outcome in self.ledger.set_maintenance(True):
                    await self._act(outcome)
            elif status is WorkerStatus.AVAILABLE and self.ledger.maintenance:
                self.ledger.set_maintenance(False)
            elif status is not self.ledger.status:
                raise ValueError(
                    f"status {status.value!r} follows from the jobs; "
                    f"it is {self.ledger.status.value!r} now"
                )
            await self._publish(extra)

    async def _publish(self, extra: Mapping[str, Any] | None = None) -> None:
        patch = self.ledger.take_patch() or {"properties": {}}
        properties = {**self._unsent, **patch["properties"], **(extra or {})}
        if not properties:
            return
        try:
            await self.client.update_metadata({"properties": properties})
        except (ServerError, TimeoutError) as exc:
            # E.g. RATE_LIMITED after a burst of requests from strangers: keep
            # what was not published and try again soon (never lose a status).
            self._unsent = properties
            self._retry_at = self._clock() + PUBLISH_RETRY
            logger.warning("! status not published (%s); retrying", exc)
            return
        self._unsent = {}
        self._retry_at = None
        logger.info("status %s", self.ledger.status.value)

    # --- messages

    async def send_to(self, peer_id: str, message: AppMessage) -> None:
        """Send an application message to a peer of the room."""
        await self.client.send_peer_message(peer_id, message.to_dict())

    async def _serve(self) -> None:
        async with self.client.subscribe("peer_message", "peer_left") as inbox:
            self._ready.set()
            while True:
                due = (self.ledger.next_deadline(), self._retry_at, self._facts_at)
                times = [t for t in due if t is not None]
                wait = max(0.0, min(times) - self._clock()) if times else None
                try:
                    message = await inbox.get(timeout=wait)
                except TimeoutError:
                    async with self._lock:
                        for outcome in self.ledger.expire():
                            await self._act(outcome)
                        facts_at = self._facts_at
                        if facts_at is not None and facts_at <= self._clock():
                            await self._read_gpu_facts()
                        await self._publish()
                    continue
                async with self._lock:
                    await self._handle(message)
                    await self._publish()

    async def _handle(self, message: sig.Message) -> None:
        if isinstance(message, sig.PeerLeft):
            for outcome in self.ledger.peer_gone(message.peer_id):
                await self._act(outcome)
            return
        if not isinstance(message, sig.PeerMessage):
            return
        sender = message.from_peer_id
        try:
            app = decode_app_message(message.payload)
        except RemoteProtocolError as exc:
            logger.info("! bad message from %s: %s", sender, exc)
            return
        if isinstance(app, JobRequest):
            outcome = self.ledger.handle_request(sender, app)
            if outcome.action is Action.ACCEPTED:
                self._requests[app.job_id] = app
        elif isinstance(app, JobAssignment):
            outcome = self.ledger.handle_assignment(sender, app)
            if outcome.action is Action.ASSIGNED:
                if self.runner is not None:
                    self._start_job(sender, app.job_id)
                else:  # its JOB_SUBMIT starts it
                    self._requests.pop(app.job_id, None)
        elif isinstance(app, JobCancel):
            outcome = self.ledger.handle_cancel(sender, app)
        else:
            return  # job_status etc. are for clients
        await self._act(outcome)

    async def _act(self, outcome: SlotOutcome) -> None:
        logger.info(
            "job %s from %s: %s%s",
            outcome.job_id,
            outcome.peer_id,
            outcome.action.value,
            f" ({outcome.reason})" if outcome.reason else "",
        )
        submitted = outcome.slot is not None and outcome.slot.submitted
        if outcome.action is Action.RELEASED:
            self._requests.pop(outcome.job_id, None)
        elif outcome.action is Action.ORPHANED and submitted:
            # Its data channel may outlive the socket; it can be reattached.
            logger.info("owner of job %s left; the job goes on", outcome.job_id)
        elif outcome.action in (Action.CANCELLING, Action.ORPHANED):
            # Without its owner (or on its owner's word) the job really stops;
            # its end frees the slot.
            task = self._jobs.get(outcome.job_id)
            if task is not None:
                task.cancel()
            elif submitted:
                self.on_cancel(outcome.job_id)
        if outcome.reply is not None:
            with contextlib.suppress(SleapRTCError):
                await self.send_to(outcome.peer_id, outcome.reply)

    # --- jobs

    def ledger_changed(
        self, outcome: SlotOutcome, result: Mapping[str, Any] | None = None
    ) -> None:
        """The data-channel side changed the ledger (admitted, withdrew or
        finished a job): tell the owner what it should hear over signaling
        (``job_complete``/``job_failed`` with ``result`` for a finished job, the
        outcome's reply) and publish the new status, in order with the loop."""
        messages: list[AppMessage] = []
        if outcome.action is Action.FINISHED and outcome.reason is not None:
            final = final_message(
                outcome.job_id, JobState(outcome.reason), result or {}
            )
            if final is not None:
                messages.append(final)
        if outcome.reply is not None:
            messages.append(outcome.reply)
        task = asyncio.ensure_future(self._tell(outcome.peer_id, messages))
        self._tells.add(task)
        task.add_done_callback(self._tells.discard)

    async def _tell(self, peer_id: str, messages: Sequence[AppMessage]) -> None:
        async with self._lock:
            for message in messages:
                with contextlib.suppress(SleapRTCError):
                    await self.send_to(peer_id, message)
            await self._read_gpu_facts()  # a job started or ended
            await self._publish()

    async def _read_gpu_facts(self) -> None:
        """Read the GPUs' live facts into the ledger (in a thread: NVML and
        torch block); a failed reading keeps the last one."""
        if self._gpu_facts is None:
            return
        self._facts_at = self._clock() + self._facts_interval
        try:
            facts = await asyncio.to_thread(self._gpu_facts)
        except Exception:
            logger.exception("! cannot read the GPUs' facts")
            return
        self.ledger.note_gpu_facts(facts)

    def _start_job(self, owner: str, job_id: str) -> None:
        request = self._requests.pop(job_id)
        ctx = JobContext(job_id, owner, request, self)
        task = asyncio.create_task(self._run_job(ctx), name=f"job {job_id}")
        self._jobs[job_id] = task

    async def _run_job(self, ctx: JobContext) -> None:
        assert self.runner is not None
        result: Mapping[str, Any] = {}
        try:
            result = await self.runner(ctx)
            outcome = JobState.SUCCEEDED
        except asyncio.CancelledError:
            outcome = JobState.CANCELLED
        except Exception as exc:
            outcome = JobState.FAILED
            code = exc.code if isinstance(exc, SleapRTCError) else "JOB_FAILED"
            logger.exception("! job %s failed", ctx.job_id)
            result = {"code": code, "message": str(exc)}
        finally:
            self._jobs.pop(ctx.job_id, None)
        reply = final_message(ctx.job_id, outcome, result)
        async with self._lock:
            finished = self.ledger.finish(ctx.job_id, outcome)
            for message in (reply, finished.reply):
                if message is not None:
                    with contextlib.suppress(SleapRTCError):
                        await self.send_to(ctx.owner, message)
            await self._publish()
