"""Turn a submitted job spec into something runnable, or into field errors.

What the worker does between ``JOB_SUBMIT`` and ``JOB_ACCEPTED`` /
``JOB_REJECTED`` (PROTOCOL.md A.4, B §4.5), in this order, so that nothing is
written for a spec that is refused:

1. **Mappings.** ``path_mappings`` move every path of the spec and the paths
   inside the YAML texts by the one rule of :mod:`~..protocol.paths`
   (:func:`~..protocol.jobspec.apply_path_mappings`).
2. **Validation.** :func:`~..protocol.jobspec_check.check_spec` (which parses each
   YAML text once; the plan below uses that parse) with every path
   checked by the worker's :class:`PathPolicy` (inside a mount, exists), plus
   what only the worker can check: where the models will be written
   (``trainer_config.ckpt_dir``, default ``models/`` beside the labels) and that
   a training job names its labels somewhere. Configs named by path are read and
   validated like YAML text. All errors come back at once.
3. **Videos.** Each labels file the job reads is opened with sleap-io (without
   opening its videos); video paths a mapping moves are replaced, each new
   path must pass the policy too, and a remapped copy of the labels is written
   into the job's private folder. The original is never touched.
4. **Configs.** Each config's YAML is written to a private temp file (mode 0600,
   in a private folder of mode 0700) that sleap-nn reads.
5. **Run folders.** Each model gets its own run folder, named as SLEAP names
   them (``YYMMDD_HHMMSS.<model_type>.n=<labeled frames>``, or the run name
   the spec or the config's YAML gives; see
   :func:`~.sleapnn_cmd.run_names`), and the folder is created now with an
   exclusive ``mkdir`` (:func:`~.sleapnn_cmd.reserve_run_dir`) so that no two
   jobs, and no two models of a pipeline, ever share one. A run folder that is
   still empty when the job ends is removed again; so are all of a cancelled
   job's, and a failed job's that hold no checkpoint (no half run is left in
   ``models/`` to be mistaken for a model).

Every path the validation asked the policy about is remembered, and
:meth:`PreparedJob.recheck` asks again just before each sleap-nn process
starts (a queued or pipelined job may start hours after it was accepted): a
symlink swapped in the meantime so that a path leads out of the mounts, a run
folder or predictions file replaced by a link, or an image cache folder that
appeared since, fail the job before sleap-nn runs. sleap-nn opens its paths by
name, so what is left is the moment between that check and its own open.

Everything is blocking file I/O: call :func:`prepare_job` in a thread. The
private folder goes away with :meth:`PreparedJob.cleanup`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py

from ...errors import LocalProtocolError, PathNotAllowed, SleapRTCError
from ...protocol.config_policy import new_folders
from ...protocol.jobspec import JobSpec, TrackJobSpec, TrainJobSpec, apply_path_mappings
from ...protocol.jobspec_check import FieldError, SpecErrorCode, check_spec
from ...protocol.paths import predictions_path_for
from .paths import LabelsRemapper, PathPolicy, policy_check
from .sleapnn_cmd import (
    ModelPlan,
    reserve_run_dir,
    run_name_problem,
    run_names,
    sleap_nn_text_problem,
)

__all__ = [
    "ModelPlan",
    "ModelsDir",
    "PathPolicy",
    "PreparedJob",
    "prepare_job",
    "remove_abandoned_job_dirs",
]

PRIVATE_PREFIX = "sleap_rtc_job_"
"""Name prefix of a job's private folder."""

OWNER_FILE = ".owner_pid"
"""In a private folder: the pid of the worker process that made it."""

