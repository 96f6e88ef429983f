"""Tests of :mod:`sleap_rtc_core.client.session` (``run_remote_job``) over a
real signaling server, a real worker and real data channels; only specs the
worker refuses are sent, so sleap-nn never starts."""

from __future__ import annotations

import pytest

from sleap_rtc_core.client.session import run_remote_job
from sleap_rtc_core.errors import JobRejected, NoWorkersAvailableError
from sleap_rtc_core.protocol.jobspec import JobSpec, TrainJobSpec
from sleap_rtc_core.signaling.client.session_io import SignalingClient
from sleap_rtc_core.signaling.service import Service
from sleap_rtc_core.transport import Channel
from sleap_rtc_core.transport.auth import ChannelAuth
from sleap_rtc_core.worker.service import WorkerService
from tests.fixtures.signaling import RoomCreds, peer_status
from tests.fixtures.timing import async_wait_until, scaled

REFUSED = TrainJobSpec(config_content="trainer_config: [unclosed", labels_path="/x.slp")


@pytest.mark.parametrize("negotiate", [True, False])
async def test_a_refused_spec_raises_after_the_placement_is_told(
    worker: WorkerService,
    client: SignalingClient,
    room_secret: str,
    service: Service,
    room: RoomCreds,
    negotiate: bool,
) -> None:
    said: list[str] = []
    with pytest.raises(JobRejected) as rejected:
        await run_remote_job(
            client,
            REFUSED,
            auth=ChannelAuth(secret=room_secret),
            worker_id=None if negotiate else "w",
            say=said.append,
            response_deadline=scaled(10),
        )
    assert {e["field"] for e in rejected.value.errors} >= {"labels_path"}
    assert "connecting to w over WebRTC" in said
    await async_wait_until(
        lambda: peer_status(service, room) == "available", timeout=scaled(10)
    )


async def test_prepare_runs_on_the_open_channel_and_chooses_the_spec(
    worker: WorkerService, client: SignalingClient, room_secret: str
) -> None:
    seen: list[str] = []

    async def prepare(channel: Channel) -> JobSpec:
        seen.append(channel.peer_id)
        return REFUSED

    refused_anyway = TrainJobSpec(config_content="a: 1", labels_path="/y.slp")
    with pytest.raises(JobRejected) as rejected:
        await run_remote_job(
            client,
            refused_anyway,
            auth=ChannelAuth(secret=room_secret),
            worker_id="w",
            prepare=prepare,
        )
    assert seen == ["w"]
    assert any(e.get("path") == "/x.slp" for e in rejected.value.errors)


async def test_no_worker_in_the_room_is_said_plainly(
    client: SignalingClient, room_secret: str
) -> None:
    with pytest.raises(NoWorkersAvailableError):
        await run_remote_job(
            client,
            REFUSED,
            auth=ChannelAuth(secret=room_secret),
            response_deadline=scaled(2),
        )
