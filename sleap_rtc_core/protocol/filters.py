"""The discovery filter language of ``discover_peers`` (PROTOCOL.md A.1, B §1.5).

A filter is a JSON object whose clauses are ANDed::

    {"role": "worker",
     "tags": ["sleap-rtc", "training-worker"],
     "properties": {"status": "available", "gpu_memory_mb": {"$gte": 8000}}}

* ``role``: the peer's role equals the string.
* ``tags``: the peer's ``metadata.tags`` share at least one element with the list
  (an empty list matches nothing, as the reference server does).
* ``properties``: for each key, a condition on ``metadata.properties[key]``. A plain
  value means equality; an object holds operators, all of which must hold:
  ``$eq``, ``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte``, ``$in``, ``$nin``,
  ``$exists``. An empty operator object matches every peer (reference).
* ``room_id`` is accepted and ignored (reference clients send it).
* ``null`` for ``role``, ``tags`` or ``properties`` means "no constraint".

Checking happens once, in :func:`validate_filters`: unknown keys and operators and
operands of the wrong type are :class:`RemoteProtocolError` with code
``INVALID_MESSAGE``. Evaluation never raises, whatever the peer holds:

* **Equality** (plain values, ``$eq``, ``$ne``, ``$in``, ``$nin``) is JSON equality:
  values of different JSON kinds are simply unequal, ``true`` never equals ``1``,
  ``1`` equals ``1.0``, lists and objects compare element by element.
* **Ordering** (``$gt``, ``$gte``, ``$lt``, ``$lte``) compares numbers with numbers
  and strings with strings. A stored value of another kind (including booleans and
  ``null``) makes the condition false: a type mismatch never matches and never
  raises. Their operand must be a finite number or a string.
* **Missing properties** fail plain equality, ``$eq``, ``$in`` and every ordering
  operator (reference semantics for ``$eq``/``$gte``/``$lte``), and satisfy ``$ne``
  and ``$nin`` (the value is indeed not there; use ``$exists: true`` to demand it).

For speed, :func:`compile_filters` turns a filter into a :class:`CompiledFilter`:
a predicate built once from closures, plus :class:`IndexHints` (the equality
constraints on ``role``, ``properties.status`` and ``tags``) that a registry can
use to narrow candidates before calling the predicate on each.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from ..errors import ErrorCode, RemoteProtocolError

__all__ = [
    "CompiledFilter",
    "Condition",
    "Filters",
    "IndexHints",
    "MAX_FILTER_NODES",
    "MAX_FILTER_PROPERTIES",
    "MAX_FILTER_TAGS",
    "MAX_OPERAND_DEPTH",
    "Operator",
    "PeerPredicate",
    "compile_filters",
    "json_equal",
    "matches",
    "validate_filters",
]

PeerPredicate = Callable[[Any], bool]
"""A function of one peer record (``{"peer_id","role","metadata"}``) to bool."""

_MISSING: Any = object()
_FILTER_KEYS = frozenset({"role", "tags", "properties", "room_id"})
_STATUS = "status"
_EMPTY: Mapping[str, Any] = MappingProxyType({})
_ARRAY = (list, tuple)

MAX_OPERAND_DEPTH = 16
"""How deeply lists and objects may nest inside one operand."""

MAX_FILTER_NODES = 256
"""JSON values (list items, object members, scalars) all the operands of one
filter may hold together: evaluation runs in the server's event loop, once per
peer of the room, so its cost must be bounded (a 40,000-item ``$in`` once
stalled every other peer for seconds)."""

MAX_FILTER_TAGS = 64
"""Tags one filter may list."""

MAX_FILTER_PROPERTIES = 32
"""Property conditions one filter may hold."""


class Operator(StrEnum):
    """Operators allowed inside a property condition object."""

    EQ = "$eq"
    NE = "$ne"
    GT = "$gt"
    GTE = "$gte"
    LT = "$lt"
    LTE = "$lte"
    IN = "$in"
    NIN = "$nin"
    EXISTS = "$exists"


_ORDERING = frozenset({Operator.GT, Operator.GTE, Operator.LT, Operator.LTE})
_OPERATORS = {op.value: op for op in Operator}


@dataclass(frozen=True, slots=True)
class Condition:
    """One operator applied to one property.

    Attributes:
        op: The operator (plain values are stored as ``$eq``).
        operand: The operand as given (a JSON value; a tuple for ``$in``/``$nin``).
    """

    op: Operator
    operand: Any


@dataclass(frozen=True, slots=True)
class Filters:
    """A checked discovery filter.

    Attributes:
        role: Required role, or ``None`` for any.
        tags: At least one of these tags is required; ``None`` for any, an empty
            tuple matches nothing.
        properties: ``(key, conditions)`` pairs; every condition must hold.
    """

    role: str | None = None
    tags: tuple[str, ...] | None = None
    properties: tuple[tuple[str, tuple[Condition, ...]], ...] = ()


@dataclass(frozen=True, slots=True)
class IndexHints:
    """Necessary conditions a registry index can use to narrow candidates.

    Every peer that matches the filter satisfies all hints. Unless ``exact`` is
    true the converse does not hold, so the predicate must still be called on
    each candidate.

    Attributes:
        role: The peer's role must equal this, or ``None`` for any.
        status: ``metadata.properties.status`` must be one of these strings, or
            ``None`` when the filter does not pin it to strings.
        tags: The peer must carry at least one of these tags, or ``None`` for any.
        exact: The hints say everything: the filter has no other condition, so a
            peer with a string role, a string status and a list of string tags
            matches exactly when it satisfies the hints (the predicate may be
            skipped for such peers).
    """

    role: str | None = None
    status: frozenset[str] | None = None
    tags: frozenset[str] | None = None
    exact: bool = False

    @property
    def matches_nothing(self) -> bool:
        """True when no peer can match (empty tag or status set)."""
        return self.tags == frozenset() or self.status == frozenset()


@dataclass(frozen=True, slots=True)
class CompiledFilter:
    """A filter ready for evaluation against many peers.

    Call it with a peer record; it returns whether the peer matches and never
    raises, whatever shape the record has.

    Attributes:
        filters: The checked filter it was built from.
        hints: Index hints (see :class:`IndexHints`).
        predicate: The bare function behind ``__call__``; hot loops should call
            it directly to save a method call per peer.
    """

    filters: Filters
    hints: IndexHints
    predicate: PeerPredicate = field(repr=False, compare=False)

    def __call__(self, peer: Any) -> bool:
        return self.predicate(peer)


# --------------------------------------------------------------------------- checks


def _invalid(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(
        f"invalid filters: {message}", code=ErrorCode.INVALID_MESSAGE
    )


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


class _Budget:
    """The JSON values a filter may still hold (:data:`MAX_FILTER_NODES`)."""

    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = MAX_FILTER_NODES

    def spend(self, where: str) -> None:
        self.left -= 1
        if self.left < 0:
            raise _invalid(
                f"{where}: the filter's operands hold more than {MAX_FILTER_NODES} "
                "values"
            )


def _check_json(value: Any, where: str, budget: _Budget, depth: int = 0) -> Any:
    """Check that ``value`` is a JSON value; return it with lists as tuples."""
    budget.spend(where)
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _invalid(f"{where}: numbers must be finite")
        return value
    if depth >= MAX_OPERAND_DEPTH:
        raise _invalid(f"{where}: operand nested deeper than {MAX_OPERAND_DEPTH}")
    if isinstance(value, list | tuple):
        return tuple(_check_json(v, where, budget, depth + 1) for v in value)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise _invalid(f"{where}: object keys must be strings")
            out[k] = _check_json(v, where, budget, depth + 1)
        return out
    raise _invalid(f"{where}: {type(value).__name__} is not a JSON value")


def _check_condition(key: str, value: Any, budget: _Budget) -> tuple[Condition, ...]:
    where = f"properties.{key}"
    if not isinstance(value, dict):
        return (Condition(Operator.EQ, _check_json(value, where, budget)),)
    conditions: list[Condition] = []
    for name, operand in value.items():
        op = _OPERATORS.get(name) if isinstance(name, str) else None
        if op is None:
            raise _invalid(f"{where}: unknown operator {name!r}")
        here = f"{where}.{name}"
        if op in _ORDERING:
            if isinstance(operand, str) or _is_number(operand):
                if isinstance(operand, float) and not math.isfinite(operand):
                    raise _invalid(f"{here}: numbers must be finite")
            else:
                raise _invalid(f"{here}: operand must be a number or a string")
        elif op in (Operator.IN, Operator.NIN):
            if not isinstance(operand, list | tuple):
                raise _invalid(f"{here}: operand must be a list")
            operand = _check_json(operand, here, budget)
        elif op is Operator.EXISTS:
            if not isinstance(operand, bool):
                raise _invalid(f"{here}: operand must be true or false")
        else:
            operand = _check_json(operand, here, budget)
        conditions.append(Condition(op, operand))
    return tuple(conditions)


def validate_filters(filters: object) -> Filters:
    """Check the shape of a ``discover_peers`` filter object once.

    Args:
        filters: The decoded ``filters`` field (``None`` means no filter).

    Returns:
        The checked filter.

    Raises:
        RemoteProtocolError: ``INVALID_MESSAGE`` for a non-object, unknown keys or
            operators, and operands of the wrong type.
    """
    if isinstance(filters, Filters):
        return filters
    if filters is None:
        return Filters()
    if not isinstance(filters, dict):
        raise _invalid("filters must be an object")
    unknown = [k for k in filters if k not in _FILTER_KEYS]
    if unknown:
        raise _invalid(f"unknown key {sorted(map(str, unknown))[0]!r}")

    role = filters.get("role")
    if role is not None and not isinstance(role, str):
        raise _invalid("role must be a string")

    tags = filters.get("tags")
    if tags is not None:
        if not isinstance(tags, list | tuple) or not all(
            isinstance(t, str) for t in tags
        ):
            raise _invalid("tags must be a list of strings")
        if len(tags) > MAX_FILTER_TAGS:
            raise _invalid(f"tags may list at most {MAX_FILTER_TAGS} tags")
        tags = tuple(tags)

    props = filters.get("properties")
    clauses: list[tuple[str, tuple[Condition, ...]]] = []
    if props is not None:
        if not isinstance(props, dict):
            raise _invalid("properties must be an object")
        if len(props) > MAX_FILTER_PROPERTIES:
            raise _invalid(
                f"properties may hold at most {MAX_FILTER_PROPERTIES} conditions"
            )
        budget = _Budget()
        for key, value in props.items():
            if not isinstance(key, str):
                raise _invalid("property names must be strings")
            clauses.append((key, _check_condition(key, value, budget)))
    return Filters(role=role, tags=tags, properties=tuple(clauses))


# ------------------------------------------------------------------- evaluation


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: kinds must agree (``true`` ≠ ``1``), ``1 == 1.0``.

    Lists and tuples are both JSON arrays. Never raises.
    """
    if isinstance(a, str):
        return isinstance(b, str) and a == b
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (type(a) is type(b) and a == b)
    if _is_number(a):
        return _is_number(b) and a == b
    if a is None:
        return b is None
    if isinstance(a, list | tuple):
        return (
            isinstance(b, list | tuple)
            and len(a) == len(b)
            and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, dict):
        if not isinstance(b, dict) or len(a) != len(b):
            return False
        for k, v in a.items():
            other = b.get(k, _MISSING) if isinstance(k, str) else _MISSING
            if other is _MISSING or not json_equal(v, other):
                return False
        return True
    return False


