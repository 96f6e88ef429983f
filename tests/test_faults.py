"""Fault proof: the system keeps its promises when parts die or misbehave.

One test per fault of issue 8, each with real parts on 127.0.0.1 only:

1. the signaling server process is SIGKILLed and restarted (same port, same data
   folder) while a tiny model trains: worker and client reconnect with backoff,
   progress keeps flowing over the peer-to-peer data channel meanwhile, and the
   client gets the final result;
2. one of three ``sleap-rtc server --redis`` processes behind a TCP load
   balancer is SIGKILLed: its peers reconnect through the balancer to another
   process and carry on talking across processes;
3. the worker process is SIGKILLed mid-job: the client hears of it within 5 s
   (scaled) and nothing stays reserved: the server forgets the worker and a new
   worker is discoverable as available;
4. a client floods one server process: it gets ``RATE_LIMITED`` while other
   peers' ``peer_message`` round trips still complete in bounded time.

The training tests are ``slow`` (sleap-nn runs on the CPU).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sleap_rtc_core.client.remote_job import JobCallbacks, RemoteJob
from sleap_rtc_core.client.session import run_remote_job
from sleap_rtc_core.errors import TrainingFailed
from sleap_rtc_core.protocol import signaling as sig
from sleap_rtc_core.protocol.jobspec import TrainJobSpec
from sleap_rtc_core.sample_data import tiny_training_config, write_tiny_labels
from sleap_rtc_core.signaling.client.session_io import SignalingClient
from sleap_rtc_core.signaling.service import Service
from sleap_rtc_core.signaling.store.auth_store import open_store
from sleap_rtc_core.transport.auth import ChannelAuth
from tests.fixtures.balancer import TcpBalancer
from tests.fixtures.cli import start_server
from tests.fixtures.redis import RedisServer
from tests.fixtures.signaling import RoomCreds
from tests.fixtures.timing import async_wait_until, scaled
from tests.fixtures.transport import FAST_BACKOFF, stated_worker
from tests.fixtures.worker_proc import (
    WorkerSettings,
    descendants,
    kill_groups,
    start_worker_process,
)

REPO = Path(__file__).resolve().parents[1]

WORKER_MD = {
    "tags": ["sleap-rtc", "training-worker"],
    "properties": {"gpu_memory_mb": 24576, "status": "available"},
}


# --- helpers


def signaling(
    url: str, room: RoomCreds, peer_id: str, role: str = "client", **register: Any
) -> SignalingClient:
    """A signaling client of ``room`` with test-speed reconnects."""
    msg = sig.Register(
        peer_id=peer_id, role=role, room_id=room.room_id, token=room.token, **register
    )
    return SignalingClient(url, msg, backoff=FAST_BACKOFF)


def data_dir_with_room(path: Path) -> RoomCreds:
    """A server data folder holding one room (before any server opens it)."""
    store = open_store(path)
    try:
        created = store.create_room("lab")
    finally:
        store.close()
    return RoomCreds(created.room_id, created.token)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@dataclass
class Servers:
    """``sleap-rtc server`` processes started by a test; all killed after it."""

    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    async def start(self, data_dir: Path, *extra: str) -> tuple[int, str]:
        proc, url = await asyncio.to_thread(start_server, data_dir, *extra)
        self.procs.append(proc)
        return len(self.procs) - 1, url

    async def kill(self, index: int) -> None:
        """SIGKILL, as a crash or the OOM killer would."""
        proc = self.procs[index]
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait, scaled(10))

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()


@pytest.fixture
def servers() -> Iterator[Servers]:
    procs = Servers()
    try:
        yield procs
    finally:
        procs.close()


@dataclass
class Progress:
    """The progress events of a job, with when they came (monotonic)."""

    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    def __call__(self, event: Any) -> None:
        if isinstance(event, dict):
            self.events.append((time.monotonic(), event))

    def epochs(self, since: float = 0.0) -> int:
        return sum(
            1 for t, e in self.events if e.get("event") == "epoch_end" and t > since
        )


def tiny_spec(labels: Path) -> TrainJobSpec:
    """A job that trains until stopped (or for a very long time)."""
    return TrainJobSpec(
        config_content=tiny_training_config(max_epochs=10_000),
        labels_path=str(labels),
    )


async def worker_status(client: SignalingClient, peer_id: str) -> Any:
    for peer in await client.discover({"role": "worker"}, timeout=scaled(5)):
        if peer["peer_id"] == peer_id:
            return peer["metadata"]["properties"]["status"]
    return None


# --- 1. the signaling server dies and comes back while a job runs


@pytest.mark.slow
async def test_server_killed_and_restarted_while_a_job_runs(
    tmp_path: Path, servers: Servers, room_secret: str
) -> None:
    data = tmp_path / "data"
    room = data_dir_with_room(data)
    index, url = await servers.start(data)
    mount = tmp_path / "shared"
    mount.mkdir()
    labels = await asyncio.to_thread(write_tiny_labels, mount / "labels.pkg.slp")
    auth = ChannelAuth(secret=room_secret)
    worker = stated_worker(url, room, mount, room_secret, "w")
    progress = Progress()
    jobs: list[RemoteJob] = []
    async with worker, signaling(url, room, "c") as client:
        task = asyncio.ensure_future(
            run_remote_job(
                client,
                tiny_spec(labels),
                auth=auth,
                callbacks=JobCallbacks(on_progress=progress),
                on_job=jobs.append,
            )
        )
        try:
            await async_wait_until(lambda: progress.epochs() >= 1, scaled(90))
            assert await worker_status(client, "w") == "busy"

            await servers.kill(index)
            killed_at = time.monotonic()
            await async_wait_until(
                lambda: not client.connected and not worker.worker.client.connected
            )
            # The data channel is peer-to-peer: training and its progress go on.
            await async_wait_until(lambda: progress.epochs(killed_at) >= 1, scaled(30))
            assert not task.done()

            # Same port, same data folder: the room and its token still hold.
            _, again = await servers.start(data, "--port", str(port_of(url)))
            assert again == url
            await async_wait_until(
                lambda: client.connected and worker.worker.client.connected,
                scaled(10),
            )
            back_at = time.monotonic()
            assert client.reconnects >= 1
            assert worker.worker.client.reconnects >= 1
            # Re-registered with its current metadata: still busy.
            assert await worker_status(client, "w") == "busy"
            await async_wait_until(lambda: progress.epochs(back_at) >= 1, scaled(30))
            assert not task.done()

            await jobs[0].stop()  # "Stop Early", over the surviving channel
            result = await asyncio.wait_for(task, scaled(60))
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert result["stopped_early"] is True
        model_dir = Path(result["output_path"])
        assert model_dir.is_relative_to(mount)
        assert await asyncio.to_thread(lambda: list(model_dir.glob("*.ckpt")))

        async def available() -> bool:
            return await worker_status(client, "w") == "available"

        await async_wait_until(available, scaled(10))


# --- 2. one of three Redis-backed server processes dies


async def test_one_of_three_redis_servers_killed_its_peers_move_on(
    tmp_path: Path, servers: Servers, redis_server: RedisServer
) -> None:
    room = data_dir_with_room(tmp_path)
    ttl = scaled(1.0)  # peer entries of a dead process expire after this
    extra = ("--redis", redis_server.url, "--ping-interval", str(ttl / 0.75))
    urls = [(await servers.start(tmp_path, *extra))[1] for _ in range(3)]
    ports = [port_of(u) for u in urls]
    async with TcpBalancer(ports) as balancer:
        # Round robin: the worker lands on process 0, the clients on 1 and 2.
        worker = signaling(balancer.url, room, "w", "worker", metadata=WORKER_MD)
        near = signaling(balancer.url, room, "near")
        far = signaling(balancer.url, room, "far")
        async with worker, near, far:
            assert balancer.routed == ports
            await async_wait_until(
                lambda: all(s.connected for s in (worker, near, far))
            )

            async def echo() -> None:
                async with worker.subscribe("peer_message") as inbox:
                    async for msg in inbox:
                        assert isinstance(msg, sig.PeerMessage)
                        await worker.send_peer_message(msg.from_peer_id, msg.payload)

            async def round_trip(client: SignalingClient, n: int) -> None:
                async with client.subscribe("peer_message") as inbox:
                    await client.send_peer_message("w", {"n": n})
                    reply = await inbox.get(scaled(5))
                assert isinstance(reply, sig.PeerMessage)
                assert (reply.from_peer_id, reply.payload) == ("w", {"n": n})

            echoing = asyncio.ensure_future(echo())
            try:
                await round_trip(near, 1)
                await round_trip(far, 2)

                await servers.kill(0)
                await async_wait_until(lambda: worker.reconnects >= 1)
                await async_wait_until(lambda: worker.connected, scaled(10))
                assert balancer.routed[3:] == [ports[1]]  # 0 refused: next one
                assert balancer.open_on[ports[0]] == 0
                assert near.reconnects == far.reconnects == 0

                async def found_from(client: SignalingClient) -> bool:
                    peers = await client.discover({"role": "worker"})
                    return [p["metadata"] for p in peers] == [WORKER_MD]

                await async_wait_until(lambda: found_from(far))
                await round_trip(near, 3)  # now on the same process
                await round_trip(far, 4)  # across processes, through Redis
                # Past the dead process's expiry, nothing of it removes the
                # re-registered worker.
                await asyncio.sleep(ttl * 2)
                assert await found_from(near)
                assert await found_from(far)
                await round_trip(far, 5)
            finally:
                echoing.cancel()
                await asyncio.gather(echoing, return_exceptions=True)


# --- 3. the worker process dies mid-job

HEAR_BOUND = scaled(5)
"""How soon the client must hear that its worker died (issue 8)."""


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.slow
async def test_worker_killed_mid_job_the_client_hears_and_nothing_is_held(
    tmp_path: Path, service: Service, room: RoomCreds, room_secret: str
) -> None:
    mount = tmp_path / "shared"
    mount.mkdir()
    labels = await asyncio.to_thread(write_tiny_labels, mount / "labels.pkg.slp")
    url = service.server.url
    settings = WorkerSettings(url, room.room_id, room.token, room_secret, str(mount))
    procs = [await asyncio.to_thread(start_worker_process, settings)]
    orphans: list[int] = []
    progress = Progress()
    try:
        async with signaling(url, room, "c") as client:
            task = asyncio.ensure_future(
                run_remote_job(
                    client,
                    tiny_spec(labels),
                    auth=ChannelAuth(secret=room_secret),
                    callbacks=JobCallbacks(on_progress=progress),
                )
            )
            heard: list[float] = []
            task.add_done_callback(lambda _: heard.append(time.monotonic()))
            try:
                await async_wait_until(lambda: progress.epochs() >= 1, scaled(90))
                orphans = descendants(procs[0].pid)  # sleap-nn: its own session
                assert orphans, "sleap-nn should be running"
                procs[0].send_signal(signal.SIGKILL)
                killed_at = time.monotonic()

                # No reservation left behind: the server forgets the worker at
                # once, and a new worker in the room is found available.
                registry = service.server.router.registry
                await async_wait_until(lambda: registry.get(room.room_id, "w") is None)
                second = WorkerSettings(
                    url, room.room_id, room.token, room_secret, str(mount), "w2"
                )
                procs.append(await asyncio.to_thread(start_worker_process, second))
                found = await client.discover(
                    {"role": "worker", "properties": {"status": "available"}}
                )
                assert [p["peer_id"] for p in found] == ["w2"]

                # The client heard, within the bound, as a typed failure; and
                # the job's sleap-nn (GPU memory!) did not outlive its worker.
                await asyncio.wait(
                    {task}, timeout=max(0.0, killed_at + HEAR_BOUND - time.monotonic())
                )
                with contextlib.suppress(AssertionError):
                    await async_wait_until(
                        lambda: not any(alive(p) for p in orphans), scaled(10)
                    )
                survivors = [p for p in orphans if alive(p)]
                problems = []
                if not heard or heard[0] - killed_at > HEAR_BOUND:
                    problems.append(
                        f"the client heard nothing within {HEAR_BOUND:.0f} s of "
                        "its worker's death"
                    )
                if survivors:
                    problems.append(
                        f"sleap-nn {survivors} outlived its killed worker by "
                        f"{time.monotonic() - killed_at:.0f} s"
                    )
                assert not problems, "; ".join(problems)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            error = task.exception()
            assert isinstance(error, TrainingFailed)  # JobFailedError
            assert error.code in {"CONNECTION_LOST", "JOB_FAILED"}
    finally:
        for proc in procs:
            proc.kill()
            await asyncio.to_thread(proc.wait)
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
        kill_groups(orphans)


# --- 4. one client floods a server


def metrics(url: str) -> dict[str, Any]:
    """The server's JSON ``/metrics`` (blocking)."""
    http = url.replace("ws://", "http://") + "/metrics"
    with urllib.request.urlopen(http, timeout=scaled(5)) as response:
        return dict(json.loads(response.read()))


