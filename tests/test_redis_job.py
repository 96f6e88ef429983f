"""A full training job across two signaling servers that share one Redis.

Issue 8's "done when": a real ``redis-server``, two in-process signaling
servers on it (one store, one key pair), a real :class:`WorkerService`
registered on server A and a client on server B. The client finds the worker
through B, opens the data channel through A-B routing and runs a tiny sleap-nn
training; it gets ``JOB_COMPLETE`` with a checkpoint, and B's registry sees the
worker ``available`` again afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sleap_rtc_core.client.session import run_remote_job
from sleap_rtc_core.protocol import signaling as sig
from sleap_rtc_core.protocol.jobspec import TrainJobSpec
from sleap_rtc_core.sample_data import tiny_training_config, write_tiny_labels
from sleap_rtc_core.signaling.auth.jwt_keys import JwtKeys
from sleap_rtc_core.signaling.client.session_io import SignalingClient
from sleap_rtc_core.signaling.service import Service
from sleap_rtc_core.signaling.store.auth_store import Store
from sleap_rtc_core.transport.auth import ChannelAuth
from sleap_rtc_core.worker.service import WorkerService
from tests.fixtures.redis import RedisServer, redis_services
from tests.fixtures.signaling import RoomCreds, peer_status
from tests.fixtures.timing import async_wait_until, scaled
from tests.fixtures.transport import FAST_BACKOFF, stated_worker

pytestmark = [pytest.mark.slow, pytest.mark.redis]


@pytest.fixture
async def two_servers(
    store: Store, jwt_keys: JwtKeys, redis_server: RedisServer
) -> AsyncIterator[tuple[Service, Service]]:
    """Servers A and B on one store, one key pair and one Redis."""
    async with redis_services(store, jwt_keys, redis_server.url) as (a, b):
        yield a, b


@pytest.fixture
async def worker_on_a(
    two_servers: tuple[Service, Service],
    room: RoomCreds,
    tmp_path: Path,
    room_secret: str,
) -> AsyncIterator[WorkerService]:
    """A real worker on server A whose mount is a folder in ``tmp_path``."""
    mount = tmp_path / "mount"
    mount.mkdir()
    svc = stated_worker(two_servers[0].server.url, room, mount, room_secret, "w")
    async with svc:
        yield svc


@pytest.fixture
async def client_on_b(
    two_servers: tuple[Service, Service], room: RoomCreds
) -> AsyncIterator[SignalingClient]:
    """A signaling client on server B."""
    register = sig.Register(
        peer_id="c", role="client", room_id=room.room_id, token=room.token
    )
    url = two_servers[1].server.url
    async with SignalingClient(url, register, backoff=FAST_BACKOFF) as client:
        yield client


async def test_a_training_job_crosses_two_servers_on_one_redis(
    two_servers: tuple[Service, Service],
    worker_on_a: WorkerService,
    client_on_b: SignalingClient,
    room: RoomCreds,
    room_secret: str,
) -> None:
    a, b = two_servers
    # The worker is A's own peer and B learns of it through Redis.
    assert a.server.router.registry.get(room.room_id, "w") is not None
    await async_wait_until(
        lambda: peer_status(b, room, "w") == "available", timeout=scaled(10)
    )
    labels = Path(worker_on_a.policy.mounts[0].path) / "proj" / "labels.slp"
    labels.parent.mkdir()
    await asyncio.to_thread(write_tiny_labels, labels)
    spec = TrainJobSpec(
        config_content=tiny_training_config(max_epochs=1),
        labels_path=labels.as_posix(),
    )

    result = await asyncio.wait_for(
        run_remote_job(
            client_on_b, spec, auth=ChannelAuth(secret=room_secret), worker_id="w"
        ),
        scaled(180),
    )

    assert result["success"] is True
    output = Path(result["output_path"])
    assert output.is_relative_to(labels.parent)
    checkpoints = await asyncio.to_thread(lambda: list(output.glob("*.ckpt")))
    assert checkpoints, f"no checkpoint in {output}"
    await async_wait_until(
        lambda: peer_status(b, room, "w") == "available", timeout=scaled(30)
    )
