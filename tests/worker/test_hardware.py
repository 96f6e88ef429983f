"""The worker decides where a job runs: env, sleap-nn overrides, log line."""

from __future__ import annotations

from pathlib import Path

from sleap_rtc_core.worker.capabilities import CPU_INFO, StatedGpu
from sleap_rtc_core.worker.hardware import JobHardware
from sleap_rtc_core.worker.jobs.sleapnn_cmd import train_argv


def test_a_cpu_worker_forces_the_cpu() -> None:
    hw = JobHardware.for_gpu(CPU_INFO)
    assert hw.is_cpu
    assert hw.env() == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": ""}
    assert hw.train_overrides() == {
        "trainer_config.trainer_accelerator": "cpu",
        "trainer_config.trainer_devices": 1,
    }
    assert hw.track_device() == "cpu"
    assert "CPU" in hw.describe()


def test_a_gpu_worker_pins_the_job_to_its_gpu() -> None:
    # A stated GPU: the boundary a CPU-only machine cannot reach.
    hw = JobHardware.for_gpu(StatedGpu("NVIDIA A40", 46068, "12.8").probe())
    assert hw.env() == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "0"}
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
    assert hw.env() == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "3"}


async def test_a_cuda_out_of_memory_is_reported_as_gpu_oom_and_frees_the_slot(
    tmp_path: Path, mount: Path
) -> None:
    """sleap-nn dying of CUDA OOM (here: the interpreter the worker runs prints
    the CUDA error a real OOM prints, the GPU being the boundary we lack)."""
    import sys
    import textwrap

    from sleap_rtc_core.protocol.channel_messages import JobFailedMsg
    from sleap_rtc_core.worker.files.mounts import MountPolicy
    from sleap_rtc_core.worker.jobs.service import JobService
    from tests.fixtures.timing import async_wait_until, scaled
    from tests.worker.jobs.test_service import Channel, submit, train_spec

    oom = tmp_path / "python-that-runs-out-of-gpu-memory"
    oom.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import sys
            print("Traceback (most recent call last):", file=sys.stderr)
            print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate "
                  "2.00 GiB (GPU 0; 23.65 GiB total capacity)", file=sys.stderr)
            sys.exit(1)
            """
        )
    )
    oom.chmod(0o755)
    service = JobService(
        MountPolicy([mount.as_posix()]),
        work_dir=tmp_path,
        python=str(oom),
        hardware=JobHardware(gpu_index=0, gpu_model="NVIDIA RTX A5000"),
    )
    channel = Channel()
    try:
        await submit(service, channel, train_spec(mount))
        failed = await channel.wait_for(JobFailedMsg, scaled(30))
        await async_wait_until(lambda: service.running == 0, scaled(10))
    finally:
        await service.close()
    details = failed.to_dict()
    assert details["code"] == "GPU_OOM"
    assert "lower batch_size or the input scale" in details["message"]
