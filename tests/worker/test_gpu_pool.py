"""One job per GPU: which device each job gets (stated devices: no GPU
here, the boundary these tests cannot reach)."""

from __future__ import annotations

from sleap_rtc_core.transport.auth import ChannelAuth
from sleap_rtc_core.worker.capabilities import (
    CPU_INFO,
    GpuInfo,
    StatedGpu,
    StatedGpus,
    WorkerCapabilities,
)
from sleap_rtc_core.worker.files.mounts import MountPolicy
from sleap_rtc_core.worker.gpu_pool import GpuPool
from sleap_rtc_core.worker.hardware import JobHardware
from sleap_rtc_core.worker.service import WorkerService

TWO = (GpuInfo("A", 24000, index=0), GpuInfo("B", 24000, index=1))


def test_each_job_gets_a_gpu_of_its_own_and_gives_it_back() -> None:
    pool = GpuPool(TWO)
    first, second = pool.take("j1"), pool.take("j2")
    assert {first.gpu_index, second.gpu_index} == {0, 1}
    assert first.env()["CUDA_VISIBLE_DEVICES"] != second.env()["CUDA_VISIBLE_DEVICES"]
    assert pool.take("j1") == first  # asking again changes nothing
    pool.release("j1")
    assert pool.take("j3").gpu_index == first.gpu_index
    assert pool.load() == {0: 1, 1: 1}


def test_more_jobs_than_gpus_share_them_evenly() -> None:
    pool = GpuPool(TWO)
    devices = [pool.take(f"j{i}").gpu_index for i in range(5)]
    assert sorted(devices) == [0, 0, 0, 1, 1]


def test_free_memory_breaks_ties_and_a_full_gpu_is_skipped() -> None:
    free = {0: 1000, 1: 20000}
    pool = GpuPool(TWO, free.get)
    assert pool.take("j1").gpu_index == 1  # most free memory
    pool.release("j1")
    assert pool.take("big", need_mb=5000).gpu_index == 1
    assert pool.take("small", need_mb=500).gpu_index == 0  # GPU 1 is taken
    free[1] = 100
    pool.release("small")
    pool.release("big")
    # Nothing has enough free: the least busy device still takes it.
    assert pool.take("huge", need_mb=50000).gpu_index == 0


def test_a_cpu_worker_gives_every_job_the_cpu() -> None:
    pool = GpuPool((CPU_INFO,))
    assert pool.is_cpu
    assert pool.take("j1") == JobHardware()
    assert pool.take("j2").env()["CUDA_VISIBLE_DEVICES"] == ""
    assert pool.load() == {}


def test_a_worker_takes_one_job_per_gpu_unless_told() -> None:
    """WorkerService built (not started) on two stated GPUs."""
    caps = WorkerCapabilities.from_probe(
        StatedGpus((StatedGpu("A", 1000), StatedGpu("B", 1000)))
    )
    args = ("ws://127.0.0.1:9", {"room_id": "r", "token": "t"}, caps, MountPolicy())
    auth = ChannelAuth(secret="s")
    assert (
        WorkerService(
            *args, auth=auth, gpu_facts=dict
        ).worker.ledger.max_concurrent_jobs
        == 2
    )
    three = WorkerService(*args, auth=auth, gpu_facts=dict, max_concurrent_jobs=3)
    assert three.worker.ledger.max_concurrent_jobs == 3
