"""Worker capabilities: GPU probes and the registration metadata."""

from __future__ import annotations

import importlib.metadata
import json
import platform
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import sleap_rtc_core
from sleap_rtc_core.protocol.filters import matches
from sleap_rtc_core.protocol.metadata import validate_metadata
from sleap_rtc_core.protocol.negotiation import JobType
from sleap_rtc_core.protocol.states import WorkerStatus
from sleap_rtc_core.worker import capabilities as caps
from sleap_rtc_core.worker.capabilities import (
    CPU_INFO,
    GpuInfo,
    GpuNotFound,
    GpuProbe,
    StatedGpu,
    TorchGpuProbe,
    WorkerCapabilities,
    worker_metadata,
    worker_tags,
)

A100 = StatedGpu("NVIDIA A100-SXM4-40GB", 40960, "12.4")


def _fake_torch(
    *,
    available: bool = True,
    devices: tuple[tuple[str, int], ...] = (("Fake GPU", 8 * 1024**3),),
    cuda: str | None = "12.1",
    free: int = 6 * 1024**3,
    broken: bool = False,
) -> ModuleType:
    """A stand-in torch module with just the CUDA queries the probe makes."""

    def is_available() -> bool:
        if broken:
            raise RuntimeError("driver too old")
        return available

    def props(i: int) -> Any:
        name, total = devices[i]
        return SimpleNamespace(name=name, total_memory=total)

    module = ModuleType("torch")
    module.cuda = SimpleNamespace(  # type: ignore[attr-defined]
        is_available=is_available,
        device_count=lambda: len(devices),
        get_device_properties=props,
        mem_get_info=lambda i: (free, devices[i][1]),
    )
    module.version = SimpleNamespace(cuda=cuda)  # type: ignore[attr-defined]
    return module


# ------------------------------------------------------------------ probes


def test_stated_gpu_reports_what_it_is_told() -> None:
    info = A100.probe()
    assert info == GpuInfo("NVIDIA A100-SXM4-40GB", 40960, "12.4", index=0)
    assert not info.is_cpu
    assert A100.free_memory_mb() == 40960
    assert StatedGpu("X", 100, free_mb=7).free_memory_mb() == 7
    assert StatedGpu("CPU", 0).probe() == CPU_INFO


def test_probes_satisfy_the_protocol() -> None:
    assert isinstance(A100, GpuProbe)
    assert isinstance(TorchGpuProbe(0), GpuProbe)


def test_torch_probe_on_this_machine_agrees_with_torch() -> None:
    torch = pytest.importorskip("torch")
    info = TorchGpuProbe(0).probe()
    if torch.cuda.is_available():
        assert info.index == 0
        assert info.memory_mb > 0
        assert info.model == torch.cuda.get_device_properties(0).name
        assert info.cuda_version == torch.version.cuda
    else:
        assert info == CPU_INFO
        assert TorchGpuProbe(0).free_memory_mb() is None


@pytest.mark.gpu
def test_torch_probe_reads_a_real_gpu() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    probe = TorchGpuProbe(0)
    info = probe.probe()
    total = torch.cuda.get_device_properties(0).total_memory // (1024 * 1024)
    assert info.memory_mb == total
    free = probe.free_memory_mb()
    assert free is not None
    assert 0 < free <= total
    with pytest.raises(GpuNotFound):
        TorchGpuProbe(torch.cuda.device_count()).probe()


def test_torch_probe_reads_the_chosen_device() -> None:
    torch = _fake_torch(devices=(("GPU zero", 4 * 1024**3), ("GPU one", 24 * 1024**3)))
    probe = TorchGpuProbe(1, import_torch=lambda: torch)
    assert probe.probe() == GpuInfo("GPU one", 24 * 1024, "12.1", index=1)
    assert probe.free_memory_mb() == 6 * 1024


def test_torch_probe_refuses_a_missing_index() -> None:
    probe = TorchGpuProbe(3, import_torch=lambda: _fake_torch())
    with pytest.raises(GpuNotFound) as info:
        probe.probe()
    assert info.value.code == "GPU_NOT_FOUND"
    assert "1 CUDA device" in info.value.message
    assert probe.free_memory_mb() is None


@pytest.mark.parametrize(
    "torch",
    [_fake_torch(available=False), _fake_torch(broken=True)],
    ids=["no-cuda", "broken-driver"],
)
def test_torch_probe_falls_back_to_cpu(torch: ModuleType) -> None:
    probe = TorchGpuProbe(0, import_torch=lambda: torch)
    assert probe.probe() == CPU_INFO
    assert probe.free_memory_mb() is None


def test_torch_probe_without_torch_reports_cpu() -> None:
    def missing() -> ModuleType:
        raise ImportError("No module named 'torch'")

    probe = TorchGpuProbe(0, import_torch=missing)
    assert probe.probe() == CPU_INFO
    assert probe.free_memory_mb() is None


