"""What a worker must refuse in a job spec, all at once (PROTOCOL.md A.4, B §4.5).

:func:`check_spec` is pure and returns **every** problem at once as
:class:`FieldError` items (the ``errors`` of ``JOB_REJECTED``), with the configs
it parsed on the way so that nobody parses them again: numeric ranges, missing
or unparsable configs, frame syntax, path mappings, and, through the
``check_path(field, path)`` seam, the worker's mount confinement for every path the
job would read (``labels_path``, configs, ``data_config.*_labels_path`` inside the
YAML, ``data_path``, ``model_paths[i]``, the parent of ``output_path``, ...).

Field names in errors follow the reference: ``config_path`` / ``config_path[i]``
for config files, ``config`` / ``config[i]`` for YAML text (``[i]`` only when
there are several), and ``config.``/``config[i].`` prefixes for paths found inside
the YAML, e.g. ``config[1].data_config.train_labels_path[0]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePath
from typing import Any

import yaml

from . import config_policy
from ._schema import WireObject
from .jobspec import FrameFilter, JobSpec, TrackJobSpec, TrainJobSpec

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_CONFIG_DEPTH",
    "MAX_CONFIG_NODES",
    "NUMERIC_RANGES",
    "CheckedSpec",
    "FieldError",
    "PathCheck",
    "SpecErrorCode",
    "check_spec",
    "parse_frame_ranges",
    "validate_spec",
]

MAX_CONFIG_BYTES = 256 * 1024
"""Default bound on one config's YAML text (UTF-8 bytes)."""

MAX_CONFIG_DEPTH = 64
"""How deeply mappings and sequences may nest in a config. libyaml's composer
recurses in C and crashes the process (SIGSEGV) on a document nested some 10^5
levels deep, so nesting is measured on the event stream before composing."""

NUMERIC_RANGES: Mapping[str, tuple[float, float]] = {
    "max_epochs": (1, 10000),
    "batch_size": (1, 256),
    "learning_rate": (1e-10, 1.0),
    "peak_threshold": (0.0, 1.0),
}
"""Inclusive ``(low, high)`` bounds of numeric spec fields (reference values)."""

MAX_CONFIG_NODES = 20_000
"""How many YAML nodes one config may have (a full sleap-nn config has about
500)."""

_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_FRAMES = re.compile(r"\s*\d+\s*(?:-\s*\d+\s*)?(?:,\s*\d+\s*(?:-\s*\d+\s*)?)*")
_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class SpecErrorCode(StrEnum):
    """``code`` values of :class:`FieldError`."""

    NOT_ALLOWED = "NOT_ALLOWED"
    """The path resolves outside every mount (or the worker has none)."""
    PATH_NOT_FOUND = "PATH_NOT_FOUND"
    """The path is inside a mount but does not exist."""
    INVALID_PATH = "INVALID_PATH"
    """The path cannot be a path (empty, NUL byte, unresolvable)."""
    CONFIG_PARSE_ERROR = "CONFIG_PARSE_ERROR"
    """A config is not YAML or not a mapping."""
    CONFIG_TOO_LARGE = "CONFIG_TOO_LARGE"
    """A config's YAML text is larger than the worker accepts."""
    MISSING_CONFIG = "MISSING_CONFIG"
    """A train spec names no config at all."""
    OUT_OF_RANGE = "OUT_OF_RANGE"
    """A number outside :data:`NUMERIC_RANGES` (or a negative index)."""
    INVALID_VALUE = "INVALID_VALUE"
    """A value of the right type that the worker cannot use."""


@dataclass(frozen=True, slots=True)
class FieldError(WireObject):
    """One problem with one field of a job spec (an item of ``JOB_REJECTED``).

    Attributes:
        field: The field, e.g. ``labels_path`` or ``model_paths[1]``.
        message: What is wrong, for a person.
        code: A :class:`SpecErrorCode` value (always set by :func:`validate_spec`;
            optional on the wire, older workers omit it).
        path: The offending path, for path errors.
    """

    field: str
    message: str
    code: str | None = None
    path: str | None = None


