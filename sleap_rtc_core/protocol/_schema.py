"""Field checking shared by every JSON wire message.

A wire message is a frozen, slotted dataclass whose field annotations are the
schema. :class:`WireObject` turns a decoded JSON object into an instance (checking
presence and type of every field, and what to do with unknown keys) and back into
a JSON-ready dict. The rules are few on purpose:

* A field without a default is required; a present ``null`` is only accepted where
  the annotation admits ``None``.
* ``int`` never accepts ``bool``; ``float`` accepts ``int``.
* ``str`` enums accept their values and encode as their values.
* Field metadata: ``non_empty`` (value must be truthy, as the reference server
  demands of ``payload``), ``keep_null`` (encode ``None`` as ``null`` instead of
  omitting it), ``extra`` (the field collects unknown keys, which are sent back
  verbatim; used by relayed messages).
* Without an ``extra`` field, unknown keys are a :class:`RemoteProtocolError`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, ClassVar, Self

from ..errors import ErrorCode, RemoteProtocolError

__all__ = ["JSONObject", "WireObject", "extra_field", "wire_field"]

JSONObject = dict[str, Any]
"""A JSON object as decoded (string keys, JSON values)."""

Checker = Callable[[Any], bool]


def wire_field(
    *,
    default: Any = dataclasses.MISSING,
    default_factory: Any = dataclasses.MISSING,
    non_empty: bool = False,
    keep_null: bool = False,
) -> Any:
    """A dataclass field with wire options (see the module docstring)."""
    meta = {"non_empty": non_empty, "keep_null": keep_null}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def extra_field() -> Any:
    """The field that collects unknown keys so they can be relayed verbatim."""
    return dataclasses.field(default_factory=dict, metadata={"extra": True})


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _checker_for(tp: Any) -> tuple[Checker, bool, str]:
    """Return (checker, allows_none, human type name) for an annotation."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        all_args = typing.get_args(tp)
        args = [a for a in all_args if a is not type(None)]
        allows_none = len(args) < len(all_args)
        parts = [_checker_for(a) for a in args]
        checks = [p[0] for p in parts]
        name = " or ".join(p[2] for p in parts)
        return (lambda v: any(c(v) for c in checks)), allows_none, name
    if tp is Any:
        return (lambda v: True), True, "any"
    if tp is str:
        return (lambda v: isinstance(v, str)), False, "string"
    if tp is bool:
        return (lambda v: isinstance(v, bool)), False, "boolean"
    if tp is int:
        return _is_int, False, "integer"
    if tp is float:
        return _is_number, False, "number"
    if isinstance(tp, type) and issubclass(tp, Enum):
        values = {m.value for m in tp}
        return (lambda v: isinstance(v, str) and v in values), False, tp.__name__
    if origin is dict or tp is dict:
        return (lambda v: isinstance(v, dict)), False, "object"
    if origin is list or tp is list:
        item_args = typing.get_args(tp)
        if item_args and item_args[0] is not Any:
            inner, _, inner_name = _checker_for(item_args[0])
            return (
                lambda v: isinstance(v, list) and all(inner(x) for x in v),
                False,
                f"list of {inner_name}",
            )
        return (lambda v: isinstance(v, list)), False, "list"
    raise TypeError(f"unsupported wire annotation {tp!r}")


@dataclasses.dataclass(frozen=True, slots=True)
class _FieldSpec:
    name: str
    check: Checker
    allows_none: bool
    type_name: str
    required: bool
    non_empty: bool
    keep_null: bool
    enum: type[Enum] | None


class WireObject:
    """Mixin for frozen dataclasses that travel as JSON objects.

    Subclasses are dataclasses; their schema is computed once, on first use.
    """

    __slots__ = ()

    _specs: ClassVar[tuple[_FieldSpec, ...] | None]
    _extra_name: ClassVar[str | None]
    _known: ClassVar[frozenset[str]]
    #: Keys handled by a subclass outside the field list (e.g. ``type``).
    RESERVED_KEYS: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._specs = None

    @classmethod
    def _schema(cls) -> tuple[_FieldSpec, ...]:
        if cls.__dict__.get("_specs") is not None:
            return cls._specs  # type: ignore[return-value]
        hints = typing.get_type_hints(cls)
        specs: list[_FieldSpec] = []
        extra_name: str | None = None
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.metadata.get("extra"):
                extra_name = f.name
                continue
            tp = hints[f.name]
            check, allows_none, type_name = _checker_for(tp)
            enum = tp if isinstance(tp, type) and issubclass(tp, Enum) else None
            required = (
                f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING
            )
            specs.append(
                _FieldSpec(
                    name=f.name,
                    check=check,
                    allows_none=allows_none,
                    type_name=type_name,
                    required=required,
                    non_empty=bool(f.metadata.get("non_empty")),
                    keep_null=bool(f.metadata.get("keep_null")),
                    enum=enum,
                )
            )
        cls._specs = tuple(specs)
        cls._extra_name = extra_name
        cls._known = frozenset(s.name for s in specs) | cls.RESERVED_KEYS
        return cls._specs

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any], *, what: str = "") -> Self:
        """Build an instance from a decoded JSON object.

        Raises:
            RemoteProtocolError: ``INVALID_MESSAGE`` naming the first bad field.
        """
        specs = cls._schema()
        label = what or cls.__name__
        kwargs: dict[str, Any] = {}
        for spec in specs:
            if spec.name not in obj:
                if spec.required:
                    raise _invalid(f"{label}: missing field '{spec.name}'")
                continue
            value = obj[spec.name]
            if value is None:
                if not spec.allows_none:
                    raise _invalid(
                        f"{label}: field '{spec.name}' must be {spec.type_name}, "
                        "not null"
                    )
            elif not spec.check(value):
                raise _invalid(
                    f"{label}: field '{spec.name}' must be {spec.type_name}, "
                    f"not {_json_type(value)}"
                )
            if spec.non_empty and not value:
                raise _invalid(f"{label}: field '{spec.name}' must not be empty")
            if spec.enum is not None and value is not None:
                value = spec.enum(value)
            kwargs[spec.name] = value
        unknown = obj.keys() - cls._known
        if unknown:
            if cls._extra_name is None:
                name = sorted(unknown)[0]
                raise _invalid(f"{label}: unknown field '{name}'")
            kwargs[cls._extra_name] = {k: obj[k] for k in unknown}
        try:
            return cls(**kwargs)
        except RemoteProtocolError:
            raise
        except (TypeError, ValueError) as exc:
            raise _invalid(f"{label}: {exc}") from None

    def to_dict(self) -> JSONObject:
        """The JSON-ready dict of this object (``None`` fields omitted unless
        ``keep_null``; extras merged back)."""
        specs = self._schema()
        out: JSONObject = {}
        for spec in specs:
            value = getattr(self, spec.name)
            if value is None and not spec.keep_null:
                continue
            if isinstance(value, Enum):
                value = value.value
            out[spec.name] = value
        extra_name = type(self)._extra_name
        if extra_name:
            for k, v in getattr(self, extra_name).items():
                out.setdefault(k, v)
        return out


def _invalid(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(message, code=ErrorCode.INVALID_MESSAGE)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
