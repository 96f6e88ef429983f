"""Reading the GPUs' live facts: NVML first, torch otherwise, nothing when
neither can. The NVML and torch modules here are stand-ins (no GPU on this
machine: the boundary); the real ones are read in the ``gpu`` tests."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from sleap_rtc_core.worker.capabilities import GpuFacts
from sleap_rtc_core.worker.gpu_facts import read_gpu_facts

MIB = 1024 * 1024


def _nvml(free: dict[int, int], util: dict[int, int], fail: bool = False) -> Any:
    calls: list[str] = []

    def init() -> None:
        calls.append("init")
        if fail:
            raise RuntimeError("NVML Shared Library Not Found")

    return SimpleNamespace(
        calls=calls,
        nvmlInit=init,
        nvmlShutdown=lambda: calls.append("shutdown"),
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(free=free[h] * MIB),
        nvmlDeviceGetUtilizationRates=lambda h: SimpleNamespace(gpu=util[h]),
    )


def _torch(free: dict[int, int]) -> Any:
    return SimpleNamespace(
        cuda=SimpleNamespace(
            is_available=lambda: True,
            device_count=lambda: len(free),
            mem_get_info=lambda i: (free[i] * MIB, 0),
        )
    )


def test_nvml_gives_free_memory_and_utilisation() -> None:
    nvml = _nvml({0: 1000, 1: 2000}, {0: 5, 1: 97})
    facts = read_gpu_facts([0, 1], nvml=nvml, torch=_torch({}))
    assert facts == {0: GpuFacts(1000, 5), 1: GpuFacts(2000, 97)}
    assert nvml.calls == ["init", "shutdown"]


def test_without_nvml_torch_gives_free_memory() -> None:
    broken = _nvml({}, {}, fail=True)
    facts = read_gpu_facts([1], nvml=broken, torch=_torch({0: 10, 1: 20}))
    assert facts == {1: GpuFacts(20, None)}


@pytest.mark.parametrize("indices", [[], [None]])
def test_no_gpu_no_reading(indices: list[Any]) -> None:
    assert read_gpu_facts(indices, nvml=_nvml({}, {}), torch=_torch({})) == {}


def test_a_broken_torch_reads_nothing() -> None:
    def fail(_i: int) -> tuple[int, int]:
        raise RuntimeError("CUDA error: unknown error")

    torch = SimpleNamespace(
        cuda=SimpleNamespace(
            is_available=lambda: True, device_count=lambda: 1, mem_get_info=fail
        )
    )
    broken = _nvml({}, {}, fail=True)
    assert read_gpu_facts([0], nvml=broken, torch=torch) == {}