ROUND_TRIP_BOUND = scaled(2)
"""How long one a → b → a ``peer_message`` round trip may take under a flood."""


async def test_a_flooding_client_is_rate_limited_and_others_are_not(
    tmp_path: Path, servers: Servers
) -> None:
    room = data_dir_with_room(tmp_path)
    _, url = await servers.start(tmp_path)
    async with signaling(url, room, "a") as a, signaling(url, room, "b") as b:
        async with (
            a.subscribe("peer_message") as at_a,
            b.subscribe("peer_message") as at_b,
        ):

            async def round_trip(n: int) -> None:
                started = time.monotonic()
                try:
                    await a.send_peer_message("b", {"n": n})
                    got = await at_b.get(ROUND_TRIP_BOUND)
                    assert isinstance(got, sig.PeerMessage)
                    await b.send_peer_message("a", got.payload)
                    back = await at_a.get(ROUND_TRIP_BOUND)
                except TimeoutError:
                    waited = time.monotonic() - started
                    raise AssertionError(
                        f"round trip {n} not done after {waited:.1f} s of flood"
                    ) from None
                assert isinstance(back, sig.PeerMessage)
                assert back.payload == {"n": n}

            for n in range(5):  # before the flood
                await round_trip(n)
            flooder = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.fixtures.flooder",
                url,
                room.room_id,
                room.token,
                str(scaled(4)),
                stdout=asyncio.subprocess.PIPE,
                cwd=REPO,
            )
            try:
                assert flooder.stdout is not None
                line = await asyncio.wait_for(flooder.stdout.readline(), scaled(10))
                assert line == b"flooding\n"
                # Throughout a sustained flood, other peers' round trips complete.
                done = 0
                while flooder.returncode is None and done < 10_000:
                    await round_trip(100 + done)
                    done += 1
                    if done % 10 == 0:
                        await asyncio.sleep(0)  # let the exit be noticed
                out = await asyncio.wait_for(flooder.stdout.read(), scaled(60))
                await asyncio.wait_for(flooder.wait(), scaled(10))
            finally:
                if flooder.returncode is None:
                    flooder.kill()
                    await flooder.wait()
            report = json.loads(out)
            assert done >= 10
            # The flooder was told, in typed errors and nothing else.
            assert report["errors"].get("RATE_LIMITED", 0) > 0
            assert set(report["errors"]) == {"RATE_LIMITED"}
            seen = await asyncio.to_thread(metrics, url)
            assert seen["limits_exceeded"]["rate"] > 0
            # Its budget is its own: a and b were never limited and still talk.
            assert a.reconnects == b.reconnects == 0
            for n in range(5):
                await round_trip(1000 + n)