def test_torch_is_not_imported_until_probing() -> None:
    loads: list[int] = []

    def loader() -> ModuleType:
        loads.append(1)
        return _fake_torch()

    probe = TorchGpuProbe(0, import_torch=loader)
    assert loads == []
    probe.probe()
    assert loads == [1]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="GPU index"):
        TorchGpuProbe(-1)
    with pytest.raises(ValueError, match="memory_mb"):
        GpuInfo("X", -1)


def test_capabilities_from_probe() -> None:
    c = WorkerCapabilities.from_probe(
        A100, supported_models=["centroid"], supported_job_types=["training"]
    )
    assert c.gpu.memory_mb == 40960
    assert c.supported_models == ("centroid",)
    assert c.supported_job_types == (JobType.TRAINING,)
    with pytest.raises(ValueError, match="juggling"):
        WorkerCapabilities.from_probe(A100, supported_job_types=["juggling"])


# ----------------------------------------------------------------- metadata


@dataclass(frozen=True)
class _Mount:
    path: Path
    label: str


def test_metadata_has_every_documented_key() -> None:
    md = worker_metadata(
        WorkerCapabilities(A100.probe()),
        hostname="gpu-box",
        worker_name="lab-a100",
        versions={"sleap_version": "1.6.6", "sleap_nn_version": "0.3.5"},
        mounts=[_Mount(Path("/data/lab"), "lab"), {"path": "/scratch"}],
    )
    assert md["tags"] == ["sleap-rtc", "training-worker", "inference-worker"]
    assert md["properties"] == {
        "gpu_memory_mb": 40960,
        "gpu_model": "NVIDIA A100-SXM4-40GB",
        "sleap_version": "1.6.6",
        "sleap_nn_version": "0.3.5",
        "cuda_version": "12.4",
        "hostname": "gpu-box",
        "worker_name": "lab-a100",
        "status": "available",
        "max_concurrent_jobs": 1,
        "supported_models": list(caps.DEFAULT_SUPPORTED_MODELS),
        "supported_job_types": ["training", "inference"],
        "mounts": [
            {"path": "/data/lab", "label": "lab"},
            {"path": "/scratch", "label": "scratch"},
        ],
        # How our clients tell this worker from a sleap-rtc 0.0.7 one.
        "sleap_rtc_version": sleap_rtc_core.__version__,
        # Every device the worker owns (here one).
        "gpus": [{"index": 0, "model": "NVIDIA A100-SXM4-40GB", "memory_mb": 40960}],
    }
    validate_metadata(md)
    assert json.loads(json.dumps(md)) == md


def test_metadata_keeps_the_reference_model_types() -> None:
    for model in ("base", "centroid", "topdown"):
        assert model in caps.DEFAULT_SUPPORTED_MODELS


def test_cpu_fallback_metadata() -> None:
    md = worker_metadata(WorkerCapabilities(CPU_INFO), versions={})
    props = md["properties"]
    assert props["gpu_model"] == "CPU"
    assert props["gpu_memory_mb"] == 0
    assert props["cuda_version"] == "N/A"
    assert props["hostname"] == platform.node()
    assert "sleap_version" not in props
    assert "worker_name" not in props


def test_versions_come_from_installed_packages() -> None:
    versions = caps.package_versions()
    for key, dist in (("sleap_version", "sleap"), ("sleap_nn_version", "sleap-nn")):
        try:
            expected: str | None = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            expected = None
        assert versions.get(key) == expected
    props = worker_metadata(WorkerCapabilities(CPU_INFO))["properties"]
    assert {k: props[k] for k in versions} == versions


def test_an_upload_area_is_published_and_read_leniently() -> None:
    with_area = worker_metadata(WorkerCapabilities(CPU_INFO), uploads=True)
    without = worker_metadata(WorkerCapabilities(CPU_INFO))
    assert with_area["properties"][caps.UPLOADS_KEY] is True
    assert caps.UPLOADS_KEY not in without["properties"]
    assert caps.accepts_uploads(with_area)
    assert not caps.accepts_uploads(without)
    for odd in ({}, {"properties": None}, {"properties": {"uploads": "yes"}}):
        assert not caps.accepts_uploads(odd)


def test_metadata_status_slots_and_extras() -> None:
    md = worker_metadata(
        WorkerCapabilities(A100.probe()),
        status=WorkerStatus.MAINTENANCE,
        max_concurrent_jobs=4,
        extra_properties={"current_job_id": "j1", "pending_job_id": None},
        versions={},
    )
    assert md["properties"]["status"] == "maintenance"
    assert md["properties"]["max_concurrent_jobs"] == 4
    assert md["properties"]["current_job_id"] == "j1"
    assert "pending_job_id" not in md["properties"]
    with pytest.raises(ValueError, match="max_concurrent_jobs"):
        worker_metadata(WorkerCapabilities(CPU_INFO), max_concurrent_jobs=0)
    with pytest.raises(ValueError, match="sleeping"):
        worker_metadata(WorkerCapabilities(CPU_INFO), status="sleeping")
    with pytest.raises(ValueError, match="mount path"):
        worker_metadata(WorkerCapabilities(CPU_INFO), mounts=[{"label": "x"}])


