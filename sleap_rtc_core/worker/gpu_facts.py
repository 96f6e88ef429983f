"""Live facts of a worker's GPUs: free memory and utilisation, now.

NVML (the ``nvidia-ml-py`` binding, imported as ``pynvml``) is asked first: it
reads the driver's counters without a CUDA context, so it costs the GPUs no
memory and works while a job holds them. Without it, torch's
``cuda.mem_get_info`` gives free memory (no utilisation); it makes a CUDA
context on each device the first time, a few hundred MB the worker then keeps.

Indices are CUDA's with ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` (the worker sets it
before it probes, and for every job), which is NVML's and ``nvidia-smi``'s
order too. Blocking: call it from a thread.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from .capabilities import GpuFacts

__all__ = ["DEVICE_ORDER", "read_gpu_facts"]

logger = logging.getLogger(__name__)

DEVICE_ORDER = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
"""So that CUDA's device indices are NVML's and ``nvidia-smi``'s."""

_MIB = 1024 * 1024


def _module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _nvml_facts(nvml: Any, indices: list[int]) -> dict[int, GpuFacts]:
    nvml.nvmlInit()
    try:
        out = {}
        for index in indices:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            rates = nvml.nvmlDeviceGetUtilizationRates(handle)
            out[index] = GpuFacts(int(memory.free) // _MIB, int(rates.gpu))
        return out
    finally:
        nvml.nvmlShutdown()


def _torch_facts(torch: Any, indices: list[int]) -> dict[int, GpuFacts]:
    if not torch.cuda.is_available():
        return {}
    count = int(torch.cuda.device_count())
    out = {}
    for index in indices:
        if index < count:
            free, _total = torch.cuda.mem_get_info(index)
            out[index] = GpuFacts(int(free) // _MIB, None)
    return out


def read_gpu_facts(
    indices: Iterable[int],
    *,
    nvml: ModuleType | None = None,
    torch: ModuleType | None = None,
) -> dict[int, GpuFacts]:
    """The facts of each device index now; devices nothing could read are
    left out (an empty dict without NVML and torch, or on a broken driver).

    Args:
        indices: The worker's devices.
        nvml: The ``pynvml`` module (default: imported if installed).
        torch: The ``torch`` module (default: imported if installed).
    """
    wanted = [i for i in indices if i is not None]
    if not wanted:
        return {}
    nvml = nvml if nvml is not None else _module("pynvml")
    if nvml is not None:
        try:
            return _nvml_facts(nvml, wanted)
        except Exception as exc:  # NVMLError and friends: a driver problem
            logger.warning("! NVML could not read the GPUs (%s); trying torch", exc)
    torch = torch if torch is not None else _module("torch")
    if torch is None:
        return {}
    try:
        return _torch_facts(torch, wanted)
    except RuntimeError as exc:
        logger.warning("! torch could not read the GPUs' memory: %s", exc)
        return {}
