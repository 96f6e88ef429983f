"""A training job survives the death of the signaling process that set it up.

Two real ``sleap-rtc server --redis`` processes on one real ``redis-server``; a
real :class:`WorkerService` and a client, both given both URLs, register on
process A; a tiny sleap-nn training starts over the data channel, and A is
killed (SIGKILL) while it runs. The worker and the client register again, with
the same ids, on B; the data channel (peer to peer) never depended on A, so the
job completes and its result arrives; and what the client and the worker send
each other over signaling afterwards all arrives, in order.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sleap_rtc_core.client.remote_job import JobCallbacks
from sleap_rtc_core.client.session import run_remote_job
from sleap_rtc_core.protocol import signaling as sig
from sleap_rtc_core.protocol.jobspec import TrainJobSpec
from sleap_rtc_core.sample_data import tiny_training_config, write_tiny_labels
from sleap_rtc_core.signaling.client.session_io import SignalingClient
from sleap_rtc_core.signaling.store.auth_store import open_store
from sleap_rtc_core.transport.auth import ChannelAuth
from sleap_rtc_core.worker.service import WorkerService
from tests.fixtures.cli import server_processes
from tests.fixtures.redis import RedisServer
from tests.fixtures.signaling import RoomCreds
from tests.fixtures.timing import async_wait_until, scaled
from tests.fixtures.transport import FAST_BACKOFF, stated_worker

pytestmark = [pytest.mark.slow, pytest.mark.redis]

PING_INTERVAL = scaled(4.0)
"""The servers' ping interval; their Redis TTL is three quarters of it."""

PROBES = 50
"""Messages each way over signaling after the failover."""


@pytest.fixture
async def processes(
    tmp_path: Path, redis_server: RedisServer
) -> AsyncIterator[tuple[list[subprocess.Popen[str]], list[str], RoomCreds]]:
    """Server processes A and B on one data folder and one Redis, and a room."""
    data = tmp_path / "data"
    data.mkdir()
    created = open_store(data).create_room("lab")
    extra = ("--redis", redis_server.url, "--ping-interval", str(PING_INTERVAL))
    async with server_processes(data, 2, *extra) as (procs, urls):
        yield procs, urls, RoomCreds(created.room_id, created.token)


async def test_a_job_survives_the_death_of_its_signaling_process(
    processes: tuple[list[subprocess.Popen[str]], list[str], RoomCreds],
    tmp_path: Path,
    room_secret: str,
) -> None:
    procs, (url_a, url_b), room = processes
    mount = tmp_path / "mount"
    mount.mkdir()
    labels = mount / "proj" / "labels.slp"
    labels.parent.mkdir()
    await asyncio.to_thread(write_tiny_labels, labels)
    spec = TrainJobSpec(
        config_content=tiny_training_config(max_epochs=3),
        labels_path=labels.as_posix(),
    )
    register = sig.Register(
        peer_id="c", role="client", room_id=room.room_id, token=room.token
    )
    worker: WorkerService = stated_worker([url_a, url_b], room, mount, room_secret)
    client = SignalingClient([url_a, url_b], register, backoff=FAST_BACKOFF)
    progress = asyncio.Event()
    events: list[dict[str, Any]] = []

    def on_progress(event: Any) -> None:
        events.append(event)
        progress.set()

    async with worker, client:
        assert (worker.worker.client.url, client.url) == (url_a, url_a)
        job = asyncio.create_task(
            run_remote_job(
                client,
                spec,
                auth=ChannelAuth(secret=room_secret),
                worker_id="w",
                callbacks=JobCallbacks(on_progress=on_progress),
            )
        )
        try:
            await asyncio.wait_for(progress.wait(), scaled(120))
            procs[0].kill()  # process A dies mid-job, no goodbye
            await asyncio.to_thread(procs[0].wait, scaled(10))
            seen_at_kill = len(events)
            assert not job.done()

            # Both register again on B, with the same ids, within seconds.
            def on_b(c: SignalingClient) -> bool:
                return c.connected and c.url == url_b

            await async_wait_until(
                lambda: on_b(worker.worker.client) and on_b(client),
                timeout=scaled(10),
            )
            assert (worker.worker.client.peer_id, client.peer_id) == ("w", "c")

            # Nothing sent over signaling from now on is lost, either way.
            async with (
                worker.worker.client.subscribe("peer_message") as at_worker,
                client.subscribe("peer_message") as at_client,
            ):
                for n in range(PROBES):
                    await client.send_peer_message("w", {"probe": n})
                    await worker.worker.client.send_peer_message("c", {"probe": n})

                async def probes(inbox: Any) -> list[int]:
                    got: list[int] = []
                    while len(got) < PROBES:
                        msg = await inbox.get()
                        if isinstance(msg.payload, dict) and "probe" in msg.payload:
                            got.append(msg.payload["probe"])
                    return got

                expected = list(range(PROBES))
                assert await asyncio.wait_for(probes(at_worker), scaled(20)) == (
                    expected
                )
                assert await asyncio.wait_for(probes(at_client), scaled(20)) == (
                    expected
                )

            result = await asyncio.wait_for(job, scaled(180))
        finally:
            if not job.done():
                job.cancel()
                await asyncio.gather(job, return_exceptions=True)

    assert result["success"] is True
    assert len(events) > seen_at_kill  # progress kept coming after the kill
    output = Path(result["output_path"])
    checkpoints = await asyncio.to_thread(lambda: list(output.glob("*.ckpt")))
    assert checkpoints, f"no checkpoint in {output}"
