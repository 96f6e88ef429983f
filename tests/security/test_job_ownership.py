"""A job belongs to the secret its ``JOB_ACCEPTED`` handed out, not to a peer
id: two holders of one room token, a real worker, real channels, real
sleap-nn. The owner leaves; another member registers under its peer id and
tries everything an owner may do; then the owner, from a new process with a
new peer id, reattaches with the kept secret and cancels the job.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sleap_rtc_core.client.job_secrets import load_job_secret
from sleap_rtc_core.client.remote_job import RemoteJob
from sleap_rtc_core.errors import JobError
from sleap_rtc_core.protocol.channel_fs import FsErrorCode, FsErrorMsg
from sleap_rtc_core.protocol.channel_messages import (
    JOB_STATE_UNKNOWN,
    JobAttachMsg,
    JobCancelMsg,
    JobStateMsg,
    JobStopMsg,
)
from sleap_rtc_core.protocol.channel_transfer import (
    FileDownloadMetaMsg,
    FileDownloadRequestMsg,
)
from sleap_rtc_core.protocol.jobspec import TrainJobSpec
from sleap_rtc_core.protocol.negotiation import JobCancel, JobRequest
from sleap_rtc_core.protocol.states import JOB_TERMINAL_STATES, JobState
from sleap_rtc_core.sample_data import tiny_training_config, write_tiny_labels
from sleap_rtc_core.signaling.client.session_io import SignalingClient
from sleap_rtc_core.signaling.service import Service
from sleap_rtc_core.transport.auth import ChannelAuth
from sleap_rtc_core.transport.peer import open_channel
from sleap_rtc_core.worker.service import WorkerService
from tests.fixtures.signaling import RoomCreds
from tests.fixtures.timing import async_wait_until, scaled
from tests.fixtures.transport import make_signaling


def member(service: Service, room: RoomCreds, peer_id: str) -> SignalingClient:
    return make_signaling(service.server.url, room, peer_id, "client")


async def test_a_reused_peer_id_owns_nothing_and_the_secret_owns_the_job(
    worker: WorkerService, service: Service, room: RoomCreds, room_secret: str
) -> None:
    mount = Path(worker.policy.mounts[0].path)
    labels = await asyncio.to_thread(write_tiny_labels, mount / "labels.pkg.slp")
    spec = TrainJobSpec(
        config_content=tiny_training_config(max_epochs=1000), labels_path=str(labels)
    )
    auth = ChannelAuth(secret=room_secret)
    async with member(service, room, "c") as owner:
        async with await open_channel(owner, "w", auth=auth) as channel:
            job_id = await RemoteJob(channel, spec).submit(scaled(30))
    secret = load_job_secret("w", job_id)
    assert secret  # kept for a later attach, never published
    published = service.server.router.registry.get(room.room_id, "w")
    assert published is not None
    assert job_id not in str(published.metadata)

    async with member(service, room, "c") as mallory:  # the owner's old id
        async with await open_channel(mallory, "w", auth=auth) as channel:
            for attach in (JobAttachMsg(job_id), JobAttachMsg(job_id, "guess")):
                state = await channel.request(attach, (JobStateMsg,), scaled(10))
                assert isinstance(state, JobStateMsg)
                assert state.state == JOB_STATE_UNKNOWN
            await channel.send(JobStopMsg())
            await channel.send(JobCancelMsg())
            request = FileDownloadRequestMsg(
                path=str(mount), transfer_id="t", extra={"job_id": job_id}
            )
            denied = await channel.request(
                request, (FsErrorMsg, FileDownloadMetaMsg), scaled(10)
            )
            assert isinstance(denied, FsErrorMsg)
            assert denied.code is FsErrorCode.ACCESS_DENIED
        async with mallory.subscribe("peer_message") as inbox:
            await mallory.send_peer_message("w", JobCancel(job_id=job_id).to_dict())
            # A later message is answered: the cancel before it was read.
            await mallory.send_peer_message("w", JobRequest(job_id="probe").to_dict())
            await inbox.get(timeout=scaled(10))
    assert worker.jobs.jobs[job_id].state not in JOB_TERMINAL_STATES

    async with member(service, room, "c-new-process") as again:
        async with await open_channel(again, "w", auth=auth) as channel:
            job = await RemoteJob.attach(channel, job_id)  # the kept secret
            await job.cancel()
            await async_wait_until(
                lambda: worker.jobs.jobs[job_id].state is JobState.CANCELLED,
                timeout=scaled(60),
            )
    async with member(service, room, "c") as mallory:
        async with await open_channel(mallory, "w", auth=auth) as channel:
            with pytest.raises(JobError, match="no job"):
                await RemoteJob.attach(channel, job_id, job_secret="wrong")
