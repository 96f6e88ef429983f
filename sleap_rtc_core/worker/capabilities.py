"""What a worker can do, and the registration metadata that advertises it.

A worker tells its room what it offers through the ``metadata`` of its ``register``
message (PROTOCOL.md B §1.5, the seed's Task 1)::

    {"tags": ["sleap-rtc", "training-worker", "inference-worker"],
     "properties": {"gpu_memory_mb": 24576, "gpu_model": "NVIDIA RTX A5000",
                    "sleap_version": "1.6.6", "sleap_nn_version": "0.3.5",
                    "cuda_version": "12.4", "hostname": "gpu-box",
                    "status": "available", "max_concurrent_jobs": 1,
                    "supported_models": [...], "supported_job_types": [...],
                    "mounts": [{"path": "/data", "label": "data"}]}}

GPU facts come from a :class:`GpuProbe`. :class:`TorchGpuProbe` asks torch about
the GPU chosen with ``--gpu`` (torch is imported inside the probe, so importing this
module stays cheap and works without torch); without CUDA it reports the CPU
fallback (``gpu_model "CPU"``, ``gpu_memory_mb 0``, ``cuda_version "N/A"``, the
reference spellings). :class:`StatedGpu` states the facts instead, for tests and
for configuration that must not probe.

Nothing here does I/O beyond asking torch and ``importlib.metadata``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import platform
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

from .. import __version__
from ..errors import GpuNotFound
from ..protocol.dialect import VERSION_KEY
from ..protocol.negotiation import JobType
from ..protocol.states import WorkerStatus

__all__ = [
    "CPU_GPU_MODEL",
    "CPU_INFO",
    "DEFAULT_SUPPORTED_JOB_TYPES",
    "DEFAULT_SUPPORTED_MODELS",
    "JOB_TYPE_TAGS",
    "NO_CUDA",
    "UPLOADS_KEY",
    "WORKER_TAG",
    "ALL_GPUS",
    "GpuFacts",
    "GpuInfo",
    "GpuNotFound",
    "GpuProbe",
    "GpuSelection",
    "MountLike",
    "StatedGpu",
    "StatedGpus",
    "TorchGpuProbe",
    "free_memory_of",
    "parse_gpu_selection",
    "probe_all",
    "WorkerCapabilities",
    "accepts_uploads",
    "package_versions",
    "worker_metadata",
    "worker_tags",
]

logger = logging.getLogger(__name__)

CPU_GPU_MODEL = "CPU"
"""``gpu_model`` of a worker without a usable CUDA GPU."""

NO_CUDA = "N/A"
"""``cuda_version`` of a worker without CUDA (the reference spelling)."""

WORKER_TAG = "sleap-rtc"
"""The tag every sleap-rtc peer carries."""

UPLOADS_KEY = "uploads"
"""The property a worker with an upload area publishes as ``true``."""

JOB_TYPE_TAGS: Mapping[JobType, str] = {
    JobType.TRAINING: "training-worker",
    JobType.INFERENCE: "inference-worker",
}
"""The tag a worker carries for each job type it supports."""

DEFAULT_SUPPORTED_MODELS: tuple[str, ...] = (
    # The reference default, so that reference clients' model types still match.
    "base",
    "centroid",
    "topdown",
    # sleap-nn's heads: our worker runs sleap-nn, which trains all of them.
    "single_instance",
    "centered_instance",
    "bottomup",
    "multi_class_bottomup",
    "multi_class_topdown",
)
"""Model types a worker accepts unless configured otherwise."""

DEFAULT_SUPPORTED_JOB_TYPES: tuple[JobType, ...] = (JobType.TRAINING, JobType.INFERENCE)
"""Job types a worker accepts unless configured otherwise."""

_MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class GpuInfo:
    """The facts about one compute device that a worker advertises.

    Attributes:
        model: Device name (``"NVIDIA H100 80GB HBM3"``), or ``"CPU"``.
        memory_mb: Total device memory in MiB; 0 for the CPU fallback.
        cuda_version: CUDA version torch was built with, or ``None`` without CUDA.
        index: The CUDA device index, or ``None`` for the CPU fallback.
    """

    model: str
    memory_mb: int
    cuda_version: str | None = None
    index: int | None = None

    def __post_init__(self) -> None:
        if self.memory_mb < 0:
            raise ValueError(f"memory_mb must be >= 0, not {self.memory_mb}")

    @property
    def is_cpu(self) -> bool:
        """Whether this is the CPU fallback (no CUDA device)."""
        return self.index is None


CPU_INFO = GpuInfo(model=CPU_GPU_MODEL, memory_mb=0, cuda_version=None, index=None)
"""The CPU fallback: what a worker without a usable CUDA device reports."""


@dataclass(frozen=True, slots=True)
class GpuFacts:
    """What one device is doing now (read every few seconds, published).

    Attributes:
        free_mb: Free memory in MiB, ``None`` when unknown.
        utilization_percent: Compute utilisation over the last sample (NVML),
            ``None`` when unknown.
    """

    free_mb: int | None = None
    utilization_percent: int | None = None


ALL_GPUS = "all"
"""``--gpu all``: every CUDA device the machine has."""

GpuSelection = tuple[int, ...] | str
"""The devices a worker owns: indices in order, or :data:`ALL_GPUS`."""


def parse_gpu_selection(value: object) -> GpuSelection:
    """``0``, ``"0,1"``, ``[0, 1]`` or ``"all"`` as a :data:`GpuSelection`.

    Raises:
        ValueError: a negative, repeated or non-integer index, or nothing.
    """
    if isinstance(value, str) and value.strip().lower() == ALL_GPUS:
        return ALL_GPUS
    if isinstance(value, bool):
        raise ValueError(f"not a GPU index: {value!r}")
    if isinstance(value, int):
        items: list[object] = [value]
    elif isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ValueError(f"GPUs are an index, a list of them or 'all', not {value!r}")
    indices: list[int] = []
    for item in items:
        if isinstance(item, bool):
            raise ValueError(f"not a GPU index: {item!r}")
        if isinstance(item, str) and item.isascii() and item.isdigit():
            item = int(item)
        if not isinstance(item, int) or item < 0:
            raise ValueError(f"a GPU index is a whole number >= 0, not {item!r}")
        if item in indices:
            raise ValueError(f"GPU {item} is listed twice")
        indices.append(item)
    if not indices:
        raise ValueError("no GPU given")
    return tuple(indices)


@runtime_checkable
class GpuProbe(Protocol):
    """Where a worker learns its GPU facts; swap it to state a GPU in tests."""

    def probe(self) -> GpuInfo:
        """The device this worker uses.

        Raises:
            GpuNotFound: when the configured device does not exist.
        """
        ...

    def free_memory_mb(self) -> int | None:
        """Device memory free right now in MiB, or ``None`` when unknown."""
        ...


def probe_all(probe: GpuProbe) -> tuple[GpuInfo, ...]:
    """Every device a probe owns (one for probes that know only one)."""
    many = getattr(probe, "probe_all", None)
    return tuple(many()) if callable(many) else (probe.probe(),)


def free_memory_of(probe: GpuProbe, index: int | None) -> int | None:
    """Free memory of device ``index`` now, for probes that can tell."""
    per_device = getattr(probe, "free_memory_mb_of", None)
    if callable(per_device):
        result = per_device(index)
        return result if isinstance(result, int) else None
    return probe.free_memory_mb()


@dataclass(frozen=True, slots=True)
class StatedGpus:
    """Several stated devices, indices 0… in order (tests of multi-GPU
    workers: the GPUs are the boundary a test cannot reach; say so)."""

    gpus: tuple[StatedGpu, ...]

    def probe_all(self) -> tuple[GpuInfo, ...]:
        return tuple(
            GpuInfo(g.model, g.memory_mb, g.cuda_version, index=i)
            for i, g in enumerate(self.gpus)
        )

    def probe(self) -> GpuInfo:
        return self.probe_all()[0]

    def free_memory_mb(self) -> int | None:
        return self.free_memory_mb_of(0)

    def free_memory_mb_of(self, index: int | None) -> int | None:
        if index is None or not 0 <= index < len(self.gpus):
            return None
        return self.gpus[index].free_memory_mb()


@dataclass(frozen=True, slots=True)
class StatedGpu:
    """A :class:`GpuProbe` that reports what it is told (tests, configuration).

    Attributes:
        model: Device name to report.
        memory_mb: Total memory in MiB to report.
        cuda_version: CUDA version to report, ``None`` for none.
        free_mb: Free memory to report; ``None`` reports all of ``memory_mb``.
    """

    model: str
    memory_mb: int
    cuda_version: str | None = None
    free_mb: int | None = None

    def probe(self) -> GpuInfo:
        """The stated facts (index 0 unless it is the CPU)."""
        is_cpu = self.model == CPU_GPU_MODEL and self.memory_mb == 0
        return GpuInfo(
            model=self.model,
            memory_mb=self.memory_mb,
            cuda_version=self.cuda_version,
            index=None if is_cpu else 0,
        )

    def free_memory_mb(self) -> int | None:
        """``free_mb`` if stated, else the whole memory."""
        return self.memory_mb if self.free_mb is None else self.free_mb


def _import_torch() -> ModuleType:
    return importlib.import_module("torch")


class TorchGpuProbe:
    """Asks torch about the CUDA devices a worker owns.

    torch is imported on the first :meth:`probe`, never at module import, so a
    client or server without torch can import the worker package. Without torch
    or without CUDA the probe reports the CPU fallback and logs why.

    Attributes:
        selection: The devices chosen with ``--gpu`` (indices, or ``all``).
        gpu_index: The first of them (``all``: device 0).
    """

    def __init__(
        self,
        gpu_index: int | str | tuple[int, ...] | list[int] = 0,
        *,
        import_torch: Callable[[], ModuleType] | None = None,
    ) -> None:
        """Create a probe.

        Args:
            gpu_index: ``--gpu``: an index, several (``"0,1"``) or ``"all"``.
            import_torch: Returns the torch module; a seam for tests that state
                a CUDA build without one. Default: ``import torch``.

        Raises:
            ValueError: for a negative or repeated index.
        """
        self.selection = parse_gpu_selection(gpu_index)
        selection = self.selection
        self.gpu_index: int = 0 if isinstance(selection, str) else selection[0]
        self._import_torch = import_torch or _import_torch

    def _torch(self) -> Any | None:
        try:
            return self._import_torch()
        except ImportError as exc:
            logger.info("torch is not installed (%s); reporting the CPU", exc)
            return None

    def probe(self) -> GpuInfo:
        """The first chosen CUDA device, or the CPU fallback without CUDA.

        Raises:
            GpuNotFound: when CUDA works but has no such device.
        """
        return self.probe_all()[0]

    def probe_all(self) -> tuple[GpuInfo, ...]:
        """Every chosen CUDA device in order, or the CPU fallback alone.

        Raises:
            GpuNotFound: when CUDA works but a chosen device does not exist.
        """
        torch = self._torch()
        if torch is None:
            return (CPU_INFO,)
        try:
            if not torch.cuda.is_available():
                logger.info("CUDA is not available; reporting the CPU")
                return (CPU_INFO,)
            count = int(torch.cuda.device_count())
            selection = self.selection
            wanted = tuple(range(count)) if isinstance(selection, str) else selection
            if not wanted:
                logger.info("CUDA has no device; reporting the CPU")
                return (CPU_INFO,)
            for index in wanted:
                if index >= count:
                    raise GpuNotFound(
                        f"GPU {index} does not exist: this machine has "
                        f"{count} CUDA device(s) (0-{count - 1})"
                    )
            cuda = getattr(torch.version, "cuda", None)
            out = []
            for index in wanted:
                props = torch.cuda.get_device_properties(index)
                out.append(
                    GpuInfo(
                        model=str(props.name),
                        memory_mb=int(props.total_memory) // _MIB,
                        cuda_version=str(cuda) if cuda else None,
                        index=index,
                    )
                )
            return tuple(out)
        except RuntimeError as exc:  # a broken driver: torch raises RuntimeError
            logger.warning("CUDA probe failed (%s); reporting the CPU", exc)
            return (CPU_INFO,)

    def free_memory_mb(self) -> int | None:
        """Free memory on the first chosen device now, ``None`` without CUDA."""
        return self.free_memory_mb_of(self.gpu_index)

    def free_memory_mb_of(self, index: int | None) -> int | None:
        """Free memory on device ``index`` now, ``None`` without CUDA."""
        if index is None:
            return None
        torch = self._torch()
        if torch is None:
            return None
        try:
            if not torch.cuda.is_available():
                return None
            if index >= int(torch.cuda.device_count()):
                return None
            free, _total = torch.cuda.mem_get_info(index)
            return int(free) // _MIB
        except RuntimeError as exc:
            logger.warning("CUDA free-memory query failed: %s", exc)
            return None


@dataclass(frozen=True, slots=True)
class WorkerCapabilities:
    """Everything a worker checks a ``job_request`` against.

    Attributes:
        gpu: The first device (what 0.0.7 peers read as ``gpu_model``).
        supported_models: Model types (``config.model_type``) it accepts.
        supported_job_types: Job types it accepts.
        gpus: Every device the worker owns, ``gpu`` first (default: ``gpu``).
    """

    gpu: GpuInfo
    supported_models: tuple[str, ...] = DEFAULT_SUPPORTED_MODELS
    supported_job_types: tuple[JobType, ...] = DEFAULT_SUPPORTED_JOB_TYPES
    gpus: tuple[GpuInfo, ...] = ()

    @property
    def is_cpu(self) -> bool:
        """Whether the worker has no CUDA device."""
        return self.gpu.is_cpu

    def __post_init__(self) -> None:
        object.__setattr__(self, "gpus", tuple(self.gpus) or (self.gpu,))
        if self.gpus[0] != self.gpu:
            raise ValueError("gpus must start with gpu")
        # Accept any iterable (lists from a config file) and store tuples.
        object.__setattr__(self, "supported_models", tuple(self.supported_models))
        object.__setattr__(
            self,
            "supported_job_types",
            tuple(JobType(t) for t in self.supported_job_types),
        )

    @classmethod
    def from_probe(
        cls,
        probe: GpuProbe,
        *,
        supported_models: Iterable[str] = DEFAULT_SUPPORTED_MODELS,
        supported_job_types: Iterable[JobType | str] = DEFAULT_SUPPORTED_JOB_TYPES,
    ) -> WorkerCapabilities:
        """Probe the GPU and bundle the result with what the worker supports.

        Raises:
            GpuNotFound: when the probe's device does not exist.
            ValueError: for an unknown job type.
        """
        gpus = probe_all(probe)
        return cls(
            gpu=gpus[0],
            gpus=gpus,
            supported_models=tuple(supported_models),
            supported_job_types=tuple(JobType(t) for t in supported_job_types),
        )


class MountLike(Protocol):
    """Anything with a ``path`` and a ``label`` (the mount policy's mounts)."""

    @property
    def path(self) -> str | os.PathLike[str]:
        """The folder the worker exposes."""
        ...

    @property
    def label(self) -> str:
        """The name clients show for it."""
        ...


def _mount_entry(mount: MountLike | Mapping[str, Any]) -> dict[str, str]:
    if isinstance(mount, Mapping):
        path, label = mount.get("path"), mount.get("label")
    else:
        path, label = mount.path, mount.label
    if not isinstance(path, str | os.PathLike):
        raise ValueError(f"mount path must be a string or path, not {path!r}")
    path_str = os.fspath(path)
    if not label:
        label = PurePath(path_str).name or path_str
    return {"path": path_str, "label": str(label)}


def package_versions() -> dict[str, str]:
    """``sleap_version`` / ``sleap_nn_version`` of the installed packages.

    A package that is not installed is left out (never ``null``: under our
    ``update_metadata`` semantics a null property means "delete").
    """
    out: dict[str, str] = {}
    for key, dist in (("sleap_version", "sleap"), ("sleap_nn_version", "sleap-nn")):
        try:
            out[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def worker_tags(job_types: Iterable[JobType | str]) -> list[str]:
    """``["sleap-rtc", ...]`` plus one tag per supported job type, in a fixed order.

    Discovery's ``tags`` filter is any-of, so a client asking for training
    workers filters on ``training-worker`` alone; an inference-only worker must
    therefore not carry it.
    """
    wanted = {JobType(t) for t in job_types}
    return [WORKER_TAG] + [tag for jt, tag in JOB_TYPE_TAGS.items() if jt in wanted]


def worker_metadata(
    capabilities: WorkerCapabilities,
    *,
    status: WorkerStatus | str = WorkerStatus.AVAILABLE,
    max_concurrent_jobs: int = 1,
    mounts: Sequence[MountLike | Mapping[str, Any]] = (),
    hostname: str | None = None,
    worker_name: str | None = None,
    versions: Mapping[str, str] | None = None,
    uploads: bool = False,
    extra_properties: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``metadata`` of a worker's ``register`` message.

    Args:
        capabilities: GPU facts and supported models and job types.
        status: The status to register with.
        max_concurrent_jobs: Job slots (one per GPU on a multi-GPU box).
        mounts: Folders the worker exposes, as objects with ``path``/``label``
            or mappings; a missing label becomes the folder's name.
        hostname: Defaults to this machine's node name.
        worker_name: Shown by ``sleap-rtc workers``; left out when ``None``.
        versions: ``sleap_version``/``sleap_nn_version``; defaults to
            :func:`package_versions`.
        uploads: The worker has an upload area: published as
            ``"uploads": true`` (see :func:`accepts_uploads`), left out otherwise.
        extra_properties: Merged last (e.g. the slot bookkeeping's
            ``current_job_id``); ``None`` values are left out.

    Returns:
        A fresh JSON-ready dict ``{"tags": [...], "properties": {...}}``. It
        never carries secrets: credentials travel in ``register``'s own fields.

    Raises:
        ValueError: for ``max_concurrent_jobs < 1``, an unknown status or a mount
            without a path.
    """
    if max_concurrent_jobs < 1:
        raise ValueError(f"max_concurrent_jobs must be >= 1, not {max_concurrent_jobs}")
    gpu = capabilities.gpu
    properties: dict[str, Any] = {
        "gpu_memory_mb": gpu.memory_mb,
        "gpu_model": gpu.model,
    }
    properties.update(package_versions() if versions is None else dict(versions))
    properties.update(
        {
            "cuda_version": gpu.cuda_version or NO_CUDA,
            "hostname": hostname if hostname is not None else platform.node(),
            "status": WorkerStatus(status).value,
            "max_concurrent_jobs": max_concurrent_jobs,
            "supported_models": list(capabilities.supported_models),
            "supported_job_types": [t.value for t in capabilities.supported_job_types],
            "mounts": [_mount_entry(m) for m in mounts],
            VERSION_KEY: __version__,
        }
    )
    if len(capabilities.gpus) > 1 or not gpu.is_cpu:
        properties["gpus"] = [
            {"index": g.index, "model": g.model, "memory_mb": g.memory_mb}
            for g in capabilities.gpus
        ]
    if worker_name is not None:
        properties["worker_name"] = worker_name
    if uploads:
        properties[UPLOADS_KEY] = True
    if extra_properties:
        properties.update({k: v for k, v in extra_properties.items() if v is not None})
    return {
        "tags": worker_tags(capabilities.supported_job_types),
        "properties": properties,
    }


def accepts_uploads(metadata: Mapping[str, Any]) -> bool:
    """Whether a worker's published ``metadata`` says it has an upload area.

    Lenient: an old worker, or anything but a literal ``true``, reads as no.
    """
    properties = metadata.get("properties")
    return isinstance(properties, Mapping) and properties.get(UPLOADS_KEY) is True
