"""Which GPU a job gets: one per job, the least busy one that has the memory.

A worker owns a set of devices (``--gpu 0,1`` or ``all``). Each job that
starts takes one: the device with the fewest jobs on it, ties broken by the
most free memory, skipping devices whose free memory (when known) is below
what the job asks for. With ``max_concurrent_jobs`` at its default (one slot
per GPU) every job has a device to itself; a worker configured for more jobs
than GPUs shares them evenly. A CPU-only worker gives every job the CPU.

The job's device becomes its :class:`~.hardware.JobHardware` (its
``CUDA_VISIBLE_DEVICES``, sleap-nn's accelerator and device count, the log
line). Pure bookkeeping: free memory is passed in by the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .capabilities import GpuInfo
from .hardware import JobHardware

__all__ = ["FreeMemory", "GpuPool"]

FreeMemory = Callable[[int], int | None]
"""Free memory of a device index now in MiB (``None``: unknown)."""


class GpuPool:
    """The devices of one worker and the jobs on each (see the module
    docstring).

    Attributes:
        gpus: The devices, in the worker's order.
    """

    def __init__(
        self, gpus: Sequence[GpuInfo], free_memory_mb: FreeMemory | None = None
    ) -> None:
        self.gpus = tuple(gpus)
        self._free = free_memory_mb
        self._jobs: dict[str, int | None] = {}

    @property
    def is_cpu(self) -> bool:
        """Whether the worker has no CUDA device."""
        return all(g.is_cpu for g in self.gpus)

    def load(self) -> dict[int, int]:
        """Jobs on each device index now."""
        counts = {g.index: 0 for g in self.gpus if g.index is not None}
        for index in self._jobs.values():
            if index is not None:
                counts[index] = counts.get(index, 0) + 1
        return counts

    def device_of(self, job_id: str) -> int | None:
        """The device index a job holds (``None``: the CPU, or no such job)."""
        return self._jobs.get(job_id)

    def take(self, job_id: str, need_mb: float | None = None) -> JobHardware:
        """Give ``job_id`` a device and remember it until :meth:`release`.

        A job asking for more memory than any device has free still gets the
        least busy device: the ledger already checked it fits one in total,
        and sleap-nn's own out-of-memory report is clearer than a refusal here.
        """
        if job_id in self._jobs:
            return self._hardware(self._jobs[job_id])
        if self.is_cpu:
            self._jobs[job_id] = None
            return JobHardware()
        load = self.load()
        free = {i: self._free(i) if self._free else None for i in load}

        def fits(i: int) -> bool:
            room = free[i]
            return need_mb is None or room is None or room >= need_mb

        candidates = [i for i in load if fits(i)] or list(load)
        index = min(candidates, key=lambda i: (load[i], -(free[i] or 0), i))
        self._jobs[job_id] = index
        return self._hardware(index)

    def release(self, job_id: str) -> None:
        """The job ended: its device is free for the next one."""
        self._jobs.pop(job_id, None)

    def _hardware(self, index: int | None) -> JobHardware:
        for gpu in self.gpus:
            if gpu.index == index and index is not None:
                return JobHardware.for_gpu(gpu)
        return JobHardware()
