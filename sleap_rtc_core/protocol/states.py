"""Transition tables of the job lifecycle and the worker status, as data.

Each table maps ``state -> {event -> new state}``. The tables say nothing about
who runs them (worker, client, GUI): an adapter feeds events and reacts to the new
state. Anything not in a table is illegal: :func:`transition` raises
:class:`LocalProtocolError` and the state stays as it was, as h11's ``_state.py``
does. :func:`render_mermaid` draws a table for the docs.

Job lifecycle::

    queued ─assign→ assigned ─start→ running ─succeed→ succeeded
                                       │ stop
                                       ▼
                                    stopping ─succeed→ succeeded (stopped early)
    (fail → failed, cancel → cancelled from every non-final state)

Worker status (the ``status`` property of its metadata) is not a table but a
function of the worker's slots, :func:`worker_status`; for one slot it walks::

    available ─reserve→ reserved ─assign→ busy ─finish→ available
    available ─submit→ busy             reserved ─release→ available
    available/reserved ─pause→ maintenance ─resume→ available
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Generic, TypeVar

from ..errors import LocalProtocolError

__all__ = [
    "JOB_TERMINAL_STATES",
    "JOB_TRANSITIONS",
    "JobEvent",
    "JobState",
    "StateMachine",
    "TransitionTable",
    "WorkerStatus",
    "allowed_events",
    "check_table",
    "is_terminal",
    "render_mermaid",
    "transition",
    "worker_status",
]

S = TypeVar("S", bound=StrEnum)
E = TypeVar("E", bound=StrEnum)

TransitionTable = Mapping[S, Mapping[E, S]]
"""``table[state][event] -> new_state``; every state is a key (final: empty)."""


class JobState(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    """Known to the client, not yet placed on a worker."""
    ASSIGNED = "assigned"
    """A worker holds it (reserved or submitted), not yet running."""
    RUNNING = "running"
    """The worker's process runs it."""
    STOPPING = "stopping"
    """A graceful stop was asked for; results so far will be kept."""
    SUCCEEDED = "succeeded"
    """Finished (also after a graceful stop); final."""
    FAILED = "failed"
    """Rejected, crashed or lost; final."""
    CANCELLED = "cancelled"
    """Cancelled by its owner; final."""


class JobEvent(StrEnum):
    """Things that happen to a job."""

    ASSIGN = "assign"
    """A worker accepted it (``job_response``/``JOB_ACCEPTED``)."""
    START = "start"
    """The process started."""
    STOP = "stop"
    """A graceful stop was requested (train ends early, keeps the model)."""
    SUCCEED = "succeed"
    """The process ended well."""
    FAIL = "fail"
    """Rejected, crashed, or the worker vanished."""
    CANCEL = "cancel"
    """The owner cancelled it (process killed, results dropped)."""


class WorkerStatus(StrEnum):
    """A worker's availability, as published in ``metadata.properties.status``."""

    AVAILABLE = "available"
    RESERVED = "reserved"
    BUSY = "busy"
    MAINTENANCE = "maintenance"


def _freeze(
    table: Mapping[S, Mapping[E, S]],
) -> Mapping[S, Mapping[E, S]]:
    return MappingProxyType({s: MappingProxyType(dict(t)) for s, t in table.items()})


_J, _JE = JobState, JobEvent
JOB_TRANSITIONS: Mapping[JobState, Mapping[JobEvent, JobState]] = _freeze(
    {
        _J.QUEUED: {
            _JE.ASSIGN: _J.ASSIGNED,
            _JE.FAIL: _J.FAILED,
            _JE.CANCEL: _J.CANCELLED,
        },
        _J.ASSIGNED: {
            _JE.START: _J.RUNNING,
            _JE.FAIL: _J.FAILED,
            _JE.CANCEL: _J.CANCELLED,
        },
        _J.RUNNING: {
            _JE.STOP: _J.STOPPING,
            _JE.SUCCEED: _J.SUCCEEDED,
            _JE.FAIL: _J.FAILED,
            _JE.CANCEL: _J.CANCELLED,
        },
        _J.STOPPING: {
            _JE.STOP: _J.STOPPING,  # pressing stop twice is harmless
            _JE.SUCCEED: _J.SUCCEEDED,
            _JE.FAIL: _J.FAILED,
            _JE.CANCEL: _J.CANCELLED,
        },
        _J.SUCCEEDED: {},
        _J.FAILED: {},
        _J.CANCELLED: {},
    }
)
"""The job lifecycle (client and worker alike)."""

