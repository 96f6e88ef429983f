"""The sleap-nn config a remote job sends, whichever dialog built it.

Two rules hold for every config that leaves the labeler's machine:

* **the worker owns the hardware and the run folder** (:data:`WORKER_OWNED`):
  accelerator and devices follow the GPU the worker gave the job, the run
  folder is named and placed by the worker, the progress ports are its own;
* **local paths stay home** (:data:`LOCAL_ONLY`): a config loaded from an
  earlier local run names files of this machine.

:func:`to_remote` applies both. :func:`standard_config` is what the standalone
``sleap-rtc gui`` trains: SLEAP's own training profile for the model type when
SLEAP is installed, else sleap-nn's defaults for that head (never the demo's
tiny network), with the dialog's epochs, batch size and input scale.
"""

from __future__ import annotations

import importlib.resources
from typing import Any

__all__ = [
    "LOCAL_ONLY",
    "SLEAP_PROFILES",
    "WORKER_OWNED",
    "standard_config",
    "to_remote",
]

SLEAP_PROFILES: dict[str, str] = {
    "single_instance": "baseline_medium_rf.single.yaml",
    "centroid": "baseline.centroid.yaml",
    "centered_instance": "baseline_medium_rf.topdown.yaml",
    "bottomup": "baseline_medium_rf.bottomup.yaml",
}
"""SLEAP's training profile (``sleap/training_profiles``) per model type."""


WORKER_OWNED: tuple[str, ...] = (
    "trainer_config.trainer_accelerator",
    "trainer_config.trainer_devices",
    "trainer_config.trainer_device_indices",
    "trainer_config.ckpt_dir",
    "trainer_config.run_name",
    "trainer_config.zmq.publish_port",
    "trainer_config.zmq.controller_port",
)
"""Set by the worker for each job: the device it gave the job, the run folder
(``models/<timestamp>.<head>.n=<frames>`` beside the labels, as SLEAP names
its runs) and the progress ports of its own trainer link."""

LOCAL_ONLY: tuple[str, ...] = (
    "data_config.val_labels_path",
    "data_config.test_file_path",
    "data_config.cache_img_path",
    "model_config.pretrained_backbone_weights",
    "model_config.pretrained_head_weights",
    "trainer_config.resume_ckpt_path",
)
"""Paths of the labeler's machine that a loaded config may carry (a model
trained here before, a local cache): meaningless, or worse, on the worker."""


def _drop(tree: dict[str, Any], key: str) -> None:
    """Remove the dotted ``key`` from a plain config tree (absent is fine)."""
    *parents, leaf = key.split(".")
    node: Any = tree
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(leaf, None)


def to_remote(cfg: Any) -> str:
    """One SLEAP config as the YAML a worker gets: the :data:`WORKER_OWNED` and
    :data:`LOCAL_ONLY` keys are left out (sleap-nn's defaults apply, and the
    worker sets its own), every other value is the form's."""
    from omegaconf import OmegaConf

    tree: Any = OmegaConf.to_container(cfg, resolve=False)
    for key in WORKER_OWNED + LOCAL_ONLY:
        _drop(tree, key)
    return str(OmegaConf.to_yaml(OmegaConf.create(tree)))


def _sleap_profile(model_type: str) -> Any | None:
    """SLEAP's profile for ``model_type`` as an OmegaConf tree, if SLEAP is here."""
    name = SLEAP_PROFILES.get(model_type)
    if name is None:
        return None
    try:
        from omegaconf import OmegaConf

        profile = importlib.resources.files("sleap") / "training_profiles" / name
        text = profile.read_text(encoding="utf-8")
    except (ImportError, OSError):
        return None
    return OmegaConf.create(text)


def _sleap_nn_defaults(model_type: str) -> Any | None:
    """sleap-nn's defaults for a UNet with a ``model_type`` head."""
    from omegaconf import OmegaConf

    heads: dict[str, Any] = {model_type: {"confmaps": {}}}
    if model_type == "bottomup":
        heads = {"bottomup": {"confmaps": {}, "pafs": {}}}
    return OmegaConf.create(
        {
            "data_config": {},
            "model_config": {"backbone_config": {"unet": {}}, "head_configs": heads},
            "trainer_config": {},
        }
    )


def standard_config(
    model_type: str, epochs: int, batch_size: int, input_scale: float
) -> str:
    """The YAML of a real training run for ``model_type`` with these settings.

    Raises:
        ValueError: An unknown model type, a value out of range, or neither
            SLEAP nor sleap-nn installed to say what a model is.
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError("epochs and batch size must be at least 1")
    if not 0.0 < input_scale <= 4.0:
        raise ValueError("input scale must be in (0, 4]")
    if model_type not in SLEAP_PROFILES:
        raise ValueError(f"unknown model type {model_type!r}")
    try:
        from omegaconf import OmegaConf
        from sleap_nn.config.training_job_config import verify_training_cfg
    except ImportError:
        raise ValueError(
            "building a training configuration needs SLEAP or sleap-nn here "
            '(pip install "sleap-rtc[sleap]")'
        ) from None
    base = _sleap_profile(model_type) or _sleap_nn_defaults(model_type)
    overrides = OmegaConf.create(
        {
            "data_config": {"preprocessing": {"scale": float(input_scale)}},
            "trainer_config": {
                "max_epochs": int(epochs),
                "train_data_loader": {"batch_size": int(batch_size)},
                "val_data_loader": {"batch_size": int(batch_size)},
            },
        }
    )
    cfg = verify_training_cfg(OmegaConf.merge(base, overrides))
    return to_remote(cfg)
