"""Who is connected where: rooms, peers, metadata and discovery indexes (pure).

The registry is plain data plus indexes, with no I/O, so that the server's
message handling stays synchronous and fast, and so that a replicating backend
(Redis, for several server processes) can feed it remote peers the same way the
local server feeds it local ones.

Peer ids are scoped to their room: two rooms may each have a ``worker-1`` without
touching each other (the reference's global id map let one room corrupt another).
A record remembers which connection owns it, so a stale socket that closes after
its peer reconnected elsewhere never removes the fresh registration.

Discovery never scans and re-serialises every peer: candidates are narrowed by
indexes on role, ``properties.status`` and tags, and each peer's public JSON is
encoded once per metadata change and reused for every ``peer_list``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ...protocol.filters import CompiledFilter
from ...protocol.json_text import dumps_bytes
from ...protocol.metadata import public_metadata

__all__ = ["PeerRecord", "Registry", "Room"]


@dataclass(slots=True, eq=False)
class PeerRecord:
    """One registered peer.

    Attributes:
        peer_id: The id, unique within its room.
        room_id: The room.
        role: ``worker``, ``client`` or free text.
        metadata: Stored metadata, server-owned ``_`` keys included.
        connected_at: Registration time (epoch seconds).
        principal: Who registered it; a reconnect must present the same one.
        credential_id: The credential used (for revocation), if any.
        revocation_ids: Every id whose revocation disconnects this peer (its
            credential, room, membership, user); includes ``credential_id``.
        conn: The local connection that owns it; ``None`` for a remote peer.
        node: The server process that holds the connection.
        public: ``{peer_id, role, metadata(public), connected_at}`` as sent to others.
        public_json: ``public`` encoded once, reused by every ``peer_list``.
        contacts: Ids of the peers of its room it exchanged frames with (they
            hear its ``peer_left`` whatever they subscribed to).
    """

    peer_id: str
    room_id: str
    role: str
    metadata: dict[str, Any]
    connected_at: float
    principal: str
    credential_id: str | None = None
    revocation_ids: frozenset[str] = frozenset()
    conn: Hashable | None = None
    node: str = "local"
    public: dict[str, Any] = field(default_factory=dict)
    public_json: bytes = b""
    contacts: set[str] = field(default_factory=set)

    def refresh_public(self) -> None:
        """Recompute the public view after a metadata change."""
        self.public = {
            "peer_id": self.peer_id,
            "role": self.role,
            "metadata": public_metadata(self.metadata),
            "connected_at": self.connected_at,
        }
        self.public_json = dumps_bytes(self.public)

    @property
    def status(self) -> str | None:
        """``metadata.properties.status`` when it is a string."""
        props = self.metadata.get("properties")
        status = props.get("status") if isinstance(props, dict) else None
        return status if isinstance(status, str) else None

    @property
    def tags(self) -> frozenset[str]:
        """The string tags in ``metadata.tags``."""
        tags = self.metadata.get("tags")
        if not isinstance(tags, list):
            return frozenset()
        return frozenset(t for t in tags if isinstance(t, str))


@dataclass(slots=True, eq=False)
class Room:
    """The peers of one room and their indexes.

    Attributes:
        room_id: The room.
        peers: Peer id → record.
        admin_peer_id: The holder of the mesh-admin slot, if any.
    """

    room_id: str
    peers: dict[str, PeerRecord] = field(default_factory=dict)
    admin_peer_id: str | None = None
    by_role: defaultdict[str, set[str]] = field(
        default_factory=lambda: defaultdict(set)
    )
    by_status: defaultdict[str | None, set[str]] = field(
        default_factory=lambda: defaultdict(set)
    )
    by_tag: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    by_credential: Counter[str | None] = field(default_factory=Counter)
    """Peers per credential id (``max_peers_per_credential``)."""

    def _index(self, rec: PeerRecord) -> None:
        self.by_credential[rec.credential_id] += 1
        self.by_role[rec.role].add(rec.peer_id)
        self.by_status[rec.status].add(rec.peer_id)
        for tag in rec.tags:
            self.by_tag[tag].add(rec.peer_id)

    def _unindex(self, rec: PeerRecord) -> None:
        self.by_credential[rec.credential_id] -= 1
        if self.by_credential[rec.credential_id] <= 0:
            del self.by_credential[rec.credential_id]
        _discard(self.by_role, rec.role, rec.peer_id)
        _discard(self.by_status, rec.status, rec.peer_id)
        for tag in rec.tags:
            _discard(self.by_tag, tag, rec.peer_id)

    def candidates(self, flt: CompiledFilter) -> Iterable[str]:
        """Peer ids that may match ``flt`` (the smallest index set that applies)."""
        hints = flt.hints
        if hints.matches_nothing:
            return ()
        sets: list[set[str]] = []
        if hints.role is not None:
            sets.append(self.by_role.get(hints.role, set()))
        if hints.status is not None:
            sets.append(_union(self.by_status.get(s, set()) for s in hints.status))
        if hints.tags is not None:
            sets.append(_union(self.by_tag.get(t, set()) for t in hints.tags))
        if not sets:
            return self.peers.keys()
        return min(sets, key=len)


def _discard(index: dict[Any, set[str]], key: Any, peer_id: str) -> None:
    ids = index.get(key)
    if ids is not None:
        ids.discard(peer_id)
        if not ids:
            del index[key]


def _union(sets: Iterator[set[str]] | Iterable[set[str]]) -> set[str]:
    out: set[str] = set()
    for s in sets:
        out |= s
    return out


class Registry:
    """All rooms and peers known to this server process (local and replicated)."""

    def __init__(self) -> None:
        self.rooms: dict[str, Room] = {}
        self.rooms_created = 0
        """Rooms materialised since start (a room exists while it has peers)."""
        self._by_conn: dict[Hashable, PeerRecord] = {}

    # --- queries

    def get(self, room_id: str, peer_id: str) -> PeerRecord | None:
        """The record of ``peer_id`` in ``room_id``, if registered."""
        room = self.rooms.get(room_id)
        return None if room is None else room.peers.get(peer_id)

    def peers(self, room_id: str) -> list[PeerRecord]:
        """Every peer of a room."""
        room = self.rooms.get(room_id)
        return [] if room is None else list(room.peers.values())

    def all_peers(self) -> Iterator[PeerRecord]:
        """Every peer of every room."""
        for room in self.rooms.values():
            yield from room.peers.values()

    def discover(
        self, room_id: str, flt: CompiledFilter, exclude: str | None = None
    ) -> list[PeerRecord]:
        """The peers of ``room_id`` matching ``flt``, ``exclude`` left out."""
        room = self.rooms.get(room_id)
        if room is None:
            return []
        peers = room.peers
        out = []
        for pid in room.candidates(flt):
            if pid == exclude:
                continue
            rec = peers[pid]
            if flt(rec.public):
                out.append(rec)
        return out

    def __len__(self) -> int:
        return sum(len(r.peers) for r in self.rooms.values())

    # --- changes

    def add(self, rec: PeerRecord) -> PeerRecord | None:
        """Register ``rec``, replacing a record of the same id in its room.

        Returns:
            The replaced record, if any (its connection no longer owns the id).
        """
        rec.refresh_public()
        room = self.rooms.get(rec.room_id)
        if room is None:
            room = self.rooms[rec.room_id] = Room(rec.room_id)
            self.rooms_created += 1
        old = room.peers.get(rec.peer_id)
        if old is not None:
            room._unindex(old)
            if old.conn is not None and self._by_conn.get(old.conn) is old:
                del self._by_conn[old.conn]
        room.peers[rec.peer_id] = rec
        room._index(rec)
        if rec.conn is not None:
            previous = self._by_conn.get(rec.conn)
            if previous is not None and previous is not old:
                self._remove_record(previous)
            self._by_conn[rec.conn] = rec
        return old

    def remove(
        self, room_id: str, peer_id: str, conn: Hashable | None = None
    ) -> PeerRecord | None:
        """Remove a peer; with ``conn``, only if that connection still owns it.

        Returns:
            The removed record, or ``None`` when nothing was removed.
        """
        rec = self.get(room_id, peer_id)
        if rec is None or (conn is not None and rec.conn is not conn):
            return None
        self._remove_record(rec)
        return rec

    def _remove_record(self, rec: PeerRecord) -> None:
        room = self.rooms.get(rec.room_id)
        if room is not None and room.peers.get(rec.peer_id) is rec:
            room._unindex(rec)
            del room.peers[rec.peer_id]
            if room.admin_peer_id == rec.peer_id:
                room.admin_peer_id = None
            if not room.peers:
                del self.rooms[rec.room_id]
        if rec.conn is not None and self._by_conn.get(rec.conn) is rec:
            del self._by_conn[rec.conn]

    def set_metadata(self, rec: PeerRecord, metadata: dict[str, Any]) -> None:
        """Replace a peer's stored metadata (already merged) and reindex it."""
        room = self.rooms[rec.room_id]
        room._unindex(rec)
        rec.metadata = metadata
        rec.refresh_public()
        room._index(rec)
