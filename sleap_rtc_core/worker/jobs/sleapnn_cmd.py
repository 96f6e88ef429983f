"""Command lines for ``sleap-nn train`` and ``sleap-nn track``, as argv lists.

No shell, ever: every function here returns a list of strings for
:func:`asyncio.create_subprocess_exec`. What a peer sends (run names, paths)
reaches sleap-nn in one of two ways, each made safe here:

* ``train`` takes Hydra overrides (``key=value``), which Hydra *parses*: ``=``,
  ``,``, brackets, quotes, spaces and ``${...}`` all mean something there. Every
  string goes through :func:`hydra_quote`, which makes a single-quoted Hydra
  string that OmegaConf then reads back as exactly the original text.
* ``track`` takes click options; each value travels in its own
  ``--option=value`` token, so a value that starts with ``-`` is never read as
  an option.

:func:`train_argv` and :func:`track_argv` take plain values;
:func:`train_argv_for_spec` and :func:`track_argv_for_spec` take a job spec
(:mod:`sleap_rtc_core.protocol.jobspec`, after path mappings and validation) plus
what only the worker knows (the config temp file, run folder, ZMQ ports), and
:func:`run_names` names the run folders of a pipeline as SLEAP does
(``YYMMDD_HHMMSS.<model_type>.n=<labeled frames>``) and :func:`reserve_run_dir`
makes each one unique on disk before training starts.

One thing no quoting can carry: sleap-nn resolves its config again after Hydra
has read the overrides, so a ``${`` that Hydra read as literal text becomes an
OmegaConf interpolation there and the trainer dies. :func:`sleap_nn_text_problem`
says so for a run name or path, so that a job is refused with a reason before it
starts; :func:`train_argv` refuses such values.

sleap-nn is started as ``python -m sleap_nn.cli`` with the worker's own
interpreter: that works inside a virtual environment that is not on ``PATH``,
and it is the "module context" sleap-nn needs to run multi-GPU training in the
same process (from the ``sleap-nn`` script it re-spawns itself as a child).

Where the model lands (sleap-nn 0.3.5): ``<ckpt_dir>/<run_name>/`` holding
``best.ckpt`` (best ``val/loss``), ``training_config.yaml``,
``initial_config.yaml``, ``training_log.csv``, ``labels_gt.{train,val}.0.slp``
and, after a normal end, ``labels_pr.{train,val}.0.slp`` plus metrics. See
:func:`expected_run_dir`.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path, PurePath
from typing import Any

from ...errors import LocalProtocolError, PathNotAllowed
from ...protocol.jobspec import FrameFilter, TrackJobSpec, TrainJobSpec
from ...protocol.jobspec_check import parse_frame_ranges

__all__ = [
    "SLEAP_NN_MODULE",
    "ModelPlan",
    "TrackFrameFilter",
    "expected_run_dir",
    "hydra_quote",
    "hydra_value",
    "reserve_run_dir",
    "run_name_problem",
    "run_names",
    "sleap_nn_text_problem",
    "sleap_run_name",
    "sleap_nn_argv",
    "track_argv",
    "track_argv_for_spec",
    "train_argv",
    "train_argv_for_spec",
]

SLEAP_NN_MODULE = "sleap_nn.cli"
"""The module that ``python -m`` runs: sleap-nn's click CLI."""

_MAX_ARG_CHARS = 100_000
"""Linux refuses a single argv string over 128 KiB (``MAX_ARG_STRLEN``)."""

# OmegaConf reads ``${`` as the start of an interpolation, also inside a Hydra
# quoted string; ``\${`` is a literal ``${``, and backslashes right before it
# must be doubled so that they stay backslashes.
_OMEGACONF_INTERPOLATION = re.compile(r"(\\*)\$\{")
# Inside a Hydra quoted string only backslashes before a quote (or before the
# closing quote, i.e. at the end) are escapes; everything else is literal.
_BACKSLASHES_BEFORE_QUOTE = re.compile(r"(\\+)(?='|\Z)")


