"""The client side of job negotiation over signaling: discover, ask, pick, monitor.

:class:`JobClient` drives the pure pieces of :mod:`.selection` over a
:class:`~sleap_rtc_core.signaling.client.session_io.SignalingClient`:

1. ``discover_peers`` with :func:`.selection.worker_filters` (or, against a
   server without discovery, the worker named by ``SLEAP_RTC_WORKER_PEER_ID``);
2. ``job_request`` to every match, collecting ``job_response`` until **every
   asked worker has answered or left**, or the deadline passes;
3. ``job_assignment`` to the best, ``job_cancel`` to the other accepting ones;
4. ``job_status`` to a callback until ``job_complete`` / ``job_failed``.

The subscription is opened before the first request goes out, so no answer can
slip between sending and listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import (
    ErrorCode,
    JobFailedError,
    NoWorkersAcceptedError,
    NoWorkersAvailableError,
    RemoteProtocolError,
    ServerError,
    SleapRTCError,
)
from ..protocol import signaling as sig
from ..protocol.dialect import Dialect, worker_dialect
from ..protocol.negotiation import (
    AppMessage,
    JobAssignment,
    JobCancel,
    JobComplete,
    JobFailed,
    JobRequest,
    JobResponse,
    JobStatus,
    JobType,
    decode_app_message,
)
from ..signaling.client.session_io import SignalingClient, Subscription
from .selection import (
    ResponseCollector,
    rejection_error,
    sees_path,
    supports_job,
    worker_filters,
)

__all__ = ["FALLBACK_ENV", "JobClient", "Placement", "StatusCallback"]

logger = logging.getLogger(__name__)

FALLBACK_ENV = "SLEAP_RTC_WORKER_PEER_ID"
"""Names the worker to use when the server cannot discover (old servers)."""

StatusCallback = Callable[[JobStatus], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a job went.

    Attributes:
        worker_id: The chosen worker.
        response: Its accepting ``job_response`` (made up from its metadata
            for a 0.0.7 worker, which is not asked).
        reasons: Why each other asked worker is not running it.
        legacy: The worker runs sleap-rtc 0.0.7.
        asked: The ``peer_list`` entries of the workers asked (for a 0.0.7
            worker: the ones it was chosen from).
        responses: Every counted ``job_response``, by worker.
        prefer: The asked workers that see the job's data.
    """

    worker_id: str
    response: JobResponse
    reasons: Mapping[str, str]
    legacy: bool = False
    asked: tuple[Mapping[str, Any], ...] = ()
    responses: Mapping[str, JobResponse] = field(default_factory=dict)
    prefer: frozenset[str] = frozenset()


def _seeing(workers: list[dict[str, Any]], data_path: str | None) -> frozenset[str]:
    """The workers whose published mounts hold ``data_path``."""
    if data_path is None:
        return frozenset()
    return frozenset(w["peer_id"] for w in workers if sees_path(w, data_path))


def _display_name(peer: dict[str, Any]) -> str:
    props = (peer.get("metadata") or {}).get("properties") or {}
    name = props.get("worker_name") if isinstance(props, dict) else None
    return f"{name} ({peer.get('peer_id')})" if name else str(peer.get("peer_id"))


