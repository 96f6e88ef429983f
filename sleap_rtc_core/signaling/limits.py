"""The bounds a signaling server enforces, and the per-peer rate budget.

Every crossing is answered with a typed error (``MESSAGE_TOO_LARGE``,
``RATE_LIMITED``, ``ROOM_FULL``, ``SERVER_FULL``) and counted in ``/metrics``;
only sustained abuse past the rate limit closes a connection.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Limits", "TokenBucket"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Server limits (all per server process)."""

    max_frame_bytes: int = 1 << 20
    """Largest text frame handled; larger ones get ``MESSAGE_TOO_LARGE``."""

    hard_frame_bytes: int = 4 << 20
    """Largest frame the WebSocket layer reads at all (beyond: close 1009)."""

    max_metadata_bytes: int = 16 * 1024
    """Largest metadata object a peer may store (compact JSON)."""

    messages_per_second: float = 200.0
    """Sustained frames per second one connection may send."""

    burst: int = 400
    """Frames a connection may send at once before the rate applies."""

    abuse_strikes: int = 2000
    """Consecutive rate-limited frames after which the connection is closed."""

    max_peers_per_room: int = 10_000
    """Registered peers one room may hold (``ROOM_FULL`` beyond)."""

    max_connections: int = 20_000
    """Open WebSocket connections (``SERVER_FULL`` beyond)."""

    max_http_body_bytes: int = 1 << 20
    """Largest HTTP request body accepted (413 beyond)."""


class TokenBucket:
    """A classic token bucket: ``rate`` tokens per second, at most ``capacity``."""

    __slots__ = ("_clock", "_stamp", "capacity", "rate", "tokens")

    def __init__(
        self,
        rate: float,
        capacity: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = float(capacity)
        self._clock = clock
        self._stamp = clock()

    def take(self) -> bool:
        """Spend one token; False when none is left."""
        now = self._clock()
        elapsed = now - self._stamp
        self._stamp = now
        tokens = min(self.capacity, self.tokens + elapsed * self.rate)
        if tokens < 1.0:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1.0
        return True
