"""What a job's sleap-nn config may say: an allow-list, checked before anything runs.

A config is input from a stranger (any room member can submit one), and sleap-nn
acts on it with the worker's rights: it ``torch.load``s checkpoints (a pickle),
copies test files into the run folder, writes and deletes image caches, and
OmegaConf/Hydra expand ``${...}`` (``oc.env`` reads the worker's environment).
So, for every config:

* **keys**: the top level is the schema's (:data:`TOP_LEVEL_KEYS`); Hydra's
  ``defaults`` / ``hydra`` / anything else is refused;
* **no interpolation**: a ``${`` in any key or string value is refused;
* **every field that names a file or folder is known** (:data:`READ_PATHS`,
  :data:`NEW_FOLDER_PATHS`, :data:`JOB_PATHS`), and every other field that can
  hold text is declared not to be a path (:data:`NOT_PATHS`); a test walks
  sleap-nn's own schema and fails when a field is in neither, so a sleap-nn
  upgrade cannot add a path field unnoticed;
* read paths go through the worker's mount check (:func:`read_paths`, in
  ``jobspec_check.validate_spec``); new folders are checked by the worker where it
  prepares the job (:func:`new_folders`).

Pure: no I/O; the mount check is the caller's seam.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = [
    "JOB_PATHS",
    "NEW_FOLDER_PATHS",
    "NOT_PATHS",
    "READ_PATHS",
    "TOP_LEVEL_KEYS",
    "interpolated",
    "is_classified",
    "new_folders",
    "read_paths",
    "unknown_top_level",
]

TOP_LEVEL_KEYS = frozenset(
    {
        "data_config",
        "model_config",
        "trainer_config",
        "name",
        "description",
        "sleap_nn_version",
        "filename",
    }
)
"""The top level of sleap-nn's ``TrainingJobConfig``."""

READ_PATHS = frozenset(
    {
        "data_config.test_file_path",
        "model_config.pretrained_backbone_weights",
        "model_config.pretrained_head_weights",
        "trainer_config.resume_ckpt_path",
    }
)
"""Files sleap-nn reads (checkpoints are unpickled): they must exist inside the
worker's mounts."""

NEW_FOLDER_PATHS = frozenset({"data_config.cache_img_path"})
"""Folders sleap-nn writes and may delete afterwards
(``delete_cache_imgs_after_training``): inside the mounts and not there yet."""

JOB_PATHS = frozenset(
    {
        "data_config.train_labels_path",
        "data_config.val_labels_path",
        "trainer_config.ckpt_dir",
        "trainer_config.run_name",
    }
)
"""Checked (and overridden) by the job preparation itself: the labels, the run
folder and its name."""

NOT_PATHS = frozenset(
    {
        # Free text and bookkeeping.
        "name",
        "description",
        "sleap_nn_version",
        "filename",
        # Choices of a fixed set of words.
        "data_config.provider",
        "data_config.data_pipeline_fw",
        "data_config.preprocessing.*",
        "data_config.split.*",
        "data_config.centroids_from_masks",
        "data_config.bbox_source",
        "data_config.skeletons",
        "model_config.init_weights",
        "model_config.backbone_config.*",
        "model_config.head_configs.*",
        "trainer_config.model_ckpt.*",
        "trainer_config.trainer_accelerator",
        "trainer_config.trainer_devices",
        "trainer_config.trainer_strategy",
        "trainer_config.profiler",
        "trainer_config.viz_img_format",
        "trainer_config.optimizer_name",
        "trainer_config.lr_scheduler.*",
        "trainer_config.eval.*",
        "trainer_config.wandb.*",
        "trainer_config.train_data_loader.*",
        "trainer_config.val_data_loader.*",
    }
)
"""Fields that can hold text but never name a file or folder (``*``: a whole
section). ``model_config.backbone_config.*`` holds torchvision / hub weight
*names*, not paths."""


def is_classified(key: str) -> bool:
    """Whether the dotted ``key`` is a known path field or declared not one."""
    if key in READ_PATHS or key in NEW_FOLDER_PATHS or key in JOB_PATHS:
        return True
    if key in NOT_PATHS:
        return True
    parts = key.split(".")
    return any(".".join(parts[:n]) + ".*" in NOT_PATHS for n in range(1, len(parts)))


def _walk(node: Any, prefix: str) -> Iterator[tuple[str, str, Any]]:
    """``(dotted key, key, value)`` of every mapping entry below ``node``."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            dotted = f"{prefix}.{key}" if prefix else str(key)
            yield dotted, str(key), value
            yield from _walk(value, dotted)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _walk(item, f"{prefix}[{i}]")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _select(cfg: Mapping[Any, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def unknown_top_level(cfg: Mapping[Any, Any]) -> list[str]:
    """Top-level keys that are not sleap-nn's (``defaults``, ``hydra``…)."""
    return [str(key) for key in cfg if key not in TOP_LEVEL_KEYS]


def interpolated(cfg: Mapping[Any, Any]) -> list[str]:
    """Dotted fields whose key or text holds a ``${`` (each field once)."""
    out = []
    for dotted, key, value in _walk(cfg, ""):
        if "${" in key or any("${" in text for text in _strings(value)):
            out.append(dotted)
    return out


def read_paths(cfg: Mapping[Any, Any]) -> list[tuple[str, Any]]:
    """``(dotted field, value)`` of each :data:`READ_PATHS` field that is set: a
    path, a list of paths (``[i]`` in the field), or a value that is neither."""
    out: list[tuple[str, Any]] = []
    for dotted in sorted(READ_PATHS):
        value = _select(cfg, dotted)
        if value is None or value == "" or value == []:
            continue
        if isinstance(value, list) and len(value) > 1:
            out += [(f"{dotted}[{i}]", item) for i, item in enumerate(value)]
        elif isinstance(value, list):
            out.append((dotted, value[0]))
        else:
            out.append((dotted, value))
    return out


def new_folders(cfg: Mapping[Any, Any]) -> list[tuple[str, Any]]:
    """``(dotted field, value)`` of the :data:`NEW_FOLDER_PATHS` a config sets
    (a value that is not text is returned too: it must be refused, not
    skipped)."""
    out = []
    for dotted in sorted(NEW_FOLDER_PATHS):
        value = _select(cfg, dotted)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        out.append((dotted, value))
    return out