logger = logging.getLogger(__name__)


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
        policy: The mount confinement the job was checked against.
        checked_paths: Every path validation checked against :attr:`policy`.
        new_folders: Folders that had to be new (sleap-nn may delete them).
    """

    spec: JobSpec
    private_dir: Path
    models: tuple[ModelPlan, ...] = ()
    data_path: str | None = None
    predictions_path: Path | None = None
    inference_labels: str | None = None
    policy: PathPolicy | None = field(default=None, repr=False)
    checked_paths: tuple[str, ...] = ()
    new_folders: tuple[str, ...] = ()
    _cleaned: bool = field(default=False, repr=False)

    def recheck(self) -> list[FieldError]:
        """The paths checked at submit, checked again (blocking; call it just
        before sleap-nn starts): each, the run folders and the predictions
        file must still lie inside the mounts, the run folders (made by the
        worker) must not have become links, and the new folders must still
        be absent."""
        if self.policy is None:
            return []
        errors: list[FieldError] = []
        changed = "changed after the job was accepted"
        paths = [
            *self.checked_paths,
            *(str(m.run_dir) for m in self.models if m.run_dir),
        ]
        if self.predictions_path is not None:
            paths.append(str(self.predictions_path))
        for path in dict.fromkeys(paths):
            try:
                self.policy.resolve(path)
            except PathNotAllowed:
                errors.append(
                    FieldError(
                        "path",
                        f"{changed} and now lies outside the worker's mounts",
                        SpecErrorCode.NOT_ALLOWED,
                        path,
                    )
                )
            except (OSError, ValueError, RuntimeError) as exc:
                errors.append(
                    FieldError(
                        "path", f"{changed}: {exc}", SpecErrorCode.INVALID_PATH, path
                    )
                )
        for link in (m.run_dir for m in self.models if m.run_dir is not None):
            if link.is_symlink():  # the worker made it a folder
                errors.append(
                    FieldError(
                        "path",
                        f"{changed} and is a symlink now",
                        SpecErrorCode.NOT_ALLOWED,
                        link.as_posix(),
                    )
                )
        for folder in self.new_folders:
            if os.path.lexists(folder):
                errors.append(
                    FieldError(
                        "path",
                        f"{changed}: it must be new, sleap-nn may delete it",
                        SpecErrorCode.NOT_ALLOWED,
                        folder,
                    )
                )
        return errors

    def cleanup(self, outcome: str = "succeeded") -> None:
        """Remove the private folder and everything in it, and the run folders
        that are still empty (idempotent). By the job's ``outcome``: a
        ``cancelled`` job's run folders go whole, a ``failed`` job's that hold
        no ``*.ckpt``; the others stay. Each run folder was made new for this
        job (:func:`~.sleapnn_cmd.reserve_run_dir`); one replaced by a link
        is not followed (``rmtree`` refuses links)."""
        if self._cleaned:
            return
        self._cleaned = True
        shutil.rmtree(self.private_dir, ignore_errors=True)
        runs = [m.run_dir for m in self.models if m.run_dir is not None]
        for run in runs:
            if outcome == "cancelled" or (
                outcome == "failed" and not _holds_checkpoint(run)
            ):
                shutil.rmtree(run, ignore_errors=True)
        _remove_empty(runs)


# ---------------------------------------------------------------------- configs


@dataclass(frozen=True, slots=True)
class _ConfigPlan:
    """One config of a train job as validation parsed it, with what the worker
    derived from it (empty for a config that was refused)."""

    config: Mapping[Any, Any] = field(default_factory=dict)
    train_labels: tuple[str, ...] = ()
    val_labels: tuple[str, ...] = ()
    ckpt_dir: Path | None = None


def _section(cfg: Mapping[Any, Any], name: str) -> Mapping[Any, Any]:
    value = cfg.get(name)
    return value if isinstance(value, Mapping) else {}


def _holds_checkpoint(run: Path) -> bool:
    try:
        return not run.is_symlink() and any(run.rglob("*.ckpt"))
    except OSError:
        return True  # unreadable: leave it


def _remove_empty(folders: Iterable[Path | None]) -> None:
    for folder in folders:
        if folder is not None:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only succeeds while it is empty


def _model_type(cfg: Mapping[Any, Any]) -> str | None:
    """The head a config trains (sleap-nn's ``get_model_type_from_cfg``)."""
    heads = _section(_section(cfg, "model_config"), "head_configs")
    return next((str(k) for k, v in heads.items() if v is not None), None)


def _config_run_name(cfg: Mapping[Any, Any]) -> str | None:
    value = _section(cfg, "trainer_config").get("run_name")
    if isinstance(value, str) and value.strip() and value.strip() != "None":
        return value
    return None


def _labeled_frames(paths: Iterable[str]) -> int | None:
    """Labeled frames in all ``paths`` together (the ``.n=`` of a run name),
    read from the files' frame tables; ``None`` when one cannot be read."""
    total = 0
    try:
        for path in paths:
            with h5py.File(path, "r") as f:
                frames = f["frames"]
                if not isinstance(frames, h5py.Dataset):
                    return None
                total += int(frames.shape[0])
    except (OSError, KeyError, ValueError, TypeError):
        return None
    return total


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


ModelsDir = Path | Callable[[str], Path | None] | None
"""Where run folders go when a config names no ``ckpt_dir``: one folder, or a
function of the (first) training labels path (``None``: beside the labels)."""


def _ckpt_dir(
    cfg: Mapping[Any, Any], labels: Sequence[str], models_dir: ModelsDir
) -> Path | None:
    value = _section(cfg, "trainer_config").get("ckpt_dir")
    if isinstance(value, str) and value.strip() and value.strip() != "None":
        path = Path(value)
        if path.is_absolute():
            return path
        if labels:
            return Path(labels[0]).parent / path
        return None
    if callable(models_dir):
        chosen = models_dir(labels[0]) if labels else None
        if chosen is not None:
            return chosen
    elif models_dir is not None:
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


def _check_sleap_nn_texts(
    spec: TrainJobSpec,
    prefix: str,
    cfg: Mapping[Any, Any],
    train: Sequence[str],
    val: Sequence[str],
    errors: list[FieldError],
) -> None:
    """Run names and paths sleap-nn would misread (a ``${``), or a run name
    in the YAML that cannot name a folder: refused before anything starts."""
    run_name = _config_run_name(cfg)
    if spec.run_name is None and run_name is not None:
        problem = run_name_problem(run_name)
        if problem is not None:
            errors.append(
                FieldError(
                    f"{prefix}.trainer_config.run_name",
                    problem,
                    SpecErrorCode.INVALID_VALUE,
                )
            )
    data = _section(cfg, "data_config")
    trainer = _section(cfg, "trainer_config")
    yaml_field = f"{prefix}.data_config"
    train_field = (
        "labels_path" if spec.labels_path else f"{yaml_field}.train_labels_path"
    )
    val_field = (
        "val_labels_path" if spec.val_labels_path else f"{yaml_field}.val_labels_path"
    )
    fields: list[tuple[str, Sequence[Any]]] = [
        (train_field, train),
        (val_field, val),
        (f"{prefix}.trainer_config.ckpt_dir", [trainer.get("ckpt_dir")]),
        (f"{prefix}.data_config.cache_img_path", [data.get("cache_img_path")]),
    ]
    for name, values in fields:
        for value in values:
            problem = sleap_nn_text_problem(value) if isinstance(value, str) else None
            if problem is not None:
                errors.append(
                    FieldError(name, problem, SpecErrorCode.INVALID_PATH, value)
                )
                break


def _check_new_folders(
    prefix: str,
    cfg: Mapping[Any, Any],
    check_dir: Callable[[str, str], FieldError | None],
    errors: list[FieldError],
    made: list[str],
) -> None:
    """Folders sleap-nn writes and may delete (the image cache): absolute,
    inside a mount, and new, so that nothing of anyone's is deleted; each is
    added to ``made``, to be checked again at start."""
    for dotted, path in new_folders(cfg):
        name = f"{prefix}.{dotted}"
        if not isinstance(path, str):
            errors.append(
                FieldError(name, "must be one folder path", SpecErrorCode.INVALID_VALUE)
            )
            continue
        made.append(path)
        if not Path(path).is_absolute():
            errors.append(
                FieldError(
                    name,
                    "must be an absolute folder inside the worker's mounts",
                    SpecErrorCode.INVALID_PATH,
                    path,
                )
            )
            continue
        error = check_dir(name, path)
        if error is not None:
            errors.append(error)
        elif os.path.lexists(path):
            errors.append(
                FieldError(
                    name,
                    "already exists: sleap-nn may delete this folder after "
                    "training, so name a new one",
                    SpecErrorCode.NOT_ALLOWED,
                    path,
                )
            )


def _plan_train(
    spec: TrainJobSpec,
    configs: Sequence[Mapping[Any, Any] | None],
    policy: PathPolicy,
    models_dir: ModelsDir,
    errors: list[FieldError],
    made: list[str],
) -> list[_ConfigPlan]:
    """Per config (parsed once, by validation): its labels and its ``ckpt_dir``;
    adds what only the worker can check to ``errors``, and the folders that
    must be new to ``made``."""
    check_dir = policy_check(policy, must_exist=False)
    several = len(spec.config_contents) > 1
    plans: list[_ConfigPlan] = []
    for i in range(len(spec.config_contents)):
        prefix = f"config[{i}]" if several else "config"
        cfg = configs[i] if i < len(configs) else None
        if cfg is None:  # never look into what validation refused
            plans.append(_ConfigPlan())
            continue
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
        _check_sleap_nn_texts(spec, prefix, cfg, train, val, errors)
        _check_new_folders(prefix, cfg, check_dir, errors, made)
        ckpt = _ckpt_dir(cfg, train, models_dir)
        # A folder derived from refused labels would only repeat their error.
        derived = not isinstance(models_dir, Path) and not _section(
            cfg, "trainer_config"
        ).get("ckpt_dir")
        labels_refused = any(
            e.field == "labels_path"
            or e.field.startswith(f"{prefix}.data_config.train_labels_path")
            for e in errors
        )
        if ckpt is not None and not (derived and labels_refused):
            error = check_dir(f"{prefix}.trainer_config.ckpt_dir", ckpt.as_posix())
            if error is not None:
                errors.append(error)
        plans.append(_ConfigPlan(cfg, train, val, ckpt))
    return plans


def prepare_job(
    spec: JobSpec,
    policy: PathPolicy,
    *,
    private_parent: Path | None = None,
    models_dir: ModelsDir = None,
    predictions_dir: Callable[[str], Path | None] | None = None,
) -> PreparedJob | list[FieldError]:
    """Map, validate and materialise a job spec (blocking; run it in a thread).

    Args:
        spec: The spec as decoded from ``JOB_SUBMIT``.
        policy: The worker's mount confinement.
        private_parent: Where the job's private folder is made (default the
            system temp folder).
        models_dir: Where run folders go when the config names no
            ``ckpt_dir`` (default ``models/`` beside the training labels); a
            function of the training labels path may choose per job (the
            upload area's run folders for uploaded labels).
        predictions_dir: Chooses the folder of a track job's default
            predictions from its data path (``None`` from it: beside the
            data): an uploaded file's folder is the upload area's, where
            nothing but the file may be.

    Returns:
        The prepared job, or every field error (nothing is left on disk then).
    """
    recorded = _Recording(policy)
    policy = recorded
    spec = apply_path_mappings(spec)
    check = policy_check(policy)
    checked = check_spec(spec, check_path=check)
    errors = checked.errors
    if isinstance(spec, TrainJobSpec) and spec.config_paths and not errors:
        # Configs named by path: read them and check them as YAML text.
        spec = _read_config_files(spec, policy, errors)
        if not errors:
            checked = check_spec(spec, check_path=check)
            errors = checked.errors
    made: list[str] = []
    plans = (
        _plan_train(spec, checked.configs, policy, models_dir, errors, made)
        if isinstance(spec, TrainJobSpec)
        else []
    )
    output: Path | None = None
    if isinstance(spec, TrackJobSpec):
        output = Path(spec.output_path or predictions_path_for(spec.data_path))
        if not spec.output_path and predictions_dir is not None:
            folder = predictions_dir(spec.data_path)
            if folder is not None:
                output = folder / output.name
        if not spec.output_path:
            error = policy_check(policy, must_exist=False)("output_path", str(output))
            if error is not None:
                errors.append(error)
    elif spec.run_inference and plans and plans[0].train_labels:
        output = Path(predictions_path_for(plans[0].train_labels[0]))
        error = policy_check(policy, must_exist=False)("run_inference", str(output))
        if error is not None:
            errors.append(error)
    if errors:
        return errors

    remap = LabelsRemapper(spec.path_mappings, policy)
    if isinstance(spec, TrackJobSpec):
        remap.plan("data_path", spec.data_path)
    for plan in plans:
        for path in plan.train_labels:
            remap.plan("labels_path", path)
        for path in plan.val_labels:
            remap.plan("val_labels_path", path)
    if remap.errors:
        return remap.errors

    private_dir = Path(tempfile.mkdtemp(prefix=PRIVATE_PREFIX, dir=private_parent))
    (private_dir / OWNER_FILE).write_text(str(os.getpid()), encoding="ascii")
    job = PreparedJob(
        spec=spec,
        private_dir=private_dir,
        predictions_path=output,
        policy=recorded.policy,
        checked_paths=tuple(recorded.paths),
        new_folders=tuple(made),
    )
    try:
        remap.write(private_dir)
        if isinstance(spec, TrackJobSpec):
            job.data_path = remap(spec.data_path)
            return job
        models = job.models = tuple(_plan_models(spec, plans, private_dir, remap))
        if spec.run_inference and models and models[0].train_labels:
            job.inference_labels = models[0].train_labels[0]
    except _RunDirError as exc:
        job.cleanup()
        return [exc.error]
    except BaseException:
        job.cleanup()
        raise
    return job


class _Recording:
    """A :class:`PathPolicy` that remembers every path it was asked about, so
    that :meth:`PreparedJob.recheck` can ask again at start."""

    def __init__(self, policy: PathPolicy) -> None:
        self.policy = policy
        self.paths: dict[str, None] = {}

    def resolve(self, path: str) -> Path:
        """The wrapped policy's answer (the path is remembered first).

        Raises:
            PathNotAllowed: outside every mount.
        """
        self.paths.setdefault(path, None)
        return self.policy.resolve(path)


class _RunDirError(SleapRTCError):
    """A run folder could not be made; carries the field error to report."""

    def __init__(self, error: FieldError) -> None:
        super().__init__(error.message)
        self.error = error


def _plan_models(
    spec: TrainJobSpec,
    plans: Sequence[_ConfigPlan],
    private_dir: Path,
    remap: LabelsRemapper,
) -> list[ModelPlan]:
    """Name and reserve each model's run folder and write its config.

    Each :class:`ModelPlan` is returned with its run folder made, so that the
    job's cleanup removes the folders of models that never wrote anything.

    Raises:
        _RunDirError: a run folder cannot be made (permissions, a name the
            file system refuses); the folders made so far are removed.
    """
    several = len(plans) > 1
    frames = [_labeled_frames((*p.train_labels, *p.val_labels)) for p in plans]
    names = run_names(
        spec,
        model_types=[_model_type(p.config) for p in plans],
        labeled_frames=frames,
        config_run_names=[_config_run_name(p.config) for p in plans],
    )
    models: list[ModelPlan] = []
    try:
        for i, plan in enumerate(plans):
            # None only without labels, which was refused above
            folder = plan.ckpt_dir if plan.ckpt_dir is not None else private_dir
            prefix = f"config[{i}]" if several else "config"
            try:
                run_dir = reserve_run_dir(folder, names[i])
            except (OSError, PathNotAllowed, LocalProtocolError) as exc:
                raise _RunDirError(
                    FieldError(
                        f"{prefix}.trainer_config.run_name",
                        f"cannot create the run folder {names[i]!r} in {folder}: {exc}",
                        SpecErrorCode.INVALID_PATH,
                        folder.as_posix(),
                    )
                ) from exc
            kind = spec.model_types[i] if i < len(spec.model_types) else None
            models.append(
                ModelPlan(
                    index=i,
                    model_type=kind or _model_type(plan.config),
                    config_file=_write_private(private_dir, i, spec.config_contents[i]),
                    run_name=run_dir.name,
                    ckpt_dir=folder,
                    train_labels=tuple(remap(p) for p in plan.train_labels) or None,
                    val_labels=tuple(remap(p) for p in plan.val_labels) or None,
                    run_dir=run_dir,
                    labeled_frames=frames[i],
                )
            )
    except BaseException:
        _remove_empty(m.run_dir for m in models)
        raise
    return models


def remove_abandoned_job_dirs(parent: Path | None = None) -> int:
    """Remove the private folders that a worker killed without warning (e.g.
    SIGKILL) left behind: those whose owner process is gone. Folders of live
    workers, and anything without an owner file, are left alone.

    Args:
        parent: Where private folders are made (default: the system temp).

    Returns:
        How many were removed.
    """
    folder = Path(parent or tempfile.gettempdir())
    removed = 0
    for path in folder.glob(f"{PRIVATE_PREFIX}*"):
        try:
            pid = int((path / OWNER_FILE).read_text(encoding="ascii"))
        except (OSError, ValueError):
            continue
        if pid == os.getpid() or _alive(pid):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    if removed:
        logger.info("= removed %d private folder(s) of dead workers", removed)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: not ours to judge
    return True
