"""One job ledger on a real worker: both ways in, one id, one place deciding.

A real server, a real :class:`WorkerService` and real clients over real data
channels; negotiation messages are sent by hand where a test plays a client that
stops half-way or a hostile room member. Jobs that start are cancelled at once
(sleap-nn starts for real on the CPU). The GPU is stated (the boundary these
tests cannot reach).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from sleap_rtc_core.client.remote_job import RemoteJob
from sleap_rtc_core.client.session import run_remote_job
from sleap_rtc_core.client.upload import upload_file
from sleap_rtc_core.errors import JobRejected
from sleap_rtc_core.protocol.channel_transfer import FileUploadSegmentMsg
from sleap_rtc_core.protocol.jobspec import TrainJobSpec
from sleap_rtc_core.protocol.negotiation import (
    AppMessage,
    JobAssignment,
    JobCancelled,
    JobFailed,
    JobRequest,
    JobResponse,
    decode_app_message,
)
from sleap_rtc_core.sample_data import tiny_training_config, write_tiny_labels
from sleap_rtc_core.signaling.client.session_io import SignalingClient, Subscription
from sleap_rtc_core.signaling.service import Service
from sleap_rtc_core.transport.auth import ChannelAuth
from sleap_rtc_core.transport.peer import open_channel
from sleap_rtc_core.worker.files import upload_service
from sleap_rtc_core.worker.service import WorkerService
from sleap_rtc_core.worker.slot import NO_SUBMIT_CODE, SlotState
from tests.fixtures.signaling import RoomCreds, peer_status
from tests.fixtures.timing import async_wait_until, scaled
from tests.fixtures.transport import make_signaling, stated_worker

SUBMIT_TIMEOUT = 2.0


@pytest.fixture
def worker_options() -> dict[str, Any]:
    return {"submit_timeout": scaled(SUBMIT_TIMEOUT)}


@pytest.fixture
async def spec(worker: WorkerService) -> TrainJobSpec:
    mount = Path(worker.policy.mounts[0].path)
    labels = await asyncio.to_thread(write_tiny_labels, mount / "labels.pkg.slp")
    return TrainJobSpec(
        config_content=tiny_training_config(max_epochs=1000),
        labels_path=str(labels),
    )


def client_of(service: Service, room: RoomCreds, peer_id: str) -> SignalingClient:
    return make_signaling(service.server.url, room, peer_id, "client")


async def next_app(inbox: Subscription, kind: type[AppMessage]) -> Any:
    """The next negotiation message of ``kind`` (others are skipped)."""
    for _ in range(20):
        message = await inbox.get(timeout=scaled(20))
        app = decode_app_message(message.payload)  # type: ignore[union-attr]
        if isinstance(app, kind):
            return app
    raise AssertionError(f"no {kind.__name__}")


async def negotiate(client: SignalingClient, inbox: Subscription, job_id: str) -> None:
    """Reserve and assign ``job_id`` on ``w`` by hand."""
    await client.send_peer_message("w", JobRequest(job_id=job_id).to_dict())
    response = await next_app(inbox, JobResponse)
    assert response.accepted, response
    await client.send_peer_message("w", JobAssignment(job_id=job_id).to_dict())


async def test_a_negotiated_job_keeps_its_id_from_request_to_the_end(
    worker: WorkerService,
    service: Service,
    room: RoomCreds,
    room_secret: str,
    spec: TrainJobSpec,
) -> None:
    jobs: list[RemoteJob] = []
    async with client_of(service, room, "c") as client:
        async with client.subscribe("peer_message") as inbox:
            task = asyncio.ensure_future(
                run_remote_job(
                    client,
                    spec,
                    auth=ChannelAuth(secret=room_secret),
                    on_job=jobs.append,
                )
            )
            response = await next_app(inbox, JobResponse)
            await async_wait_until(lambda: bool(jobs), timeout=scaled(20))
            job_id = jobs[0].job_id
            assert job_id == response.job_id  # the id of the job_request
            assert job_id is not None
            assert job_id.startswith("job-")
            slot = worker.worker.ledger.job(job_id)
            assert slot is not None
            assert slot.submitted
            assert worker.jobs.jobs[job_id].owner == "c"
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            cancelled = await next_app(inbox, JobCancelled)
            assert cancelled.job_id == job_id
    await async_wait_until(
        lambda: peer_status(service, room) == "available", timeout=scaled(30)
    )


async def test_one_ledger_decides_for_negotiated_and_direct_jobs(
    worker: WorkerService,
    service: Service,
    room: RoomCreds,
    room_secret: str,
    spec: TrainJobSpec,
) -> None:
    auth = ChannelAuth(secret=room_secret)
    async with (
        client_of(service, room, "c") as owner,
        client_of(service, room, "mallory") as stranger,
    ):
        async with owner.subscribe("peer_message") as inbox:
            await negotiate(owner, inbox, "job-owned")
            await async_wait_until(
                lambda: peer_status(service, room) == "busy", timeout=scaled(10)
            )
            # The slot is promised: a direct job, or one naming the owner's
            # id, finds the worker busy, and the promise stands.
            async with await open_channel(stranger, "w", auth=auth) as channel:
                for cid in ("cj-direct", "job-owned"):
                    with pytest.raises(JobRejected) as refused:
                        await RemoteJob(channel, spec, client_job_id=cid).submit(
                            scaled(20)
                        )
                    (error,) = refused.value.errors
                    assert error["code"] == "WORKER_BUSY"
            held = worker.worker.ledger.job("job-owned")
            assert held is not None
            assert (held.owner, held.state) == ("c", SlotState.ASSIGNED)
            # The owner's submission takes its slot under its own id.
            async with await open_channel(owner, "w", auth=auth) as channel:
                job = RemoteJob(channel, spec, client_job_id="job-owned")
                assert await job.submit(scaled(20)) == "job-owned"
                await job.cancel()
                await async_wait_until(
                    lambda: worker.jobs.running == 0, timeout=scaled(30)
                )
    await async_wait_until(
        lambda: peer_status(service, room) == "available", timeout=scaled(10)
    )
    assert worker.worker.ledger.slots == ()


async def test_an_assignment_whose_submit_never_comes_fails_over_signaling(
    worker: WorkerService, service: Service, room: RoomCreds
) -> None:
    async with client_of(service, room, "c") as client:
        async with client.subscribe("peer_message") as inbox:
            await negotiate(client, inbox, "job-silent")
            failed = await next_app(inbox, JobFailed)
    assert failed.job_id == "job-silent"
    assert failed.error["code"] == NO_SUBMIT_CODE
    await async_wait_until(
        lambda: peer_status(service, room) == "available", timeout=scaled(10)
    )


async def test_a_negotiation_cannot_take_over_a_finished_jobs_id(
    worker: WorkerService,
    service: Service,
    room: RoomCreds,
    room_secret: str,
    spec: TrainJobSpec,
) -> None:
    """A room member that learnt another's job id (say, from a log) negotiates
    a job under it: the remembered job, its owner and its models stay as they
    were, and the slot is free again."""
    auth = ChannelAuth(secret=room_secret)
    async with client_of(service, room, "c") as victim:
        async with await open_channel(victim, "w", auth=auth) as channel:
            job = RemoteJob(channel, spec)
            job_id = await job.submit(scaled(20))
            await job.cancel()
            await async_wait_until(lambda: worker.jobs.running == 0, scaled(30))
    async with client_of(service, room, "mallory") as mallory:
        async with mallory.subscribe("peer_message") as inbox:
            await negotiate(mallory, inbox, job_id)
            async with await open_channel(mallory, "w", auth=auth) as channel:
                with pytest.raises(JobRejected, match="taken"):
                    await RemoteJob(channel, spec, client_job_id=job_id).submit(
                        scaled(20)
                    )
            failed = await next_app(inbox, JobFailed)
            assert failed.error["code"] == "JOB_REJECTED"
    assert worker.jobs.jobs[job_id].owner == "c"
    await async_wait_until(
        lambda: peer_status(service, room) == "available", timeout=scaled(10)
    )


async def test_a_long_upload_keeps_the_slot_it_was_negotiated_for(
    service: Service,
    room: RoomCreds,
    room_secret: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The labels go up between assignment and submit, for longer than the
    assignment waits: each verified segment keeps the slot."""
    monkeypatch.setattr(upload_service, "SEGMENT_SIZE", 8 << 10)  # ten segments
    island = tmp_path / "island"
    island.mkdir()
    labels = await asyncio.to_thread(
        write_tiny_labels, tmp_path / "home" / "labels.pkg.slp"
    )
    auth = ChannelAuth(secret=room_secret)
    pause = scaled(SUBMIT_TIMEOUT) / 4  # the whole upload outlasts the wait
    svc = stated_worker(
        service.server.url,
        room,
        island,
        room_secret,
        "w",
        submit_timeout=scaled(SUBMIT_TIMEOUT),
        upload_dir=island / "uploads",
    )
    async with svc, client_of(service, room, "c") as client:
        async with client.subscribe("peer_message") as inbox:
            await negotiate(client, inbox, "job-up")
            async with await open_channel(client, "w", auth=auth) as channel:
                send = channel.send

                async def slow(message: Any) -> None:
                    if isinstance(message, FileUploadSegmentMsg):
                        await asyncio.sleep(pause)
                    await send(message)

                monkeypatch.setattr(channel, "send", slow)
                sent = await upload_file(channel, labels)
                monkeypatch.setattr(channel, "send", send)
                assert not sent.cached
                held = svc.worker.ledger.job("job-up")
                assert held is not None
                assert held.state is SlotState.ASSIGNED
                spec = TrainJobSpec(
                    config_content=tiny_training_config(max_epochs=1000),
                    labels_path=sent.path,
                )
                job = RemoteJob(channel, spec, client_job_id="job-up")
                assert await job.submit(scaled(20)) == "job-up"
                await job.cancel()
                await async_wait_until(
                    lambda: svc.jobs.running == 0, timeout=scaled(30)
                )
