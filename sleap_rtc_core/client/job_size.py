"""How big a job is, for the workers' estimates (``job_request``).

A worker's estimate is a function of the job's epochs and frames and its own
measured speed (:mod:`sleap_rtc_core.worker.speed`); without them it can only
guess sleap-nn's defaults (100 epochs, 1000 frames). :func:`epochs_of` reads
the epochs from the spec (``--epochs``, else the config's ``max_epochs``);
:func:`frame_count` counts the frames of a local file, best-effort (blocking:
h5py, sleap-io; ``None`` when it cannot say).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from ..protocol.jobspec import TrainJobSpec

__all__ = ["epochs_of", "frame_count"]


def _config_epochs(text: str) -> int | None:
    import yaml

    try:
        value = yaml.safe_load(text)["trainer_config"]["max_epochs"]
    except (yaml.YAMLError, KeyError, TypeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def epochs_of(spec: TrainJobSpec) -> int | None:
    """The epochs the job trains (the largest of a pipeline's models)."""
    if spec.max_epochs is not None:
        return spec.max_epochs
    texts = [t for t in (spec.config_content, *spec.config_contents) if t]
    found = [e for e in (_config_epochs(t) for t in texts) if e is not None]
    return max(found) if found else None


def frame_count(path: str, *, labeled: bool) -> int | None:
    """Frames of the local ``path``: a ``.slp``'s labeled frames (``labeled``:
    training), or a video's frames; ``None`` when not here or not readable."""
    if not os.path.isfile(path):
        return None
    if path.lower().endswith(".slp"):
        try:
            import h5py
        except ImportError:
            return None
        with contextlib.suppress(OSError, KeyError, ValueError, TypeError):
            with h5py.File(path, "r") as f:
                frames: Any = f["frames"]
                return int(frames.shape[0])
        return None
    if labeled:
        return None
    try:
        import sleap_io as sio
    except ImportError:
        return None
    try:
        return int(sio.load_video(path).shape[0])
    except Exception:  # video backends raise many kinds
        return None
