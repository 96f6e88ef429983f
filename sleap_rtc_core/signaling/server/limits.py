"""The bounds a signaling server enforces, and the per-peer rate budget.

Every crossing is answered with a typed error (``MESSAGE_TOO_LARGE``,
``RATE_LIMITED``, ``ROOM_FULL``, ``SERVER_FULL``, HTTP 503 for too many
connections from one address) and counted in ``/metrics``;
only sustained abuse past the rate limit closes a connection.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace

__all__ = ["LIMIT_NAMES", "Limits", "TokenBucket", "limits_from", "parse_limit"]


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

    metadata_updates_per_second: float = 2.0
    """Sustained ``update_metadata`` one connection may send: each is announced
    to the room's subscribers, so they have a budget of their own (``RATE_LIMITED``
    beyond, the stored metadata unchanged)."""

    metadata_burst: int = 20
    """``update_metadata`` a connection may send at once."""

    abuse_strikes: int = 2000
    """Consecutive rate-limited frames after which the connection is closed."""

    max_peers_per_room: int = 10_000
    """Registered peers one room may hold (``ROOM_FULL`` beyond)."""

    max_peers_per_credential: int = 1_000
    """Peers one credential (a room token, a worker or account key, a user's
    login) may hold in one room (``ROOM_FULL`` beyond), so no single holder can
    fill a room and lock its owner out."""

    max_connections: int = 20_000
    """Open WebSocket connections (``SERVER_FULL`` beyond)."""

    max_connections_per_address: int = 2_000
    """Open WebSocket connections from one IP address, loopback included
    (HTTP 503 beyond), so one host cannot take every connection slot."""

    announce_backlog_bytes: int = 256 * 1024
    """Unsent output beyond which a peer's room announcements wait (coalesced)
    for a later tick instead of piling up behind it."""

    max_pending_announcements: int = 4_096
    """Peers a backed-up peer may have announcements waiting about; beyond, it
    is closed (1008) as too slow, and re-registers to a fresh snapshot."""

    max_http_body_bytes: int = 1 << 20
    """Largest HTTP request body accepted (413 beyond)."""

    head_timeout: float = 10.0
    """Seconds a new TCP connection has to send its whole HTTP request (head
    and body); it is closed after, so idle sockets cannot hold connections."""

    register_timeout: float = 30.0
    """Seconds an open WebSocket has to ``register``; it is closed (1008) after,
    so sessions that only answer pings cannot fill ``max_connections``."""


LIMIT_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Limits))
"""Every limit a lab may set (``[limits]`` of the server config, ``--limit``)."""


def limits_from(values: Mapping[str, object], base: Limits | None = None) -> Limits:
    """``base`` (default: the defaults) with ``values`` set.

    Args:
        values: Limit name → number (an integer for the integer limits).

    Raises:
        ValueError: an unknown name (the known ones are listed), a value that is
            not a number of the limit's kind, or one not above zero.
    """
    base = base or Limits()
    changes: dict[str, object] = {}
    for name, value in values.items():
        if name not in LIMIT_NAMES:
            raise ValueError(
                f"unknown limit {name!r}; the limits are: {', '.join(LIMIT_NAMES)}"
            )
        default = getattr(base, name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"limit {name} must be a number, not {value!r}")
        if isinstance(default, int) and not isinstance(value, int):
            if not float(value).is_integer():
                raise ValueError(f"limit {name} must be a whole number, not {value!r}")
            value = int(value)
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"limit {name} must be above zero, not {value!r}")
        changes[name] = value
    return replace(base, **changes)  # type: ignore[arg-type]


def parse_limit(text: str) -> tuple[str, float]:
    """``NAME=VALUE`` (a ``--limit`` flag) → ``(NAME, number)``.

    Raises:
        ValueError: not ``NAME=NUMBER``.
    """
    name, sep, raw = text.partition("=")
    try:
        number = float(raw)
    except ValueError:
        number = math.nan
    if not sep or not name.strip() or not math.isfinite(number):
        raise ValueError(f"--limit needs NAME=NUMBER, got {text!r}")
    return name.strip(), int(number) if number.is_integer() else number


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
