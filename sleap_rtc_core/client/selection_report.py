"""What the user is told about a placement: the workers asked, and the choice.

Pure text from the pieces :mod:`.selection` collects (no I/O, no clock), so that
``sleap-rtc train``/``track`` and the GUI (through the log) say the same::

    found 2 available workers:
      - lab-gpu (gpu1): NVIDIA RTX A5000, 24 GB: estimate 42 min
      - gpu2: RTX 4090, 16 GB: declined: busy
    selected lab-gpu (gpu1) (reason: shortest estimate)

:func:`worker_lines` gives the list, :func:`choice_reason` why the chosen one
won (the rules of :func:`.selection.choose_best`, named), and
:func:`selected_line` the last line. Estimates are always labelled as such.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from ..protocol.negotiation import JobResponse, RejectReason
from .selection import GONE, TIMEOUT, Candidate, choose_best

__all__ = [
    "ONLY_ONE",
    "choice_reason",
    "display_name",
    "format_minutes",
    "selected_line",
    "worker_lines",
]

ONLY_ONE = "only one"
"""The reason when a single worker accepted."""

_DECLINED: Mapping[str, str] = {
    RejectReason.BUSY.value: "busy",
    RejectReason.INSUFFICIENT_MEMORY.value: "insufficient GPU memory",
    RejectReason.INCOMPATIBLE.value: "cannot run this job",
    RejectReason.INCOMPATIBLE_VERSION.value: "incompatible version",
    RejectReason.MAINTENANCE.value: "in maintenance",
    GONE: "left before answering",
    TIMEOUT: "no answer in time",
}


def _properties(peer: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = peer.get("metadata")
    props = metadata.get("properties") if isinstance(metadata, Mapping) else None
    return props if isinstance(props, Mapping) else {}


def display_name(peer: Mapping[str, Any]) -> str:
    """``NAME (PEER_ID)`` for a worker with a ``worker_name``, else its peer id."""
    name = _properties(peer).get("worker_name")
    peer_id = str(peer.get("peer_id"))
    return f"{name} ({peer_id})" if name and name != peer_id else peer_id


def format_minutes(value: Any) -> str | None:
    """``42`` or ``1.5`` (minutes, one decimal at most); ``None`` if not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return f"{float(value):.1f}".removesuffix(".0")


def _gpu(peer: Mapping[str, Any], response: JobResponse | None) -> str:
    """``MODEL, N GB`` from the answer's ``worker_info``, else the metadata."""
    info = (response.worker_info if response is not None else None) or {}
    props = _properties(peer)
    model = info.get("gpu_model") or props.get("gpu_model") or "GPU unknown"
    memory = info.get("gpu_memory_mb") or props.get("gpu_memory_mb")
    if isinstance(memory, int | float) and not isinstance(memory, bool) and memory > 0:
        return f"{model}, {memory / 1024:.0f} GB"
    return str(model)


def _answer(response: JobResponse | None, reason: str | None) -> str:
    if response is not None and response.accepted:
        minutes = format_minutes(response.estimated_duration_minutes)
        return f"estimate {minutes} min" if minutes else "accepted (no estimate)"
    why = _DECLINED.get(reason or "", reason or "declined")
    message = response.extra.get("message") if response is not None else None
    detail = f" ({message})" if isinstance(message, str) and message else ""
    return f"declined: {why}{detail}"


def worker_lines(
    workers: Sequence[Mapping[str, Any]],
    responses: Mapping[str, JobResponse],
    reasons: Mapping[str, str],
    prefer: Collection[str] = (),
) -> list[str]:
    """A heading and one line per asked worker: name, GPU, and its answer.

    Accepting workers come first, best first; then the others by peer id.

    Args:
        workers: The ``peer_list`` entries the request went to.
        responses: Their ``job_response``s, by peer id.
        reasons: Why each non-accepting one is not running the job
            (:meth:`.selection.ResponseCollector.reasons`).
        prefer: Workers that see the job's data (ranked first).
    """
    by_id = {str(w.get("peer_id")): w for w in workers}
    accepted = [
        Candidate(p, r) for p, r in responses.items() if r.accepted and p in by_id
    ]
    accepted.sort(
        key=lambda c: (
            c.peer_id not in prefer,
            c.estimate_minutes,
            -c.free_memory_mb,
            c.peer_id,
        )
    )
    best_first = [c.peer_id for c in accepted]
    order = best_first + sorted(p for p in by_id if p not in best_first)
    count = len(order)
    lines = [f"found {count} available worker{'s' if count != 1 else ''}:"]
    for peer_id in order:
        peer, response = by_id[peer_id], responses.get(peer_id)
        answer = _answer(response, reasons.get(peer_id))
        lines.append(f"  - {display_name(peer)}: {_gpu(peer, response)}: {answer}")
    return lines


def choice_reason(
    responses: Mapping[str, JobResponse],
    chosen: str,
    prefer: Collection[str] = (),
    data: str = "labels",
) -> str:
    """Why ``chosen`` won, in the words of the rule that decided it.

    ``only one`` when it alone accepted; else the first rule of
    :func:`.selection.choose_best` that sets it above the runner-up: ``sees
    the labels`` (or ``data``), ``shortest estimate``, ``most free GPU
    memory``, else ``first by peer id`` (a tie).

    Args:
        responses: Every counted ``job_response``, by peer id.
        chosen: The worker the job was assigned to.
        prefer: Workers that see the job's data.
        data: What the job reads (``labels`` for training, ``data`` for
            inference), for the ``sees the …`` reason.
    """
    others = {p: r for p, r in responses.items() if r.accepted and p != chosen}
    runner_up = choose_best(others, prefer)
    if chosen not in responses or runner_up is None:
        return ONLY_ONE
    best = Candidate(chosen, responses[chosen])
    if (best.peer_id in prefer) != (runner_up.peer_id in prefer):
        return f"sees the {data}"
    if best.estimate_minutes != runner_up.estimate_minutes:
        return "shortest estimate"
    if best.free_memory_mb != runner_up.free_memory_mb:
        return "most free GPU memory"
    return "first by peer id"


def selected_line(peer: Mapping[str, Any], reason: str) -> str:
    """``selected NAME (reason: REASON)``."""
    return f"selected {display_name(peer)} (reason: {reason})"
