"""Choosing a worker: discovery filters, collecting answers, picking the best.

Pure logic for the client side of the negotiation (PROTOCOL.md A.2, B §3; the
seed's Tasks 6 and 7), with no I/O and no clock:

1. :func:`worker_filters` builds the ``discover_peers`` filter. Its ``tags``
   clause is any-of (B §1.5), so asking for training workers filters on the one
   tag ``training-worker`` (the reference appends it to ``sleap-rtc``, which
   narrows nothing). Supported model types are a list property, which no filter
   operator can search, so :func:`supports_job` checks model and job type on
   the returned peers.
2. :class:`ResponseCollector` records the ``job_response`` of every worker asked
   and the ones that left, and says when all have answered, so the client stops
   waiting then instead of at a fixed deadline.
3. :func:`choose_best` picks the accepted response with the shortest estimate;
   ties go to the most free GPU memory, then to the smallest peer id, so the
   choice never depends on arrival order. Workers that see the job's data
   (:func:`sees_path`, by their published mounts) come before any that do
   not: a worker that cannot read the labels would only fail the job.
4. :func:`rejection_error` turns the reasons into a
   :class:`~sleap_rtc_core.errors.NoWorkersAcceptedError`.
5. :func:`worker_named` finds the worker a user named (``--worker``) by peer id
   or by the name ``sleap-rtc workers`` shows.

The three client exceptions of the issue already live in
:mod:`sleap_rtc_core.errors` (``NoWorkersAvailableError``,
``NoWorkersAcceptedError``, ``JobFailedError``); they are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..errors import JobFailedError, NoWorkersAcceptedError, NoWorkersAvailableError
from ..protocol.negotiation import JobResponse, JobType
from ..protocol.states import WorkerStatus

__all__ = [
    "GONE",
    "TIMEOUT",
    "WORKER_ROLE",
    "Candidate",
    "JobFailedError",
    "NoWorkersAcceptedError",
    "NoWorkersAvailableError",
    "Recorded",
    "ResponseCollector",
    "choose_best",
    "rejection_error",
    "sees_path",
    "supports_job",
    "worker_filters",
    "worker_named",
]

WORKER_ROLE = "worker"
"""The role workers register with."""

_WORKER_TAG = "sleap-rtc"
_JOB_TYPE_TAGS: Mapping[JobType, str] = {
    JobType.TRAINING: "training-worker",
    JobType.INFERENCE: "inference-worker",
}

GONE = "gone"
"""The reason recorded for a worker that left before answering."""

TIMEOUT = "timeout"
"""The reason recorded for a worker that did not answer in time."""


def worker_filters(
    min_gpu_memory_mb: int | float | None = None,
    job_type: JobType | str | None = None,
    model_type: str | None = None,
) -> dict[str, Any]:
    """The ``filters`` of a ``discover_peers`` request for available workers.

    Args:
        min_gpu_memory_mb: Least GPU memory in MiB (``gpu_memory_mb >= N``).
        job_type: ``training`` or ``inference``: only workers tagged for it.
        model_type: Not expressible as a filter (``supported_models`` is a
            list); accepted for symmetry with ``discover_workers`` and checked by
            :func:`supports_job` on the answer.

    Returns:
        A fresh filter, e.g. ``{"role": "worker", "tags": ["training-worker"],
        "properties": {"status": "available", "gpu_memory_mb": {"$gte": 8000}}}``.

    Raises:
        ValueError: for an unknown job type or a memory bound that is not a
            finite number.
    """
    del model_type  # checked client-side, see supports_job
    tags = (
        [_JOB_TYPE_TAGS[JobType(job_type)]] if job_type is not None else [_WORKER_TAG]
    )
    properties: dict[str, Any] = {"status": WorkerStatus.AVAILABLE.value}
    if min_gpu_memory_mb is not None:
        if (
            isinstance(min_gpu_memory_mb, bool)
            or not isinstance(min_gpu_memory_mb, int | float)
            or not math.isfinite(min_gpu_memory_mb)
        ):
            raise ValueError(
                f"min_gpu_memory_mb must be a finite number, not {min_gpu_memory_mb!r}"
            )
        properties["gpu_memory_mb"] = {"$gte": min_gpu_memory_mb}
    return {"role": WORKER_ROLE, "tags": tags, "properties": properties}


def _properties(peer: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = peer.get("metadata")
    if not isinstance(metadata, Mapping):
        return {}
    props = metadata.get("properties")
    return props if isinstance(props, Mapping) else {}


def supports_job(
    peer: Mapping[str, Any],
    *,
    job_type: JobType | str | None = None,
    model_type: str | None = None,
) -> bool:
    """Whether a discovered peer advertises support for the job.

    A worker that does not advertise ``supported_job_types`` /
    ``supported_models`` at all (an old worker, or the manual fallback peer) is
    given the benefit of the doubt: its ``job_response`` will say.

    Args:
        peer: One entry of ``peer_list.peers`` (``{"peer_id", "metadata", ...}``).
        job_type: The job type wanted, if any.
        model_type: The model type wanted, if any.
    """
    props = _properties(peer)
    if job_type is not None:
        advertised = props.get("supported_job_types")
        if isinstance(advertised, list) and JobType(job_type).value not in advertised:
            return False
    if model_type is not None:
        advertised = props.get("supported_models")
        if isinstance(advertised, list) and model_type not in advertised:
            return False
    return True


class Recorded(StrEnum):
    """What :meth:`ResponseCollector.record` did with a response."""

    COUNTED = "counted"
    """The first answer of an asked worker."""
    DUPLICATE = "duplicate"
    """That worker had answered already (or left); the first answer stands."""
    NOT_ASKED = "not_asked"
    """From a peer nobody asked; ignored."""
    OTHER_JOB = "other_job"
    """For another job id; ignored."""
    LATE = "late"
    """After :meth:`ResponseCollector.close`. If it accepted, the worker now
    holds a reservation: send it ``job_cancel``."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """One accepting worker.

    Attributes:
        peer_id: The worker.
        response: Its accepting ``job_response``.
    """

    peer_id: str
    response: JobResponse

    @property
    def estimate_minutes(self) -> float:
        """The estimate; ``inf`` when missing or not a finite number."""
        return _finite(self.response.estimated_duration_minutes, math.inf)

    @property
    def free_memory_mb(self) -> float:
        """``worker_info.available_memory_mb``; ``-inf`` when missing."""
        info = self.response.worker_info or {}
        return _finite(info.get("available_memory_mb"), -math.inf)


def _finite(value: Any, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return float(value) if math.isfinite(value) else default


def _rank(c: Candidate, prefer: Collection[str] = ()) -> tuple[bool, float, float, str]:
    return (c.peer_id not in prefer, c.estimate_minutes, -c.free_memory_mb, c.peer_id)


def sees_path(peer: Mapping[str, Any], path: str) -> bool | None:
    """Whether a worker's published mounts hold ``path`` (a worker path, after
    the job's mappings): ``None`` when it publishes no mounts (a 0.0.7 worker,
    the fallback), so nothing is known."""
    mounts = _properties(peer).get("mounts")
    if not isinstance(mounts, list) or not mounts:
        return None
    wanted = path.replace("\\", "/")
    for mount in mounts:
        root = mount.get("path") if isinstance(mount, Mapping) else None
        if not isinstance(root, str) or not root:
            continue
        root = root.replace("\\", "/").rstrip("/") or "/"
        if wanted == root or wanted.startswith(root if root == "/" else root + "/"):
            return True
    return False


def choose_best(
    responses: Iterable[Candidate] | Mapping[str, JobResponse],
    prefer: Collection[str] = (),
) -> Candidate | None:
    """The best accepting worker, or ``None`` when none accepted.

    Workers in ``prefer`` (those that see the job's data) first; then the
    shortest ``estimated_duration_minutes``; ties go to the most
    ``worker_info.available_memory_mb``, then to the smallest peer id.
    Responses that did not accept are skipped.

    Args:
        responses: Candidates, or a mapping peer id → ``job_response``.
        prefer: Peer ids ranked before all others.
    """

    if isinstance(responses, Mapping):
        candidates: Iterable[Candidate] = (
            Candidate(peer_id, r) for peer_id, r in responses.items()
        )
    else:
        candidates = responses
    accepted = [c for c in candidates if c.response.accepted]
    return min(accepted, key=lambda c: _rank(c, prefer)) if accepted else None


class ResponseCollector:
    """The answers to one job's ``job_request``, from the workers it was sent to.

    Feed it every ``job_response`` (:meth:`record`) and every departure
    (:meth:`peer_gone`); it is :attr:`done` as soon as every asked worker has
    answered or left. The adapter waits for ``done`` or its deadline, then calls
    :meth:`close`; whoever is still pending counts as ``timeout``.

    Attributes:
        job_id: The job asked about; responses for other jobs are ignored.
        asked: The workers the request went to.
    """

    def __init__(
        self, asked_peer_ids: Iterable[str], job_id: str | None = None
    ) -> None:
        """Start collecting.

        Args:
            asked_peer_ids: Workers the ``job_request`` was sent to.
            job_id: Only responses for this job count; ``None`` accepts any.
        """
        self.asked: frozenset[str] = frozenset(asked_peer_ids)
        self.job_id = job_id
        self._responses: dict[str, JobResponse] = {}
        self._gone: set[str] = set()
        self._closed = False
        self._late: dict[str, JobResponse] = {}

    @property
    def pending(self) -> frozenset[str]:
        """Asked workers that have neither answered nor left."""
        return self.asked - self._responses.keys() - self._gone

    @property
    def done(self) -> bool:
        """Whether every asked worker has answered or left."""
        return not self.pending

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def record(self, peer_id: str, response: JobResponse) -> Recorded:
        """Note ``peer_id``'s ``job_response``.

        Returns:
            What was done with it (see :class:`Recorded`).
        """
        if self.job_id is not None and response.job_id != self.job_id:
            return Recorded.OTHER_JOB
        if peer_id not in self.asked:
            return Recorded.NOT_ASKED
        if peer_id in self._responses or peer_id in self._gone:
            return Recorded.DUPLICATE
        if self._closed:
            self._late.setdefault(peer_id, response)
            return Recorded.LATE
        self._responses[peer_id] = response
        return Recorded.COUNTED

    def peer_gone(self, peer_id: str) -> bool:
        """Note that an asked worker left before answering.

        Returns:
            Whether this changed anything (it was asked and still pending).
        """
        if peer_id not in self.pending:
            return False
        self._gone.add(peer_id)
        return True

    def close(self) -> frozenset[str]:
        """Stop collecting (the deadline passed, or everyone answered).

        Returns:
            The workers that never answered.
        """
        self._closed = True
        return self.pending

    @property
    def responses(self) -> Mapping[str, JobResponse]:
        """The counted responses, by worker."""
        return dict(self._responses)

    def candidates(self, prefer: Collection[str] = ()) -> list[Candidate]:
        """The accepting workers, best first (the order of :func:`choose_best`)."""
        accepted = [
            Candidate(peer_id, r)
            for peer_id, r in self._responses.items()
            if r.accepted
        ]
        return sorted(accepted, key=lambda c: _rank(c, prefer))

    def best(self, prefer: Collection[str] = ()) -> Candidate | None:
        """The worker to assign the job to, or ``None`` when nobody accepted
        (those in ``prefer`` first: see :func:`choose_best`)."""
        return choose_best(
            (Candidate(p, r) for p, r in self._responses.items()), prefer
        )

    def to_release(self, chosen: str | None) -> list[str]:
        """Accepting workers other than ``chosen``, sorted: send each a
        ``job_cancel`` so its reservation ends now rather than at expiry."""
        return sorted(
            peer_id
            for peer_id, r in {**self._late, **self._responses}.items()
            if r.accepted and peer_id != chosen
        )

    def reasons(self) -> dict[str, str]:
        """Why each asked worker is not running the job, by worker.

        A rejection gives its ``reason`` (``"rejected"`` when it gave none); a
        worker that left gives ``"gone"``; one still pending gives
        ``"timeout"``. Accepting workers are not listed.
        """
        out: dict[str, str] = {}
        for peer_id in sorted(self.asked):
            response = self._responses.get(peer_id)
            if response is not None:
                if not response.accepted:
                    out[peer_id] = response.reason or "rejected"
            elif peer_id in self._gone:
                out[peer_id] = GONE
            else:
                out[peer_id] = TIMEOUT
        return out


def rejection_error(reasons: Mapping[str, str]) -> NoWorkersAcceptedError:
    """The error to raise when no asked worker accepted.

    Args:
        reasons: Worker → reason, e.g. :meth:`ResponseCollector.reasons`.

    Returns:
        A :class:`NoWorkersAcceptedError` whose message lists every reason
        and whose ``reasons`` attribute holds them.
    """
    if reasons:
        listed = ", ".join(f"{peer}: {why}" for peer, why in sorted(reasons.items()))
        message = f"no worker accepted the job ({listed})"
    else:
        message = "no worker accepted the job (none was asked)"
    return NoWorkersAcceptedError(message, reasons=reasons)


def worker_named(workers: Iterable[Mapping[str, Any]], wanted: str) -> str:
    """The peer id of the worker ``wanted`` names: its peer id, or else its
    ``worker_name`` (what ``sleap-rtc workers`` shows) when one worker has it.

    Args:
        workers: ``discover_peers`` results for role ``worker``.
        wanted: A peer id or a worker name.

    Raises:
        NoWorkersAvailableError: no such worker, or several share the name
            (the message lists the workers there are).
    """
    listed = list(workers)
    if any(p.get("peer_id") == wanted for p in listed):
        return wanted
    named = [
        str(p.get("peer_id"))
        for p in listed
        if _properties(p).get("worker_name") == wanted
    ]
    if len(named) == 1:
        return named[0]
    if named:
        raise NoWorkersAvailableError(
            f"{len(named)} workers are named {wanted!r} ({', '.join(sorted(named))}); "
            "give the peer id"
        )
    known = sorted(
        f"{p.get('peer_id')} ({_properties(p).get('worker_name')})"
        if _properties(p).get("worker_name")
        else str(p.get("peer_id"))
        for p in listed
    )
    there = f"workers here: {', '.join(known)}" if known else "no worker is here"
    raise NoWorkersAvailableError(f"no worker {wanted!r} in this room ({there})")
