"""The complete worker over real signaling and real data channels.

A real server, a real :class:`WorkerService` (channel acceptor, FS service, job
service, slots) and a real client; sleap-nn runs for real on the CPU in the
slow test. The GPU is stated (the boundary these tests cannot reach).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from sleap_rtc_core.client.remote_job import JobCallbacks, RemoteJob
from sleap_rtc_core.client.session import run_remote_job
from sleap_rtc_core.errors import JobRejected
from sleap_rtc_core.protocol.channel_fs import FsGetMountsMsg, FsMountsResponseMsg
from sleap_rtc_core.protocol.jobspec import TrainJobSpec
from sleap_rtc_core.sample_data import tiny_training_config, write_tiny_labels
from sleap_rtc_core.signaling.client.session_io import SignalingClient
from sleap_rtc_core.signaling.service import Service
from sleap_rtc_core.transport.auth import ChannelAuth
from sleap_rtc_core.transport.peer import open_channel
from sleap_rtc_core.worker.capabilities import accepts_uploads
from sleap_rtc_core.worker.service import WorkerService
from tests.fixtures.signaling import RoomCreds, peer_status
from tests.fixtures.timing import async_wait_until, scaled
from tests.fixtures.transport import make_signaling, stated_worker


def mount_of(worker: WorkerService) -> Path:
    return Path(worker.policy.mounts[0].path)


async def test_file_checks_travel_over_the_channel(
    worker: WorkerService, client: SignalingClient, room_secret: str
) -> None:
    channel = await open_channel(client, "w", auth=ChannelAuth(secret=room_secret))
    async with channel:
        reply = await channel.request(FsGetMountsMsg(), (FsMountsResponseMsg,), 10)
    assert isinstance(reply, FsMountsResponseMsg)
    assert str(mount_of(worker)) in str(reply)


async def test_only_a_worker_with_an_upload_area_says_so(
    worker: WorkerService,
    service: Service,
    room: RoomCreds,
    client: SignalingClient,
    room_secret: str,
    tmp_path: Path,
) -> None:
    island = tmp_path / "island"
    island.mkdir()
    svc = stated_worker(
        service.server.url,
        room,
        island,
        room_secret,
        "w-up",
        upload_dir=island / "uploads",
    )
    async with svc:
        peers = await client.discover({"role": "worker"})
    says = {p["peer_id"]: accepts_uploads(p["metadata"]) for p in peers}
    assert says == {"w": False, "w-up": True}


async def test_a_rejected_spec_lists_every_error_and_frees_nothing(
    worker: WorkerService,
    client: SignalingClient,
    room_secret: str,
    service: Service,
    room: RoomCreds,
) -> None:
    channel = await open_channel(client, "w", auth=ChannelAuth(secret=room_secret))
    async with channel:
        spec = TrainJobSpec(
            config_content="trainer_config: [unclosed",
            labels_path="/etc/passwd",
            batch_size=100_000,
        )
        with pytest.raises(JobRejected) as rejected:
            await RemoteJob(channel, spec).submit(timeout=scaled(20))
    fields = {e["field"] for e in rejected.value.errors}
    assert len(fields) >= 2
    assert peer_status(service, room) == "available"


@pytest.mark.parametrize("negotiate", [True, False])
async def test_cancel_ends_the_job_and_the_worker_is_available_again(
    worker: WorkerService,
    client: SignalingClient,
    room_secret: str,
    service: Service,
    room: RoomCreds,
    negotiate: bool,
) -> None:
    labels = await asyncio.to_thread(
        write_tiny_labels, mount_of(worker) / "labels.pkg.slp"
    )
    spec = TrainJobSpec(
        config_content=tiny_training_config(max_epochs=1000),
        labels_path=str(labels),
    )
    jobs: list[RemoteJob] = []
    task = asyncio.ensure_future(
        run_remote_job(
            client,
            spec,
            auth=ChannelAuth(secret=room_secret),
            worker_id=None if negotiate else "w",
            on_job=jobs.append,
        )
    )
    await async_wait_until(lambda: bool(jobs), timeout=scaled(20))
    # Negotiated or straight over the channel, the job holds a slot.
    await async_wait_until(
        lambda: peer_status(service, room) == "busy", timeout=scaled(10)
    )
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await async_wait_until(
        lambda: peer_status(service, room) == "available", timeout=scaled(30)
    )
    assert worker.jobs.running == 0


@pytest.mark.slow
async def test_a_tiny_model_trains_remotely(
    worker: WorkerService,
    client: SignalingClient,
    room_secret: str,
    service: Service,
    room: RoomCreds,
) -> None:
    labels = await asyncio.to_thread(
        write_tiny_labels, mount_of(worker) / "labels.pkg.slp"
    )
    events: list[dict[str, Any]] = []
    result = await asyncio.wait_for(
        run_remote_job(
            client,
            TrainJobSpec(
                config_content=tiny_training_config(max_epochs=2),
                labels_path=str(labels),
            ),
            auth=ChannelAuth(secret=room_secret),
            callbacks=JobCallbacks(on_progress=events.append),
        ),
        scaled(180),
    )
    assert [e["event"] for e in events if e.get("event") == "epoch_end"] == [
        "epoch_end",
        "epoch_end",
    ]
    model_dir = Path(result["output_path"])
    assert model_dir.is_relative_to(mount_of(worker))
    assert await asyncio.to_thread(lambda: list(model_dir.glob("*.ckpt")))
    await async_wait_until(lambda: peer_status(service, room) == "available")


@pytest.mark.slow
async def test_a_new_client_reattaches_and_sees_completion(
    worker: WorkerService,
    service: Service,
    room: RoomCreds,
    room_secret: str,
) -> None:
    """The client goes away mid-job (channel and signaling closed, as when its
    process dies); a new client with the same peer id attaches by job id, gets
    the progress it missed, and sees the job complete."""
    labels = await asyncio.to_thread(
        write_tiny_labels, mount_of(worker) / "labels.pkg.slp"
    )
    auth = ChannelAuth(secret=room_secret)
    first = make_signaling(service.server.url, room, "c", "client")
    await first.start()
    channel = await open_channel(first, "w", auth=auth)
    job = RemoteJob(
        channel,
        TrainJobSpec(
            config_content=tiny_training_config(max_epochs=2),
            labels_path=str(labels),
        ),
    )
    job_id = await job.submit(timeout=scaled(30))
    await channel.close()  # gone before the job ends
    await first.close()

    second = make_signaling(service.server.url, room, "c", "client")
    async with second:
        again = await open_channel(second, "w", auth=auth)
        async with again:
            missed: list[Any] = []
            attached = await RemoteJob.attach(
                again, job_id, JobCallbacks(on_progress=missed.append)
            )
            result = await asyncio.wait_for(attached.follow(), scaled(180))
    assert result["job_id"] == job_id
    assert await asyncio.to_thread(
        lambda: list(Path(result["output_path"]).glob("*.ckpt"))
    )
    await async_wait_until(lambda: peer_status(service, room) == "available")
