"""Applying other server processes' announcements to this process's registry.

The synchronous half of the Redis backend (no I/O, no awaiting): it turns the
messages read from Redis into registry changes and room events for this
process's own peers, and resolves a peer held by two processes (a reconnect
through another process) in favour of the newer registration. The backend
(:mod:`.backend`) owns the connections and calls it from its one reader
task, so the registry only ever changes on the event loop's thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..server.announce import Event
from ..server.registry import PeerRecord
from ..server.router import CLOSE_POLICY, CLOSE_REPLACED, Router, Session
from .wire import Kind, decode_record, is_admin_record, split_frames, split_message

__all__ = ["Replica"]

logger = logging.getLogger(__name__)


class Replica:
    """This process's view of the other processes' peers, inside its registry.

    Args:
        router: The router whose registry holds local and remote peers.
        node: This process's id.
        reassert: Called with a local record that must be written to Redis
            again (another process announced an older registration of it).

    Attributes:
        router: The router served.
        node: This process's id.
    """

    def __init__(
        self, router: Router, node: str, reassert: Callable[[PeerRecord], None]
    ) -> None:
        self.router = router
        self.node = node
        self._reassert = reassert
        self.seen: Callable[[PeerRecord], None] | None = None
        """Called with a remote peer after its join or update is applied."""
        self.orphaned: Callable[[PeerRecord], None] | None = None
        """Called with each peer of a process that stopped or expired."""
        self.moved: Callable[[PeerRecord, str], None] | None = None
        """Called with a remote peer now on another process, and the old one."""
        self.deliver: Callable[[str, str, bytes], None] | None = None
        """Hands a relayed frame to its peer (room id, peer id, frame); unset,
        the router delivers it and one that is not here is counted."""

    # --- views

    def local_records(self) -> list[PeerRecord]:
        """The peers whose sockets this process holds."""
        return [s.peer for s in self.router.sessions if s.peer is not None]

    def remote_records(self) -> list[PeerRecord]:
        """The peers held by other processes."""
        return [r for r in self.router.registry.all_peers() if r.conn is None]

    def is_current(self, rec: PeerRecord) -> bool:
        """Whether ``rec`` is still the registry's record of its peer."""
        return self.router.registry.get(rec.room_id, rec.peer_id) is rec

    # --- changes

    def apply(self, data: bytes) -> None:
        """Apply one message read from this node's inbox or the events channel.

        Raises:
            ValueError: The message is malformed.
        """
        header, body = split_message(data)
        kind = header[0]
        if kind == Kind.FRAME and len(header) == 3:
            self._deliver(str(header[1]), str(header[2]), body)
            return
        if kind == Kind.FRAMES:
            for room_id, peer_id, frame in split_frames(header, body):
                self._deliver(room_id, peer_id, frame)
            return
        node = str(header[1]) if len(header) > 1 else ""
        if node == self.node:
            return  # our own announcement, echoed by the events channel
        if kind in (Kind.JOIN, Kind.UPDATE):
            joined = decode_record(body)
            self.upsert(joined, Kind(kind))
            self.admin_slot(joined, is_admin_record(body))
            if self.seen is not None:
                self.seen(joined)
        elif kind == Kind.LEAVE and len(header) == 4:
            rec = self.router.registry.get(str(header[2]), str(header[3]))
            if rec is not None and rec.conn is None and rec.node == node:
                self.remove(rec)
        elif kind == Kind.DOWN:
            self.drop_node(node)
        elif kind == Kind.REVOKE and len(header) == 4:
            self.router.disconnect_credential(
                str(header[2]), str(header[3]), everywhere=False
            )
        elif kind == Kind.DELETE and len(header) == 4:
            rec = self.router.registry.get(str(header[2]), str(header[3]))
            if rec is not None and isinstance(rec.conn, Session):
                rec.conn.close(CLOSE_POLICY, "removed by the room owner")
        else:
            raise ValueError(f"unknown message from Redis: {header!r}")

    def _deliver(self, room_id: str, peer_id: str, frame: bytes) -> None:
        if self.deliver is not None:
            self.deliver(room_id, peer_id, frame)
        elif not self.router.deliver_local(room_id, peer_id, frame):
            self.router.counters["redis_relayed_not_here"] += 1
            logger.debug("! relayed frame for %s: not here", peer_id)

    def upsert(self, rec: PeerRecord, kind: Kind = Kind.JOIN) -> None:
        """Add or refresh a remote peer and tell this node's peers of its room."""
        registry = self.router.registry
        current = registry.get(rec.room_id, rec.peer_id)
        new = current is None
        if current is not None:
            if isinstance(current.conn, Session):
                if current.connected_at > rec.connected_at:
                    self._reassert(current)  # ours is newer
                    return
                # The peer reconnected through another process.
                stale = current.conn
                stale.peer = None
                stale.close(CLOSE_REPLACED, "replaced by a connection elsewhere")
                self.router.counters["reconnects"] += 1
                new = True
            elif current.node == rec.node and current.connected_at == rec.connected_at:
                if current.metadata == rec.metadata:
                    return  # nothing new (a re-publish)
                registry.set_metadata(current, rec.metadata)
                self._tell_room(current, "peer_updated")
                return
            elif current.node != rec.node and self.moved is not None:
                self.moved(rec, current.node)
        registry.add(rec)
        joined = new or kind == Kind.JOIN
        self._tell_room(rec, "peer_joined" if joined else "peer_updated")

    def admin_slot(self, rec: PeerRecord, admin: bool) -> None:
        """Apply a remote record's claim (or release) of its room's admin slot.

        Two processes granting the slot at once converge: the earlier
        registration keeps it.
        """
        room = self.router.registry.rooms.get(rec.room_id)
        current = self.router.registry.get(rec.room_id, rec.peer_id)
        if room is None or current is None or current.conn is not None:
            return  # not (or no longer) the registry's remote record
        holder = room.admin_peer_id
        if not admin:
            if holder == rec.peer_id:
                room.admin_peer_id = None
            return
        other = None if holder is None else room.peers.get(holder)
        if (
            other is None
            or other is current
            or current.connected_at < other.connected_at
        ):
            room.admin_peer_id = rec.peer_id

    def remove(self, rec: PeerRecord) -> None:
        """Forget a remote peer and tell its room."""
        if self.router.registry.remove(rec.room_id, rec.peer_id) is not None:
            self._tell_room(rec, "peer_left")

    def drop_node(self, node: str) -> None:
        """Forget every peer of a process that stopped or expired."""
        for rec in self.remote_records():
            if rec.node == node:
                self.remove(rec)
                if self.orphaned is not None:
                    self.orphaned(rec)

    def drop_all(self) -> None:
        """Forget every remote peer (Redis is gone; they cannot be reached)."""
        for rec in self.remote_records():
            self.remove(rec)

    def replace(
        self,
        found: dict[tuple[str, str], PeerRecord],
        admins: frozenset[tuple[str, str]] = frozenset(),
    ) -> None:
        """Make the remote peers exactly ``found`` (keyed by room and peer id;
        ``admins``: those holding their room's admin slot)."""
        for rec in self.remote_records():
            if (rec.room_id, rec.peer_id) not in found:
                self.remove(rec)
        for key, rec in found.items():
            if rec.node != self.node:
                self.upsert(rec, Kind.JOIN)
                self.admin_slot(rec, key in admins)

    def _tell_room(self, rec: PeerRecord, event: str) -> None:
        """Announce a remote peer's change to this node's peers that
        subscribed to it (coalesced with the rest, :mod:`..server.announce`)."""
        self.router.announce(rec, Event(event))