PathCheck = Callable[[str, str], FieldError | None]
"""``check_path(field, path)``: the worker's mount confinement and existence check;
returns the error for that field, or ``None`` when the path is usable."""


def parse_frame_ranges(frames: str) -> list[tuple[int, int]]:
    """Parse ``"0-100,200-300,7"`` into inclusive ``(start, end)`` pairs.

    Raises:
        ValueError: for bad syntax or a range whose end is before its start.
    """
    if not _FRAMES.fullmatch(frames):
        raise ValueError(f"frames must look like '0-100,200-300', not {frames!r}")
    ranges: list[tuple[int, int]] = []
    for part in frames.split(","):
        lo, _, hi = part.partition("-")
        start = int(lo)
        end = int(hi) if hi.strip() else start
        if end < start:
            raise ValueError(f"frame range {part.strip()!r} ends before it starts")
        ranges.append((start, end))
    return ranges


class _Collector:
    """Accumulates field errors; runs the path seam on well-formed paths."""

    __slots__ = ("check_path", "configs", "errors")

    def __init__(self, check_path: PathCheck | None) -> None:
        self.errors: list[FieldError] = []
        self.configs: list[dict[Any, Any] | None] = []
        self.check_path = check_path

    def add(
        self, name: str, message: str, code: SpecErrorCode, path: Any = None
    ) -> None:
        self.errors.append(
            FieldError(
                name, message, code.value, path if isinstance(path, str) else None
            )
        )

    def path(self, name: str, path: Any) -> None:
        if not isinstance(path, str) or not path.strip():
            self.add(name, "path is empty", SpecErrorCode.INVALID_PATH, path)
        elif "\x00" in path:
            self.add(name, "path contains a NUL byte", SpecErrorCode.INVALID_PATH, path)
        elif self.check_path is not None:
            error = self.check_path(name, path)
            if error is not None:
                self.errors.append(error)

    def number(self, name: str, value: float | None) -> None:
        if value is None:
            return
        lo, hi = NUMERIC_RANGES[name]
        if not (lo <= value <= hi):  # also refuses NaN
            self.add(
                name,
                f"must be between {lo:g} and {hi:g}, got {value!r}",
                SpecErrorCode.OUT_OF_RANGE,
            )

    def mappings(self, mappings: Mapping[str, Any]) -> None:
        for key, value in mappings.items():
            if not key or not isinstance(value, str) or not value:
                self.add(
                    "path_mappings",
                    f"mapping {key!r} must map a non-empty path to a non-empty path",
                    SpecErrorCode.INVALID_VALUE,
                )


