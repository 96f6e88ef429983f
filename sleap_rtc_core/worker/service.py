"""A complete worker: signaling, data channels, file checks and sleap-nn jobs.

:class:`WorkerService` ties the parts together:

* :class:`.agent.SignalingWorker` registers, negotiates and keeps ``status``;
* :class:`~..transport.peer.ChannelAcceptor` answers offers and authenticates
  each data channel;
* on each channel, ``FS_*`` requests go to :class:`.fs_service.FsService`,
  ``FILE_DOWNLOAD_REQUEST`` (a finished job's models) to
  :class:`.model_files.ModelFileServer` and job messages to
  :class:`.jobs.JobService`, in arrival order.

A job's slot follows the job: a negotiated job (``job_assignment``) holds its
slot until the ``JOB_SUBMIT`` that follows on its owner's channel has run to
the end; a job submitted straight over a channel (a reference client, or
``SLEAP_RTC_WORKER_PEER_ID``) takes a slot when it is accepted. Either way the
worker is ``busy`` while the job runs and ``available`` after, and the owner also
hears ``job_complete``/``job_failed`` over signaling.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from ..errors import JobError
from ..protocol.channel_transfer import FileDownloadRequestMsg
from ..protocol.negotiation import JobType
from ..protocol.states import JOB_TERMINAL_STATES, JobState
from ..transport.auth import ChannelAuth
from ..transport.channel import Channel
from ..transport.peer import ChannelAcceptor
from .agent import JobContext, SignalingWorker
from .capabilities import WorkerCapabilities
from .fs_service import FsService
from .hardware import JobHardware
from .jobs import JobService
from .model_files import ModelFileServer
from .mounts import MountPolicy
from .room_keys import room_key_cache

__all__ = ["WorkerService"]

logger = logging.getLogger(__name__)

SUBMIT_TIMEOUT = 120.0
"""Seconds an assigned job waits for its owner's ``JOB_SUBMIT``."""


