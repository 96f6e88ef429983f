"""A complete worker: signaling, data channels, file checks and sleap-nn jobs.

:class:`WorkerService` ties the parts together:

* :class:`.ledger_io.SignalingWorker` registers, negotiates and keeps ``status``;
* :class:`~..transport.peer.ChannelAcceptor` answers offers and authenticates
  each data channel;
* on each channel, ``FS_*`` requests go to :class:`.files.service.FsService`,
  ``FILE_DOWNLOAD_REQUEST`` (a finished job's models) to
  :class:`.files.models.ModelFileServer`, ``FILE_UPLOAD_*`` to
  :class:`.files.upload_service.UploadService` and job messages to
  :class:`.jobs.service.JobService`, in arrival order.

With an upload area (a folder inside a mount), the area is hidden from every
FS request, job path and download (:meth:`.files.mounts.MountPolicy.hiding`);
a channel's jobs may use the stored files that channel uploaded or asked for
by hash (:class:`.files.uploads.UploadJobPolicy`), and their models (and a
track job's default predictions) go to the uploader's folder
``<area>/models/<uploader>/``. While a client uploads, each verified step
keeps its assigned (negotiated, not yet submitted) slots for another
``submit_timeout`` (:meth:`.ledger.JobLedger.keep_assignments`), so a long
upload does not lose the slot it was negotiated for.

One :class:`.ledger.JobLedger` (the signaling worker's) holds every job: a
negotiated job (``job_request`` → ``job_assignment``) keeps its slot and its id
through the ``JOB_SUBMIT`` that follows on its owner's channel to the end; a job
submitted straight over a channel (the GUI, a reference client) takes a free
slot when it is admitted. Either way the worker is ``busy`` while the job runs
and ``available`` after, and the owner also hears ``job_complete``/
``job_failed`` over signaling.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..protocol.channel_messages import JobAttachMsg
from ..protocol.channel_transfer import FileDownloadRequestMsg, model_run_dirs
from ..protocol.states import JobState
from ..transport.auth import ChannelAuth
from ..transport.channel import Channel
from ..transport.peer import ChannelAcceptor
from .capabilities import GpuFacts, WorkerCapabilities
from .files.models import ModelFileServer
from .files.mounts import MountPolicy
from .files.service import FsService
from .files.slp_write import SlpWriteQuota
from .files.upload_policy import UploadJobPolicy
from .files.upload_service import ChannelUploads, UploadService
from .files.uploads import UploadArea, UploadQuota
from .gpu_facts import read_gpu_facts
from .gpu_pool import GpuPool
from .hardware import JobHardware
from .jobs.service import JobService
from .ledger_io import SUBMIT_TIMEOUT, SignalingWorker
from .room_keys import room_key_cache
from .speed import SpeedBook

__all__ = ["WorkerService"]

logger = logging.getLogger(__name__)


class WorkerService:
    """A worker serving jobs (see module docstring).

    Args:
        url: The signaling server (or several processes of one deployment).
        credentials: ``register`` credential fields.
        capabilities: GPU facts and supported jobs.
        policy: The folders jobs and file checks may touch.
        auth: How channels are authenticated (room secret, authorized keys).
        submit_timeout: Seconds an assigned job waits for ``JOB_SUBMIT``.
        hardware: Where jobs run (default: a :class:`.gpu_pool.GpuPool` of the
            advertised GPUs, one job per GPU, or the CPU); it overrides the
            accelerator and devices of every job's config.
        gpu_facts: Reads the GPUs' live facts (free memory, utilisation);
            default :func:`.gpu_facts.read_gpu_facts` for a GPU worker.
        accept_legacy_clients: Whether sleap-rtc 0.0.7 clients may connect.
        slp_write_quota: What ``FS_WRITE_SLP`` may write per peer and in all
            (default :class:`.files.slp_write.SlpWriteQuota`).
        upload_dir: The upload area (a folder inside a mount, made at start),
            published as ``"uploads": true``; ``None``: uploads are refused
            (``NO_UPLOAD_AREA``).
        upload_quota: The area's quotas and expiry.
        **worker_options: Passed to :class:`SignalingWorker` (``peer_id``,
            ``name``, ``max_concurrent_jobs``, ``backoff`` …).

    A worker registered with a worker key (``api_key``) also accepts channels
    signed with an Ed25519 key of a room member (the server's list, cached).
    """

    def __init__(
        self,
        url: str | Sequence[str],
        credentials: Mapping[str, Any],
        capabilities: WorkerCapabilities,
        policy: MountPolicy,
        *,
        auth: ChannelAuth,
        submit_timeout: float = SUBMIT_TIMEOUT,
        hardware: JobHardware | GpuPool | None = None,
        gpu_facts: Callable[[], Mapping[int, GpuFacts]] | None = None,
        accept_legacy_clients: bool = True,
        slp_write_quota: SlpWriteQuota | None = None,
        upload_dir: str | os.PathLike[str] | None = None,
        upload_quota: UploadQuota | None = None,
        **worker_options: Any,
    ) -> None:
        """Raises:
        ValueError: ``upload_dir`` is not inside a mount.
        """
        mounts = policy  # the upload area hidden from all but its own paths
        area: UploadArea | None = None
        if upload_dir is not None:
            if not policy.allows(upload_dir):
                raise ValueError(f"the upload area {upload_dir} is not in a mount")
            area = UploadArea(upload_dir, upload_quota)
            policy = policy.hiding(area.root)
        self.policy = policy
        self._channel_uploads: dict[Channel, ChannelUploads] = {}
        self.uploads = UploadService(
            area, in_use=self._uploads_in_use, on_activity=self._uploading
        )
        self.fs = FsService(policy, slp_write_quota=slp_write_quota)
        indices = [g.index for g in capabilities.gpus if g.index is not None]
        if gpu_facts is None and indices:
            gpu_facts = functools.partial(read_gpu_facts, indices)
        # One job per GPU unless configured otherwise.
        worker_options.setdefault("max_concurrent_jobs", max(1, len(indices)))
        # Estimates from this worker's measured speed (jobs learn it).
        self.speed = SpeedBook()
        worker_options.setdefault("estimator", self.speed.estimate_minutes)
        self.worker = SignalingWorker(
            url,
            credentials,
            capabilities,
            mounts=policy.entries(),
            submit_timeout=submit_timeout,
            on_cancel=self._cancel,
            gpu_facts=gpu_facts,
            uploads=area is not None,
            **worker_options,
        )
        self.jobs = JobService(
            policy,
            on_state_change=self._state,
            hardware=hardware or GpuPool(capabilities.gpus, self._free_mb),
            ledger=self.worker.ledger,
            on_ledger=self.worker.ledger_changed,
            speed=self.speed,
        )
        self.models = ModelFileServer(
            lambda job_id, channel, secret: self.jobs.authorized_job(
                job_id, channel.send, secret
            ),
            mounts,
        )
        api_key = credentials.get("api_key")
        if auth.authorized_keys is None and isinstance(api_key, str) and api_key:
            # A worker key may read the room members' public keys: accept
            # channels signed with them (no room secret needed for those).
            client = self.worker.client
            keys = room_key_cache(
                client.urls, api_key, self._room_id, current=lambda: client.url
            )
            auth = dataclasses.replace(auth, authorized_keys=keys)
        self.auth = auth
        self.acceptor = ChannelAcceptor(
            self.worker.client,
            auth=auth,
            on_channel=self._serve_channel,
            accept_legacy=accept_legacy_clients,
        )
        self._idle = asyncio.Event()
        self._idle.set()

    def _room_id(self) -> str:
        return self.worker.client.registration.room_id

    @property
    def peer_id(self) -> str:
        """The worker's peer id."""
        return self.worker.peer_id

    async def start(self) -> None:
        """Clear what dead workers left, register and start answering offers."""
        await self.jobs.remove_abandoned()
        await self.uploads.start()
        await self.worker.start()
        await self.acceptor.start()

    async def close(self) -> None:
        """Stop jobs, channels and the signaling connection."""
        await self.acceptor.close()
        await self.uploads.close()
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

    def _free_mb(self, index: int) -> int | None:
        """A device's free memory as last read (for the GPU pool)."""
        return self.worker.ledger.gpu_free_mb(index)

    # --- channels

    async def _serve_channel(self, channel: Channel) -> None:
        sink = channel.send  # one object: JobService.detach compares it
        uploads = self._channel_uploads[channel] = ChannelUploads()
        job_policy = None
        if self.uploads.area is not None:
            job_policy = UploadJobPolicy(
                self.policy,
                self.uploads.area,
                uploads.grants,
                channel.peer_id,
                uploads.models,
            )
        try:
            async for item in channel:
                if isinstance(item, bytes | bytearray):
                    continue  # file bytes outside a transfer: nothing to do
                if FsService.handles(item):
                    for reply in await self.fs.handle(item, channel.peer_id):
                        await channel.send(reply)
                elif isinstance(item, FileDownloadRequestMsg):
                    await self.models.handle(item, channel)
                elif UploadService.handles(item):
                    await self.uploads.handle(item, channel, uploads)
                else:
                    if isinstance(item, JobAttachMsg):
                        self._claim_models(item, sink, uploads)
                    await self.jobs.handle(
                        item,
                        sink,
                        channel.peer_id,
                        legacy=channel.legacy_peer,
                        policy=job_policy,
                        models_dir=job_policy.models_dir_for if job_policy else None,
                    )
        finally:
            self._channel_uploads.pop(channel, None)
            self.jobs.detach(sink)

    def _claim_models(
        self, msg: JobAttachMsg, sink: Callable[..., Any], uploads: ChannelUploads
    ) -> None:
        """A channel that shows a finished job's secret owns its models: its
        later jobs may name them, even inside the upload area (another
        connection trained them)."""
        info = self.jobs.authorized_job(msg.job_id, sink, msg.job_secret)
        if info is None or info.state is not JobState.SUCCEEDED:
            return
        for run_dir in model_run_dirs(info.result or {}):
            uploads.models.add(os.path.realpath(run_dir))

    def _uploading(self, peer_id: str) -> None:
        """An upload of ``peer_id`` moved on: its assigned slots wait on (the
        data of a negotiated job comes between assignment and submit)."""
        self.worker.ledger.keep_assignments(peer_id)

    def _uploads_in_use(self) -> list[str]:
        """The stored files open channels may use (the sweep keeps them)."""
        return sorted({h for u in self._channel_uploads.values() for h in u.grants})

    # --- jobs and slots

    async def wait_idle(self) -> None:
        """Until no job runs."""
        await self._idle.wait()

    def _state(self, _job_id: str, _state: JobState) -> None:
        if self.jobs.running:
            self._idle.clear()
        else:
            self._idle.set()

    def _cancel(self, job_id: str) -> None:
        """The owner cancelled over signaling, or left before its job began."""
        self.jobs.cancel_job(job_id)