class TrackFrameFilter(StrEnum):
    """Frame filters ``sleap-nn track`` understands (B §4.5 ``frame_filter``)."""

    SUGGESTED = "suggested"
    USER = "user"
    PREDICTED = "predicted"


_FILTER_FLAGS = {
    TrackFrameFilter.SUGGESTED: "--only_suggested_frames",
    TrackFrameFilter.USER: "--only_labeled_frames",
    TrackFrameFilter.PREDICTED: "--only_predicted_frames",
}


def _check_text(value: str, what: str) -> str:
    if not isinstance(value, str):
        raise LocalProtocolError(f"{what} must be a string, got {type(value).__name__}")
    if "\x00" in value:
        raise LocalProtocolError(f"{what} contains a NUL character")
    if len(value) > _MAX_ARG_CHARS:
        raise LocalProtocolError(f"{what} is longer than {_MAX_ARG_CHARS} characters")
    return value


def hydra_quote(value: str) -> str:
    """Quote ``value`` so that a Hydra override sets exactly this string.

    The result is a single-quoted Hydra string (``'...'``) with quotes and the
    backslashes before them escaped, and every ``${`` escaped for OmegaConf, so
    that ``=``, ``,``, ``[ ]``, ``{ }``, quotes, spaces, ``#``, ``\\``, newlines,
    non-ASCII text and ``${...}`` all survive, and strings such as ``"true"``,
    ``"null"`` or ``"123"`` stay strings.

    Args:
        value: Any text without NUL characters.

    Returns:
        The quoted value, e.g. ``'it\\'s'`` for ``it's``.

    Raises:
        LocalProtocolError: ``value`` is not a string, holds a NUL character
            (which no argv can carry) or is too long for one argument.
    """
    _check_text(value, "a Hydra value")
    text = _OMEGACONF_INTERPOLATION.sub(lambda m: m.group(1) * 2 + "\\${", value)
    text = _BACKSLASHES_BEFORE_QUOTE.sub(lambda m: m.group(1) * 2, text)
    return "'" + text.replace("'", "\\'") + "'"