ValueTest = Callable[[Any], bool]


def _equals(operand: Any) -> ValueTest:
    """A fast equality test specialised on the operand's kind."""
    if isinstance(operand, str):
        return lambda v: isinstance(v, str) and v == operand
    if isinstance(operand, bool):
        return lambda v: v is operand
    if _is_number(operand):
        return lambda v: (
            isinstance(v, int | float) and not isinstance(v, bool) and v == operand
        )
    if operand is None:
        return lambda v: v is None
    return lambda v: v is not _MISSING and json_equal(operand, v)


def _ordering(op: Operator, operand: Any) -> ValueTest:
    if isinstance(operand, str):

        def kind(v: Any) -> bool:
            return isinstance(v, str)

    else:

        def kind(v: Any) -> bool:
            return isinstance(v, int | float) and not isinstance(v, bool)

    if op is Operator.GT:
        return lambda v: kind(v) and v > operand
    if op is Operator.GTE:
        return lambda v: kind(v) and v >= operand
    if op is Operator.LT:
        return lambda v: kind(v) and v < operand
    return lambda v: kind(v) and v <= operand


def _member(operand: tuple[Any, ...]) -> ValueTest:
    """``value in operand`` by JSON equality, with a set fast path for strings."""
    strings = frozenset(x for x in operand if isinstance(x, str))
    others = tuple(_equals(x) for x in operand if not isinstance(x, str))

    def test(v: Any) -> bool:
        if v is _MISSING:
            return False
        if isinstance(v, str):
            return v in strings
        return any(t(v) for t in others)

    return test


