"""The worker decides where a job runs: env, sleap-nn overrides, log line."""

from __future__ import annotations

from pathlib import Path

from sleap_rtc_core.worker.capabilities import CPU_INFO, StatedGpu
from sleap_rtc_core.worker.hardware import JobHardware
from sleap_rtc_core.worker.sleapnn_cmd import train_argv


def test_a_cpu_worker_forces_the_cpu() -> None:
    hw = JobHardware.for_gpu(CPU_INFO)
    assert hw.is_cpu
    assert hw.env() == {"CUDA_VISIBLE_DEVICES": ""}
    assert hw.train_overrides() == {
        "trainer_config.trainer_accelerator": "cpu",
        "trainer_config.trainer_devices": 1,
    }
    assert hw.track_device() == "cpu"
    assert "CPU" in hw.describe()


def test_a_gpu_worker_pins_the_job_to_its_gpu() -> None:
    # A stated GPU: the boundary a CPU-only machine cannot reach.
    hw = JobHardware.for_gpu(StatedGpu("NVIDIA A40", 46068, "12.8").probe())
    assert hw.env() == {"CUDA_VISIBLE_DEVICES": "0"}
    assert hw.train_overrides()["trainer_config.trainer_accelerator"] == "gpu"
    assert hw.track_device() == "cuda"
    assert hw.describe() == "Running on the worker's GPU 0 (NVIDIA A40)"


def test_the_overrides_replace_what_the_config_says() -> None:
    """Hydra's ``++key=value`` wins over the YAML, so a client's
    ``trainer_accelerator: cpu`` cannot survive on a GPU worker."""
    hw = JobHardware(gpu_index=3, gpu_model="X")
    argv = train_argv(
        Path("/tmp/job/config.yaml"),
        extra_overrides=hw.train_overrides(),
    )
    assert "++trainer_config.trainer_accelerator='gpu'" in argv
    assert "++trainer_config.trainer_devices=1" in argv
    assert hw.env() == {"CUDA_VISIBLE_DEVICES": "3"}