def _yaml_shape_problem(text: str) -> str | None:
    """Why a YAML text is refused before it is composed, else ``None``.

    Measured on the event stream, so nothing is built first: nesting deeper
    than :data:`MAX_CONFIG_DEPTH` (libyaml's composer would crash), more than
    :data:`MAX_CONFIG_NODES` nodes, or any anchor or alias (an alias bomb
    expands a few lines into billions of nodes; sleap-nn configs need none).

    Raises:
        yaml.YAMLError: for text that does not parse.
    """
    depth = nodes = 0
    for event in yaml.parse(text, Loader=_SafeLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            return "YAML anchors and aliases (&, *) are not accepted"
        if isinstance(event, yaml.NodeEvent):
            nodes += 1
            if nodes > MAX_CONFIG_NODES:
                return f"config has more than {MAX_CONFIG_NODES} YAML nodes"
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_CONFIG_DEPTH:
                return f"config nests deeper than {MAX_CONFIG_DEPTH} levels"
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return None


def _parse_config(
    c: _Collector, name: str, text: str, max_bytes: int
) -> dict[Any, Any] | None:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        c.add(
            name,
            f"config is {size} bytes, more than {max_bytes}",
            SpecErrorCode.CONFIG_TOO_LARGE,
        )
        return None
    try:
        problem = _yaml_shape_problem(text)
        if problem is not None:
            c.add(name, problem, SpecErrorCode.CONFIG_PARSE_ERROR)
            return None
        parsed = yaml.load(text, Loader=_SafeLoader)
    except (
        yaml.YAMLError,
        ValueError,
        TypeError,
        OverflowError,
        RecursionError,
    ) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        c.add(
            name,
            f"config is not valid YAML: {detail}",
            SpecErrorCode.CONFIG_PARSE_ERROR,
        )
        return None
    if not isinstance(parsed, dict):
        c.add(
            name,
            f"config must be a YAML mapping, not {type(parsed).__name__}",
            SpecErrorCode.CONFIG_PARSE_ERROR,
        )
        return None
    return parsed


def _config_labels(
    c: _Collector, prefix: str, cfg: dict[Any, Any], spec: TrainJobSpec
) -> None:
    data_config = cfg.get("data_config")
    if data_config is None:
        return
    if not isinstance(data_config, dict):
        c.add(f"{prefix}.data_config", "must be a mapping", SpecErrorCode.INVALID_VALUE)
        return
    for key, override in (
        ("train_labels_path", spec.labels_path),
        ("val_labels_path", spec.val_labels_path),
    ):
        if override:
            continue
        value = data_config.get(key)
        name = f"{prefix}.data_config.{key}"
        if value is None or value == "" or value == []:
            continue
        if isinstance(value, str):
            c.path(name, value)
        elif isinstance(value, list):
            for j, item in enumerate(value):
                if isinstance(item, str):
                    c.path(f"{name}[{j}]", item)
                else:
                    c.add(f"{name}[{j}]", "must be a path", SpecErrorCode.INVALID_VALUE)
        else:
            c.add(
                name, "must be a path or a list of paths", SpecErrorCode.INVALID_VALUE
            )


def _config_allow_list(c: _Collector, prefix: str, cfg: dict[Any, Any]) -> None:
    """The rules of :mod:`.config_policy`: sleap-nn's keys only, no ``${``,
    every file sleap-nn would read inside the mounts."""
    for key in config_policy.unknown_top_level(cfg):
        c.add(
            f"{prefix}.{key}",
            f"{key!r} is not part of a sleap-nn config (Hydra defaults, "
            "searchpath and hydra.* are not accepted)",
            SpecErrorCode.NOT_ALLOWED,
        )
    for dotted in config_policy.interpolated(cfg):
        c.add(
            f"{prefix}.{dotted}",
            "interpolations (${...}) are not accepted in a job's config",
            SpecErrorCode.INVALID_VALUE,
        )
    for dotted, value in config_policy.read_paths(cfg):
        if isinstance(value, str):
            c.path(f"{prefix}.{dotted}", value)
        else:
            c.add(f"{prefix}.{dotted}", "must be a path", SpecErrorCode.INVALID_VALUE)


def _validate_train(c: _Collector, spec: TrainJobSpec, max_config_bytes: int) -> None:
    contents, paths = spec.config_contents, spec.config_paths
    if not contents and not paths:
        c.add(
            "config",
            "no config: give config_content(s) or config_path(s)",
            SpecErrorCode.MISSING_CONFIG,
        )
    if contents:
        several = len(contents) > 1
        for i, text in enumerate(contents):
            name = f"config[{i}]" if several else "config"
            cfg = _parse_config(c, name, text, max_config_bytes)
            c.configs.append(cfg)
            if cfg is not None:
                _config_labels(c, name, cfg, spec)
                _config_allow_list(c, name, cfg)
    else:
        several = len(paths) > 1
        for i, path in enumerate(paths):
            c.path(f"config_path[{i}]" if several else "config_path", path)
    n_configs = len(contents) or len(paths)
    if spec.model_types and len(spec.model_types) != n_configs:
        c.add(
            "model_types",
            f"{len(spec.model_types)} model types for {n_configs} configs",
            SpecErrorCode.INVALID_VALUE,
        )
    for name in ("labels_path", "val_labels_path", "resume_ckpt_path"):
        value = getattr(spec, name)
        if value is not None:
            c.path(name, value)
    c.number("max_epochs", spec.max_epochs)
    c.number("batch_size", spec.batch_size)
    c.number("learning_rate", spec.learning_rate)
    if spec.run_name is not None and (
        not _RUN_NAME.fullmatch(spec.run_name) or spec.run_name.endswith(".")
    ):
        c.add(
            "run_name",
            "must be one folder name of letters, digits, '.', '_' or '-'",
            SpecErrorCode.INVALID_VALUE,
        )


def _validate_track(c: _Collector, spec: TrackJobSpec) -> None:
    c.path("data_path", spec.data_path)
    if not spec.model_paths:
        c.add(
            "model_paths",
            "at least one model path is required",
            SpecErrorCode.INVALID_VALUE,
        )
    for i, path in enumerate(spec.model_paths):
        c.path(f"model_paths[{i}]", path)
    if spec.output_path is not None:
        if not spec.output_path.strip() or "\x00" in spec.output_path:
            c.add(
                "output_path",
                "invalid output path",
                SpecErrorCode.INVALID_PATH,
                spec.output_path,
            )
        else:
            c.path("output_path", str(PurePath(spec.output_path).parent))
    c.number("batch_size", spec.batch_size)
    c.number("peak_threshold", spec.peak_threshold)
    if spec.video_index is not None and spec.video_index < 0:
        c.add("video_index", "must be 0 or more", SpecErrorCode.OUT_OF_RANGE)
    if spec.frames is not None:
        try:
            parse_frame_ranges(spec.frames)
        except ValueError as exc:
            c.add("frames", str(exc), SpecErrorCode.INVALID_VALUE)
    if spec.frame_filter is FrameFilter.RANDOM:
        c.add(
            "frame_filter",
            "'random' is not supported by sleap-nn track",
            SpecErrorCode.INVALID_VALUE,
        )


@dataclass(frozen=True, slots=True)
class CheckedSpec:
    """What :func:`check_spec` found.

    Attributes:
        errors: Every field error (empty: the spec is acceptable).
        configs: Each ``config_contents`` text parsed, in order (``None`` for a
            text that was refused), so that nobody parses it again.
    """

    errors: list[FieldError]
    configs: tuple[dict[Any, Any] | None, ...]


def validate_spec(
    spec: JobSpec,
    *,
    check_path: PathCheck | None = None,
    max_config_bytes: int = MAX_CONFIG_BYTES,
) -> list[FieldError]:
    """Every reason a worker must refuse ``spec``, all at once
    (:func:`check_spec`'s errors)."""
    return check_spec(
        spec, check_path=check_path, max_config_bytes=max_config_bytes
    ).errors


def check_spec(
    spec: JobSpec,
    *,
    check_path: PathCheck | None = None,
    max_config_bytes: int = MAX_CONFIG_BYTES,
) -> CheckedSpec:
    """Every reason a worker must refuse ``spec``, all at once, and its
    configs as parsed while checking them.

    Pure: the only access to the outside is ``check_path``, called once for every
    well-formed path the job would read (for ``output_path``, its parent folder).
    Empty paths and paths with NUL bytes are ``INVALID_PATH`` without calling it.

    Args:
        spec: The spec, after :func:`apply_path_mappings`.
        check_path: ``(field, path) -> FieldError | None``; ``None`` skips path
            checks (e.g. on the client, before sending).
        max_config_bytes: Bound on each config's YAML text.

    Returns:
        The field errors and the parsed configs.
    """
    c = _Collector(check_path)
    if isinstance(spec, TrainJobSpec):
        _validate_train(c, spec, max_config_bytes)
    elif isinstance(spec, TrackJobSpec):
        _validate_track(c, spec)
    else:
        c.add(
            "type",
            f"not a job spec: {type(spec).__name__}",
            SpecErrorCode.INVALID_VALUE,
        )
        return CheckedSpec(c.errors, ())
    c.mappings(spec.path_mappings)
    return CheckedSpec(c.errors, tuple(c.configs))