class WorkerService:
    """A worker serving jobs (see module docstring).

    Args:
        url: The signaling server.
        credentials: ``register`` credential fields.
        capabilities: GPU facts and supported jobs.
        policy: The folders jobs and file checks may touch.
        auth: How channels are authenticated (room secret, authorized keys).
        submit_timeout: Seconds an assigned job waits for ``JOB_SUBMIT``.
        hardware: Where jobs run (default: the advertised GPU, or the CPU);
            it overrides the accelerator of every job's config.
        accept_legacy_clients: Whether sleap-rtc 0.0.7 clients may connect.

    A worker registered with a worker key (``api_key``) also accepts channels
    signed with an Ed25519 key of a room member (the server's list, cached).
        **worker_options: Passed to :class:`SignalingWorker` (``peer_id``,
            ``name``, ``max_concurrent_jobs``, ``backoff`` …).
    """

    def __init__(
        self,
        url: str,
        credentials: Mapping[str, Any],
        capabilities: WorkerCapabilities,
        policy: MountPolicy,
        *,
        auth: ChannelAuth,
        submit_timeout: float = SUBMIT_TIMEOUT,
        hardware: JobHardware | None = None,
        accept_legacy_clients: bool = True,
        **worker_options: Any,
    ) -> None:
        slots = int(worker_options.get("max_concurrent_jobs", 1))
        self.policy = policy
        self.fs = FsService(policy)
        self.jobs = JobService(
            policy,
            max_jobs=slots,
            on_state_change=self._state,
            hardware=hardware or JobHardware.for_gpu(capabilities.gpu),
        )
        self.models = ModelFileServer(
            lambda job_id: self.jobs.jobs.get(job_id), policy.allows
        )
        self.worker = SignalingWorker(
            url,
            credentials,
            capabilities,
            mounts=policy.entries(),
            runner=self._run_assigned,
            keep_orphan=self._keep_orphan,
            **worker_options,
        )
        # Maintenance (SIGTERM, the tray's Pause) refuses direct submissions too.
        self.jobs.paused = lambda: self.worker.slots.maintenance
        api_key = credentials.get("api_key")
        if auth.authorized_keys is None and isinstance(api_key, str) and api_key:
            # A worker key may read the room members' public keys: accept
            # channels signed with them (no room secret needed for those).
            keys = room_key_cache(url, api_key, self._room_id)
            auth = dataclasses.replace(auth, authorized_keys=keys)
        self.auth = auth
        self.acceptor = ChannelAcceptor(
            self.worker.client,
            auth=auth,
            on_channel=self._serve_channel,
            accept_legacy=accept_legacy_clients,
        )
        self.submit_timeout = submit_timeout
        self._submitted: dict[str, asyncio.Future[str]] = {}  # owner → job id
        self._finished: dict[str, asyncio.Future[JobState]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def _room_id(self) -> str:
        return self.worker.client.registration.room_id

    @property
    def peer_id(self) -> str:
        """The worker's peer id."""
        return self.worker.peer_id

    async def start(self) -> None:
        """Register and start answering offers."""
        await self.worker.start()
        await self.acceptor.start()

    async def close(self) -> None:
        """Stop jobs, channels and the signaling connection."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.acceptor.close()
        await self.jobs.close()
        await self.worker.close()

    async def __aenter__(self) -> WorkerService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def wait_closed(self) -> None:
        """Until the signaling side ends for good."""
        await self.worker.wait_closed()

    # --- channels

    async def _serve_channel(self, channel: Channel) -> None:
        sink = channel.send  # one object: JobService.detach compares it
        try:
            async for item in channel:
                if isinstance(item, bytes | bytearray):
                    continue  # file bytes outside a transfer: nothing to do
                if FsService.handles(item):
                    for reply in await self.fs.handle(item):
                        await channel.send(reply)
                elif isinstance(item, FileDownloadRequestMsg):
                    await self.models.handle(item, channel)
                else:
                    await self.jobs.handle(item, sink, channel.peer_id)
        finally:
            self.jobs.detach(sink)

    # --- jobs and slots

    async def wait_idle(self) -> None:
        """Until no job runs."""
        await self._idle.wait()

    def _state(self, job_id: str, state: JobState) -> None:
        if state in JOB_TERMINAL_STATES:
            running = any(
                i.state not in JOB_TERMINAL_STATES
                for j, i in self.jobs.jobs.items()
                if j != job_id
            )
            if not running:
                self._idle.set()
        else:
            self._idle.clear()
        info = self.jobs.jobs.get(job_id)
        if info is None:
            return
        if state in JOB_TERMINAL_STATES:
            done = self._finished.setdefault(
                job_id, asyncio.get_running_loop().create_future()
            )
            if not done.done():
                done.set_result(state)
            return
        if job_id in self._finished:
            return
        self._finished[job_id] = asyncio.get_running_loop().create_future()
        waiting = self._submitted.get(info.owner)
        if waiting is not None and not waiting.done():
            waiting.set_result(job_id)
        else:
            job_type = (
                JobType.INFERENCE if info.job_type == "track" else JobType.TRAINING
            )
            self._spawn(self.worker.adopt_job(info.owner, job_id, job_type))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _keep_orphan(self, job_id: str, owner: str) -> bool:
        """A submitted job outlives its owner's departure (it may reattach by
        job id); an assigned job still waiting for its ``JOB_SUBMIT`` does not."""
        return owner not in self._submitted

    async def _run_assigned(self, ctx: JobContext) -> Mapping[str, Any]:
        """Hold a slot for a job until its data-channel run ends."""
        job_id = ctx.job_id
        if job_id not in self._finished:  # negotiated: wait for its JOB_SUBMIT
            waiting = asyncio.get_running_loop().create_future()
            self._submitted[ctx.owner] = waiting
            try:
                job_id = await asyncio.wait_for(waiting, self.submit_timeout)
            except TimeoutError:
                raise JobError(
                    f"no JOB_SUBMIT from {ctx.owner} "
                    f"within {self.submit_timeout:.0f} s",
                    code="NO_SUBMIT",
                ) from None
            finally:
                self._submitted.pop(ctx.owner, None)
        try:
            state = await self._finished[job_id]
        except asyncio.CancelledError:
            self.jobs.cancel_job(job_id)
            raise
        finally:
            with contextlib.suppress(KeyError):
                if self._finished[job_id].done():
                    del self._finished[job_id]
        info = self.jobs.jobs.get(job_id)
        result = dict(info.result or {}) if info is not None else {}
        if state is JobState.SUCCEEDED:
            return {"job_id": job_id, **result}
        if state is JobState.CANCELLED:
            raise asyncio.CancelledError
        raise JobError(
            str(result.get("message") or result.get("error") or "the job failed"),
            code=str(result.get("code") or "JOB_FAILED"),
        )