def hydra_value(value: object) -> str:
    """Render a Python value as the right-hand side of a Hydra override.

    Strings and paths are quoted with :func:`hydra_quote`; ``None`` is ``null``;
    booleans are ``true``/``false``; integers and finite floats are written as
    numbers; lists and tuples become ``[a,b]`` of rendered items.

    Raises:
        LocalProtocolError: A non-finite float or a type Hydra cannot carry.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LocalProtocolError(f"{value!r} cannot be passed to sleap-nn")
        return repr(value)
    if isinstance(value, PurePath):
        return hydra_quote(value.as_posix())
    if isinstance(value, str):
        return hydra_quote(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    raise LocalProtocolError(
        f"a {type(value).__name__} cannot be passed as a Hydra override"
    )


def _override(key: str, value: object) -> str:
    # ``++`` adds the key when the user's YAML lacks it and overrides it when it
    # is there; a plain ``key=`` fails on a missing key (struct mode).
    return f"++{key}={hydra_value(value)}"


def sleap_nn_argv(python: str | None = None) -> list[str]:
    """``[python, "-m", "sleap_nn.cli"]``; ``python`` defaults to this interpreter."""
    return [python or sys.executable, "-m", SLEAP_NN_MODULE]


def _int(value: object, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise LocalProtocolError(f"{what} must be an integer, got {value!r}")
    if value < minimum:
        raise LocalProtocolError(f"{what} must be >= {minimum}, got {value}")
    return value


def _port(value: object, what: str) -> int:
    port = _int(value, what)
    if port > 65535:
        raise LocalProtocolError(f"{what} must be a TCP port, got {port}")
    return port


_MAX_NAME_BYTES = 255
"""The longest file name (in UTF-8 bytes) common file systems take."""


def sleap_nn_text_problem(text: str) -> str | None:
    """Why sleap-nn would misread ``text`` (a run name or path), else ``None``.

    Quoting gets every character through Hydra (:func:`hydra_quote`), but
    sleap-nn builds its structured config from the result and resolves it
    again, so an escaped ``${`` turns back into an interpolation there.
    """
    if "${" in text:
        return "sleap-nn reads '${' as a config interpolation; rename it"
    return None


def _check_run_name(run_name: str) -> str:
    _check_text(run_name, "run_name")
    if (
        not run_name.strip()
        or run_name in (".", "..")
        or "/" in run_name
        or "\\" in run_name
    ):
        raise PathNotAllowed(
            f"run_name must be one folder name (no '/', '\\', '.' or '..'), "
            f"got {run_name!r}"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in run_name):
        raise PathNotAllowed(f"run_name holds a control character: {run_name!r}")
    if len(run_name.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES:
        raise PathNotAllowed(
            f"run_name is longer than {_MAX_NAME_BYTES} bytes: {run_name[:40]!r}…"
        )
    problem = sleap_nn_text_problem(run_name)
    if problem is not None:
        raise LocalProtocolError(f"run_name {run_name!r}: {problem}")
    return run_name


def run_name_problem(run_name: str) -> str | None:
    """Why ``run_name`` cannot name a run folder, else ``None``.

    Any single folder name works (``=``, spaces, quotes, non-ASCII text all
    reach sleap-nn intact); refused are ``/``, ``\\``, ``.``, ``..``, blank
    names, control characters, names over 255 bytes and ``${``.
    """
    try:
        _check_run_name(run_name)
    except (PathNotAllowed, LocalProtocolError) as exc:
        return exc.message
    return None


def _check_sleap_nn_text(text: str, what: str) -> str:
    problem = sleap_nn_text_problem(text)
    if problem is not None:
        raise LocalProtocolError(f"{what} {text!r}: {problem}")
    return text


def _as_list(value: str | PurePath | Sequence[str | PurePath]) -> list[str]:
    items: Iterable[str | PurePath]
    items = [value] if isinstance(value, str | PurePath) else value
    out = []
    for item in items:
        text = item.as_posix() if isinstance(item, PurePath) else item
        out.append(_check_text(text, "a labels path"))
    return out


def _labels_list(value: str | PurePath | Sequence[str | PurePath]) -> list[str]:
    return [_check_sleap_nn_text(p, "a labels path") for p in _as_list(value)]


def _path_text(value: str | PurePath, what: str) -> str:
    text = value.as_posix() if isinstance(value, PurePath) else value
    return _check_sleap_nn_text(_check_text(text, what), what)


def train_argv(
    config_file: Path,
    *,
    train_labels: Sequence[str | PurePath] | str | PurePath | None = None,
    val_labels: Sequence[str | PurePath] | str | PurePath | None = None,
    max_epochs: int | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    run_name: str | None = None,
    ckpt_dir: str | PurePath | None = None,
    resume_ckpt_path: str | PurePath | None = None,
    publish_port: int | None = None,
    controller_port: int | None = None,
    extra_overrides: Mapping[str, object] | None = None,
    python: str | None = None,
) -> list[str]:
    """Argv for ``sleap-nn train`` on ``config_file`` with the job's overrides.

    The config is named with ``--config-name``/``--config-dir`` (B §4.5); every
    other setting is a ``++key=value`` Hydra override, and only settings that
    are not ``None`` are overridden, so the YAML decides the rest.

    Args:
        config_file: The training config YAML (any file name; the directory is
            made absolute).
        train_labels: ``data_config.train_labels_path`` (one path or several).
        val_labels: ``data_config.val_labels_path`` (one path or several);
            always sent as a list, which is what sleap-nn iterates over.
        max_epochs: ``trainer_config.max_epochs``.
        batch_size: Batch size of both the train and the validation loader.
        learning_rate: ``trainer_config.optimizer.lr``.
        run_name: ``trainer_config.run_name``: the run folder's name. One path
            component; see :func:`expected_run_dir`.
        ckpt_dir: ``trainer_config.ckpt_dir``: the folder that gets the run
            folder (sleap-nn's default is its working directory).
        resume_ckpt_path: ``trainer_config.resume_ckpt_path``.
        publish_port: ``trainer_config.zmq.publish_port``: where the trainer's
            PUB connects (the worker's progress SUB binds it).
        controller_port: ``trainer_config.zmq.controller_port``: where the
            trainer's SUB connects (the worker's controller PUB binds it).
        extra_overrides: More ``key: value`` overrides (dotted keys made of
            letters, digits, ``_`` and ``-``), rendered by :func:`hydra_value`.
        python: The interpreter that runs sleap-nn; default this one.

    Returns:
        The argv list.

    Raises:
        LocalProtocolError: A value that cannot be passed (NUL, wrong type,
            non-finite number, a malformed override key, a ``${`` in a run
            name or path: see :func:`sleap_nn_text_problem`).
        PathNotAllowed: A run name that is not a single folder name.
    """
    config_file = Path(config_file)
    name = _check_text(config_file.name, "the config file name")
    if not name:
        raise LocalProtocolError("config_file must name a file")
    config_dir = _check_text(config_file.parent.absolute().as_posix(), "config dir")
    argv = sleap_nn_argv(python) + ["train", "--config-name", name]
    argv += ["--config-dir", config_dir]

    if train_labels is not None:
        labels = _labels_list(train_labels)
        argv.append(_override("data_config.train_labels_path", labels))
    if val_labels is not None:
        labels = _labels_list(val_labels)
        argv.append(_override("data_config.val_labels_path", labels))
    if max_epochs is not None:
        argv.append(_override("trainer_config.max_epochs", _int(max_epochs, "epochs")))
    if batch_size is not None:
        size = _int(batch_size, "batch_size")
        argv.append(_override("trainer_config.train_data_loader.batch_size", size))
        argv.append(_override("trainer_config.val_data_loader.batch_size", size))
    if learning_rate is not None:
        if isinstance(learning_rate, bool) or not isinstance(
            learning_rate, int | float
        ):
            raise LocalProtocolError(
                f"learning_rate must be a number: {learning_rate!r}"
            )
        argv.append(_override("trainer_config.optimizer.lr", float(learning_rate)))
    if run_name is not None:
        argv.append(_override("trainer_config.run_name", _check_run_name(run_name)))
    if ckpt_dir is not None:
        folder = _path_text(ckpt_dir, "ckpt_dir")
        argv.append(_override("trainer_config.ckpt_dir", folder))
    if resume_ckpt_path is not None:
        resume = _path_text(resume_ckpt_path, "resume_ckpt_path")
        argv.append(_override("trainer_config.resume_ckpt_path", resume))
    if publish_port is not None:
        port = _port(publish_port, "publish_port")
        argv.append(_override("trainer_config.zmq.publish_port", port))
    if controller_port is not None:
        port = _port(controller_port, "controller_port")
        argv.append(_override("trainer_config.zmq.controller_port", port))
    for key, value in (extra_overrides or {}).items():
        if not re.fullmatch(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*", key, re.ASCII):
            raise LocalProtocolError(f"not a config key: {key!r}")
        argv.append(_override(key, value))
    return argv


def _frames_arg(frames: str) -> str:
    """``frames`` in the one syntax sleap-nn's ``--frames`` reads.

    sleap-nn 0.3.5 (``legacy_predict.frame_list``) reads either one range
    ``"a-b"`` or a comma list ``"1,2,3"``, but not a mix such as
    ``"0-100,200-300"`` (it crashes), so mixes are expanded into a list.
    """
    try:
        ranges = parse_frame_ranges(frames)
    except ValueError as exc:
        raise LocalProtocolError(str(exc)) from None
    if len(ranges) == 1:
        start, end = ranges[0]
        return f"{start}-{end}"
    out: list[str] = []
    length = 0
    for start, end in ranges:
        for i in range(start, end + 1):
            out.append(str(i))
            length += len(out[-1]) + 1
            if length > _MAX_ARG_CHARS:
                raise LocalProtocolError(
                    "frames lists too many frames for one command line"
                )
    return ",".join(out)


def track_argv(
    data_path: str | PurePath,
    model_paths: Sequence[str | PurePath],
    *,
    output_path: str | PurePath | None = None,
    batch_size: int | None = None,
    peak_threshold: float | None = None,
    frame_filter: str | None = None,
    exclude_user_labeled: bool = False,
    video_index: int | None = None,
    frames: str | None = None,
    device: str | None = None,
    json_progress: bool = False,
    python: str | None = None,
) -> list[str]:
    """Argv for ``sleap-nn track`` (B §4.5).

    Args:
        data_path: Labels (``.slp``) or a video to predict on.
        model_paths: Run folders (or their ``best.ckpt`` /
            ``training_config.yaml``); two for a top-down pipeline.
        output_path: Predictions file; sleap-nn's default is next to the data.
        batch_size: Frames per inference batch.
        peak_threshold: Minimum confidence of a peak, 0 to 1.
        frame_filter: ``suggested``, ``user`` or ``predicted`` (a
            :class:`TrackFrameFilter` or its value); ``None`` for all frames.
            ``random`` is refused: sleap-nn has no such flag.
        exclude_user_labeled: Skip frames that carry user instances.
        video_index: Only this video of a labels file.
        frames: Frame ranges such as ``"0-100,200-300"`` or ``"1,5,9"``.
        device: ``cpu``, ``cuda``, ``cuda:0``, ``mps`` or ``auto``.
        json_progress: Pass ``--gui``: one JSON object per line on stdout
            (``{"n_processed","n_total","rate","eta"}``), logs on stderr.
        python: The interpreter that runs sleap-nn; default this one.

    Returns:
        The argv list.

    Raises:
        LocalProtocolError: No model, an unknown frame filter, malformed
            frames, a value of the wrong type or a NUL character.
    """
    models = _as_list(list(model_paths)) if model_paths else []
    if not models:
        raise LocalProtocolError("track needs at least one model path")

    def text(value: str | PurePath, what: str) -> str:
        if isinstance(value, PurePath):
            value = value.as_posix()
        return _check_text(value, what)

    argv = sleap_nn_argv(python) + ["track", f"--data_path={text(data_path, 'data')}"]
    argv += [f"--model_paths={m}" for m in models]
    if output_path is not None:
        argv.append(f"--output_path={text(output_path, 'output_path')}")
    if batch_size is not None:
        argv.append(f"--batch_size={_int(batch_size, 'batch_size')}")
    if peak_threshold is not None:
        if (
            isinstance(peak_threshold, bool)
            or not isinstance(peak_threshold, int | float)
            or not 0.0 <= peak_threshold <= 1.0
        ):
            raise LocalProtocolError(f"peak_threshold must be 0-1: {peak_threshold!r}")
        argv.append(f"--peak_threshold={float(peak_threshold)!r}")
    if frame_filter is not None:
        try:
            flag = _FILTER_FLAGS[TrackFrameFilter(frame_filter)]
        except ValueError:
            raise LocalProtocolError(
                f"frame_filter must be one of {[f.value for f in TrackFrameFilter]},"
                f" got {frame_filter!r}"
            ) from None
        argv.append(flag)
    if exclude_user_labeled:
        argv.append("--exclude_user_labeled")
    if video_index is not None:
        argv.append(f"--video_index={_int(video_index, 'video_index', minimum=0)}")
    if frames is not None:
        argv.append(f"--frames={_frames_arg(_check_text(frames, 'frames'))}")
    if device is not None:
        if not re.fullmatch(r"(cpu|cuda(:\d+)?|mps|auto)", _check_text(device, "dev")):
            raise LocalProtocolError(f"not a device: {device!r}")
        argv.append(f"--device={device}")
    if json_progress:
        argv.append("--gui")
    return argv


def expected_run_dir(
    run_name: str,
    *,
    ckpt_dir: str | PurePath | None = None,
    cwd: str | PurePath | None = None,
) -> Path:
    """The run folder sleap-nn will write for ``run_name``; call it before training.

    sleap-nn writes to ``<ckpt_dir>/<run_name>`` (``ckpt_dir`` relative to the
    trainer's working directory, ``"."`` when unset), except that when that
    folder already holds a ``best.ckpt`` it picks the first ``<run_name>-<i>``
    (``i`` = 1, 2, ...) that does not exist, so as not to overwrite a model. This
    applies the same rule to the file system as it is now.

    Args:
        run_name: The run name passed to :func:`train_argv`.
        ckpt_dir: The ``ckpt_dir`` passed (or set in the YAML).
        cwd: The trainer's working directory; default this process's.

    Returns:
        The absolute run folder.

    Raises:
        PathNotAllowed: A run name that is not a single folder name.
    """
    base = Path(cwd) if cwd is not None else Path.cwd()
    if ckpt_dir is not None and str(ckpt_dir) not in ("", "None"):
        base = base / Path(ckpt_dir)
    run_dir = base.absolute() / _check_run_name(run_name)
    if (run_dir / "best.ckpt").exists():
        i = 1
        while (run_dir.parent / f"{run_name}-{i}").exists():
            i += 1
        run_dir = run_dir.parent / f"{run_name}-{i}"
    return run_dir


# ------------------------------------------------------------------ from a spec

_SAFE_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*", re.ASCII)


def _n_configs(spec: TrainJobSpec) -> int:
    return len(spec.config_contents) or len(spec.config_paths)


def sleap_run_name(
    model_type: str | None,
    labeled_frames: int | None = None,
    *,
    now: datetime | None = None,
) -> str:
    """A run folder name as SLEAP and sleap-nn make one up.

    ``YYMMDD_HHMMSS.<model_type>.n=<labeled frames>`` (sleap-nn's own default
    when a config names no run, and what SLEAP's training dialog shows), e.g.
    ``240506_070809.centroid.n=120``; without a frame count the ``.n=`` part is
    left out, without a model type ``model`` stands in.

    Args:
        model_type: ``single_instance``, ``centroid``, ``centered_instance``,
            ``bottomup``, … (a plain name; anything else becomes ``model``).
        labeled_frames: Labeled frames of the training (and validation) labels.
        now: The timestamp's time; default now (local time, as sleap-nn).
    """
    stamp = (now or datetime.now()).strftime("%y%m%d_%H%M%S")
    kind = model_type if _is_safe_tag(model_type) else "model"
    name = f"{stamp}.{kind}"
    if labeled_frames is not None and labeled_frames >= 0:
        name += f".n={labeled_frames}"
    return name


def _is_safe_tag(kind: str | None) -> bool:
    if not kind:
        return False
    return bool(_SAFE_TAG.fullmatch(kind)) and not kind.endswith(".")


def _at(values: Sequence[Any] | None, i: int) -> Any:
    return values[i] if values is not None and i < len(values) else None


def run_names(
    spec: TrainJobSpec,
    *,
    now: datetime | None = None,
    model_types: Sequence[str | None] | None = None,
    labeled_frames: int | Sequence[int | None] | None = None,
    config_run_names: Sequence[str | None] | None = None,
) -> list[str]:
    """One run folder name per config of ``spec``, in training order.

    For each model, the first that applies:

    * ``spec.run_name``: the name of a single model; for a pipeline a prefix,
      ``<run_name>.<model type>`` (or ``<run_name>.model_<i>``);
    * the run name its config's YAML sets (``trainer_config.run_name``, what
      SLEAP's dialog writes), as it is;
    * SLEAP's pattern, :func:`sleap_run_name`, with one timestamp for the whole
      pipeline, so that its models sort together.

    The model type is ``spec.model_types[i]``, else ``model_types[i]`` (read
    from the config by the worker), else ``model``. A name repeated within the
    job gets ``-<i>`` appended (sleap-nn's suffix); :func:`reserve_run_dir`
    then makes each one unique on disk.

    Args:
        spec: A validated train spec.
        now: The timestamp's time; default now (local time, as sleap-nn).
        model_types: Per config, the model type read from its YAML.
        labeled_frames: Labeled frames the job trains on (train + validation
            labels), for the ``.n=`` part: one count, or one per config.
        config_run_names: Per config, ``trainer_config.run_name`` of its YAML.

    Returns:
        The names, one per config.

    Raises:
        LocalProtocolError: The spec names no config, or a name holds ``${``.
        PathNotAllowed: A name is not one folder name.
    """
    n = _n_configs(spec)
    if n == 0:
        raise LocalProtocolError("the train spec names no config")
    now = now or datetime.now()
    names = []
    for i in range(n):
        kind = _at(spec.model_types, i) or _at(model_types, i)
        if not _is_safe_tag(kind):
            kind = None
        given = _at(config_run_names, i)
        if spec.run_name is not None:
            base = _check_run_name(spec.run_name)
            name = base if n == 1 else f"{base}.{kind or f'model_{i}'}"
        elif isinstance(given, str) and given.strip() and given != "None":
            name = given
        else:
            frames = (
                labeled_frames
                if labeled_frames is None or isinstance(labeled_frames, int)
                else _at(labeled_frames, i)
            )
            name = sleap_run_name(kind, frames, now=now)
        names.append(_check_run_name(name))
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            names[i] = name = f"{name}-{i}"
        seen.add(name)
    return names


def reserve_run_dir(ckpt_dir: str | PurePath, run_name: str) -> Path:
    """Create ``<ckpt_dir>/<run_name>`` for one model, unique on disk.

    The folder is made with an exclusive ``mkdir``, so two jobs (or two
    workers sharing storage) that pick the same name in the same second never
    share a folder: the later one gets ``<run_name>-1``, ``-2``, … (sleap-nn's
    suffix). sleap-nn trains into an existing folder that holds no
    ``best.ckpt``, so the name passed to it is the folder's name
    (``result.name``). Blocking: call it in a thread.

    Args:
        ckpt_dir: The folder that gets run folders (made if missing).
        run_name: The name wanted (see :func:`run_names`).

    Returns:
        The new, empty run folder (absolute).

    Raises:
        PathNotAllowed: ``run_name`` is not one folder name.
        OSError: The folder cannot be created.
    """
    base = Path(ckpt_dir).absolute()
    _check_run_name(run_name)
    base.mkdir(parents=True, exist_ok=True)
    folder, i = base / run_name, 0
    while True:
        try:
            folder.mkdir()
        except FileExistsError:
            i += 1
            folder = base / _check_run_name(f"{run_name}-{i}")
            continue
        return folder


@dataclass(frozen=True, slots=True)
class ModelPlan:
    """One model of a training pipeline, as the worker prepared it (the job's
    private config file, its run folder), ready for :func:`train_argv_for_spec`.

    Attributes:
        index: Position in the pipeline (0-based).
        model_type: The spec's model type for it, if given.
        config_file: The private temp file holding its YAML.
        run_name: Its run folder's name.
        ckpt_dir: The folder that gets the run folder (inside a mount).
        train_labels: Override of ``data_config.train_labels_path`` (``None``:
            keep the YAML's).
        val_labels: Override of ``data_config.val_labels_path``.
        run_dir: The run folder reserved for it (``ckpt_dir / run_name``).
        labeled_frames: Labeled frames it trains on (``None``: unknown), for
            the worker's speed measurements.
    """

    index: int
    model_type: str | None
    config_file: Path
    run_name: str
    ckpt_dir: Path
    train_labels: tuple[str, ...] | None = None
    val_labels: tuple[str, ...] | None = None
    run_dir: Path | None = None
    labeled_frames: int | None = None


def train_argv_for_spec(
    spec: TrainJobSpec,
    plan: ModelPlan,
    *,
    publish_port: int | None = None,
    controller_port: int | None = None,
    extra_overrides: Mapping[str, object] | None = None,
    python: str | None = None,
) -> list[str]:
    """Argv that trains one model of a train job: what the worker runs.

    The plan's config file, labels (the remapped copies, when the worker made
    them), run folder and ``ckpt_dir``, and the spec's ``max_epochs``,
    ``batch_size``, ``learning_rate`` and ``resume_ckpt_path``, become Hydra
    overrides.

    Args:
        spec: The spec after :func:`~sleap_rtc_core.protocol.jobspec.
            apply_path_mappings` and validation.
        plan: The model, as :func:`~.prepare.prepare_job` planned it.
        publish_port: The progress port (:class:`~sleap_rtc_core.progress.
            trainer_link.TrainerLink.publish_port`).
        controller_port: The control port (``TrainerLink.controller_port``).
        extra_overrides: More Hydra overrides (the worker's hardware; see
            :func:`train_argv`).
        python: The interpreter that runs sleap-nn; default this one.

    Returns:
        The argv list.

    Raises:
        LocalProtocolError: A value that cannot be passed to sleap-nn.
        PathNotAllowed: A run name that is not a single folder name.
    """
    return train_argv(
        plan.config_file,
        train_labels=list(plan.train_labels) if plan.train_labels else None,
        val_labels=list(plan.val_labels) if plan.val_labels else None,
        max_epochs=spec.max_epochs,
        batch_size=spec.batch_size,
        learning_rate=spec.learning_rate,
        run_name=plan.run_name,
        ckpt_dir=plan.ckpt_dir,
        resume_ckpt_path=spec.resume_ckpt_path,
        publish_port=publish_port,
        controller_port=controller_port,
        extra_overrides=extra_overrides,
        python=python,
    )


def track_argv_for_spec(
    spec: TrackJobSpec,
    *,
    data_path: str | PurePath | None = None,
    output_path: str | PurePath | None = None,
    device: str | None = None,
    json_progress: bool = False,
    python: str | None = None,
) -> list[str]:
    """Argv for a track job spec (after path mappings and validation): what
    the worker runs.

    Args:
        spec: The spec. ``frame_filter="random"`` is refused (sleap-nn has no
            such option; validation reports it first).
        data_path: What to predict on, when not ``spec.data_path`` (the
            worker's remapped copy of the labels).
        output_path: Where predictions go, when not ``spec.output_path``.
        device: See :func:`track_argv`.
        json_progress: See :func:`track_argv`.
        python: The interpreter that runs sleap-nn; default this one.

    Returns:
        The argv list.

    Raises:
        LocalProtocolError: No model, ``random`` frames, malformed frames or a
            value that cannot be passed.
    """
    frame_filter = spec.frame_filter
    if frame_filter is FrameFilter.RANDOM:
        raise LocalProtocolError("frame_filter 'random' is not supported by sleap-nn")
    return track_argv(
        spec.data_path if data_path is None else data_path,
        spec.model_paths,
        output_path=spec.output_path if output_path is None else output_path,
        batch_size=spec.batch_size,
        peak_threshold=spec.peak_threshold,
        frame_filter=None if frame_filter is None else frame_filter.value,
        exclude_user_labeled=spec.exclude_user_labeled,
        video_index=spec.video_index,
        frames=spec.frames,
        device=device,
        json_progress=json_progress,
        python=python,
    )
