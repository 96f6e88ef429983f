"""Tests of the discovery filter language (sleap_rtc_core.protocol.filters)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sleap_rtc_core.errors import ErrorCode, RemoteProtocolError
from sleap_rtc_core.protocol.filters import (
    MAX_FILTER_NODES,
    MAX_FILTER_PROPERTIES,
    MAX_FILTER_TAGS,
    CompiledFilter,
    Condition,
    Filters,
    IndexHints,
    Operator,
    compile_filters,
    json_equal,
    matches,
    validate_filters,
)


def peer(
    role: str = "worker",
    tags: Any = ("sleap-rtc", "training-worker"),
    **props: Any,
) -> dict[str, Any]:
    """A peer record as the registry holds it."""
    return {
        "peer_id": "w1",
        "role": role,
        "metadata": {"tags": list(tags), "properties": props},
    }


WORKER = peer(status="available", gpu_memory_mb=8000, gpu_model="A100", ok=True)


# ------------------------------------------------------------ reference semantics


def test_typical_sleap_rtc_filter() -> None:
    f = {
        "role": "worker",
        "tags": ["sleap-rtc"],
        "properties": {"status": "available", "gpu_memory_mb": {"$gte": 4000}},
        "room_id": "ignored",
    }
    assert matches(f, WORKER)
    assert not matches(f, peer(status="busy", gpu_memory_mb=8000))
    assert not matches(f, peer(status="available", gpu_memory_mb=2000))
    assert not matches(f, peer(role="client", status="available", gpu_memory_mb=8000))


def test_empty_and_null_filters_match_everything() -> None:
    assert matches({}, WORKER)
    assert matches(None, WORKER)
    assert matches({"role": None, "tags": None, "properties": None}, WORKER)
    assert matches({"properties": {}}, WORKER)


def test_role_is_exact_equality() -> None:
    assert matches({"role": "worker"}, WORKER)
    assert not matches({"role": "Worker"}, WORKER)
    assert not matches({"role": "work"}, WORKER)
    assert not matches({"role": "worker"}, {"peer_id": "x"})


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["sleap-rtc"], True),
        (["nope", "training-worker"], True),
        (["nope"], False),
        ([], False),  # reference: an empty list matches nothing
    ],
)
def test_tags_any_of(tags: list[str], expected: bool) -> None:
    assert matches({"tags": tags}, WORKER) is expected


def test_tags_on_peer_without_tags() -> None:
    assert not matches({"tags": ["a"]}, {"role": "worker", "metadata": {}})
    assert not matches({"tags": ["a"]}, {"role": "worker", "metadata": {"tags": "a"}})
    assert matches({"tags": ["a"]}, {"metadata": {"tags": [{"x": 1}, "a"]}})
    assert not matches({"tags": ["a"]}, {"metadata": {"tags": [{"x": 1}, 3]}})


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        # plain value = equality; missing property is not equal to anything
        ("available", True),
        ("busy", False),
        (8000, False),  # status is a string: different kind, unequal
        # $eq, $ne
        ({"$eq": "available"}, True),
        ({"$eq": "busy"}, False),
        ({"$ne": "busy"}, True),
        ({"$ne": "available"}, False),
        # $in, $nin
        ({"$in": ["available", "reserved"]}, True),
        ({"$in": ["busy"]}, False),
        ({"$in": []}, False),
        ({"$nin": ["busy"]}, True),
        ({"$nin": ["available"]}, False),
        # ordering on strings
        ({"$gt": "a"}, True),
        ({"$lt": "a"}, False),
        ({"$gte": "available", "$lte": "available"}, True),
        # $exists
        ({"$exists": True}, True),
        ({"$exists": False}, False),
    ],
)
def test_operators_on_a_string_property(condition: Any, expected: bool) -> None:
    assert matches({"properties": {"status": condition}}, WORKER) is expected


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (8000, True),
        (8000.0, True),  # 1 == 1.0 in JSON
        ({"$eq": 8000}, True),
        ({"$gte": 8000}, True),
        ({"$gte": 8001}, False),
        ({"$gt": 7999.5}, True),
        ({"$gt": 8000}, False),
        ({"$lte": 8000}, True),
        ({"$lte": 7999}, False),
        ({"$lt": 8001}, True),
        ({"$lt": 8000}, False),
        ({"$gte": 4000, "$lt": 10000}, True),
        ({"$gte": 4000, "$lt": 5000}, False),
        ({"$in": [1, 8000]}, True),
        ({"$in": [1, 2]}, False),
        ({"$nin": [8000.0]}, False),
        ({"$ne": 8000}, False),
        ({"$ne": "8000"}, True),  # different kinds are unequal
        ({"$gte": "1"}, False),  # ordering across kinds never matches
        ({"$lt": "zzz"}, False),
    ],
)
def test_operators_on_a_number_property(condition: Any, expected: bool) -> None:
    assert matches({"properties": {"gpu_memory_mb": condition}}, WORKER) is expected


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("x", False),
        (None, False),  # missing is not null
        ({"$eq": "x"}, False),
        ({"$gte": 0}, False),  # reference: missing fails $gte/$lte
        ({"$lte": 0}, False),
        ({"$gt": 0}, False),
        ({"$lt": "z"}, False),
        ({"$in": ["x", None]}, False),
        ({"$ne": "x"}, True),  # documented: the value is indeed not "x"
        ({"$nin": ["x"]}, True),
        ({"$exists": False}, True),
        ({"$exists": True}, False),
        ({}, True),  # an empty operator object is no constraint (reference)
    ],
)
def test_missing_property(condition: Any, expected: bool) -> None:
    assert matches({"properties": {"absent": condition}}, WORKER) is expected


def test_null_property_value() -> None:
    p = peer(cuda_version=None)
    assert matches({"properties": {"cuda_version": None}}, p)
    assert matches({"properties": {"cuda_version": {"$exists": True}}}, p)
    assert matches({"properties": {"cuda_version": {"$in": [None]}}}, p)
    assert not matches({"properties": {"cuda_version": {"$gte": 0}}}, p)
    assert not matches({"properties": {"cuda_version": {"$eq": 0}}}, p)


def test_bool_never_compares_as_number() -> None:
    p = peer(flag=True, one=1)
    assert matches({"properties": {"flag": True}}, p)
    assert not matches({"properties": {"flag": 1}}, p)
    assert not matches({"properties": {"one": True}}, p)
    assert not matches({"properties": {"flag": {"$gte": 1}}}, p)
    assert not matches({"properties": {"flag": {"$lte": 1}}}, p)
    assert not matches({"properties": {"flag": {"$in": [1]}}}, p)
    assert matches({"properties": {"flag": {"$ne": 1}}}, p)
    assert not matches({"properties": {"one": {"$in": [True]}}}, p)
    assert matches({"properties": {"one": {"$in": [True, 1.0]}}}, p)


def test_structured_values_compare_deeply() -> None:
    mounts = [{"path": "/data", "label": "Data"}]
    p = peer(mounts=mounts, models=["centroid", "topdown"])
    assert matches({"properties": {"mounts": mounts}}, p)
    assert matches({"properties": {"mounts": {"$eq": mounts}}}, p)
    assert not matches({"properties": {"mounts": [{"path": "/data"}]}}, p)
    assert matches({"properties": {"models": ["centroid", "topdown"]}}, p)
    assert not matches({"properties": {"models": ["topdown", "centroid"]}}, p)
    assert matches({"properties": {"models": {"$in": [["centroid", "topdown"]]}}}, p)
    assert not matches({"properties": {"models": {"$gte": 1}}}, p)


def test_json_equal() -> None:
    assert json_equal(1, 1.0)
    assert not json_equal(True, 1)
    assert not json_equal(0, False)
    assert json_equal(False, False)
    assert json_equal([1, {"a": [None]}], (1.0, {"a": (None,)}))
    assert not json_equal({"a": 1}, {"a": 1, "b": 2})
    assert not json_equal({"a": 1}, {"b": 1})
    assert not json_equal([1], [1, 2])
    assert not json_equal(object(), object())
    assert not json_equal("a", ["a"])


# -------------------------------------------------------------- malformed filters


@pytest.mark.parametrize(
    "bad",
    [
        [],
        "role=worker",
        3,
        {"unknown": 1},
        {"role": 3},
        {"role": ["worker"]},
        {"tags": "sleap-rtc"},
        {"tags": [1]},
        {"tags": ["a", None]},
        {"tags": {"a": 1}},
        {"properties": []},
        {"properties": "status"},
        {"properties": {"s": {"$regex": "a"}}},
        {"properties": {"s": {"status": "available"}}},  # not an operator
        {"properties": {"s": {"$in": "abc"}}},
        {"properties": {"s": {"$nin": 3}}},
        {"properties": {"s": {"$gte": None}}},
        {"properties": {"s": {"$gte": True}}},
        {"properties": {"s": {"$lt": [1]}}},
        {"properties": {"s": {"$gt": {"a": 1}}}},
        {"properties": {"s": {"$gte": float("nan")}}},
        {"properties": {"s": {"$lte": float("inf")}}},
        {"properties": {"s": {"$exists": 1}}},
        {"properties": {"s": {"$exists": "yes"}}},
        {"properties": {"s": {"$eq": object()}}},
        {"properties": {"s": {"$eq": {1: 2}}}},
        {"properties": {1: "a"}},
    ],
)
def test_malformed_filters_are_invalid_message(bad: Any) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        validate_filters(bad)
    assert info.value.code == ErrorCode.INVALID_MESSAGE
    with pytest.raises(RemoteProtocolError):
        matches(bad, WORKER)


def test_deeply_nested_operand_is_refused() -> None:
    deep: Any = "x"
    for _ in range(40):
        deep = [deep]
    with pytest.raises(RemoteProtocolError):
        validate_filters({"properties": {"s": deep}})


def test_room_id_is_ignored_whatever_it_holds() -> None:
    assert validate_filters({"room_id": "r1"}) == Filters()
    assert validate_filters({"room_id": {"any": "thing"}}) == Filters()


def test_validated_form() -> None:
    f = validate_filters(
        {
            "role": "worker",
            "tags": ["a"],
            "properties": {"s": "x", "n": {"$gte": 1, "$in": [1, [2]]}},
        }
    )
    assert f.role == "worker"
    assert f.tags == ("a",)
    assert f.properties == (
        ("s", (Condition(Operator.EQ, "x"),)),
        ("n", (Condition(Operator.GTE, 1), Condition(Operator.IN, (1, (2,))))),
    )
    assert validate_filters(f) is f


# ------------------------------------------------------------- compiled filters


def test_compiled_filter_and_matches_accept_each_other() -> None:
    cf = compile_filters({"role": "worker"})
    assert isinstance(cf, CompiledFilter)
    assert cf(WORKER)
    assert cf.predicate(WORKER)
    assert matches(cf, WORKER)
    assert compile_filters(cf.filters).filters == cf.filters


@pytest.mark.parametrize(
    ("filters", "hints"),
    [
        ({}, IndexHints(exact=True)),
        (
            {"role": "worker", "tags": ["a", "b"]},
            IndexHints(role="worker", tags=frozenset({"a", "b"}), exact=True),
        ),
        (
            {"properties": {"status": "available"}},
            IndexHints(status=frozenset({"available"}), exact=True),
        ),
        (
            {"properties": {"status": {"$eq": "available"}}},
            IndexHints(status=frozenset({"available"}), exact=True),
        ),
        (
            {"properties": {"status": {"$in": ["available", "reserved"]}}},
            IndexHints(status=frozenset({"available", "reserved"}), exact=True),
        ),
        (
            {"properties": {"status": {"$in": ["a", "b"], "$eq": "b"}}},
            IndexHints(status=frozenset({"b"}), exact=True),
        ),
        ({"properties": {"status": {"$in": ["a", 1]}}}, IndexHints()),
        ({"properties": {"status": 3}}, IndexHints()),
        ({"properties": {"status": {"$ne": "busy"}}}, IndexHints()),
        (
            {"properties": {"status": "available", "gpu_memory_mb": {"$gte": 1}}},
            IndexHints(status=frozenset({"available"})),
        ),
    ],
)
def test_index_hints(filters: dict[str, Any], hints: IndexHints) -> None:
    assert compile_filters(filters).hints == hints


def test_hints_that_match_nothing() -> None:
    assert compile_filters({"tags": []}).hints.matches_nothing
    assert compile_filters(
        {"properties": {"status": {"$in": []}}}
    ).hints.matches_nothing
    assert not compile_filters({"tags": ["a"]}).hints.matches_nothing


@pytest.mark.parametrize(
    "weird_peer",
    [
        None,
        [],
        "peer",
        {},
        {"role": 5},
        {"role": "worker", "metadata": None},
        {"role": "worker", "metadata": []},
        {"role": "worker", "metadata": {"tags": None, "properties": None}},
        {"role": "worker", "metadata": {"tags": "sleap-rtc", "properties": []}},
        {"role": "worker", "metadata": {"tags": [[1]], "properties": {"status": []}}},
    ],
)
def test_weird_peers_never_raise(weird_peer: Any) -> None:
    cf = compile_filters(
        {
            "role": "worker",
            "tags": ["sleap-rtc"],
            "properties": {"status": "available", "n": {"$gte": 1, "$ne": [1]}},
        }
    )
    assert cf(weird_peer) is False
    assert compile_filters({})(weird_peer) is isinstance(weird_peer, dict)


# -------------------------------------------------------------------- hypothesis

# Pools of values drawn with sampled_from: cheap to generate, and they cover
# every JSON kind, bool-vs-number pairs, and the values the filters test for.
SCALARS = [None, True, False, 0, 1, -3, 8000, 8000.0, 2.5, "", "a", "available"]
json_scalars = st.sampled_from(SCALARS)
json_values = (
    json_scalars
    | st.lists(json_scalars, max_size=3)
    | st.dictionaries(st.sampled_from(["a", "$in"]), json_scalars, max_size=2)
)
op_names = st.sampled_from([op.value for op in Operator] + ["$regex", "x"])
ordering = st.sampled_from(["$gt", "$gte", "$lt", "$lte"])
well_formed_conditions = (
    json_scalars
    | st.dictionaries(ordering, st.sampled_from([0, 1, 8000, 2.5, "a"]), max_size=2)
    | st.dictionaries(
        st.sampled_from(["$in", "$nin"]), st.lists(json_scalars, max_size=3), max_size=1
    )
    | st.dictionaries(st.sampled_from(["$eq", "$ne"]), json_values, max_size=1)
    | st.dictionaries(st.just("$exists"), st.booleans(), max_size=1)
)
conditions = well_formed_conditions | st.dictionaries(op_names, json_values, max_size=3)
prop_names = st.sampled_from(["status", "gpu_memory_mb", "flag", "missing"])
well_formed_filters = st.fixed_dictionaries(
    {},
    optional={
        "role": st.sampled_from(["worker", "client"]),
        "tags": st.lists(st.sampled_from(["sleap-rtc", "x"]), max_size=2),
        "properties": st.dictionaries(
            prop_names, well_formed_conditions, min_size=1, max_size=3
        ),
        "room_id": st.just("r"),
    },
)
raw_filters = well_formed_filters | st.dictionaries(
    st.sampled_from(["role", "tags", "properties", "room_id", "other"]),
    json_values
    | st.lists(st.sampled_from(["sleap-rtc", "x", 1, None]), max_size=3)
    | st.dictionaries(prop_names, conditions, max_size=3),
    max_size=4,
)
peers = st.fixed_dictionaries(
    {
        "peer_id": st.just("p"),
        "role": st.sampled_from(["worker", "client", None, 1]),
        "metadata": json_values
        | st.fixed_dictionaries(
            {
                "tags": json_values | st.lists(st.sampled_from(["sleap-rtc", "x"])),
                "properties": json_values
                | st.dictionaries(prop_names, json_values, max_size=4),
            }
        ),
    }
)


def _num(a: Any) -> bool:
    return isinstance(a, int | float) and not isinstance(a, bool)


def _holds(op: Operator, x: Any, present: bool, v: Any) -> bool:
    """The documented semantics of one condition, written plainly."""
    if op is Operator.EQ:
        return present and json_equal(x, v)
    if op is Operator.NE:
        return not present or not json_equal(x, v)
    if op is Operator.IN:
        return present and any(json_equal(y, v) for y in x)
    if op is Operator.NIN:
        return not present or not any(json_equal(y, v) for y in x)
    if op is Operator.EXISTS:
        return present is x
    if not present or not (
        (isinstance(x, str) and isinstance(v, str)) or (_num(x) and _num(v))
    ):
        return False
    return {
        Operator.GT: v > x,
        Operator.GTE: v >= x,
        Operator.LT: v < x,
        Operator.LTE: v <= x,
    }[op]


def oracle(f: Filters, p: Any) -> bool:
    """A slow, obvious evaluator to check the compiled predicate against."""
    if not isinstance(p, dict):
        return False
    if f.role is not None and p.get("role") != f.role:
        return False
    md = p.get("metadata")
    md = md if isinstance(md, dict) else {}
    if f.tags is not None:
        tags = md.get("tags")
        if not isinstance(tags, list) or not any(
            isinstance(t, str) and t in f.tags for t in tags
        ):
            return False
    props = md.get("properties")
    props = props if isinstance(props, dict) else {}
    return all(
        _holds(c.op, c.operand, key in props, props.get(key))
        for key, conds in f.properties
        for c in conds
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=raw_filters, candidates=st.lists(peers, max_size=4))
def test_random_filters_validate_or_raise_and_never_crash(
    raw: dict[str, Any], candidates: list[dict[str, Any]]
) -> None:
    try:
        cf = compile_filters(raw)
    except RemoteProtocolError as exc:
        assert exc.code == ErrorCode.INVALID_MESSAGE
        return
    for p in candidates:
        result = cf(p)
        assert result is oracle(cf.filters, p)
        if result:
            # Hints are necessary conditions of a match.
            h = cf.hints
            assert not h.matches_nothing
            if h.role is not None:
                assert p["role"] == h.role
            if h.tags is not None:
                tags = p["metadata"]["tags"]
                assert any(isinstance(t, str) and t in h.tags for t in tags)
            if h.status is not None:
                assert p["metadata"]["properties"]["status"] in h.status


@pytest.mark.parametrize(
    ("filters", "said"),
    [
        ({"tags": ["t"] * (MAX_FILTER_TAGS + 1)}, "tags"),
        (
            {"properties": {f"p{i}": 1 for i in range(MAX_FILTER_PROPERTIES + 1)}},
            "conditions",
        ),
        ({"properties": {"gpu": {"$in": list(range(MAX_FILTER_NODES))}}}, "values"),
        (
            {"properties": {"a": {"$in": [1] * 200}, "b": {"$nin": [[2]] * 100}}},
            "values",
        ),
    ],
)
def test_filter_size_is_bounded(filters: dict[str, object], said: str) -> None:
    """Evaluation costs operands x peers in the server's loop: bounded."""
    with pytest.raises(RemoteProtocolError, match=said) as info:
        validate_filters(filters)
    assert info.value.code == ErrorCode.INVALID_MESSAGE


def test_filters_at_the_bounds_are_fine() -> None:
    validate_filters({"tags": ["t"] * MAX_FILTER_TAGS})
    validate_filters(
        {"properties": {"gpu": {"$in": list(range(MAX_FILTER_NODES - 1))}}}
    )