def test_tags_follow_supported_job_types() -> None:
    assert worker_tags([JobType.INFERENCE]) == ["sleap-rtc", "inference-worker"]
    assert worker_tags(["inference", "training"]) == [
        "sleap-rtc",
        "training-worker",
        "inference-worker",
    ]
    md = worker_metadata(
        WorkerCapabilities(CPU_INFO, supported_job_types=(JobType.TRAINING,)),
        versions={},
    )
    assert md["tags"] == ["sleap-rtc", "training-worker"]


def test_the_documented_discovery_filter_finds_the_worker() -> None:
    md = worker_metadata(WorkerCapabilities(A100.probe()), versions={})
    peer = {"peer_id": "w", "role": "worker", "metadata": md}
    assert matches(
        {
            "role": "worker",
            "tags": ["sleap-rtc"],
            "properties": {"status": "available", "gpu_memory_mb": {"$gte": 40000}},
        },
        peer,
    )
    assert not matches({"properties": {"gpu_memory_mb": {"$gte": 50000}}}, peer)


@given(
    memory=st.integers(min_value=0, max_value=2**20),
    model=st.text(min_size=1, max_size=40),
    slots=st.integers(min_value=1, max_value=16),
    job_types=st.sets(st.sampled_from(list(JobType)), min_size=1),
)
def test_metadata_is_always_valid_json_metadata(
    memory: int, model: str, slots: int, job_types: set[JobType]
) -> None:
    md = worker_metadata(
        WorkerCapabilities(
            GpuInfo(model, memory, None, 0), supported_job_types=tuple(job_types)
        ),
        max_concurrent_jobs=slots,
        hostname="h",
        versions={},
    )
    validate_metadata(md)
    assert md["properties"]["gpu_memory_mb"] == memory
    assert set(md["properties"]["supported_job_types"]) == {j.value for j in job_types}
    assert len(md["tags"]) == 1 + len(job_types)


# ------------------------------------------------------------- several GPUs

THREE = (
    ("GPU zero", 8 * 1024**3),
    ("GPU one", 24 * 1024**3),
    ("GPU two", 24 * 1024**3),
)


@pytest.mark.parametrize(
    ("given", "selection"),
    [
        (0, (0,)),
        ("2", (2,)),
        ("0, 2", (0, 2)),
        ([1, 0], (1, 0)),
        ("all", "all"),
        ("ALL", "all"),
    ],
)
def test_gpu_selections(given: object, selection: object) -> None:
    assert caps.parse_gpu_selection(given) == selection


@pytest.mark.parametrize("given", [-1, "x", "0,0", "", [], True, 1.5, "0,-1", "١"])
def test_bad_gpu_selections(given: object) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (each says why in its own words)
        caps.parse_gpu_selection(given)


def test_a_probe_of_several_gpus_reports_each_in_order() -> None:
    """A fake torch with three devices (no GPU here: the boundary)."""
    torch = _fake_torch(devices=THREE)
    probe = TorchGpuProbe("2,0", import_torch=lambda: torch)
    gpus = probe.probe_all()
    assert [(g.index, g.model) for g in gpus] == [(2, "GPU two"), (0, "GPU zero")]
    every = TorchGpuProbe("all", import_torch=lambda: torch).probe_all()
    assert [g.index for g in every] == [0, 1, 2]
    c = WorkerCapabilities.from_probe(probe)
    assert (c.gpu, c.gpus) == (gpus[0], gpus)
    assert probe.free_memory_mb_of(1) == 6 * 1024
    with pytest.raises(GpuNotFound, match="GPU 5"):
        TorchGpuProbe("0,5", import_torch=lambda: torch).probe_all()


def test_the_metadata_lists_every_gpu() -> None:
    gpus = caps.StatedGpus((StatedGpu("A", 1000), StatedGpu("B", 2000)))
    md = worker_metadata(WorkerCapabilities.from_probe(gpus), versions={})
    assert md["properties"]["gpus"] == [
        {"index": 0, "model": "A", "memory_mb": 1000},
        {"index": 1, "model": "B", "memory_mb": 2000},
    ]
    assert md["properties"]["gpu_model"] == "A"  # what 0.0.7 peers read
    cpu = worker_metadata(WorkerCapabilities(CPU_INFO), versions={})
    assert "gpus" not in cpu["properties"]
    with pytest.raises(ValueError, match="start with gpu"):
        WorkerCapabilities(CPU_INFO, gpus=gpus.probe_all())
