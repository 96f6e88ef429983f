"""One connection as the router sees it, and the steps it hands back to its adapter.

:class:`Session` is the router's state of one WebSocket connection (its
registration, rate budget, held frames, the outbox behind an uncommitted
``registered_auth``); :class:`RegisterRequest` and :class:`Commit` are the two
steps that need I/O, which :mod:`.router_io` (or a replicating backend) performs
before calling the router back. Pure data: no sockets, no clock but the
monotonic ``last_seen``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ...protocol import signaling as sig
from .announce import Event
from .limits import TokenBucket
from .registry import PeerRecord

__all__ = [
    "CLOSE_POLICY",
    "CLOSE_REPLACED",
    "CLOSE_REVOKED",
    "MAX_HELD_BYTES",
    "MAX_OUTBOX",
    "PING_FRAME",
    "Commit",
    "IdentityLike",
    "RegisterRequest",
    "Session",
]

PING_FRAME = b'{"type":"ping"}'
CLOSE_POLICY = 1008
CLOSE_REPLACED = 4000
CLOSE_REVOKED = 4001


class IdentityLike(Protocol):
    """What the router needs to know about an authenticated peer."""

    @property
    def room_id(self) -> str: ...
    @property
    def principal(self) -> str: ...
    @property
    def display_name(self) -> str: ...
    @property
    def credential_id(self) -> str | None: ...
    @property
    def kind(self) -> str: ...
    @property
    def server_metadata(self) -> dict[str, Any]: ...
    @property
    def revocation_ids(self) -> frozenset[str]: ...


MAX_HELD_BYTES = 4 << 20
"""Bytes of over-rate frames one connection may have waiting; beyond, it is
abuse and the connection is closed."""

MAX_OUTBOX = 1024
"""Frames for a peer whose ``register`` is being committed that may wait for
its ``registered_auth``; beyond, their senders get ``DELIVERY_FAILED``."""


@dataclass(eq=False, slots=True)
class Session:
    """Router state of one WebSocket connection.

    Attributes:
        send: Queue one text frame (UTF-8 JSON bytes); returns False when the
            connection can no longer send.
        close: Close the connection with a WebSocket close code and reason.
        remote: The peer address, for logs.
        peer: The registration this connection owns, if any.
        bucket: Its message-rate budget.
        pending: Frames held while a ``register`` is being authenticated.
        last_seen: Monotonic time of the last frame received (liveness).
        strikes: Frames over the rate since the peer last went quiet.
        throttled: Over its rate now: the adapter should stop reading from it
            and call :meth:`Router.replay` later (one ``RATE_LIMITED`` per
            episode).
        held: Frames that arrived over the rate, in order: handled by
            :meth:`Router.replay` once the budget refills, never dropped.
        held_bytes: Their size together (bounded by :data:`MAX_HELD_BYTES`).
        metadata_bucket: Its ``update_metadata`` budget (made at the first).
        commit: Its ``registered_auth``, held while the backend commits the
            registration (see :class:`Commit`).
        outbox: Frames for it that arrived meanwhile, sent after the reply.
        backlog: Bytes of output queued and not yet written (a peer whose
            output is backed up gets its announcements later, coalesced).
        subscription: ``(room_id, roles)`` whose announcements it hears.
        news: Announcements waiting for the next tick, by subject peer id.
    """

    send: Callable[[bytes], bool]
    close: Callable[[int, str], None]
    bucket: TokenBucket
    remote: str = "?"
    peer: PeerRecord | None = None
    pending: deque[str] | None = None
    last_seen: float = field(default_factory=time.monotonic)
    strikes: int = 0
    throttled: bool = False
    closed: bool = False
    held: deque[str] = field(default_factory=deque)
    held_bytes: int = 0
    metadata_bucket: TokenBucket | None = None
    commit: bytes | None = None
    outbox: list[bytes] | None = None
    backlog: Callable[[], int] = field(default=lambda: 0)
    subscription: tuple[str, frozenset[str]] | None = None
    news: dict[str, tuple[Event, PeerRecord]] | None = None

    def push(self, data: bytes) -> bool:
        """Send a frame, or hold it behind a ``registered_auth`` not yet sent
        (so a peer never hears from others before its own reply)."""
        outbox = self.outbox
        if outbox is None:
            return self.send(data)
        if len(outbox) >= MAX_OUTBOX:
            return False
        outbox.append(data)
        return True


@dataclass(frozen=True, slots=True)
class RegisterRequest:
    """A ``register`` waiting for its credentials to be checked by the adapter."""

    session: Session
    message: sig.Register


@dataclass(frozen=True, slots=True)
class Commit:
    """A registration whose ``registered_auth`` waits until the backend has
    made the peer findable by every process; the adapter awaits that, then
    calls :meth:`Router.committed`."""

    session: Session
    record: PeerRecord
