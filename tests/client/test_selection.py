"""Choosing a worker: filters, collecting responses, the best pick, the errors."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sleap_rtc_core import errors
from sleap_rtc_core.client.selection import (
    GONE,
    TIMEOUT,
    Candidate,
    Recorded,
    ResponseCollector,
    choose_best,
    rejection_error,
    sees_path,
    supports_job,
    worker_filters,
    worker_named,
)
from sleap_rtc_core.protocol.filters import matches, validate_filters
from sleap_rtc_core.protocol.negotiation import JobResponse, JobType
from sleap_rtc_core.worker.capabilities import (
    JOB_TYPE_TAGS,
    GpuInfo,
    WorkerCapabilities,
    worker_metadata,
)


def _accept(
    minutes: float | None, free_mb: Any = None, job_id: str = "j"
) -> JobResponse:
    info = None if free_mb is None else {"available_memory_mb": free_mb}
    return JobResponse(
        job_id=job_id,
        accepted=True,
        estimated_duration_minutes=minutes,
        worker_info=info,
    )


def _reject(reason: str | None, job_id: str = "j") -> JobResponse:
    return JobResponse(job_id=job_id, accepted=False, reason=reason)


def _worker(
    peer_id: str,
    memory_mb: int,
    *,
    status: str = "available",
    job_types: tuple[JobType, ...] = (JobType.TRAINING, JobType.INFERENCE),
    models: tuple[str, ...] = ("centroid", "centered_instance"),
) -> dict[str, Any]:
    caps = WorkerCapabilities(
        GpuInfo("GPU", memory_mb, "12.4", 0),
        supported_models=models,
        supported_job_types=job_types,
    )
    md = worker_metadata(caps, status=status, hostname="h", versions={})
    return {"peer_id": peer_id, "role": "worker", "metadata": md}


# ------------------------------------------------------------------ filters


def test_filters_have_the_documented_shape() -> None:
    assert worker_filters() == {
        "role": "worker",
        "tags": ["sleap-rtc"],
        "properties": {"status": "available"},
    }
    assert worker_filters(min_gpu_memory_mb=8000, job_type="training") == {
        "role": "worker",
        "tags": ["training-worker"],
        "properties": {"status": "available", "gpu_memory_mb": {"$gte": 8000}},
    }
    assert worker_filters(job_type=JobType.INFERENCE)["tags"] == ["inference-worker"]
    for f in (worker_filters(), worker_filters(4000, "inference", "centroid")):
        validate_filters(f)  # the server accepts them


def test_filters_refuse_bad_arguments() -> None:
    with pytest.raises(ValueError, match="juggling"):
        worker_filters(job_type="juggling")
    for bad in (math.nan, math.inf, True, "8000"):
        with pytest.raises(ValueError, match="min_gpu_memory_mb"):
            worker_filters(min_gpu_memory_mb=bad)  # type: ignore[arg-type]


def test_client_and_worker_agree_on_job_type_tags() -> None:
    for job_type, tag in JOB_TYPE_TAGS.items():
        assert worker_filters(job_type=job_type)["tags"] == [tag]


def test_discovery_finds_exactly_the_matching_workers() -> None:
    peers = [
        _worker("big", 24000),
        _worker("small", 4000),
        _worker("busy", 24000, status="busy"),
        _worker("infer-only", 24000, job_types=(JobType.INFERENCE,)),
        _worker("no-bottomup", 24000, models=("centroid",)),
        _worker("bottomup", 24000, models=("bottomup",)),
    ]

    def discover(**kwargs: Any) -> list[str]:
        f = worker_filters(**kwargs)
        return sorted(
            p["peer_id"]
            for p in peers
            if matches(f, p)
            and supports_job(
                p, job_type=kwargs.get("job_type"), model_type=kwargs.get("model_type")
            )
        )

    assert discover(min_gpu_memory_mb=8000, job_type="training") == [
        "big",
        "bottomup",
        "no-bottomup",
    ]
    assert discover(job_type="inference", model_type="bottomup") == ["bottomup"]
    assert discover(min_gpu_memory_mb=2000) == [
        "big",
        "bottomup",
        "infer-only",
        "no-bottomup",
        "small",
    ]


def test_supports_job_gives_silent_workers_the_benefit_of_the_doubt() -> None:
    bare = {"peer_id": "old", "role": "worker", "metadata": {}}
    assert supports_job(bare, job_type="training", model_type="anything")
    assert supports_job({"peer_id": "x"}, job_type="inference")
    odd = {"peer_id": "x", "metadata": {"properties": "not an object"}}
    assert supports_job(odd, model_type="centroid")


# --------------------------------------------------------------- choose_best


def test_shortest_estimate_wins() -> None:
    best = choose_best({"a": _accept(30), "b": _accept(10), "c": _accept(20)})
    assert best is not None
    assert best.peer_id == "b"


def test_ties_go_to_most_free_memory_then_peer_id() -> None:
    best = choose_best({"a": _accept(10, 8000), "b": _accept(10, 16000)})
    assert best is not None
    assert best.peer_id == "b"
    best = choose_best({"z": _accept(10, 8000), "y": _accept(10, 8000)})
    assert best is not None
    assert best.peer_id == "y"


def test_rejections_and_missing_values() -> None:
    assert choose_best({"a": _reject("busy")}) is None
    assert choose_best([]) is None
    best = choose_best(
        {"none": _accept(None, 99999), "nan": _accept(math.nan), "ok": _accept(500)}
    )
    assert best is not None
    assert best.peer_id == "ok"
    junk = Candidate("j", _accept(1, "lots"))
    assert junk.free_memory_mb == -math.inf


@settings(max_examples=200)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.tuples(
            st.booleans(),
            st.one_of(st.none(), st.floats(allow_nan=True), st.integers(0, 100)),
            st.one_of(st.none(), st.integers(0, 80000)),
        ),
        max_size=8,
    )
)
def test_choice_is_deterministic_and_optimal(
    spec: dict[str, tuple[bool, float | None, int | None]],
) -> None:
    responses = {
        p: (_accept(m, mem) if ok else _reject("busy"))
        for p, (ok, m, mem) in spec.items()
    }
    best = choose_best(responses)
    reordered = choose_best(dict(reversed(list(responses.items()))))
    assert best == reordered  # arrival order never matters
    accepted = [Candidate(p, r) for p, r in responses.items() if r.accepted]
    if not accepted:
        assert best is None
        return
    assert best is not None
    assert best.response.accepted
    for c in accepted:
        assert best.estimate_minutes <= c.estimate_minutes
        if c.estimate_minutes == best.estimate_minutes:
            assert best.free_memory_mb >= c.free_memory_mb


# -------------------------------------------------------- ResponseCollector


def test_collector_is_done_when_everyone_answered() -> None:
    rc = ResponseCollector(["w1", "w2", "w3"], job_id="j")
    assert not rc.done
    assert rc.record("w1", _accept(20)) is Recorded.COUNTED
    assert rc.record("w2", _reject("busy")) is Recorded.COUNTED
    assert rc.pending == {"w3"}
    assert rc.record("w3", _accept(10, 4000)) is Recorded.COUNTED
    assert rc.done
    best = rc.best()
    assert best is not None
    assert best.peer_id == "w3"
    assert [c.peer_id for c in rc.candidates()] == ["w3", "w1"]
    assert rc.to_release("w3") == ["w1"]
    assert rc.reasons() == {"w2": "busy"}


def test_collector_ignores_strangers_other_jobs_and_repeats() -> None:
    rc = ResponseCollector(["w1"], job_id="j")
    assert rc.record("intruder", _accept(1)) is Recorded.NOT_ASKED
    assert rc.record("w1", _accept(1, job_id="other")) is Recorded.OTHER_JOB
    assert rc.record("w1", _reject("busy")) is Recorded.COUNTED
    assert rc.record("w1", _accept(1)) is Recorded.DUPLICATE
    assert rc.best() is None
    assert rc.responses == {"w1": _reject("busy")}


def test_a_departed_worker_counts_as_answered() -> None:
    rc = ResponseCollector(["w1", "w2"])
    rc.record("w1", _accept(5))
    assert rc.peer_gone("w2")
    assert not rc.peer_gone("w2")
    assert not rc.peer_gone("w1")  # answered already: its answer stands
    assert rc.done
    assert rc.record("w2", _accept(1)) is Recorded.DUPLICATE
    assert rc.reasons() == {"w2": GONE}


def test_deadline_marks_the_silent_ones_and_late_accepts_are_released() -> None:
    rc = ResponseCollector(["w1", "w2", "w3"], job_id="j")
    rc.record("w1", _accept(5))
    assert rc.close() == {"w2", "w3"}
    assert rc.closed
    assert rc.reasons() == {"w2": TIMEOUT, "w3": TIMEOUT}
    assert rc.record("w2", _accept(1)) is Recorded.LATE
    assert rc.record("w3", _reject("busy")) is Recorded.LATE
    best = rc.best()
    assert best is not None
    assert best.peer_id == "w1"  # late answers never win
    assert rc.to_release("w1") == ["w2"]  # the late accepter holds a reservation


def test_nobody_asked_is_done_at_once() -> None:
    rc = ResponseCollector([])
    assert rc.done
    assert rc.best() is None
    assert rc.reasons() == {}


@settings(max_examples=200)
@given(
    asked=st.sets(st.sampled_from(["a", "b", "c", "d"])),
    events=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", "d", "x"]),
            st.sampled_from(["accept", "reject", "gone"]),
        )
    ),
)
def test_done_exactly_when_every_asked_worker_answered_or_left(
    asked: set[str], events: list[tuple[str, str]]
) -> None:
    rc = ResponseCollector(asked)
    settled: set[str] = set()
    for peer, what in events:
        if what == "gone":
            rc.peer_gone(peer)
        else:
            rc.record(peer, _accept(1) if what == "accept" else _reject("busy"))
        if peer in asked:
            settled.add(peer)
        assert rc.done == (settled == asked)
        assert rc.pending == asked - settled
    reasons = rc.reasons()
    accepted = {p for p, r in rc.responses.items() if r.accepted}
    assert set(reasons) | accepted == asked
    assert not set(reasons) & accepted


# ----------------------------------------------------------------- errors


def test_rejection_error_carries_every_reason() -> None:
    rc = ResponseCollector(["w1", "w2", "w3"])
    rc.record("w1", _reject("insufficient_memory"))
    rc.record("w2", _reject(None))
    err = rejection_error(rc.reasons())
    assert isinstance(err, errors.NoWorkersAcceptedError)
    assert isinstance(err, errors.JobError)
    assert err.code == "NO_WORKERS_ACCEPTED"
    assert err.reasons == {
        "w1": "insufficient_memory",
        "w2": "rejected",
        "w3": "timeout",
    }
    assert "w1: insufficient_memory" in err.message
    assert "w3: timeout" in err.message
    assert "none was asked" in rejection_error({}).message


def test_client_errors_are_the_shared_ones() -> None:
    from sleap_rtc_core.client import selection

    assert selection.NoWorkersAvailableError is errors.NoWorkersAvailableError
    assert errors.NoWorkersAvailableError().code == "NO_WORKERS_AVAILABLE"
    assert selection.JobFailedError is errors.JobFailedError
    failed = errors.JobFailedError("boom", code="TRAINING_FAILED")
    assert failed.code == "TRAINING_FAILED"


def _peer(peer_id: str, name: str | None = None) -> dict[str, Any]:
    props = {"worker_name": name} if name else {}
    return {"peer_id": peer_id, "role": "worker", "metadata": {"properties": props}}


def test_a_worker_is_named_by_peer_id_or_by_its_name() -> None:
    peers = [_peer("w-1a2b", "gpu-box-3"), _peer("w-9z", "gpu-box-4"), _peer("x")]
    assert worker_named(peers, "w-9z") == "w-9z"
    assert worker_named(peers, "gpu-box-3") == "w-1a2b"
    with pytest.raises(errors.NoWorkersAvailableError) as missing:
        worker_named(peers, "gpu-box-5")
    assert "w-1a2b (gpu-box-3)" in missing.value.message
    assert "x" in missing.value.message
    twins = [_peer("a", "box"), _peer("b", "box")]
    with pytest.raises(errors.NoWorkersAvailableError, match="give the peer id"):
        worker_named(twins, "box")
    with pytest.raises(errors.NoWorkersAvailableError, match="no worker is here"):
        worker_named([], "box")


def _mounting(*mounts: str) -> dict[str, Any]:
    props = {"mounts": [{"path": m, "label": "x"} for m in mounts]}
    return {"peer_id": "w", "metadata": {"properties": props}}


@pytest.mark.parametrize(
    ("mounts", "path", "seen"),
    [
        (("/data",), "/data/a.slp", True),
        (("/data/",), "/data", True),
        (("/data",), "/database/a.slp", False),
        (("/",), "/anything", True),
        (("D:\\lab",), "D:\\lab\\a.slp", True),
        ((), "/data/a.slp", None),
    ],
)
def test_sees_path_by_the_published_mounts(
    mounts: tuple[str, ...], path: str, seen: bool | None
) -> None:
    assert sees_path(_mounting(*mounts), path) is seen


def test_workers_that_see_the_data_come_first() -> None:
    fast = JobResponse(job_id="j", accepted=True, estimated_duration_minutes=1)
    slow = JobResponse(job_id="j", accepted=True, estimated_duration_minutes=9)
    responses = {"fast": fast, "slow": slow}
    best, preferred = choose_best(responses), choose_best(responses, {"slow"})
    assert best is not None
    assert preferred is not None
    assert (best.peer_id, preferred.peer_id) == ("fast", "slow")
