"""Argument kinds of data-channel text frames: how one ``::`` argument travels.

A kind decodes the argument text (raising :class:`RemoteProtocolError`), encodes
a value back to text, and checks a value built locally. Numbers are ASCII digits
only (``int()`` would also take ``" 1_0"`` or Arabic-Indic digits), at most 20 of
them so that a hostile frame cannot make ``int()`` work hard.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from . import json_text

__all__ = [
    "FLAG",
    "FLOAT",
    "INT",
    "NAME",
    "OBJECT",
    "OBJECTS",
    "OPT_NAME",
    "OPT_UINT",
    "TEXT",
    "UINT",
    "Arg",
    "clip",
    "enum_arg",
    "invalid",
    "is_b64url",
    "is_sha256_hex",
    "is_uint",
    "local",
    "parse_uint",
]

_INT_RE = re.compile(r"-?[0-9]{1,20}")
_UINT_RE = re.compile(r"[0-9]{1,20}")
_FLOAT_RE = re.compile(
    r"[-+]?(?:[0-9]{1,40}(?:\.[0-9]{0,40})?|\.[0-9]{1,40})(?:[eE][-+]?[0-9]{1,4})?"
)
_B64URL_RE = re.compile(r"[A-Za-z0-9_-]+")
_SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")


_NONE_WORDS = frozenset({"", "None", "null"})
"""Argument texts that reference clients send for "not given" (``str(None)``)."""


def clip(value: object, limit: int = 40) -> str:
    """``repr`` of a value cut to ``limit`` characters, for error messages: a
    hostile frame must not put megabytes into a log line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def invalid(message: str) -> RemoteProtocolError:
    """A peer's message is malformed (``INVALID_MESSAGE``)."""
    return RemoteProtocolError(message, code=ErrorCode.INVALID_MESSAGE)


def local(message: str) -> LocalProtocolError:
    """We built a message that cannot be sent."""
    return LocalProtocolError(message)


def is_b64url(text: str) -> bool:
    """Whether ``text`` is non-empty unpadded base64url of a whole byte count."""
    return _B64URL_RE.fullmatch(text) is not None and len(text) % 4 != 1


def is_sha256_hex(text: object) -> bool:
    """Whether ``text`` is a SHA-256 digest in hex (either case)."""
    return isinstance(text, str) and _SHA256_RE.fullmatch(text) is not None


def parse_uint(text: str) -> int | None:
    """The value of an unsigned ASCII decimal, or ``None`` if it is not one."""
    return int(text) if _UINT_RE.fullmatch(text) else None


@dataclass(frozen=True, slots=True)
class Arg:
    """How one argument travels.

    Attributes:
        kind: What the value must be, for error messages.
        decode: Argument text → value; raises :class:`RemoteProtocolError`.
        encode: Value → argument text.
        check: Whether a value is acceptable.
        text: Free text, to which the separator rules apply where the argument
            is not the greedy one (see :mod:`._channel_base`).
    """

    kind: str
    decode: Callable[[str], Any]
    encode: Callable[[Any], str]
    check: Callable[[Any], bool]
    text: bool = False


_INT_LIMIT = 10**20
"""Integer arguments travel as at most 20 digits (see the module docstring)."""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and abs(v) < _INT_LIMIT


def is_uint(v: Any) -> bool:
    """Whether ``v`` is an integer that travels as an unsigned argument."""
    return _is_int(v) and v >= 0


def _same(s: Any) -> Any:
    return s


def _name(s: str) -> str:
    if not s:
        raise invalid("must not be empty")
    return s


def _int(s: str) -> int:
    if _INT_RE.fullmatch(s) is None:
        raise invalid(f"expected an integer, got {clip(s)}")
    return int(s)


def _uint(s: str) -> int:
    value = parse_uint(s)
    if value is None:
        raise invalid(f"expected a non-negative integer, got {clip(s)}")
    return value


def _opt_uint(s: str) -> int | None:
    return None if s in _NONE_WORDS else _uint(s)


def _opt_name(s: str) -> str | None:
    return None if s in _NONE_WORDS else s


def _flag(s: str) -> bool:
    if s not in ("0", "1"):
        raise invalid(f"expected 1 or 0, got {clip(s)}")
    return s == "1"


def _float(s: str) -> float:
    value = float(s) if _FLOAT_RE.fullmatch(s) else math.nan
    if not math.isfinite(value):
        raise invalid(f"expected a finite number, got {clip(s)}")
    return value


def _is_float(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _objects(s: str) -> list[dict[str, Any]]:
    value = json_text.loads(s)
    if not _is_objects(value):
        raise invalid("expected a JSON array of objects")
    return list(value)


def _is_objects(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, dict) for x in v)


TEXT = Arg("text", str, _same, lambda v: isinstance(v, str), text=True)
"""Any text, verbatim (may be empty)."""
NAME = Arg(
    "non-empty text", _name, _same, lambda v: isinstance(v, str) and v != "", True
)
"""Non-empty text (ids, paths, names)."""
OPT_NAME = Arg(
    "name or None",
    _opt_name,
    lambda v: v or "",
    lambda v: v is None or (isinstance(v, str) and v not in _NONE_WORDS),
    text=True,
)
"""Optional name: empty, ``None`` or ``null`` mean ``None`` (reference clients
format a missing value with ``str()``), so a name may not be one of those."""
INT = Arg("integer", _int, str, _is_int)
"""A signed integer (exit codes)."""
UINT = Arg("non-negative integer", _uint, str, is_uint)
"""A size, offset or count."""
OPT_UINT = Arg(
    "non-negative integer or None",
    _opt_uint,
    lambda v: "" if v is None else str(v),
    lambda v: v is None or is_uint(v),
)
"""Optional size: empty, ``None`` or ``null`` mean ``None``; sent as empty."""
FLAG = Arg("1 or 0", _flag, lambda v: "1" if v else "0", lambda v: isinstance(v, bool))
"""A boolean as ``1`` or ``0``."""
FLOAT = Arg("finite number", _float, lambda v: repr(float(v)), _is_float)
"""A finite decimal number."""
OBJECT = Arg(
    "JSON object",
    json_text.loads_object,
    json_text.dumps,
    lambda v: isinstance(v, dict),
)
"""A JSON object (``INVALID_JSON`` when unparseable, else ``INVALID_MESSAGE``)."""
OBJECTS = Arg("JSON array of objects", _objects, json_text.dumps, _is_objects)
"""A JSON array whose items are objects."""


def enum_arg(enum: type[StrEnum]) -> Arg:
    """The kind of a string enum: it travels as its value."""

    def decode(s: str) -> StrEnum:
        try:
            return enum(s)
        except ValueError:
            allowed = ", ".join(m.value for m in enum)
            raise invalid(f"expected one of {allowed}, got {clip(s)}") from None

    def check(v: Any) -> bool:
        return isinstance(v, enum)

    return Arg(enum.__name__, decode, lambda v: str(v.value), check)