class JobClient:
    """Places jobs on workers of the room.

    Args:
        signaling: A started signaling client (role ``client``).
        response_deadline: Seconds to wait for ``job_response``s at most.
        discover_timeout: Seconds to wait for ``peer_list``; an old server that
            stays silent triggers the fallback.
        fallback_worker_id: The worker for servers without discovery (default:
            ``$SLEAP_RTC_WORKER_PEER_ID``).
        accept_legacy: Whether sleap-rtc 0.0.7 workers may take the job when
            no current worker does. They are never sent ``job_request``: one
            that holds the room's admin slot never reads it.
        on_wait: Told what :meth:`place` waits for (discovery, the workers'
            answers), so a display can show it with the time waited.
    """

    def __init__(
        self,
        signaling: SignalingClient,
        *,
        response_deadline: float = 10.0,
        discover_timeout: float = 5.0,
        fallback_worker_id: str | None = None,
        accept_legacy: bool = True,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        self.signaling = signaling
        self.on_wait = on_wait
        self.accept_legacy = accept_legacy
        self.response_deadline = response_deadline
        self.discover_timeout = discover_timeout
        self.fallback_worker_id = fallback_worker_id or os.environ.get(FALLBACK_ENV)

    def _wait(self, what: str) -> None:
        if self.on_wait is not None:
            self.on_wait(what)

    # --- discovery

    async def discover_workers(
        self,
        min_gpu_memory_mb: int | float | None = None,
        job_type: JobType | str | None = None,
        model_type: str | None = None,
    ) -> list[dict[str, Any]]:
        """Available workers that fit, as ``peer_list`` entries.

        Against a server without ``discover_peers`` (it answers
        ``UNKNOWN_MESSAGE_TYPE`` or nothing in time), the fallback worker is
        returned, with a warning.

        Raises:
            NoWorkersAvailableError: the server cannot discover and no
                fallback worker is configured.
        """
        filters = worker_filters(min_gpu_memory_mb, job_type, model_type)
        try:
            peers = await self.signaling.discover(filters, self.discover_timeout)
        except (ServerError, TimeoutError) as exc:
            if (
                isinstance(exc, ServerError)
                and exc.code != ErrorCode.UNKNOWN_MESSAGE_TYPE
            ):
                raise
            return self._fallback(exc)
        return [
            p
            for p in peers
            if supports_job(p, job_type=job_type, model_type=model_type)
        ]

    def _fallback(self, exc: Exception) -> list[dict[str, Any]]:
        why = "does not answer" if isinstance(exc, TimeoutError) else "cannot"
        if not self.fallback_worker_id:
            raise NoWorkersAvailableError(
                f"the signaling server {why} discover workers (an old server?); "
                f"set {FALLBACK_ENV} to the peer id of the worker to use"
            ) from exc
        logger.warning(
            "! the signaling server %s discover workers; using %s=%s",
            why,
            FALLBACK_ENV,
            self.fallback_worker_id,
        )
        return [{"peer_id": self.fallback_worker_id, "role": "worker", "metadata": {}}]

    # --- negotiation

    async def place(
        self,
        request: JobRequest,
        inbox: Subscription,
        min_gpu_memory_mb: int | float | None = None,
        data_path: str | None = None,
        can_send_data: bool = False,
    ) -> Placement:
        """Ask every fitting worker, assign the job to the best, release the rest.

        Args:
            request: The ``job_request`` to send.
            inbox: An open subscription to ``peer_message`` and ``peer_left``.
            min_gpu_memory_mb: Discovery's memory bound.
            data_path: The job's labels or data as the workers name it (after
                the path mappings): workers whose mounts hold it are chosen
                first, and when only a busy worker sees it the job goes to no
                other (unless ``can_send_data``).
            can_send_data: The caller uploads the data to a worker that cannot
                see it, so any worker will do.

        Raises:
            NoWorkersAvailableError: no worker fits, or only busy ones see
                ``data_path``.
            NoWorkersAcceptedError: every asked worker declined, left or timed
                out (``reasons`` says which).
        """
        self._wait("discovering the room's workers")
        workers = await self.discover_workers(
            min_gpu_memory_mb, request.job_type, request.config.get("model_type")
        )
        if not workers:
            raise NoWorkersAvailableError(
                "no available worker matches the job's requirements"
            )
        legacy = [w for w in workers if worker_dialect(w) is Dialect.LEGACY]
        current = [w for w in workers if w not in legacy]
        if not current and not self.accept_legacy:
            raise NoWorkersAvailableError(
                f"only sleap-rtc 0.0.7 workers match ({len(legacy)}), and this "
                "client refuses them (--refuse-legacy-workers)"
            )
        if not current:
            return _legacy_placement(request, legacy)
        seeing = _seeing(current, data_path)
        all_known = None not in (sees_path(w, data_path or "") for w in current)
        if data_path is not None and not seeing and all_known and not can_send_data:
            await self._say_who_sees(request, data_path, min_gpu_memory_mb)
        try:
            return await self._negotiate(request, current, inbox, seeing)
        except NoWorkersAcceptedError:
            if not legacy or not self.accept_legacy:
                raise
            return _legacy_placement(request, legacy)

    async def _say_who_sees(
        self,
        request: JobRequest,
        data_path: str,
        min_gpu_memory_mb: int | float | None,
    ) -> None:
        """No available worker sees ``data_path``: if a busy one does, stop
        here with its name rather than send the job where it cannot run.

        Raises:
            NoWorkersAvailableError: a worker sees the data but is busy.
        """
        filters = worker_filters(
            min_gpu_memory_mb, request.job_type, request.config.get("model_type")
        )
        filters["properties"].pop("status", None)
        try:
            everyone = await self.signaling.discover(filters, self.discover_timeout)
        except (ServerError, TimeoutError):
            return
        busy = sorted(
            _display_name(w) for w in everyone if sees_path(w, data_path) is True
        )
        if busy:
            raise NoWorkersAvailableError(
                f"only {', '.join(busy)} can see {data_path}, and it is busy now: "
                "try again when it is free, or send the data (--upload)"
            )

    async def _negotiate(
        self,
        request: JobRequest,
        workers: list[dict[str, Any]],
        inbox: Subscription,
        seeing: frozenset[str] = frozenset(),
    ) -> Placement:
        asked = [w["peer_id"] for w in workers]
        collector = ResponseCollector(asked, request.job_id)
        for peer_id in asked:
            await self._send(peer_id, request)
        self._wait(
            f"asking {len(asked)} worker(s) for an estimate "
            f"(up to {self.response_deadline:.0f} s)"
        )
        deadline = time.monotonic() + self.response_deadline
        while not collector.done:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                message = await inbox.get(timeout=remaining)
            except TimeoutError:
                break
            if isinstance(message, sig.PeerLeft):
                collector.peer_gone(message.peer_id)
                continue
            app = _app_message(message)
            if isinstance(app, JobResponse) and isinstance(message, sig.PeerMessage):
                collector.record(message.from_peer_id, app)
        collector.close()
        best = collector.best(seeing)
        for peer_id in collector.to_release(best.peer_id if best else None):
            await self._send(
                peer_id, JobCancel(job_id=request.job_id, reason="another worker")
            )
        if best is None:
            raise rejection_error(collector.reasons())
        await self._send(best.peer_id, JobAssignment(job_id=request.job_id))
        logger.info(
            "job %s assigned to %s (estimate %s min)",
            request.job_id,
            best.peer_id,
            best.response.estimated_duration_minutes,
        )
        return Placement(
            best.peer_id,
            best.response,
            collector.reasons(),
            asked=tuple(workers),
            responses=collector.responses,
            prefer=seeing,
        )

    async def monitor(
        self,
        placement: Placement,
        job_id: str,
        inbox: Subscription,
        on_status: StatusCallback | None = None,
    ) -> dict[str, Any]:
        """Relay ``job_status`` until the job ends; returns ``job_complete.result``.

        Raises:
            JobFailedError: ``job_failed``, ``job_cancelled`` or the worker left.
        """
        worker = placement.worker_id
        async for message in inbox:
            if isinstance(message, sig.PeerLeft) and message.peer_id == worker:
                raise JobFailedError(
                    f"worker {worker} left during job {job_id}", code="WORKER_GONE"
                )
            if not (
                isinstance(message, sig.PeerMessage) and message.from_peer_id == worker
            ):
                continue
            app = _app_message(message)
            if getattr(app, "job_id", None) != job_id:
                continue
            if isinstance(app, JobStatus) and on_status is not None:
                result = on_status(app)
                if asyncio.iscoroutine(result):
                    await result
            elif isinstance(app, JobComplete):
                return dict(app.result)
            elif isinstance(app, JobFailed):
                error = app.error
                raise JobFailedError(
                    str(error.get("message") or "the job failed"),
                    code=str(error.get("code") or "JOB_FAILED"),
                    details=error,
                )
            elif app is not None and app.TYPE.value == "job_cancelled":
                raise JobFailedError(f"job {job_id} was cancelled", code="CANCELLED")
        raise JobFailedError("stopped listening before the job ended")

    async def submit_job(
        self,
        job_type: JobType | str,
        *,
        config: Mapping[str, Any] | None = None,
        dataset_info: Mapping[str, Any] | None = None,
        min_gpu_memory_mb: int | float | None = None,
        on_status: StatusCallback | None = None,
        on_placed: Callable[[Placement], Awaitable[None] | None] | None = None,
        job_id: str | None = None,
    ) -> dict[str, Any]:
        """Place a job and follow it to the end; returns its result.

        ``on_placed`` runs once a worker holds the job (the data-channel phase
        hooks in there).
        """
        requirements: dict[str, Any] = {}
        if min_gpu_memory_mb is not None:
            requirements["min_gpu_memory_mb"] = min_gpu_memory_mb
        request = JobRequest(
            job_id=job_id or f"job-{uuid.uuid4().hex[:12]}",
            job_type=JobType(job_type),
            dataset_info=dict(dataset_info or {}),
            config=dict(config or {}),
            requirements=requirements,
        )
        async with self.signaling.subscribe("peer_message", "peer_left") as inbox:
            placement = await self.place(request, inbox, min_gpu_memory_mb)
            if on_placed is not None:
                result = on_placed(placement)
                if asyncio.iscoroutine(result):
                    await result
            try:
                return await self.monitor(placement, request.job_id, inbox, on_status)
            except asyncio.CancelledError:
                with contextlib.suppress(SleapRTCError):
                    await self._send(
                        placement.worker_id, JobCancel(job_id=request.job_id)
                    )
                raise

    async def submit_training_job(self, **kwargs: Any) -> dict[str, Any]:
        """:meth:`submit_job` for ``training``."""
        return await self.submit_job(JobType.TRAINING, **kwargs)

    async def _send(self, peer_id: str, message: AppMessage) -> None:
        await self.signaling.send_peer_message(peer_id, message.to_dict())


def _legacy_placement(request: JobRequest, workers: list[dict[str, Any]]) -> Placement:
    """The 0.0.7 worker with the most GPU memory (its own clients' choice)."""

    def memory(w: Mapping[str, Any]) -> float:
        value = (w.get("metadata") or {}).get("properties", {}).get("gpu_memory_mb")
        return float(value) if isinstance(value, int | float) else 0.0

    best = max(workers, key=memory)
    props = (best.get("metadata") or {}).get("properties", {})
    info = {k: props[k] for k in ("gpu_model", "gpu_memory_mb") if k in props}
    logger.info("job %s goes to the 0.0.7 worker %s", request.job_id, best["peer_id"])
    response = JobResponse(job_id=request.job_id, accepted=True, worker_info=info)
    return Placement(best["peer_id"], response, {}, legacy=True, asked=tuple(workers))


def _app_message(message: sig.Message) -> AppMessage | None:
    if not isinstance(message, sig.PeerMessage):
        return None
    try:
        return decode_app_message(message.payload)
    except RemoteProtocolError:
        return None
