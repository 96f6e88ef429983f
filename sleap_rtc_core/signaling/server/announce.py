"""Room announcements: who hears of joins, leaves and updates, coalesced per tick.

Announcing every change to every peer makes a room of n peers cost O(n^2) frames
to fill, and a peer that does not read piles up output. So (pure, no I/O):

* A peer hears only of the roles it subscribed to (``register.subscribe``; a
  legacy peer that sent none hears of every role), plus the ``peer_left`` of
  any peer it exchanged messages with (its *contacts*: a worker hears its client
  go, a client its worker). The subscribers of a room are indexed by role, so an
  announcement costs its receivers, not the room.
* What a peer should hear waits in a small map keyed by the subject's peer id,
  merged by :data:`MERGE` (a join then an update is one join with the latest
  metadata; a join then a leave within a tick is nothing), and goes out once per
  tick (:meth:`Announcer.flush`, driven by the server's timer).
* A peer whose output is backed up is skipped: its map keeps merging (at most
  one entry per subject) until its output drains. Past
  ``max_pending_announcements`` subjects it is closed as too slow: it
  re-registers and gets a fresh snapshot in ``registered_auth``, instead of the
  server buffering without bound.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import TYPE_CHECKING

from ...protocol.json_text import dumps_bytes

if TYPE_CHECKING:
    from .registry import PeerRecord
    from .session import Session

__all__ = ["ALL_ROLES", "MERGE", "Announcer", "Event"]

ALL_ROLES = "*"
"""The subscription role that means every role."""

CLOSE_SLOW = 1008


class Event(StrEnum):
    """What a peer hears about another (``REJOINED`` is internal: a leave then
    a join within one tick, sent as both)."""

    JOINED = "peer_joined"
    UPDATED = "peer_updated"
    LEFT = "peer_left"
    REJOINED = "rejoined"


MERGE: dict[tuple[Event | None, Event], Event | None] = {
    (None, Event.JOINED): Event.JOINED,
    (None, Event.UPDATED): Event.UPDATED,
    (None, Event.LEFT): Event.LEFT,
    (Event.JOINED, Event.JOINED): Event.JOINED,
    (Event.JOINED, Event.UPDATED): Event.JOINED,
    (Event.JOINED, Event.LEFT): None,
    (Event.UPDATED, Event.JOINED): Event.JOINED,
    (Event.UPDATED, Event.UPDATED): Event.UPDATED,
    (Event.UPDATED, Event.LEFT): Event.LEFT,
    (Event.LEFT, Event.JOINED): Event.REJOINED,
    (Event.LEFT, Event.UPDATED): Event.REJOINED,
    (Event.LEFT, Event.LEFT): Event.LEFT,
    (Event.REJOINED, Event.JOINED): Event.REJOINED,
    (Event.REJOINED, Event.UPDATED): Event.REJOINED,
    (Event.REJOINED, Event.LEFT): Event.LEFT,
}
"""(what is pending, what happened) → what is pending now (``None``: nothing)."""


class Announcer:
    """Subscriptions by room and role, and the per-peer pending announcements.

    Args:
        counters: Where ``announce_*`` counts go (the router's, for ``/metrics``).
        lookup: ``(room_id, peer_id)`` → the session of a local peer, if any
            (to reach contacts).
    """

    def __init__(
        self,
        counters: Counter[str],
        lookup: Callable[[str, str], Session | None],
    ) -> None:
        self.counters = counters
        self.lookup = lookup
        self.rooms: dict[str, defaultdict[str, set[Session]]] = {}
        """Room → role (or :data:`ALL_ROLES`) → subscribed sessions."""
        self.dirty: set[Session] = set()
        """Sessions with something pending."""

    # --- subscriptions

    def subscribe(
        self,
        session: Session,
        room_id: str,
        roles: Iterable[str],
        *,
        keep_leaves: bool = False,
    ) -> None:
        """Make ``session`` hear of ``roles`` in ``room_id`` (replacing what it
        had). Pending news is dropped (a fresh snapshot replaces it), except,
        with ``keep_leaves``, the ``peer_left`` of peers already gone."""
        news = session.news if keep_leaves else None
        self.unsubscribe(session)
        if news:
            left = {k: v for k, v in news.items() if v[0] is Event.LEFT}
            if left:
                session.news = left
                self.dirty.add(session)
        roles = frozenset(roles)
        session.subscription = (room_id, roles)
        if not roles:
            return
        room = self.rooms.get(room_id)
        if room is None:
            room = self.rooms[room_id] = defaultdict(set)
        for role in roles:
            room[role].add(session)

    def unsubscribe(self, session: Session) -> None:
        """Forget a session's subscription and what was pending for it."""
        sub, session.subscription = session.subscription, None
        session.news = None
        self.dirty.discard(session)
        if sub is None:
            return
        room_id, roles = sub
        room = self.rooms.get(room_id)
        if room is None:
            return
        for role in roles:
            members = room.get(role)
            if members is not None:
                members.discard(session)
                if not members:
                    del room[role]
        if not room:
            del self.rooms[room_id]

    def wants(self, session: Session, role: str) -> bool:
        """Whether ``session`` subscribed to announcements about ``role``."""
        sub = session.subscription
        return sub is not None and (ALL_ROLES in sub[1] or role in sub[1])

    # --- announcing

    def announce(self, rec: PeerRecord, event: Event) -> None:
        """Queue ``event`` about ``rec`` for every peer that should hear it."""
        room = self.rooms.get(rec.room_id)
        own = rec.conn
        if room is not None:
            for group in (room.get(ALL_ROLES), room.get(rec.role)):
                if group:
                    for session in group:
                        if session is not own:
                            self._queue(session, rec, event)
        if event is Event.LEFT and rec.contacts:
            for peer_id in rec.contacts:
                contact = self.lookup(rec.room_id, peer_id)
                if contact is not None and contact is not own:
                    if contact.peer is not None:
                        contact.peer.contacts.discard(rec.peer_id)
                    self._queue(contact, rec, event)

    def _queue(self, session: Session, rec: PeerRecord, event: Event) -> None:
        news = session.news
        if news is None:
            news = session.news = {}
        entry = news.get(rec.peer_id)
        merged = MERGE[(None if entry is None else entry[0], event)]
        if entry is not None:
            self.counters["announce_coalesced"] += 1
        if merged is None:
            del news[rec.peer_id]
        else:
            news[rec.peer_id] = (merged, rec)
        self.dirty.add(session)

    def flush(self, backlog_bytes: int, max_pending: int) -> int:
        """Send what is pending to every peer whose output is not backed up.

        Args:
            backlog_bytes: Output queued beyond which a peer is skipped this tick.
            max_pending: Subjects a skipped peer may have waiting before it is
                closed as too slow.

        Returns:
            The frames sent.
        """
        if not self.dirty:
            return 0
        frames: dict[tuple[str, Event, int], bytes] = {}
        sent = 0
        dirty, self.dirty = self.dirty, set()
        for session in dirty:
            news = session.news
            if session.closed or not news:
                session.news = None
                continue
            if session.backlog() > backlog_bytes:
                if len(news) > max_pending:
                    self.counters["announce_closed_slow"] += 1
                    session.news = None
                    session.close(CLOSE_SLOW, "too slow to read room announcements")
                    continue
                self.counters["announce_deferred"] += 1
                self.dirty.add(session)
                continue
            session.news = None
            for event, rec in news.values():
                for data in _frames(frames, rec, event):
                    session.push(data)
                    sent += 1
        self.counters["announce_sent"] += sent
        return sent


def _frames(
    cache: dict[tuple[str, Event, int], bytes], rec: PeerRecord, event: Event
) -> list[bytes]:
    """The frame(s) for ``event`` about ``rec``, encoded once per flush."""
    if event is Event.REJOINED:
        return _frames(cache, rec, Event.LEFT) + _frames(cache, rec, Event.JOINED)
    key = (rec.peer_id, event, id(rec))
    data = cache.get(key)
    if data is None:
        if event is Event.LEFT:
            data = dumps_bytes({"type": "peer_left", "peer_id": rec.peer_id})
        elif event is Event.JOINED:
            data = dumps_bytes(
                {
                    "type": "peer_joined",
                    "peer_id": rec.peer_id,
                    "role": rec.role,
                    "metadata": rec.public["metadata"],
                }
            )
        else:
            data = dumps_bytes(
                {
                    "type": "peer_updated",
                    "peer_id": rec.peer_id,
                    "metadata": rec.public["metadata"],
                }
            )
        cache[key] = data
    return [data]
