"""Turn a submitted job spec into something runnable, or into field errors.

What the worker does between ``JOB_SUBMIT`` and ``JOB_ACCEPTED`` /
``JOB_REJECTED`` (PROTOCOL.md A.4, B §4.5), in this order, so that nothing is
written for a spec that is refused:

1. **Mappings.** ``path_mappings`` replace ``labels_path``, ``val_labels_path``
   and ``data_path`` exactly and every occurrence inside the YAML text
   (:func:`~..protocol.jobspec.apply_path_mappings`).
2. **Validation.** :func:`~..protocol.jobspec.validate_spec` with every path
   checked by the worker's :class:`PathPolicy` (inside a mount, exists), plus
   what only the worker can check: where the models will be written
   (``trainer_config.ckpt_dir``, default ``models/`` beside the labels) and that
   a training job names its labels somewhere. Configs named by path are read and
   validated like YAML text. All errors come back at once.
3. **Videos.** Each labels file the job reads is opened with sleap-io (without
   opening its videos); video paths matching a mapping (exactly, or by a folder
   prefix) are replaced, each new path must pass the policy too, and a remapped
   copy of the labels is written into the job's private folder. The original is
   never touched.
4. **Configs.** Each config's YAML is written to a private temp file (mode 0600,
   in a private folder of mode 0700) that sleap-nn reads.

Everything is blocking file I/O: call :func:`prepare_job` in a thread. The
private folder goes away with :meth:`PreparedJob.cleanup`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import PathNotAllowed
from ..protocol.jobspec import (
    FieldError,
    JobSpec,
    SpecErrorCode,
    TrackJobSpec,
    TrainJobSpec,
    apply_path_mappings,
    validate_spec,
)
from .job_paths import LabelsRemapper, PathPolicy, policy_check, predictions_path_for
from .sleapnn_cmd import run_names

__all__ = ["ModelPlan", "PathPolicy", "PreparedJob", "prepare_job"]

logger = logging.getLogger(__name__)

_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class ModelPlan:
    """One model of a training pipeline, ready to hand to ``train_argv``.

    Attributes:
        index: Position in the pipeline (0-based).
        model_type: The spec's model type for it, if given.
        config_file: The private temp file holding its YAML.
        run_name: Its run folder's name.
        ckpt_dir: The folder that gets the run folder (inside a mount).
        train_labels: Override of ``data_config.train_labels_path`` (``None``:
            keep the YAML's).
        val_labels: Override of ``data_config.val_labels_path``.
    """

    index: int
    model_type: str | None
    config_file: Path
    run_name: str
    ckpt_dir: Path
    train_labels: tuple[str, ...] | None = None
    val_labels: tuple[str, ...] | None = None


@dataclass(slots=True)
class PreparedJob:
    """A validated job with its private files written.

    Attributes:
        spec: The spec after path mappings.
        private_dir: The job's private folder (mode 0700): config files,
            remapped labels copies, the trainer's working directory.
        models: The training pipeline, in order (empty for a track job).
        data_path: Track jobs: what sleap-nn predicts on (maybe a remapped copy).
        predictions_path: Where predictions are written (track jobs, and the
            post-training inference of a train job that asks for it).
        inference_labels: Train jobs with ``run_inference``: the labels whose
            suggested frames are predicted.
    """

    spec: JobSpec
    private_dir: Path
    models: tuple[ModelPlan, ...] = ()
    data_path: str | None = None
    predictions_path: Path | None = None
    inference_labels: str | None = None
    _cleaned: bool = field(default=False, repr=False)

    def cleanup(self) -> None:
        """Remove the private folder and everything in it (idempotent)."""
        if self._cleaned:
            return
        self._cleaned = True
        shutil.rmtree(self.private_dir, ignore_errors=True)


# ---------------------------------------------------------------------- configs


def _load_yaml(text: str) -> dict[Any, Any]:
    try:
        data = yaml.load(text, Loader=_SafeLoader)
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _section(cfg: Mapping[Any, Any], name: str) -> Mapping[Any, Any]:
    value = cfg.get(name)
    return value if isinstance(value, Mapping) else {}


def _as_paths(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) and value:
        return (value,)
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str) and v)
    return ()


def _read_config_files(
    spec: TrainJobSpec, policy: PathPolicy, errors: list[FieldError]
) -> TrainJobSpec:
    """Configs named by path, read into ``config_contents`` (validated alike)."""
    texts = []
    several = len(spec.config_paths) > 1
    for i, path in enumerate(spec.config_paths):
        name = f"config_path[{i}]" if several else "config_path"
        try:
            texts.append(policy.resolve(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, PathNotAllowed) as exc:
            errors.append(
                FieldError(
                    name,
                    f"cannot read the config: {exc}",
                    SpecErrorCode.CONFIG_PARSE_ERROR,
                    path,
                )
            )
    return dataclasses.replace(spec, config_contents=tuple(texts), config_path=None)


def _ckpt_dir(
    cfg: Mapping[Any, Any], labels: Sequence[str], models_dir: Path | None
) -> Path | None:
    value = _section(cfg, "trainer_config").get("ckpt_dir")
    if isinstance(value, str) and value.strip() and value.strip() != "None":
        path = Path(value)
        if path.is_absolute():
            return path
        if labels:
            return Path(labels[0]).parent / path
        return None
    if models_dir is not None:
        return models_dir
    if labels:
        return Path(labels[0]).parent / "models"
    return None


# ------------------------------------------------------------------------ entry


def _write_private(private_dir: Path, index: int, text: str) -> Path:
    fd, name = tempfile.mkstemp(
        prefix=f"rtc_config_{index}_", suffix=".yaml", dir=private_dir
    )
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)
    return Path(name)


def _plan_train(
    spec: TrainJobSpec,
    policy: PathPolicy,
    models_dir: Path | None,
    errors: list[FieldError],
) -> list[tuple[dict[Any, Any], tuple[str, ...], tuple[str, ...], Path | None]]:
    """Per config: (parsed YAML, train labels, val labels, ckpt dir); adds errors."""
    check_dir = policy_check(policy, must_exist=False)
    several = len(spec.config_contents) > 1
    unreadable = {
        e.field
        for e in errors
        if e.code in (SpecErrorCode.CONFIG_PARSE_ERROR, SpecErrorCode.CONFIG_TOO_LARGE)
    }
    plans: list[
        tuple[dict[Any, Any], tuple[str, ...], tuple[str, ...], Path | None]
    ] = []
    for i, text in enumerate(spec.config_contents):
        prefix = f"config[{i}]" if several else "config"
        if prefix in unreadable:  # never parse what validation refused
            plans.append(({}, (), (), None))
            continue
        cfg = _load_yaml(text)
        data = _section(cfg, "data_config")
        train = (
            (spec.labels_path,)
            if spec.labels_path
            else _as_paths(data.get("train_labels_path"))
        )
        val = (
            (spec.val_labels_path,)
            if spec.val_labels_path
            else _as_paths(data.get("val_labels_path"))
        )
        if not train:
            errors.append(
                FieldError(
                    "labels_path",
                    f"{prefix} names no training labels: give labels_path or "
                    "data_config.train_labels_path",
                    SpecErrorCode.INVALID_VALUE,
                )
            )
        ckpt = _ckpt_dir(cfg, train, models_dir)
        # A folder derived from refused labels would only repeat their error.
        derived = models_dir is None and not _section(cfg, "trainer_config").get(
            "ckpt_dir"
        )
        labels_refused = any(
            e.field == "labels_path"
            or e.field.startswith(f"{prefix}.data_config.train_labels_path")
            for e in errors
        )
        if ckpt is not None and not (derived and labels_refused):
            error = check_dir(f"{prefix}.trainer_config.ckpt_dir", ckpt.as_posix())
            if error is not None:
                errors.append(error)
        plans.append((cfg, train, val, ckpt))
    return plans


def prepare_job(
    spec: JobSpec,
    policy: PathPolicy,
    *,
    private_parent: Path | None = None,
    models_dir: Path | None = None,
) -> PreparedJob | list[FieldError]:
    """Map, validate and materialise a job spec (blocking; run it in a thread).

    Args:
        spec: The spec as decoded from ``JOB_SUBMIT``.
        policy: The worker's mount confinement.
        private_parent: Where the job's private folder is made (default the
            system temp folder).
        models_dir: Where run folders go when the config names no
            ``ckpt_dir`` (default ``models/`` beside the training labels).

    Returns:
        The prepared job, or every field error (nothing is left on disk then).
    """
    spec = apply_path_mappings(spec)
    check = policy_check(policy)
    errors = validate_spec(spec, check_path=check)
    if isinstance(spec, TrainJobSpec) and spec.config_paths and not errors:
        # Configs named by path: read them and validate them as YAML text.
        spec = _read_config_files(spec, policy, errors)
        if not errors:
            errors = validate_spec(spec, check_path=check)
    plans = (
        _plan_train(spec, policy, models_dir, errors)
        if isinstance(spec, TrainJobSpec)
        else []
    )
    output: Path | None = None
    if isinstance(spec, TrackJobSpec):
        output = (
            Path(spec.output_path)
            if spec.output_path
            else predictions_path_for(spec.data_path)
        )
        if not spec.output_path:
            error = policy_check(policy, must_exist=False)("output_path", str(output))
            if error is not None:
                errors.append(error)
    elif spec.run_inference and plans and plans[0][1]:
        output = predictions_path_for(plans[0][1][0])
        error = policy_check(policy, must_exist=False)("run_inference", str(output))
        if error is not None:
            errors.append(error)
    if errors:
        return errors

    remap = LabelsRemapper(spec.path_mappings, policy)
    if isinstance(spec, TrackJobSpec):
        remap.plan("data_path", spec.data_path)
    for _cfg, train, val, _ckpt in plans:
        for path in train:
            remap.plan("labels_path", path)
        for path in val:
            remap.plan("val_labels_path", path)
    if remap.errors:
        return remap.errors

    private_dir = Path(tempfile.mkdtemp(prefix="sleap_rtc_job_", dir=private_parent))
    job = PreparedJob(spec=spec, private_dir=private_dir, predictions_path=output)
    try:
        remap.write(private_dir)
        if isinstance(spec, TrackJobSpec):
            job.data_path = remap(spec.data_path)
            return job
        names = run_names(spec)
        models = []
        for i, (_cfg, train, val, ckpt) in enumerate(plans):
            models.append(
                ModelPlan(
                    index=i,
                    model_type=(
                        spec.model_types[i] if i < len(spec.model_types) else None
                    ),
                    config_file=_write_private(private_dir, i, spec.config_contents[i]),
                    run_name=names[i],
                    # None only without labels, which was refused above
                    ckpt_dir=ckpt if ckpt is not None else private_dir,
                    train_labels=tuple(remap(p) for p in train) or None,
                    val_labels=tuple(remap(p) for p in val) or None,
                )
            )
        job.models = tuple(models)
        if spec.run_inference and models and models[0].train_labels:
            job.inference_labels = models[0].train_labels[0]
    except BaseException:
        job.cleanup()
        raise
    return job
