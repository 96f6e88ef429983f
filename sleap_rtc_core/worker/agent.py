"""The worker on the signaling side: registration, status, negotiation, jobs.

:class:`SignalingWorker` registers with role ``worker`` and the metadata of
:func:`.capabilities.worker_metadata`, then serves one loop: every
``peer_message`` is decoded (:func:`~..protocol.negotiation.decode_app_message`)
and fed to the pure :class:`.slots.JobSlots`, whose outcomes are replies to send
and jobs to start or stop; every change of the derived status is published with
``update_metadata`` (awaiting ``metadata_updated``) before the next message is
handled, so what discovery shows is never older than one message.

A job runs as a task the worker owns, through a :data:`JobRunner` (the data
channel and ``sleap-nn`` plug in there). Whatever happens (success, failure,
cancel by its owner, the owner leaving before assignment, an expired
reservation) the slot is freed and the worker is ``available`` again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import JobError, RemoteProtocolError, SleapRTCError
from ..protocol import signaling as sig
from ..protocol.negotiation import (
    AppMessage,
    JobAssignment,
    JobCancel,
    JobComplete,
    JobFailed,
    JobRequest,
    JobStatus,
    JobType,
    decode_app_message,
)
from ..protocol.states import WorkerStatus
from ..signaling.client import Backoff, SignalingClient
from .capabilities import WorkerCapabilities, worker_metadata
from .slots import (
    Action,
    Estimator,
    JobSlots,
    SlotOutcome,
    estimate_duration_minutes,
)

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


async def _no_runner(ctx: JobContext) -> Mapping[str, Any]:
    raise JobError(
        "this worker runs jobs over the data channel only", code="NOT_SUPPORTED"
    )


class SignalingWorker:
    """A worker registered with a signaling server.

    Args:
        url: The server's ``ws://``/``wss://`` address.
        credentials: ``register`` credential fields (``room_id`` + ``token``,
            ``api_key``, or ``jwt`` + ``room_id``).
        capabilities: GPU facts and what the worker supports.
        peer_id: The id to register with (the server picks one if ``None``).
        max_concurrent_jobs: Job slots (one per GPU).
        mounts: Folders the worker exposes (``{"path", "label"}``).
        name: Shown by ``sleap-rtc workers``.
        runner: Runs assigned jobs.
        reservation_timeout: Seconds an accepted request waits for assignment.
        estimator: Minutes a request would take here (``job_response``).
        free_memory_mb: Free GPU memory now (e.g. the probe's), for
            ``worker_info``.
        keep_orphan: ``(job_id, owner) -> bool``: whether a running job goes on
            when its owner leaves the room (a job with a data channel of its
            own can be reattached later); by default it is stopped.
        backoff: Reconnect delays.
        give_up_after: Seconds offline before :class:`ConnectionLost`
            (``None``: retry for ever, the default for a service).
        clock: Monotonic seconds (injectable).
    """

    def __init__(
        self,
        url: str,
        credentials: Mapping[str, Any],
        capabilities: WorkerCapabilities,
        *,
        peer_id: str | None = None,
        max_concurrent_jobs: int = 1,
        mounts: Sequence[Mapping[str, Any]] = (),
        name: str | None = None,
        runner: JobRunner = _no_runner,
        reservation_timeout: float = 30.0,
        estimator: Estimator = estimate_duration_minutes,
        free_memory_mb: Callable[[], int | None] | None = None,
        keep_orphan: Callable[[str, str], bool] = lambda _job, _owner: False,
        backoff: Backoff | None = None,
        give_up_after: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.slots = JobSlots(
            max_concurrent_jobs,
            capabilities,
            clock,
            reservation_timeout,
            estimator=estimator,
            free_memory_mb=free_memory_mb,
        )
        metadata = worker_metadata(
            capabilities,
            max_concurrent_jobs=max_concurrent_jobs,
            mounts=mounts,
            worker_name=name,
            extra_properties=self.slots.status_properties(),
        )
        register = sig.Register(
            peer_id=peer_id, role="worker", metadata=metadata, **dict(credentials)
        )
        self.client = SignalingClient(
            url, register, backoff=backoff, give_up_after=give_up_after
        )
        self.runner = runner
        self.keep_orphan = keep_orphan
        self._clock = clock
        self._jobs: dict[str, asyncio.Task[None]] = {}
        self._requests: dict[str, JobRequest] = {}  # accepted, not yet assigned
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
        return self.slots.status

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
        for task in list(self._jobs.values()):
            task.cancel()
        await asyncio.gather(*self._jobs.values(), return_exceptions=True)
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
                for outcome in self.slots.set_maintenance(True):
                    await self._act(outcome)
            elif status is WorkerStatus.AVAILABLE and self.slots.maintenance:
                self.slots.set_maintenance(False)
            elif status is not self.slots.status:
                raise ValueError(
                    f"status {status.value!r} follows from the jobs; "
                    f"it is {self.slots.status.value!r} now"
                )
            await self._publish(extra)

    async def _publish(self, extra: Mapping[str, Any] | None = None) -> None:
        patch = self.slots.take_patch() or {"properties": {}}
        if extra:
            patch["properties"].update(extra)
        if patch["properties"]:
            await self.client.update_metadata(patch)
            logger.info("status %s", self.slots.status.value)

    # --- messages

    async def send_to(self, peer_id: str, message: AppMessage) -> None:
        """Send an application message to a peer of the room."""
        await self.client.send_peer_message(peer_id, message.to_dict())

    async def _serve(self) -> None:
        async with self.client.subscribe("peer_message", "peer_left") as inbox:
            self._ready.set()
            while True:
                deadline = self.slots.next_deadline()
                wait = None if deadline is None else max(0.0, deadline - self._clock())
                try:
                    message = await inbox.get(timeout=wait)
                except TimeoutError:
                    async with self._lock:
                        for outcome in self.slots.expire():
                            await self._act(outcome)
                        await self._publish()
                    continue
                async with self._lock:
                    await self._handle(message)
                    await self._publish()

    async def _handle(self, message: sig.Message) -> None:
        if isinstance(message, sig.PeerLeft):
            for outcome in self.slots.peer_gone(message.peer_id):
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
            outcome = self.slots.handle_request(sender, app)
            if outcome.action is Action.ACCEPTED:
                self._requests[app.job_id] = app
        elif isinstance(app, JobAssignment):
            outcome = self.slots.handle_assignment(sender, app)
            if outcome.action is Action.ASSIGNED:
                self._start_job(sender, app.job_id)
        elif isinstance(app, JobCancel):
            outcome = self.slots.handle_cancel(sender, app)
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
        if outcome.action is Action.RELEASED:
            self._requests.pop(outcome.job_id, None)
        elif outcome.action is Action.ORPHANED and self.keep_orphan(
            outcome.job_id, outcome.peer_id
        ):
            logger.info("owner of job %s left; the job goes on", outcome.job_id)
        elif outcome.action in (Action.CANCELLING, Action.ORPHANED):
            # Without its owner (or on its owner's word) the job really stops;
            # the task's end frees the slot.
            task = self._jobs.get(outcome.job_id)
            if task is not None:
                task.cancel()
        if outcome.reply is not None:
            with contextlib.suppress(SleapRTCError):
                await self.send_to(outcome.peer_id, outcome.reply)

    # --- jobs

    async def adopt_job(self, owner: str, job_id: str, job_type: JobType) -> bool:
        """Give a slot to a job that arrived without negotiation (straight over
        a data channel), so the status stays true while it runs.

        Returns:
            False when no slot was free (the job runs anyway; the status cannot
            show it).
        """
        request = JobRequest(job_id=job_id, job_type=job_type)
        async with self._lock:
            if self.slots.handle_request(owner, request).action is not Action.ACCEPTED:
                logger.warning("! job %s of %s runs without a free slot", job_id, owner)
                return False
            self._requests[job_id] = request
            self.slots.handle_assignment(owner, JobAssignment(job_id=job_id))
            self._start_job(owner, job_id)
            await self._publish()
        return True

    def _start_job(self, owner: str, job_id: str) -> None:
        request = self._requests.pop(job_id)
        ctx = JobContext(job_id, owner, request, self)
        task = asyncio.create_task(self._run_job(ctx), name=f"job {job_id}")
        self._jobs[job_id] = task

    async def _run_job(self, ctx: JobContext) -> None:
        reply: AppMessage | None = None
        try:
            result = await self.runner(ctx)
            outcome = "succeeded"
            reply = JobComplete(job_id=ctx.job_id, result=dict(result))
        except asyncio.CancelledError:
            outcome = "cancelled"
        except Exception as exc:
            outcome = "failed"
            code = exc.code if isinstance(exc, SleapRTCError) else "JOB_FAILED"
            logger.exception("! job %s failed", ctx.job_id)
            reply = JobFailed(
                job_id=ctx.job_id, error={"code": code, "message": str(exc)}
            )
        finally:
            self._jobs.pop(ctx.job_id, None)
        async with self._lock:
            finished = self.slots.finish(ctx.job_id, outcome)
            for message in (reply, finished.reply):
                if message is not None:
                    with contextlib.suppress(SleapRTCError):
                        await self.send_to(ctx.owner, message)
            await self._publish()