JOB_TERMINAL_STATES: frozenset[JobState] = frozenset(
    s for s, events in JOB_TRANSITIONS.items() if not events
)
"""Final job states."""


def worker_status(
    *, slots: int, held: int, running: int, maintenance: bool
) -> WorkerStatus:
    """The status a worker publishes, from its job slots.

    Args:
        slots: How many jobs it may run at once.
        held: Slots reserved, assigned or running.
        running: Of those, the ones past their reservation.
        maintenance: Its owner took it out of service.

    Returns:
        ``busy`` while a job runs and no slot is free (or in maintenance, until
        the last job ends), then ``maintenance``; ``available`` while a slot is
        free; ``reserved`` when every slot is held by a reservation.
    """
    if maintenance:
        return WorkerStatus.BUSY if running else WorkerStatus.MAINTENANCE
    if held < slots:
        return WorkerStatus.AVAILABLE
    return WorkerStatus.BUSY if running else WorkerStatus.RESERVED


def check_table(table: Mapping[S, Mapping[E, S]]) -> None:
    """Check that every target state of ``table`` is one of its keys.

    Raises:
        LocalProtocolError: naming the first dangling target.
    """
    for state, events in table.items():
        for event, target in events.items():
            if target not in table:
                raise LocalProtocolError(
                    f"{state.value} --{event.value}--> {target!s}: no such state"
                )


def allowed_events(table: Mapping[S, Mapping[E, S]], state: S) -> frozenset[E]:
    """The events legal in ``state``."""
    return frozenset(table.get(state, {}))


def is_terminal(table: Mapping[S, Mapping[E, S]], state: S) -> bool:
    """Whether no event leaves ``state``."""
    return not table.get(state)


def transition(table: Mapping[S, Mapping[E, S]], state: S, event: E) -> S:
    """The state after ``event`` in ``state``.

    Raises:
        LocalProtocolError: when ``event`` is illegal in ``state`` (nothing
            changes: the caller keeps its state).
    """
    try:
        return table[state][event]
    except (KeyError, TypeError):
        raise LocalProtocolError(
            f"cannot {getattr(event, 'value', event)} "
            f"in state {getattr(state, 'value', state)}"
        ) from None


class StateMachine(Generic[S, E]):
    """A current state driven through a transition table.

    Logs every change at DEBUG as ``= state`` on the given logger (bind one to the
    job or connection id, e.g. with a :class:`logging.LoggerAdapter`).

    Attributes:
        table: The transition table.
        state: The current state.
    """

    __slots__ = ("_logger", "state", "table")

    def __init__(
        self,
        table: Mapping[S, Mapping[E, S]],
        initial: S,
        *,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        if initial not in table:
            raise LocalProtocolError(f"{initial!s} is not a state of this table")
        self.table = table
        self.state: S = initial
        self._logger = logger or logging.getLogger(__name__)

    def can(self, event: E) -> bool:
        """Whether ``event`` is legal now."""
        return event in self.table[self.state]

    @property
    def is_terminal(self) -> bool:
        """Whether the current state is final."""
        return not self.table[self.state]

    def handle(self, event: E) -> S:
        """Apply ``event`` and return the new state.

        Raises:
            LocalProtocolError: when ``event`` is illegal now; the state is
                unchanged.
        """
        new = transition(self.table, self.state, event)
        if new is not self.state:
            self._logger.debug("= %s (%s)", new.value, event.value)
        self.state = new
        return new


def render_mermaid(
    table: Mapping[S, Mapping[E, S]], *, initial: S | None = None
) -> str:
    """A Mermaid ``stateDiagram-v2`` of ``table`` for the docs.

    Args:
        table: The table to draw.
        initial: The start state (default: the table's first key).

    Returns:
        Mermaid source: one ``a --> b: event`` line per transition, ``[*]`` arrows
        into the initial state and out of final states.
    """
    states = list(table)
    lines = ["stateDiagram-v2"]
    if states:
        start = initial if initial is not None else states[0]
        lines.append(f"    [*] --> {start.value}")
    for state in states:
        for event, target in table[state].items():
            lines.append(f"    {state.value} --> {target.value}: {event.value}")
    for state in states:
        if not table[state]:
            lines.append(f"    {state.value} --> [*]")
    return "\n".join(lines) + "\n"


check_table(JOB_TRANSITIONS)
