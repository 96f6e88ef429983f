"""Frames held for a peer whose server process died, until it registers again.

The synchronous, I/O-free half of the Redis backend's "never lose a frame to a
dead process" rule. A frame published to a process's inbox that no process
read (``PUBLISH`` answered 0 receivers: that process died) is *held* here under
its target, in order, for a grace period; so are the frames that follow for the
same target, and frames for a target whose earlier frames are still on their
way to another process (its peer moved meanwhile), so that none overtakes
another. When the target registers again (on any process) the backend takes
the frames out, oldest first, and delivers them; when the grace period ends
first, each sender gets a typed ``DELIVERY_FAILED``.

Peers of a process that died or stopped are remembered as *orphans* for the
same grace period, so that a lookup for one waits for its re-registration
rather than answering "not found" while it is reconnecting.

Bounded: a target holds at most ``max_per_target`` frames, all targets together
at most ``max_total``; past a bound the frame fails at once.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

__all__ = ["Hold", "Holds"]

Key = tuple[str, str]
"""``(room_id, peer_id)`` of a target."""


@dataclass(slots=True)
class Hold:
    """The frames held for one target.

    Attributes:
        returned: Frames that came back from a dead process, in order.
        fresh: Frames forwarded after the hold began (newer than every
            ``returned`` one and every frame still in flight).
        deadline: Monotonic time after which they fail.
        dead: The process found dead, if any (a record there is stale).
    """

    deadline: float
    dead: str | None = None
    returned: deque[bytes] = field(default_factory=deque)
    fresh: deque[bytes] = field(default_factory=deque)

    def __len__(self) -> int:
        return len(self.returned) + len(self.fresh)

    def frames(self) -> list[bytes]:
        """Every held frame, oldest first."""
        return [*self.returned, *self.fresh]


class Holds:
    """Held frames and orphans by target.

    Args:
        grace: Seconds a frame (or an orphan) waits for its target.
        max_per_target: Frames one target may have held.
        max_total: Frames all targets together may have held.
    """

    def __init__(
        self, grace: float, max_per_target: int = 1024, max_total: int = 10_000
    ) -> None:
        self.grace = grace
        self.max_per_target = max_per_target
        self.max_total = max_total
        self.holds: dict[Key, Hold] = {}
        self.orphans: dict[Key, float] = {}
        self._total = 0

    def __len__(self) -> int:
        return self._total

    def __contains__(self, key: object) -> bool:
        return key in self.holds

    def _hold(self, key: Key, now: float) -> Hold | None:
        hold = self.holds.get(key)
        if hold is None:
            if self._total >= self.max_total:
                return None
            hold = self.holds[key] = Hold(now + self.grace)
        elif len(hold) >= self.max_per_target or self._total >= self.max_total:
            return None
        return hold

    def returned(self, key: Key, data: bytes, dead: str, now: float) -> bool:
        """Hold a frame that ``dead`` did not read; False over a bound."""
        hold = self._hold(key, now)
        if hold is None:
            return False
        hold.dead = dead
        hold.returned.append(data)
        self._total += 1
        return True

    def fresh(self, key: Key, data: bytes, now: float) -> bool:
        """Hold a frame behind those held (or in flight) for ``key``; False
        over a bound."""
        hold = self._hold(key, now)
        if hold is None:
            return False
        hold.fresh.append(data)
        self._total += 1
        return True

    def take(self, key: Key) -> Hold | None:
        """Remove and return the hold of ``key``."""
        hold = self.holds.pop(key, None)
        if hold is not None:
            self._total -= len(hold)
        return hold

    def orphan(self, key: Key, now: float) -> None:
        """Remember a peer whose process is gone, for the grace period (which
        frames held for it get afresh)."""
        self.orphans[key] = now + self.grace
        hold = self.holds.get(key)
        if hold is not None:
            hold.deadline = max(hold.deadline, now + self.grace)

    def waits(self, key: Key, now: float) -> bool:
        """Whether a lookup for ``key`` should wait for a re-registration."""
        if key in self.holds:
            return True
        deadline = self.orphans.get(key)
        return deadline is not None and deadline > now

    def expired(self, now: float) -> tuple[list[tuple[Key, Hold]], list[Key]]:
        """Remove and return the holds and orphans whose grace has ended."""
        holds = [(k, h) for k, h in self.holds.items() if h.deadline <= now]
        for key, _ in holds:
            self.take(key)
        orphans = [k for k, d in self.orphans.items() if d <= now]
        for key in orphans:
            del self.orphans[key]
        return holds, orphans
