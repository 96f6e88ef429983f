"""Structured job specs sent in ``JOB_SUBMIT`` and their decoding (PROTOCOL.md A.4,
B §4.5).

Two specs travel as JSON objects with a ``type`` discriminator:

* :class:`TrainJobSpec` (``"type": "train"``): one or more sleap-nn configs, given
  as worker paths or as YAML text (``config_content[s]``), plus overrides. Unknown
  keys are ignored, as the reference does, so newer clients can add fields.
* :class:`TrackJobSpec` (``"type": "track"``): inference with trained models.
  Unknown keys are refused, as the reference does.

Decoding (:func:`spec_from_dict`) checks only the *shape*: JSON types, the type
discriminator, required fields, enum values. Anything else a worker must refuse is
found by :func:`~.jobspec_check.check_spec`.

The worker applies ``path_mappings`` before checking (:func:`apply_path_mappings`,
by the one rule of :mod:`.paths`: the longest key that is the path or one of its
folders, ``/`` and ``\\`` alike, for the paths of the spec and inside the YAML text).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Self

from ..errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from ._schema import JSONObject
from .json_text import dumps
from .paths import map_path, map_paths_in_text

__all__ = [
    "FrameFilter",
    "JobSpec",
    "TrackJobSpec",
    "TrainJobSpec",
    "apply_path_mappings",
    "spec_from_dict",
]


class FrameFilter(StrEnum):
    """Which frames a track job runs on (``None`` means all frames)."""

    SUGGESTED = "suggested"
    USER = "user"
    PREDICTED = "predicted"
    RANDOM = "random"


# ------------------------------------------------------------------ field shapes


def _fail(message: str) -> LocalProtocolError:
    return LocalProtocolError(message, code=ErrorCode.INVALID_MESSAGE)


def _opt_str(owner: str, name: str, v: Any) -> str | None:
    if v is not None and not isinstance(v, str):
        raise _fail(f"{owner}: '{name}' must be a string")
    return v


def _opt_int(owner: str, name: str, v: Any) -> int | None:
    if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
        raise _fail(f"{owner}: '{name}' must be an integer")
    return v


def _opt_float(owner: str, name: str, v: Any) -> float | None:
    if v is not None and (not isinstance(v, int | float) or isinstance(v, bool)):
        raise _fail(f"{owner}: '{name}' must be a number")
    return v


def _bool(owner: str, name: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise _fail(f"{owner}: '{name}' must be true or false")
    return v


def _strs(owner: str, name: str, v: Any) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, str | bytes) or not isinstance(v, Sequence):
        raise _fail(f"{owner}: '{name}' must be a list of strings")
    if not all(isinstance(x, str) for x in v):
        raise _fail(f"{owner}: '{name}' must be a list of strings")
    return tuple(v)


def _mapping(owner: str, name: str, v: Any) -> dict[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, Mapping) or not all(isinstance(k, str) for k in v):
        raise _fail(f"{owner}: '{name}' must be an object")
    return dict(v)


def _set(obj: object, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


def _drop_empty(data: dict[str, Any]) -> JSONObject:
    """The reference serializer: drop ``None``, ``False``, ``[]`` and ``{}``."""
    out: JSONObject = {}
    for k, v in data.items():
        if v is None or v is False or (isinstance(v, tuple | list | dict) and not v):
            continue
        if isinstance(v, tuple):
            v = list(v)
        elif isinstance(v, dict):
            v = dict(v)
        out[k] = v
    return out


@contextmanager
def _as_remote() -> Iterator[None]:
    """Peer input: re-raise our shape errors as :class:`RemoteProtocolError`."""
    try:
        yield
    except LocalProtocolError as exc:
        raise RemoteProtocolError(exc.message, code=exc.code) from None


class _SpecBase:
    """What both specs share: the ``type`` tag and JSON helpers."""

    __slots__ = ()
    TYPE: ClassVar[str]

    def to_dict(self) -> JSONObject:
        """The JSON object of this spec, without null/false/empty fields."""
        data = {"type": self.TYPE}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            data[f.name] = getattr(self, f.name)
        return _drop_empty(data)

    def to_json(self) -> str:
        """Compact JSON text of :meth:`to_dict` (the ``JOB_SUBMIT`` argument)."""
        return dumps(self.to_dict())

    @classmethod
    def _check_type(cls, obj: object) -> dict[str, Any]:
        if not isinstance(obj, Mapping):
            raise RemoteProtocolError(
                "job spec must be a JSON object", code=ErrorCode.INVALID_MESSAGE
            )
        data = dict(obj)
        kind = data.pop("type", cls.TYPE)
        if kind != cls.TYPE:
            raise RemoteProtocolError(
                f"job spec type must be {cls.TYPE!r}, not {kind!r}",
                code=ErrorCode.INVALID_MESSAGE,
            )
        return data


# ------------------------------------------------------------------------- specs


@dataclass(frozen=True, slots=True)
class TrainJobSpec(_SpecBase):
    """A training job: one config (or a sequential pipeline of several).

    Either form of config may be given; ``config_path`` is normalised into
    ``config_paths`` and ``config_content`` into ``config_contents``. When YAML text
    is given, the worker writes it to private temp files and ignores
    ``config_paths``. A spec without any config can be built; :func:`validate_spec`
    reports it as ``MISSING_CONFIG``.

    Attributes:
        config_path: A worker path of one config YAML (legacy single form).
        config_paths: Worker paths of the configs, trained in order.
        config_content: The YAML text of one config (legacy single form).
        config_contents: YAML texts of the configs, trained in order.
        model_types: Model type per config, aligned with the configs
            (e.g. ``centroid``, ``centered_instance``).
        labels_path: Overrides ``data_config.train_labels_path``.
        val_labels_path: Overrides ``data_config.val_labels_path``.
        max_epochs: Overrides ``trainer_config.max_epochs`` (1–10000).
        batch_size: Overrides the train and val loader batch size (1–256).
        learning_rate: Overrides ``trainer_config.optimizer.lr`` (1e-10–1).
        run_name: Overrides ``trainer_config.run_name`` (one path component).
        resume_ckpt_path: Checkpoint to resume from.
        path_mappings: Client path → worker path, applied before validation.
            Treat as read-only.
        run_inference: After training, predict the suggested frames of the
            labels and stream the predictions back.
    """

    TYPE: ClassVar[str] = "train"

    config_path: str | None = None
    config_paths: tuple[str, ...] = ()
    config_content: str | None = None
    config_contents: tuple[str, ...] = ()
    model_types: tuple[str, ...] = ()
    labels_path: str | None = None
    val_labels_path: str | None = None
    max_epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    run_name: str | None = None
    resume_ckpt_path: str | None = None
    path_mappings: dict[str, str] = field(default_factory=dict, hash=False)
    run_inference: bool = False

    def __post_init__(self) -> None:
        o = "train spec"
        for name in (
            "config_path",
            "config_content",
            "labels_path",
            "val_labels_path",
            "run_name",
            "resume_ckpt_path",
        ):
            _opt_str(o, name, getattr(self, name))
        for name in ("config_paths", "config_contents", "model_types"):
            _set(self, name, _strs(o, name, getattr(self, name)))
        _opt_int(o, "max_epochs", self.max_epochs)
        _opt_int(o, "batch_size", self.batch_size)
        _opt_float(o, "learning_rate", self.learning_rate)
        _bool(o, "run_inference", self.run_inference)
        _set(self, "path_mappings", _mapping(o, "path_mappings", self.path_mappings))
        if self.config_path and not self.config_paths:
            _set(self, "config_paths", (self.config_path,))
        if self.config_content and not self.config_contents:
            _set(self, "config_contents", (self.config_content,))

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Self:
        """Build a train spec from its JSON object; unknown keys are ignored.

        Raises:
            RemoteProtocolError: ``INVALID_MESSAGE`` for a non-object, another
                ``type`` or a field of the wrong type.
        """
        data = cls._check_type(obj)
        known = {k: v for k, v in data.items() if k in _TRAIN_FIELDS}
        with _as_remote():
            return cls(**known)


@dataclass(frozen=True, slots=True)
class TrackJobSpec(_SpecBase):
    """An inference ("track") job with trained models.

    Attributes:
        data_path: The ``.slp`` or video file to predict on (required).
        model_paths: Trained model folders (at least one).
        output_path: Where to write predictions; its folder must be usable.
        batch_size: Inference batch size (1–256).
        peak_threshold: Peak detection threshold (0–1).
        only_suggested_frames: Deprecated; ``True`` means
            ``frame_filter="suggested"`` unless a filter is given.
        exclude_user_labeled: Skip frames the user labeled.
        frames: Frame ranges such as ``"0-100,200-300"``.
        frame_filter: A :class:`FrameFilter`, or ``None`` for all frames
            (``random`` is accepted in a spec but refused by validation).
        video_index: Predict only this video of the labels file.
        path_mappings: Client path → worker path, applied before validation.
            Treat as read-only.
    """

    TYPE: ClassVar[str] = "track"

    data_path: str
    model_paths: tuple[str, ...] = ()
    output_path: str | None = None
    batch_size: int | None = None
    peak_threshold: float | None = None
    only_suggested_frames: bool = False
    exclude_user_labeled: bool = False
    frames: str | None = None
    frame_filter: FrameFilter | None = None
    video_index: int | None = None
    path_mappings: dict[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        o = "track spec"
        if not isinstance(self.data_path, str):
            raise _fail(f"{o}: 'data_path' must be a string")
        _set(self, "model_paths", _strs(o, "model_paths", self.model_paths))
        _opt_str(o, "output_path", self.output_path)
        _opt_str(o, "frames", self.frames)
        _opt_int(o, "batch_size", self.batch_size)
        _opt_int(o, "video_index", self.video_index)
        _opt_float(o, "peak_threshold", self.peak_threshold)
        _bool(o, "only_suggested_frames", self.only_suggested_frames)
        _bool(o, "exclude_user_labeled", self.exclude_user_labeled)
        _set(self, "path_mappings", _mapping(o, "path_mappings", self.path_mappings))
        ff = self.frame_filter
        if ff is not None:
            if not isinstance(ff, str) or ff not in _FRAME_FILTERS:
                raise _fail(
                    f"{o}: 'frame_filter' must be one of "
                    f"{sorted(_FRAME_FILTERS)} or null, not {ff!r}"
                )
            _set(self, "frame_filter", FrameFilter(ff))
        elif self.only_suggested_frames:
            _set(self, "frame_filter", FrameFilter.SUGGESTED)

    def to_dict(self) -> JSONObject:
        """The JSON object of this spec; ``model_paths`` is always present."""
        out = _SpecBase.to_dict(self)
        out.setdefault("model_paths", [])
        return out

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Self:
        """Build a track spec from its JSON object; unknown keys are refused.

        Raises:
            RemoteProtocolError: ``INVALID_MESSAGE`` for a non-object, another
                ``type``, a missing ``data_path``, an unknown key or a field of
                the wrong type.
        """
        data = cls._check_type(obj)
        unknown = sorted(k for k in data if k not in _TRACK_FIELDS)
        if unknown:
            raise RemoteProtocolError(
                f"track spec: unknown field {unknown[0]!r}",
                code=ErrorCode.INVALID_MESSAGE,
            )
        if "data_path" not in data:
            raise RemoteProtocolError(
                "track spec: missing field 'data_path'", code=ErrorCode.INVALID_MESSAGE
            )
        with _as_remote():
            return cls(**data)


JobSpec = TrainJobSpec | TrackJobSpec
"""Either kind of job spec."""

_TRAIN_FIELDS = frozenset(f.name for f in dataclasses.fields(TrainJobSpec))
_TRACK_FIELDS = frozenset(f.name for f in dataclasses.fields(TrackJobSpec))
_FRAME_FILTERS = frozenset(m.value for m in FrameFilter)
_SPEC_CLASSES: Mapping[str, type[TrainJobSpec] | type[TrackJobSpec]] = {
    TrainJobSpec.TYPE: TrainJobSpec,
    TrackJobSpec.TYPE: TrackJobSpec,
}


def spec_from_dict(obj: object) -> JobSpec:
    """Decode a job spec object, dispatching on ``type``.

    Raises:
        RemoteProtocolError: ``INVALID_MESSAGE`` for a non-object, a missing or
            unknown ``type``, or a spec its class refuses.
    """
    if not isinstance(obj, Mapping):
        raise RemoteProtocolError(
            "job spec must be a JSON object", code=ErrorCode.INVALID_MESSAGE
        )
    kind = obj.get("type")
    cls = _SPEC_CLASSES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise RemoteProtocolError(
            f"unknown job spec type {kind!r}", code=ErrorCode.INVALID_MESSAGE
        )
    return cls.from_dict(obj)


# ---------------------------------------------------------------------- mappings


def apply_path_mappings(spec: JobSpec) -> JobSpec:
    """A copy of ``spec`` with its own ``path_mappings`` applied by the one
    rule of :mod:`.paths`: to ``labels_path``, ``val_labels_path`` (train),
    ``data_path`` and ``model_paths`` (track), and to every path inside each
    ``config_contents`` text. Video paths inside ``.slp`` files are the
    worker's business (it writes a resolved copy, by the same rule).
    """
    m = spec.path_mappings
    if not m:
        return spec
    if isinstance(spec, TrackJobSpec):
        return dataclasses.replace(
            spec,
            data_path=map_path(spec.data_path, m),
            model_paths=tuple(map_path(p, m) for p in spec.model_paths),
        )
    content = spec.config_content
    return dataclasses.replace(
        spec,
        config_content=None if content is None else map_paths_in_text(content, m),
        config_contents=tuple(map_paths_in_text(t, m) for t in spec.config_contents),
        labels_path=_map_opt(spec.labels_path, m),
        val_labels_path=_map_opt(spec.val_labels_path, m),
    )


def _map_opt(path: str | None, m: Mapping[str, str]) -> str | None:
    return None if path is None else map_path(path, m)
