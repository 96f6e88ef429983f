"""Jobs pinned to their own GPU on a multi-GPU worker.

Without a GPU here (the boundary these tests cannot reach), the worker's
devices are stated and the interpreter it runs is a small script that reports
the environment and command line sleap-nn would get, then waits to be let go,
so that two jobs hold their devices at once. The ``gpu`` test runs the same
check with torch on a machine that has two CUDA GPUs or more.
"""

from __future__ import annotations

import re
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sleap_rtc_core.protocol.channel_messages import JobLogMsg
from sleap_rtc_core.worker.capabilities import (
    StatedGpu,
    StatedGpus,
    TorchGpuProbe,
    WorkerCapabilities,
)
from sleap_rtc_core.worker.files.mounts import MountPolicy
from sleap_rtc_core.worker.gpu_pool import GpuPool
from sleap_rtc_core.worker.jobs.service import JobService
from sleap_rtc_core.worker.ledger import JobLedger
from tests.fixtures.timing import async_wait_until, scaled
from tests.worker.jobs.test_service import Channel, submit, train_spec

REPORTER = """\
#!{python}
import os, pathlib, sys
print("DEVICES=" + os.environ.get("CUDA_VISIBLE_DEVICES", "?"), flush=True)
print("ORDER=" + os.environ.get("CUDA_DEVICE_ORDER", "?"), flush=True)
print("ARGV=" + " ".join(sys.argv), flush=True)
{probe}
go = pathlib.Path({go!r})
for _ in range(600):  # bounded: 60 s
    if go.exists():
        break
    __import__("time").sleep(0.1)
sys.exit(3)
"""

TORCH_UUID = """\
import torch
print("UUID=" + str(torch.cuda.get_device_properties(0).uuid), flush=True)
"""


def _reporter(tmp_path: Path, probe: str = "") -> tuple[Path, Path]:
    go = tmp_path / "go"
    script = tmp_path / "python-reporting-its-device"
    text = REPORTER.format(python=sys.executable, probe=probe, go=str(go))
    script.write_text(textwrap.dedent(text))
    script.chmod(0o755)
    return script, go


def _reported(channel: Channel, key: str) -> str | None:
    for msg in channel.of(JobLogMsg):
        if msg.line.startswith(key + "="):
            return msg.line.split("=", 1)[1]
    return None


async def _two_jobs(
    mount: Path, tmp_path: Path, caps: WorkerCapabilities, probe: str = ""
) -> list[Channel]:
    script, go = _reporter(tmp_path, probe)
    service = JobService(
        MountPolicy([mount.as_posix()]),
        work_dir=tmp_path,
        python=str(script),
        hardware=GpuPool(caps.gpus),
        ledger=JobLedger(2, caps, time.monotonic),
    )
    channels = [Channel(), Channel()]
    try:
        for i, channel in enumerate(channels):
            await submit(service, channel, train_spec(mount), cid=f"c{i}")
            await async_wait_until(
                lambda ch=channel: _reported(ch, "ARGV") is not None,
                timeout=scaled(60),
            )
        go.touch()
        await async_wait_until(lambda: service.running == 0, timeout=scaled(60))
    finally:
        go.touch()
        await service.close()
    return channels


async def test_two_jobs_run_on_two_gpus(mount: Path, tmp_path: Path) -> None:
    gpus = StatedGpus((StatedGpu("A40", 46068, "12.8"), StatedGpu("A40", 46068)))
    caps = WorkerCapabilities.from_probe(gpus)
    first, second = await _two_jobs(mount, tmp_path, caps)
    assert {_reported(first, "DEVICES"), _reported(second, "DEVICES")} == {"0", "1"}
    for channel in (first, second):
        assert _reported(channel, "ORDER") == "PCI_BUS_ID"
        argv = _reported(channel, "ARGV") or ""
        # The worker's word on the accelerator, whatever the config said.
        assert re.search(r"trainer_config\.trainer_accelerator='?gpu'?( |$)", argv)
        assert re.search(r"trainer_config\.trainer_devices=1( |$)", argv)
        assert any(
            "Running on the worker's GPU" in m.line for m in channel.of(JobLogMsg)
        )


@pytest.mark.gpu
async def test_two_jobs_are_pinned_to_two_real_gpus(
    mount: Path, tmp_path: Path
) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA GPUs")
    caps = WorkerCapabilities.from_probe(TorchGpuProbe("0,1"))
    first, second = await _two_jobs(mount, tmp_path, caps, probe=TORCH_UUID)
    seen = {_reported(first, "DEVICES"): _reported(first, "UUID")}
    seen[_reported(second, "DEVICES")] = _reported(second, "UUID")
    # Each job's only visible device is the one the worker gave it.
    for index in (0, 1):
        expected = str(torch.cuda.get_device_properties(index).uuid)
        assert seen[str(index)] == expected
