"""Frames waiting for a peer that another server process may hold (pure).

With several processes, a peer that registered on another process a moment
ago is not yet in this process's registry: the announcement is still on its
way. The router does not answer "not found" from its own replica then. It asks
the backend for an authoritative lookup and parks the frame here, keyed by
room and target; frames that follow for the same target park behind it (even
if the announcement arrives meanwhile), so that no sender's frames overtake
each other. When the lookup is answered the router takes them out in arrival
order and delivers each, or answers each sender with its typed error.

Bounded: a target holds at most ``max_per_target`` frames and all targets
together at most ``max_total``; past a bound the router refuses the frame with
``DELIVERY_FAILED`` (a typed reply, never a silent drop).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass

__all__ = ["Unresolved", "Waiting"]

Key = tuple[str, str]
"""``(room_id, peer_id)`` of the target being looked up."""


@dataclass(frozen=True, slots=True)
class Waiting:
    """One parked frame.

    Attributes:
        session: The sender's connection (skipped if it closed meanwhile).
        data: The frame to deliver, as it would have been sent.
        miss: Answers the sender when the target is absent (its typed error,
            or nothing where the protocol stays silent).
        request_id: The sender's correlation id, for error replies.
    """

    session: Hashable
    data: bytes
    miss: Callable[[], None]
    request_id: str | None = None


class Unresolved:
    """Parked frames per target, in arrival order.

    Args:
        max_per_target: Frames one target may have waiting.
        max_total: Frames all targets together may have waiting.
    """

    def __init__(self, max_per_target: int = 1024, max_total: int = 10_000) -> None:
        self.max_per_target = max_per_target
        self.max_total = max_total
        self._waiting: dict[Key, deque[Waiting]] = {}
        self._total = 0

    def __len__(self) -> int:
        return self._total

    def __contains__(self, key: object) -> bool:
        return key in self._waiting

    def targets(self) -> list[Key]:
        """The targets with a lookup in flight."""
        return list(self._waiting)

    def park(self, key: Key, entry: Waiting) -> bool:
        """Add a frame behind those waiting for ``key`` (a new key starts a
        lookup: the caller asks for it). False when over a bound."""
        queue = self._waiting.get(key)
        if self._total >= self.max_total or (
            queue is not None and len(queue) >= self.max_per_target
        ):
            return False
        if queue is None:
            queue = self._waiting[key] = deque()
        queue.append(entry)
        self._total += 1
        return True

    def take(self, key: Key) -> list[Waiting]:
        """Remove and return the frames waiting for ``key``, oldest first."""
        queue = self._waiting.pop(key, None)
        if queue is None:
            return []
        self._total -= len(queue)
        return list(queue)
