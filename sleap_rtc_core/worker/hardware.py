"""The worker, not the client, decides where a job's sleap-nn runs.

A client's config may say ``trainer_accelerator: cpu`` (or ``auto``, or a list
of devices that exist only on the labeler's laptop). None of it is the client's
business: the worker knows which device it advertised and gave the job, so
:class:`JobHardware` turns that device into

* the environment of the sleap-nn process (``CUDA_VISIBLE_DEVICES`` names the
  job's GPU, or nothing on a CPU-only worker, so sleap-nn cannot wander onto
  another job's GPU);
* the Hydra overrides ``trainer_config.trainer_accelerator`` and
  ``trainer_config.trainer_devices``, which replace what the client sent;
* the ``--device`` of ``sleap-nn track``;
* one line for the job's log, so the labeler sees where the job runs.

Pure: no torch, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from .capabilities import GpuInfo

__all__ = ["JobHardware"]


@dataclass(frozen=True, slots=True)
class JobHardware:
    """The device one job runs on.

    Attributes:
        gpu_index: The CUDA device index, or ``None`` for the CPU.
        gpu_model: The device's name, for the log line.
    """

    gpu_index: int | None = None
    gpu_model: str = "CPU"

    @classmethod
    def for_gpu(cls, gpu: GpuInfo) -> JobHardware:
        """The hardware of a worker's advertised device."""
        if gpu.is_cpu:
            return cls()
        return cls(gpu_index=gpu.index, gpu_model=gpu.model)

    @property
    def is_cpu(self) -> bool:
        """Whether the job runs on the CPU."""
        return self.gpu_index is None

    def env(self) -> dict[str, str]:
        """Environment for the sleap-nn process: only the job's GPU is visible,
        numbered as the worker (and ``nvidia-smi``) number them."""
        return {
            "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
            "CUDA_VISIBLE_DEVICES": "" if self.is_cpu else str(self.gpu_index),
        }

    def train_overrides(self) -> dict[str, object]:
        """sleap-nn overrides that replace the client's accelerator settings.

        With ``CUDA_VISIBLE_DEVICES`` set, the job's GPU is device 0 of the
        process, so one device is asked for.
        """
        return {
            "trainer_config.trainer_accelerator": "cpu" if self.is_cpu else "gpu",
            "trainer_config.trainer_devices": 1,
        }

    def track_device(self) -> str:
        """``sleap-nn track --device``."""
        return "cpu" if self.is_cpu else "cuda"

    def describe(self) -> str:
        """One line for the job's log."""
        if self.is_cpu:
            return "Running on the worker's CPU (it has no CUDA GPU)"
        return f"Running on the worker's GPU {self.gpu_index} ({self.gpu_model})"
