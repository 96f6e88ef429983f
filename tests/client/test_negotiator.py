"""Negotiation end to end: a real server, real workers and a real job client.

GPUs are stated (``StatedGpu``): the one boundary these tests cannot reach.
Jobs run through a test runner that waits for the test's word, so each test
decides when a job ends; cancelling really cancels the runner's task.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack
from typing import Any

import pytest

from sleap_rtc_core.client.negotiator import FALLBACK_ENV, JobClient
from sleap_rtc_core.errors import (
    ErrorCode,
    JobFailedError,
    NoWorkersAcceptedError,
    NoWorkersAvailableError,
    RemoteProtocolError,
)
from sleap_rtc_core.protocol import signaling as sig
from sleap_rtc_core.protocol.negotiation import JobRequest, JobStatus
from sleap_rtc_core.signaling.auth.jwt_keys import JwtKeys
from sleap_rtc_core.signaling.client.session_io import Backoff, SignalingClient
from sleap_rtc_core.signaling.server.router import Router
from sleap_rtc_core.signaling.server.router_io import ServerConfig
from sleap_rtc_core.signaling.server.session import Session
from sleap_rtc_core.signaling.service import Service, build_service
from sleap_rtc_core.signaling.store.auth_store import Store
from sleap_rtc_core.worker.capabilities import StatedGpu, WorkerCapabilities
from sleap_rtc_core.worker.ledger_io import JobContext, SignalingWorker
from tests.fixtures.signaling import RoomCreds
from tests.fixtures.timing import async_wait_until, scaled

FAST = Backoff(initial=0.05, cap=0.2)


class GatedRunner:
    """Runs each job until the test releases it; records what happened."""

    def __init__(self) -> None:
        self.release: dict[str, asyncio.Event] = {}
        self.started: list[str] = []
        self.cancelled: list[str] = []

    async def __call__(self, ctx: JobContext) -> Mapping[str, Any]:
        self.started.append(ctx.job_id)
        gate = self.release.setdefault(ctx.job_id, asyncio.Event())
        await ctx.report(progress=0.5, message="epoch 1/2")
        try:
            await gate.wait()
        except asyncio.CancelledError:
            self.cancelled.append(ctx.job_id)
            raise
        if ctx.request.config.get("fail"):
            raise RuntimeError("out of memory")
        return {"model_path": f"/models/{ctx.job_id}"}

    def finish(self, job_id: str) -> None:
        self.release.setdefault(job_id, asyncio.Event()).set()


def capabilities(memory_mb: int = 24576, models: tuple[str, ...] = ()) -> Any:
    gpu = StatedGpu("NVIDIA RTX A5000", memory_mb, "12.8")
    if models:
        return WorkerCapabilities.from_probe(gpu, supported_models=models)
    return WorkerCapabilities.from_probe(gpu)


def make_worker(
    svc: Service,
    room: RoomCreds,
    peer_id: str,
    *,
    runner: GatedRunner | None = None,
    estimate: float = 10.0,
    **kwargs: Any,
) -> SignalingWorker:
    caps = kwargs.pop("caps", None) or capabilities()
    return SignalingWorker(
        svc.server.url,
        {"room_id": room.room_id, "token": room.token},
        caps,
        peer_id=peer_id,
        runner=runner or GatedRunner(),
        estimator=lambda _request: estimate,
        backoff=FAST,
        **kwargs,
    )


def make_client(url: str, room: RoomCreds, peer_id: str = "c") -> SignalingClient:
    register = sig.Register(
        peer_id=peer_id,
        role="client",
        room_id=room.room_id,
        token=room.token,
        metadata={"tags": ["sleap-rtc", "client"], "properties": {}},
    )
    return SignalingClient(url, register, backoff=FAST)


def status_of(svc: Service, room: RoomCreds, peer_id: str) -> Any:
    record = svc.server.router.registry.get(room.room_id, peer_id)
    return None if record is None else record.metadata["properties"]["status"]


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as exits:
        yield exits


async def test_registration_carries_the_worker_metadata(
    service: Service, room: RoomCreds, stack: AsyncExitStack
) -> None:
    worker = await stack.enter_async_context(
        make_worker(service, room, "w1", mounts=[{"path": "/data", "label": "lab"}])
    )
    record = service.server.router.registry.get(room.room_id, worker.peer_id)
    assert record is not None
    assert record.role == "worker"
    md = record.metadata
    assert md["tags"] == ["sleap-rtc", "training-worker", "inference-worker"]
    props = md["properties"]
    assert props["gpu_memory_mb"] == 24576
    assert props["gpu_model"] == "NVIDIA RTX A5000"
    assert props["cuda_version"] == "12.8"
    assert props["status"] == "available"
    assert props["max_concurrent_jobs"] == 1
    assert props["mounts"] == [{"path": "/data", "label": "lab"}]
    assert set(props["supported_job_types"]) == {"training", "inference"}
    assert props["supported_models"]
    assert "sleap_nn_version" in props
    assert "hostname" in props


async def test_discovery_filters_by_memory_job_type_and_model(
    service: Service, room: RoomCreds, stack: AsyncExitStack
) -> None:
    await stack.enter_async_context(
        make_worker(
            service, room, "small", caps=capabilities(8000, ("single_instance",))
        )
    )
    await stack.enter_async_context(
        make_worker(service, room, "big", caps=capabilities(48000, ("centroid",)))
    )
    client = await stack.enter_async_context(make_client(service.server.url, room))
    jobs = JobClient(client)
    assert {w["peer_id"] for w in await jobs.discover_workers()} == {"small", "big"}
    found = await jobs.discover_workers(min_gpu_memory_mb=16000)
    assert [w["peer_id"] for w in found] == ["big"]
    found = await jobs.discover_workers(job_type="training", model_type="centroid")
    assert [w["peer_id"] for w in found] == ["big"]
    assert await jobs.discover_workers(min_gpu_memory_mb=100_000) == []


async def test_reserved_and_busy_workers_are_invisible_then_back(
    service: Service, room: RoomCreds, stack: AsyncExitStack
) -> None:
    runner = GatedRunner()
    worker = await stack.enter_async_context(
        make_worker(service, room, "w", runner=runner)
    )
    first = await stack.enter_async_context(make_client(service.server.url, room, "c1"))
    second = await stack.enter_async_context(
        make_client(service.server.url, room, "c2")
    )
    # c1 asks (reserving the worker) but does not assign yet.
    request = JobRequest(job_id="j1", config={"epochs": 2})
    async with first.subscribe("peer_message") as inbox:
        await first.send_peer_message("w", request.to_dict())
        reply = await inbox.get(timeout=scaled(5))
    assert isinstance(reply, sig.PeerMessage)
    assert reply.payload["accepted"] is True
    await async_wait_until(lambda: status_of(service, room, "w") == "reserved")
    assert await JobClient(second).discover_workers() == []

    await first.send_peer_message(
        "w", {"app_message_type": "job_assignment", "job_id": "j1"}
    )
    await async_wait_until(lambda: status_of(service, room, "w") == "busy")
    record = service.server.router.registry.get(room.room_id, "w")
    assert record is not None
    assert "current_job_id" not in record.metadata["properties"]  # not published
    assert await JobClient(second).discover_workers() == []

    runner.finish("j1")
    await async_wait_until(lambda: status_of(service, room, "w") == "available")
    assert [w["peer_id"] for w in await JobClient(second).discover_workers()] == ["w"]
    assert worker.status.value == "available"


async def test_three_workers_best_estimate_wins_others_released(
    service: Service, room: RoomCreds, stack: AsyncExitStack
) -> None:
    runners = {name: GatedRunner() for name in ("slow", "fast", "medium")}
    estimates = {"slow": 30.0, "fast": 5.0, "medium": 12.0}
    for name, runner in runners.items():
        await stack.enter_async_context(
            make_worker(
                service,
                room,
                name,
                runner=runner,
                estimate=estimates[name],
                reservation_timeout=60,
            )
        )
    client = await stack.enter_async_context(make_client(service.server.url, room))
    jobs = JobClient(client, response_deadline=scaled(10))
    statuses: list[JobStatus] = []
    placed: list[str] = []

    async def run() -> dict[str, Any]:
        return await jobs.submit_training_job(
            config={"epochs": 3},
            job_id="job-best",
            on_status=statuses.append,
            on_placed=lambda p: placed.append(p.worker_id),
        )

    task = asyncio.ensure_future(run())
    await async_wait_until(lambda: placed == ["fast"])
    # The two others were released at once (job_cancel), not after 60 s.
    await async_wait_until(
        lambda: (
            status_of(service, room, "slow") == "available"
            and status_of(service, room, "medium") == "available"
        )
    )
    await async_wait_until(lambda: runners["fast"].started == ["job-best"])
    runners["fast"].finish("job-best")
    result = await asyncio.wait_for(task, scaled(10))
    assert result == {"model_path": "/models/job-best"}
    assert [s.progress for s in statuses] == [0.5]
    await async_wait_until(lambda: status_of(service, room, "fast") == "available")
    assert runners["slow"].started == []
    assert runners["medium"].started == []


async def test_failed_job_raises_with_the_workers_code(
    service: Service, room: RoomCreds, stack: AsyncExitStack
) -> None:
    runner = GatedRunner()
    await stack.enter_async_context(make_worker(service, room, "w", runner=runner))
    client = await stack.enter_async_context(make_client(service.server.url, room))
    jobs = JobClient(client)
    task = asyncio.ensure_future(
        jobs.submit_training_job(config={"fail": True}, job_id="doomed")
    )
    await async_wait_until(lambda: runner.started == ["doomed"])
    runner.finish("doomed")
    with pytest.raises(JobFailedError) as failed:
        await asyncio.wait_for(task, scaled(10))
    assert failed.value.code == "JOB_FAILED"
    assert "out of memory" in failed.value.message
    await async_wait_until(lambda: status_of(service, room, "w") == "available")


async def test_rejections_carry_each_reason(
    service: Service, room: RoomCreds, stack: AsyncExitStack
) -> None:
    await stack.enter_async_context(
        make_worker(service, room, "w", caps=capabilities(8000))
    )
    client = await stack.enter_async_context(make_client(service.server.url, room))
    jobs = JobClient(client)
    # Discovery cannot see the memory requirement here, the worker checks it.
    request = JobRequest(job_id="big", requirements={"min_gpu_memory_mb": 40000})
    async with client.subscribe("peer_message", "peer_left") as inbox:
        with pytest.raises(NoWorkersAcceptedError) as refused:
            await jobs.place(request, inbox)
    assert refused.value.reasons == {"w": "insufficient_memory"}
    with pytest.raises(NoWorkersAvailableError):
        await jobs.submit_training_job(min_gpu_memory_mb=100_000)


async def test_reservation_expires_without_assignment(
    service: Service, room: RoomCreds, stack: AsyncExitStack
) -> None:
    await stack.enter_async_context(
        make_worker(service, room, "w", reservation_timeout=0.3)
    )
    client = await stack.enter_async_context(make_client(service.server.url, room))
    await client.send_peer_message("w", JobRequest(job_id="j").to_dict())
    await async_wait_until(lambda: status_of(service, room, "w") == "reserved")
    await async_wait_until(lambda: status_of(service, room, "w") == "available")
    # An assignment after expiry is refused with a typed job_failed.
    async with client.subscribe("peer_message") as inbox:
        await client.send_peer_message(
            "w", {"app_message_type": "job_assignment", "job_id": "j"}
        )
        reply = await inbox.get(timeout=scaled(5))
    assert isinstance(reply, sig.PeerMessage)
    assert reply.payload["app_message_type"] == "job_failed"


async def test_cancel_by_a_stranger_is_ignored_by_the_owner_stops_the_job(
    service: Service, room: RoomCreds, stack: AsyncExitStack
) -> None:
    runner = GatedRunner()
    await stack.enter_async_context(make_worker(service, room, "w", runner=runner))
    owner = await stack.enter_async_context(make_client(service.server.url, room, "c"))
    stranger = await stack.enter_async_context(
        make_client(service.server.url, room, "x")
    )
    jobs = JobClient(owner)
    task = asyncio.ensure_future(jobs.submit_training_job(job_id="mine"))
    await async_wait_until(lambda: runner.started == ["mine"])
    await stranger.send_peer_message(
        "w", {"app_message_type": "job_cancel", "job_id": "mine"}
    )
    await owner.send_peer_message(
        "w", {"app_message_type": "job_status", "job_id": "ping"}
    )
    await asyncio.sleep(0)
    assert runner.cancelled == []
    assert status_of(service, room, "w") == "busy"
    await owner.send_peer_message(
        "w", {"app_message_type": "job_cancel", "job_id": "mine"}
    )
    with pytest.raises(JobFailedError) as cancelled:
        await asyncio.wait_for(task, scaled(10))
    assert cancelled.value.code == "CANCELLED"
    assert runner.cancelled == ["mine"]
    await async_wait_until(lambda: status_of(service, room, "w") == "available")


async def test_client_gone_frees_the_worker(
    service: Service, room: RoomCreds, stack: AsyncExitStack
) -> None:
    runner = GatedRunner()
    await stack.enter_async_context(make_worker(service, room, "w", runner=runner))
    client = make_client(service.server.url, room)
    await client.start()
    task = asyncio.ensure_future(JobClient(client).submit_training_job(job_id="j"))
    await async_wait_until(lambda: runner.started == ["j"])
    task.cancel()
    await client.close()
    await async_wait_until(lambda: runner.cancelled == ["j"])
    await async_wait_until(lambda: status_of(service, room, "w") == "available")


async def test_a_worker_killed_mid_negotiation_does_not_stall_the_client(
    service: Service, room: RoomCreds, stack: AsyncExitStack
) -> None:
    good = GatedRunner()
    await stack.enter_async_context(make_worker(service, room, "good", runner=good))
    doomed = make_worker(service, room, "doomed", estimate=1.0)
    await doomed.start()
    # The doomed worker stops reading before it can answer.
    assert doomed._loop_task is not None
    doomed._loop_task.cancel()
    client = await stack.enter_async_context(make_client(service.server.url, room))
    # A deadline far beyond the test's patience: only peer_left can end the wait.
    jobs = JobClient(client, response_deadline=scaled(60))
    request = JobRequest(job_id="j")
    async with client.subscribe("peer_message", "peer_left") as inbox:
        placing = asyncio.ensure_future(jobs.place(request, inbox))
        await async_wait_until(
            lambda: (
                service.server.router.registry.get(room.room_id, "doomed") is not None
            )
        )
        await asyncio.sleep(scaled(0.2))
        await doomed.close()
        placement = await asyncio.wait_for(placing, scaled(10))
    assert placement.worker_id == "good"
    assert placement.reasons == {"doomed": "gone"}
    good.finish("j")


async def test_worker_and_client_reregister_after_server_restart(
    server_config: ServerConfig,
    store: Store,
    jwt_keys: JwtKeys,
    room: RoomCreds,
    stack: AsyncExitStack,
) -> None:
    first = build_service(server_config, store, jwt_keys)
    await first.server.start()
    port = first.server.port
    worker = await stack.enter_async_context(make_worker(first, room, "w"))
    await worker.update_status("maintenance")
    client = await stack.enter_async_context(make_client(first.server.url, room))
    await first.server.stop()
    await async_wait_until(lambda: not client.connected and not worker.client.connected)
    server_config.port = port
    second = build_service(server_config, store, jwt_keys)
    await second.server.start()
    try:
        await async_wait_until(
            lambda: status_of(second, room, "w") == "maintenance", timeout=scaled(10)
        )
        await client.wait_registered(scaled(10))
        assert worker.client.reconnects >= 1
        assert await JobClient(client).discover_workers() == []
        await worker.update_status("available")
        found = await JobClient(client).discover_workers()
        assert [w["peer_id"] for w in found] == ["w"]
    finally:
        await stack.aclose()
        await second.server.stop()


class NoDiscoveryRouter(Router):
    """A server as old as the reference v1: it knows no ``discover_peers``."""

    def _discover(self, session: Session, msg: sig.DiscoverPeers) -> None:
        raise RemoteProtocolError(
            "Unknown message type: discover_peers",
            code=ErrorCode.UNKNOWN_MESSAGE_TYPE,
        )


async def test_fallback_to_the_named_worker_on_an_old_server(
    server_config: ServerConfig,
    store: Store,
    jwt_keys: JwtKeys,
    room: RoomCreds,
    stack: AsyncExitStack,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    svc = build_service(server_config, store, jwt_keys)
    svc.server.router = NoDiscoveryRouter(
        limits=server_config.limits, ice_servers=server_config.ice_servers
    )
    await svc.server.start()
    stack.push_async_callback(svc.server.stop)
    runner = GatedRunner()
    await stack.enter_async_context(make_worker(svc, room, "legacy", runner=runner))
    client = await stack.enter_async_context(make_client(svc.server.url, room))

    with pytest.raises(NoWorkersAvailableError, match=FALLBACK_ENV):
        await JobClient(client).discover_workers()

    monkeypatch.setenv(FALLBACK_ENV, "legacy")
    jobs = JobClient(client)
    task = asyncio.ensure_future(jobs.submit_training_job(job_id="old"))
    await async_wait_until(lambda: runner.started == ["old"])
    runner.finish("old")
    assert (await asyncio.wait_for(task, scaled(10)))["model_path"] == "/models/old"
    assert FALLBACK_ENV in caplog.text


async def test_the_worker_that_sees_the_data_wins_and_is_never_passed_over(
    service: Service, room: RoomCreds, stack: AsyncExitStack
) -> None:
    """``lab`` mounts /data and is slower; ``fast`` mounts /scratch. The job on
    /data/labels.slp goes to ``lab``; while ``lab`` is busy it goes nowhere
    (naming ``lab``), unless the client can send the data."""
    lab_runner = GatedRunner()
    for name, mount, estimate in (("lab", "/data", 30.0), ("fast", "/scratch", 5.0)):
        await stack.enter_async_context(
            make_worker(
                service,
                room,
                name,
                runner=lab_runner if name == "lab" else GatedRunner(),
                estimate=estimate,
                mounts=[{"path": mount, "label": name}],
                name=f"box-{name}",
            )
        )
    client = await stack.enter_async_context(make_client(service.server.url, room))
    jobs = JobClient(client, response_deadline=scaled(10))
    data = "/data/proj/labels.slp"
    async with client.subscribe("peer_message", "peer_left") as inbox:
        placement = await jobs.place(JobRequest(job_id="j1"), inbox, data_path=data)
        assert placement.worker_id == "lab"
        # What the user is told: everyone asked, the answers, who sees the data.
        assert sorted(p["peer_id"] for p in placement.asked) == ["fast", "lab"]
        assert sorted(placement.responses) == ["fast", "lab"]
        assert placement.prefer == {"lab"}
        await async_wait_until(lambda: lab_runner.started == ["j1"])
        await async_wait_until(lambda: status_of(service, room, "lab") == "busy")
        with pytest.raises(NoWorkersAvailableError, match=r"box-lab \(lab\).*busy"):
            await jobs.place(JobRequest(job_id="j2"), inbox, data_path=data)
        sent = await jobs.place(
            JobRequest(job_id="j3"), inbox, data_path=data, can_send_data=True
        )
        assert sent.worker_id == "fast"
    lab_runner.finish("j1")