def _value_test(cond: Condition) -> ValueTest:
    op, operand = cond.op, cond.operand
    if op is Operator.EQ:
        return _equals(operand)
    if op in _ORDERING:
        return _ordering(op, operand)
    if op is Operator.IN:
        return _member(operand)
    if op is Operator.EXISTS:
        if operand:
            return lambda v: v is not _MISSING
        return lambda v: v is _MISSING
    positive = _equals(operand) if op is Operator.NE else _member(operand)
    return lambda v: v is _MISSING or not positive(v)


def _property_test(key: str, conditions: tuple[Condition, ...]) -> PeerPredicate:
    """A test on the properties mapping, specialised for the common shapes."""
    if len(conditions) == 1:
        op, operand = conditions[0].op, conditions[0].operand
        if op is Operator.EQ and isinstance(operand, str):

            def eq_str(props: Any) -> bool:
                v = props.get(key)
                return isinstance(v, str) and v == operand

            return eq_str
        if op is Operator.GTE and _is_number(operand):

            def gte_num(props: Any) -> bool:
                v = props.get(key)
                t = type(v)
                return (t is int or t is float or _is_number(v)) and v >= operand

            return gte_num
        only = _value_test(conditions[0])
        return lambda props: only(props.get(key, _MISSING))
    tests = tuple(_value_test(c) for c in conditions)
    return lambda props: all(t(props.get(key, _MISSING)) for t in tests)


