"""The environment a job's sleap-nn gets: an allow-list, never the worker's own.

The worker's environment holds its credentials (``SLEAP_RTC_API_KEY``,
``SLEAP_ROOM_SECRET``, cloud keys of whoever started it). A job's config is
a stranger's, and sleap-nn is a large program: nothing of that may be in its
reach. So a job starts from an empty environment plus what a training run needs
(:data:`ALLOWED` names, :data:`ALLOWED_PREFIXES`), with ``HOME`` set to the
job's private folder (caches land there and go with it).

Pure: the caller passes the environment it reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

__all__ = ["ALLOWED", "ALLOWED_PREFIXES", "job_environment"]

ALLOWED = frozenset(
    {
        "PATH",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "LD_LIBRARY_PATH",
        "PYTHONPATH",
        "VIRTUAL_ENV",
        "CONDA_PREFIX",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "OPENBLAS_CORETYPE",
        "OPENBLAS_L2_SIZE",
        "TORCH_HOME",
        "MPLBACKEND",
    }
)
"""Variables passed on as they are."""

ALLOWED_PREFIXES = ("LC_", "CUDA_", "CUDNN_", "NCCL_", "NVIDIA_", "PYTORCH_")
"""Families passed on: locale, and the GPU stack's own settings."""


def job_environment(
    source: Mapping[str, str], home: Path, extra: Mapping[str, str | None]
) -> dict[str, str]:
    """The environment of one job process.

    Args:
        source: The worker's environment (``os.environ``).
        home: The job's private folder, its ``HOME``.
        extra: Set on top (the worker's own settings for the job, such as
            ``CUDA_VISIBLE_DEVICES``); a ``None`` value removes a variable.
    """
    env = {
        key: value
        for key, value in source.items()
        if key in ALLOWED or key.startswith(ALLOWED_PREFIXES)
    }
    env["HOME"] = str(home)
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env