def _hints(f: Filters) -> IndexHints:
    status: frozenset[str] | None = None
    exact = True
    for key, conditions in f.properties:
        if key != _STATUS:
            exact = False
            continue
        for cond in conditions:
            allowed: frozenset[str] | None = None
            if cond.op is Operator.EQ and isinstance(cond.operand, str):
                allowed = frozenset((cond.operand,))
            elif cond.op is Operator.IN and all(
                isinstance(x, str) for x in cond.operand
            ):
                allowed = frozenset(cond.operand)
            if allowed is None:
                exact = False
            else:
                status = allowed if status is None else status & allowed
    return IndexHints(
        role=f.role,
        status=status,
        tags=None if f.tags is None else frozenset(f.tags),
        exact=exact,
    )


def compile_filters(filters: object) -> CompiledFilter:
    """Check a filter and build a fast predicate with index hints.

    Args:
        filters: The decoded ``filters`` object, or an already checked
            :class:`Filters`.

    Returns:
        A callable ``peer -> bool`` (see :class:`CompiledFilter`).

    Raises:
        RemoteProtocolError: ``INVALID_MESSAGE`` as :func:`validate_filters`.
    """
    f = validate_filters(filters)
    role = f.role
    tagset = None if f.tags is None else frozenset(f.tags)
    prop_tests = tuple(_property_test(k, conds) for k, conds in f.properties)
    needs_md = tagset is not None or bool(prop_tests)

    def predicate(peer: Any) -> bool:
        if type(peer) is not dict and not isinstance(peer, Mapping):
            return False
        if role is not None and peer.get("role") != role:
            return False
        if not needs_md:
            return True
        md = peer.get("metadata")
        if type(md) is not dict and not isinstance(md, Mapping):
            md = _EMPTY
        if tagset is not None:
            tags = md.get("tags")
            if not isinstance(tags, _ARRAY):
                return False
            try:
                if tagset.isdisjoint(tags):
                    return False
            except TypeError:  # unhashable items: compare the strings only
                if not any(isinstance(t, str) and t in tagset for t in tags):
                    return False
        if prop_tests:
            props = md.get("properties")
            if type(props) is not dict and not isinstance(props, Mapping):
                props = _EMPTY
            for test in prop_tests:
                if not test(props):
                    return False
        return True

    return CompiledFilter(filters=f, hints=_hints(f), predicate=predicate)


def matches(filters: object, peer: Any) -> bool:
    """Whether ``peer`` matches ``filters`` (compiles each call; prefer
    :func:`compile_filters` for many peers).

    Raises:
        RemoteProtocolError: ``INVALID_MESSAGE`` for a malformed filter.
    """
    if isinstance(filters, CompiledFilter):
        return filters(peer)
    return compile_filters(filters)(peer)
