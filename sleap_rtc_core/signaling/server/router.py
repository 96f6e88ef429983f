"""The signaling server's message handling, without I/O (sans-I/O core).

:class:`Router` receives each text frame of a connection through
:meth:`Router.receive` and answers by calling the connection's ``send`` and
``close`` callables, which the asyncio adapter (:mod:`.router_io`) backs with a
WebSocket and tests back with lists. It never awaits: the one step that needs I/O,
checking credentials at ``register``, is handed back to the adapter as a
:class:`RegisterRequest`, and the adapter calls :meth:`Router.complete_register`
with the result. Frames that arrive meanwhile wait in order.

With several processes (a replicating backend), two more steps are handed back
the same way: a ``register`` is answered only once the backend has *committed*
it (other processes can find the peer: :class:`Commit`, then
:meth:`Router.committed`), a credential's peer count and the admin slot are
decided for every process before it is admitted (:mod:`.claims`, then
:meth:`Router.claimed`), and a frame for a peer this process does not know is
parked (:mod:`.unresolved`) while the backend looks it up authoritatively
(``lookup_remote``, answered by :meth:`Router.resolved`). So a peer that has its
``registered_auth`` is reachable from every process, and a frame is delivered or
answered with a typed error, never lost to a replica that is a moment behind.

Rules (PROTOCOL.md A.1): a peer id is bound to its socket at ``register``; a
claimed sender field naming someone else is ``IDENTITY_MISMATCH``; a bad frame is
answered with a typed error and changes nothing; crossing a limit is a typed error.
Room announcements go only to the peers that subscribed to them and are
coalesced per tick (:mod:`.announce`; the adapter's timer calls
:meth:`Router.flush_announcements`).
Frames over a peer's rate are held in order and handled as its budget refills
(the adapter stops reading meanwhile: back-pressure), never dropped; only
sustained abuse past the rate limit closes the connection.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from ...errors import (
    ErrorCode,
    RemoteProtocolError,
    SignalingError,
    SleapRTCError,
)
from ...protocol import signaling as sig
from ...protocol.codec import decode_object, encode
from ...protocol.filters import compile_filters
from ...protocol.json_text import dumps_bytes, loads_object, peer_message_ends
from ...protocol.metadata import (
    merge_metadata,
    validate_metadata,
)
from .announce import ALL_ROLES, Announcer, Event
from .claims import Claim, Verdict
from .limits import Limits, TokenBucket
from .registry import PeerRecord, Registry
from .relay import Relay, request_id_of
from .session import (
    CLOSE_POLICY,
    CLOSE_REPLACED,
    CLOSE_REVOKED,
    MAX_HELD_BYTES,
    PING_FRAME,
    Commit,
    IdentityLike,
    RegisterRequest,
    Session,
)

# Session and the close codes are also the redis package's names from here.
__all__ = [
    "ANNOUNCE_DEFAULTS",
    "CLOSE_POLICY",
    "CLOSE_REPLACED",
    "Router",
    "Session",
]

logger = logging.getLogger(__name__)

_PEER_MESSAGE_MARK = '"peer_message"'

ANNOUNCE_DEFAULTS: dict[str, frozenset[str]] = {
    "all": frozenset({ALL_ROLES}),
    "none": frozenset(),
}
"""``announce_default`` → the roles a peer that sends no ``subscribe`` hears."""


class Router(Relay):
    """Routes signaling frames between the sessions of one server process.

    Connections, their rate budget and frame dispatch, ``register`` and its
    commit, the room views (discover, metadata, subscribe, announcements) and
    the housekeeping the adapter drives; frames between peers go through
    :class:`~.relay.Relay`, its base.

    Args:
        registry: Rooms and peers (shared with a replicating backend, if any).
        limits: The bounds to enforce.
        ice_servers: Sent in ``registered_auth`` (``RTCIceServer`` kwargs).
        clock: Wall clock for ``connected_at``.
        node: This process's id; peers held by other nodes are remote.
        forward_remote: Deliver a frame to a peer held by another node
            (returns False when it cannot); ``None`` in a single process.
        announce_default: What a peer that sends no ``subscribe`` hears:
            ``"all"`` (every role, as 0.0.7 peers expect) or ``"none"``.

    Attributes:
        commit_register: Set by a replicating backend: whether a new
            registration must be committed before its reply (see
            :class:`Commit`).
        claim_register: Set by a replicating backend: whether a
            registration's credential count and admin claim must be decided
            by it now (a :class:`~.claims.Claim`; False: this process's
            replica decides, as in a single process). ``lookup_remote`` and
            ``unresolved``: see :class:`~.relay.Relay`.
    """

    def __init__(
        self,
        registry: Registry | None = None,
        limits: Limits | None = None,
        *,
        ice_servers: list[dict[str, Any]] | None = None,
        clock: Callable[[], float] = time.time,
        node: str = "local",
        forward_remote: Callable[[PeerRecord, bytes], bool] | None = None,
        announce_default: str = "all",
    ) -> None:
        if announce_default not in ANNOUNCE_DEFAULTS:
            raise ValueError(
                f"announce_default must be one of {', '.join(ANNOUNCE_DEFAULTS)}, "
                f"not {announce_default!r}"
            )
        super().__init__(
            registry or Registry(),
            limits or Limits(),
            node=node,
            forward_remote=forward_remote,
        )
        self.default_roles = ANNOUNCE_DEFAULTS[announce_default]
        """The roles a peer that sent no ``subscribe`` hears of."""
        self.ice_servers = list(ice_servers or [])
        self.clock = clock
        self.sessions: set[Session] = set()
        self.on_change: Callable[[str, PeerRecord], None] | None = None
        """Called with ("join"|"update"|"leave", record) after each local change,
        for a replicating backend."""
        self.commit_register: Callable[[PeerRecord], bool] | None = None
        self.claim_register: Callable[[], bool] | None = None
        self.on_admin: Callable[[str, str, str], None] | None = None
        """Set by a replicating backend: called with ("revoke", id, reason) or
        ("delete", room_id, peer_id) so that every process does the same."""
        self.announcer = Announcer(self.counters, self._local_session)

    # --- connections

    def open(
        self,
        send: Callable[[bytes], bool],
        close: Callable[[int, str], None],
        remote: str = "?",
        backlog: Callable[[], int] | None = None,
    ) -> Session:
        """Start tracking a new connection (``backlog``: its unsent output
        in bytes, so announcements can skip a peer that does not read)."""
        bucket = TokenBucket(self.limits.messages_per_second, self.limits.burst)
        session = Session(send=send, close=close, bucket=bucket, remote=remote)
        if backlog is not None:
            session.backlog = backlog
        self.sessions.add(session)
        self.counters["connections_opened"] += 1
        return session

    def closed(self, session: Session) -> None:
        """Forget a connection; its registration (if still its own) leaves the room."""
        session.closed = True
        self.sessions.discard(session)
        rec = session.peer
        session.peer = None
        if rec is not None and self.registry.remove(rec.room_id, rec.peer_id, session):
            self._announce_leave(rec)
        self.announcer.unsubscribe(session)

    # --- frames

    def receive(self, session: Session, text: str) -> RegisterRequest | None:
        """Handle one text frame.

        Returns:
            A :class:`RegisterRequest` when the adapter must check credentials.
        """
        if session.closed:
            return None  # closed for abuse: what it sent after is not read
        session.last_seen = time.monotonic()
        self.counters["frames_received"] += 1
        if len(text) > self.limits.max_frame_bytes:
            self._limit(session, "frame_size")
            self._error(
                session,
                ErrorCode.MESSAGE_TOO_LARGE,
                f"frame of {len(text)} bytes exceeds {self.limits.max_frame_bytes}",
            )
            return None
        if session.held or not session.bucket.take():
            self._hold(session, text)
            return None
        return self._accept(session, text)

    def _accept(self, session: Session, text: str) -> RegisterRequest | None:
        """A frame within the budget: handled now (or after ``register``)."""
        if session.bucket.tokens >= session.bucket.capacity / 2:
            session.strikes = 0  # it went quiet: forgive the past
        if session.pending is not None:
            session.pending.append(text)
            return None
        return self._dispatch(session, text)

    def _hold(self, session: Session, text: str) -> None:
        """A frame over the rate: kept, in order, for :meth:`replay`. Only
        sustained abuse (``abuse_strikes`` frames, or :data:`MAX_HELD_BYTES`
        waiting) closes the connection; a burst is slowed down, not lost."""
        self._limit(session, "rate")
        session.strikes += 1
        session.held_bytes += len(text)
        if (
            session.strikes > self.limits.abuse_strikes
            or session.held_bytes > MAX_HELD_BYTES
        ):
            self.counters["closed_for_abuse"] += 1
            session.held.clear()
            session.held_bytes = 0
            session.closed = True  # once: later frames are not handled
            session.close(CLOSE_POLICY, "rate limit exceeded repeatedly")
            return
        session.held.append(text)
        if not session.throttled:
            session.throttled = True
            self._error(session, ErrorCode.RATE_LIMITED, "too many messages; slow down")

    def replay(self, session: Session) -> list[RegisterRequest]:
        """Handle the held frames the budget allows now, in order; the
        ``register`` requests among them. The episode ends when none is left
        (``throttled`` is cleared); else the adapter pauses again."""
        requests: list[RegisterRequest] = []
        while session.held and not session.closed and session.bucket.take():
            text = session.held.popleft()
            session.held_bytes -= len(text)
            request = self._accept(session, text)
            if request is not None:
                requests.append(request)
        session.throttled = bool(session.held)
        return requests

    def throttle_delay(self, session: Session) -> float:
        """Seconds the adapter should stop reading a throttled peer: until a
        tenth of its burst has refilled, at least 0.1 s, at most 1 s."""
        bucket = session.bucket
        wanted = max(1.0, bucket.capacity / 10) - bucket.tokens
        return min(1.0, max(0.1, wanted / bucket.rate if bucket.rate > 0 else 1.0))

    def _dispatch(self, session: Session, text: str) -> RegisterRequest | None:
        if _PEER_MESSAGE_MARK in text[:64]:
            ends = peer_message_ends(text)
            if ends is not None:  # the relay's fast path: payload not decoded
                try:
                    rec = self._require_peer(session, ends[0])
                    self._route(
                        session, rec, ends[1], text.encode(), ErrorCode.PEER_NOT_IN_ROOM
                    )
                except SleapRTCError as exc:
                    self._reply_error(session, exc)
                return None
        msg: sig.Message | None = None
        try:
            msg = decode_object(loads_object(text))
            return self._handle(session, msg, text)
        except SleapRTCError as exc:
            if msg is None:
                is_register = obj_type(text) == "register"
            else:
                is_register = isinstance(msg, sig.Register)
            self._reply_error(
                session, exc, reason=is_register, request_id=request_id_of(msg)
            )
            return None

    def _handle(
        self, session: Session, msg: sig.Message, text: str
    ) -> RegisterRequest | None:
        if isinstance(msg, sig.PeerMessage):
            self._peer_message(session, msg, text)
        elif isinstance(msg, sig.Register):
            validate_metadata(msg.metadata, self.limits.max_metadata_bytes)
            session.pending = deque()
            return RegisterRequest(session, msg)
        elif isinstance(msg, sig.Offer | sig.Answer | sig.Candidate):
            self._relay_sdp(session, msg, text)
        elif isinstance(msg, sig.DiscoverPeers):
            self._discover(session, msg)
        elif isinstance(msg, sig.UpdateMetadata):
            self._update_metadata(session, msg)
        elif isinstance(msg, sig.Subscribe):
            self._subscribe(session, msg)
        elif isinstance(msg, sig.MeshConnect | sig.MeshAnswer | sig.IceCandidate):
            self._relay_mesh(session, msg)
        elif isinstance(msg, sig.ErrorMessage):
            self._relay_error(session, msg, text)
        elif isinstance(msg, sig.Pong):
            pass
        elif isinstance(msg, _RELAY_REPLIES):
            # Dashboard relay answers: there is no dashboard relay here.
            logger.debug("! dropping relay reply %s", msg.TYPE.value)
        else:
            raise RemoteProtocolError(
                f"'{msg.TYPE.value}' is not accepted from peers",
                code=ErrorCode.UNKNOWN_MESSAGE_TYPE,
            )
        return None

    # --- register

    def complete_register(
        self,
        request: RegisterRequest,
        result: IdentityLike | SleapRTCError,
    ) -> RegisterRequest | Claim | Commit | None:
        """Finish a ``register`` once its credentials were checked.

        Replays the frames that waited meanwhile (after the commit, when the
        registration needs one).

        Returns:
            A :class:`~.claims.Claim` when the backend must decide the
            credential's count and the admin slot first, a :class:`Commit`
            when the reply waits for the backend, else the next
            :class:`RegisterRequest` found among the replayed frames.
        """
        session = request.session
        if not session.closed:
            try:
                if isinstance(result, SleapRTCError):
                    raise result
                claim = self._register(session, request.message, result)
                if claim is not None:
                    return claim
            except SleapRTCError as exc:
                self._reply_error(
                    session, exc, reason=True, request_id=request.message.request_id
                )
        return self._registered(session)

    def claimed(
        self, claim: Claim, verdict: Verdict | None
    ) -> RegisterRequest | Commit | None:
        """Finish a registration by the backend's verdict on its claim
        (``None``: the backend could not decide; this process's replica does).

        Returns:
            As :meth:`complete_register`, without a second claim.
        """
        session = claim.session
        if not session.closed:
            try:
                self._register(session, claim.message, claim.ident, claim, verdict)
            except SleapRTCError as exc:
                self._reply_error(
                    session, exc, reason=True, request_id=claim.message.request_id
                )
        return self._registered(session)

    def claim_lapsed(self, claim: Claim) -> bool:
        """Whether an admitted claim holds no registration here (the socket
        closed or the registration failed meanwhile), so the backend must
        give its entry back."""
        rec = self.registry.get(claim.room_id, claim.peer_id)
        return rec is None or not isinstance(rec.conn, Session)

    def _registered(self, session: Session) -> RegisterRequest | Commit | None:
        if session.commit is not None and session.peer is not None:
            return Commit(session, session.peer)
        return self._replay_pending(session)

    def committed(self, commit: Commit) -> RegisterRequest | None:
        """Send a committed registration's reply, then what waited for it.

        Returns:
            The next :class:`RegisterRequest` found among the waiting frames.
        """
        session = commit.session
        reply, session.commit = session.commit, None
        outbox, session.outbox = session.outbox or [], None
        if reply is not None and not session.closed:
            session.send(reply)
            for data in outbox:
                session.send(data)
        return self._replay_pending(session)

    def _replay_pending(self, session: Session) -> RegisterRequest | None:
        """Handle the frames that waited for a ``register``, in order."""
        pending, session.pending = session.pending or deque(), None
        while pending and not session.closed:
            nxt = self._dispatch(session, pending.popleft())
            if nxt is not None:
                session.pending = pending
                return nxt
        return None

    def _register(
        self,
        session: Session,
        msg: sig.Register,
        ident: IdentityLike,
        claim: Claim | None = None,
        verdict: Verdict | None = None,
    ) -> Claim | None:
        """Admit a registration; a :class:`~.claims.Claim` when the backend
        must decide its credential count and admin claim first (then again
        with its ``verdict``)."""
        room_id = ident.room_id
        if claim is not None:
            peer_id = claim.peer_id
        else:
            peer_id = msg.peer_id or _generated_id(msg.role, ident.display_name)
        existing = self.registry.get(room_id, peer_id)
        if (
            existing is not None
            and existing.conn is not session
            and existing.principal != ident.principal
        ):
            raise SignalingError(
                f"peer id {peer_id!r} is in use by another credential",
                code=ErrorCode.IDENTITY_MISMATCH,
            )
        room = self.registry.rooms.get(room_id)
        room_size = 0 if room is None else len(room.peers)
        if existing is None and room_size >= self.limits.max_peers_per_room:
            self._limit(session, "room_full")
            raise SignalingError(
                f"room has {room_size} peers, the limit", code=ErrorCode.ROOM_FULL
            )
        if claim is None and self.claim_register is not None and self.claim_register():
            return Claim(
                session,
                msg,
                ident,
                room_id,
                peer_id,
                ident.credential_id,
                self.limits.max_peers_per_credential,
                msg.is_admin,
            )
        if verdict is None:
            held = 0 if room is None else room.by_credential[ident.credential_id]
            full = existing is None and held >= self.limits.max_peers_per_credential
        else:
            held, full = verdict.held, not verdict.admitted
        if full:
            self._limit(session, "credential_full")
            raise SignalingError(
                f"this credential already holds {held} peers in the room, the limit",
                code=ErrorCode.ROOM_FULL,
            )
        metadata = merge_metadata(
            msg.metadata, ident.server_metadata, allow_private=True
        )
        old_own = session.peer
        if (
            old_own is not None
            and (old_own.room_id, old_own.peer_id) != (room_id, peer_id)
            and self.registry.remove(old_own.room_id, old_own.peer_id, session)
        ):
            self._announce_leave(old_own)
        rec = PeerRecord(
            peer_id=peer_id,
            room_id=room_id,
            role=msg.role,
            metadata=metadata,
            connected_at=self.clock(),
            principal=ident.principal,
            credential_id=ident.credential_id,
            revocation_ids=ident.revocation_ids
            | ({ident.credential_id} if ident.credential_id else set()),
            conn=session,
            node=self.node,
        )
        replaced = self.registry.add(rec)
        session.peer = rec
        if replaced is not None:
            rec.contacts = replaced.contacts
        roles = msg.subscribed_roles
        if roles is None:
            roles = self.default_roles
        self.announcer.subscribe(session, room_id, roles)
        if replaced is not None and replaced.conn is not session:
            stale = replaced.conn
            if isinstance(stale, Session):
                stale.peer = None
                stale.close(CLOSE_REPLACED, "replaced by a new connection")
            self.counters["reconnects"] += 1
        room = self.registry.rooms[room_id]
        admin = room.admin_peer_id
        if msg.is_admin:
            if verdict is not None and verdict.admin is not None:
                admin = verdict.admin  # every process's answer (Redis)
            elif admin is None or admin not in room.peers:
                admin = peer_id
            if admin != peer_id:
                if room.admin_peer_id == peer_id:
                    room.admin_peer_id = None  # Redis says another holds it
                self._send(
                    session, sig.AdminConflict(room_id=room_id, current_admin=admin)
                )
            else:
                room.admin_peer_id = peer_id
        others = _listed(room.peers, room.by_role, roles, peer_id)
        reply = sig.RegisteredAuth(
            room_id=room_id,
            peer_id=peer_id,
            token=msg.token,
            admin_peer_id=admin,
            peer_list=[p.peer_id for p in others],
            peer_metadata={p.peer_id: p.public["metadata"] for p in others},
            ice_servers=self.ice_servers,
            mesh_ice_servers=self.ice_servers,
            request_id=msg.request_id,
        )
        if self.commit_register is not None and self.commit_register(rec):
            session.commit = encode(reply).encode()
            session.outbox = session.outbox or []
        else:
            self._send(session, reply)
        self.counters["total_connections"] += 1
        logger.debug("= %s registered in %s as %s", peer_id, room_id, msg.role)
        self.announcer.announce(rec, Event.JOINED)
        if self.on_change is not None:
            self.on_change("join", rec)
        return None

    # --- handlers

    def _discover(self, session: Session, msg: sig.DiscoverPeers) -> None:
        rec = self._require_peer(session, msg.from_peer_id)
        flt = compile_filters(msg.filters)
        found = self.registry.discover(rec.room_id, flt, exclude=rec.peer_id)
        head = b'{"type":"peer_list","to_peer_id":' + dumps_bytes(rec.peer_id)
        if msg.request_id is not None:
            head += b',"request_id":' + dumps_bytes(msg.request_id)
        body = b",".join(p.public_json for p in found)
        session.push(b'%s,"peers":[%s],"count":%d}' % (head, body, len(found)))
        self.counters["discoveries"] += 1

    def _update_metadata(self, session: Session, msg: sig.UpdateMetadata) -> None:
        rec = self._require_peer(session, msg.peer_id)
        if session.metadata_bucket is None:
            session.metadata_bucket = TokenBucket(
                self.limits.metadata_updates_per_second, self.limits.metadata_burst
            )
        if not session.metadata_bucket.take():
            self._limit(session, "metadata_rate")
            raise SignalingError(
                "metadata updates over "
                f"{self.limits.metadata_updates_per_second:g}/s: send fewer",
                code=ErrorCode.RATE_LIMITED,
            )
        merged = merge_metadata(rec.metadata, msg.metadata)
        validate_metadata(merged, self.limits.max_metadata_bytes)
        self.registry.set_metadata(rec, merged)
        public = rec.public["metadata"]
        self._send(
            session,
            sig.MetadataUpdated(
                peer_id=rec.peer_id, metadata=public, request_id=msg.request_id
            ),
        )
        self.announcer.announce(rec, Event.UPDATED)
        if self.on_change is not None:
            self.on_change("update", rec)

    def _subscribe(self, session: Session, msg: sig.Subscribe) -> None:
        """Change what the sender hears; reply with a snapshot of the peers of
        its new roles (the announcements that follow are relative to it)."""
        rec = self._require_peer(session, None)
        roles = frozenset(msg.roles)
        self.announcer.subscribe(session, rec.room_id, roles, keep_leaves=True)
        room = self.registry.rooms[rec.room_id]
        others = _listed(room.peers, room.by_role, roles, rec.peer_id)
        self._send(
            session,
            sig.Subscribed(
                roles=sorted(roles),
                peer_list=[p.peer_id for p in others],
                peer_metadata={p.peer_id: p.public["metadata"] for p in others},
                request_id=msg.request_id,
            ),
        )
        self.counters["subscriptions_changed"] += 1

    # --- housekeeping the adapter drives

    def ping_all(self) -> None:
        """Send the application heartbeat to every connection."""
        for session in list(self.sessions):
            session.send(PING_FRAME)

    def drop_silent(self, max_silence: float) -> int:
        """Close connections that sent nothing for ``max_silence`` seconds."""
        cutoff = time.monotonic() - max_silence
        dropped = 0
        for session in list(self.sessions):
            if session.last_seen < cutoff:
                session.close(CLOSE_POLICY, "no traffic; presumed dead")
                dropped += 1
        self.counters["dropped_silent"] += dropped
        return dropped

    def disconnect_credential(
        self, credential_id: str, reason: str, *, everywhere: bool = True
    ) -> int:
        """Close every connection a revoked id (credential, room, user) admitted
        (``everywhere``: on the other processes too, counted from the replica)."""
        n = 0
        for session in list(self.sessions):
            peer = session.peer
            if peer is not None and credential_id in peer.revocation_ids:
                session.close(CLOSE_REVOKED, reason)
                n += 1
        if everywhere and self.on_admin is not None:
            self.on_admin("revoke", credential_id, reason)
            n += sum(
                1
                for p in self.registry.all_peers()
                if p.conn is None and credential_id in p.revocation_ids
            )
        return n

    def disconnect_peer(self, room_id: str, peer_id: str) -> bool:
        """Close the connection of one peer (``/delete-peer``), also one held
        by another process (asked through the backend)."""
        rec = self.registry.get(room_id, peer_id)
        if rec is None:
            return False
        if not isinstance(rec.conn, Session):
            if self.on_admin is None or rec.node == self.node:
                return False
            self.on_admin("delete", room_id, peer_id)
            return True
        rec.conn.close(CLOSE_POLICY, "removed by the room owner")
        return True

    # --- sending

    def announce(self, rec: PeerRecord, event: Event) -> None:
        """Queue a room event about a peer (one held by another node, too) for
        this node's peers that should hear it (sent at the next tick)."""
        if event is Event.LEFT:
            self._gather_contacts(rec)
        self.announcer.announce(rec, event)

    def flush_announcements(self) -> int:
        """Send the coalesced announcements (the adapter calls this every
        tick); returns the frames sent."""
        limits = self.limits
        return self.announcer.flush(
            limits.announce_backlog_bytes, limits.max_pending_announcements
        )

    def _local_session(self, room_id: str, peer_id: str) -> Session | None:
        rec = self.registry.get(room_id, peer_id)
        conn = None if rec is None else rec.conn
        return conn if isinstance(conn, Session) else None

    def _announce_leave(self, rec: PeerRecord) -> None:
        logger.debug("= %s left %s", rec.peer_id, rec.room_id)
        self._gather_contacts(rec)
        self.announcer.announce(rec, Event.LEFT)
        if self.on_change is not None:
            self.on_change("leave", rec)

    # --- views

    def peers_by_role(self) -> dict[str, int]:
        """Local registered peers per role (for ``/metrics``)."""
        out: Counter[str] = Counter()
        for session in self.sessions:
            if session.peer is not None:
                out[session.peer.role] += 1
        return dict(out)


_RELAY_REPLIES = (
    sig.KeyExchangeResponse,
    sig.FsListRes,
    sig.WorkerPathOk,
    sig.WorkerPathError,
    sig.FsCheckVideosResponse,
    sig.JobStatusRelay,
    sig.JobProgressRelay,
    sig.EncryptedRelay,
)


def _listed(
    peers: dict[str, PeerRecord],
    by_role: dict[str, set[str]],
    roles: frozenset[str],
    exclude: str,
) -> list[PeerRecord]:
    """The peers a ``registered_auth`` or ``subscribed`` lists: those of the
    roles subscribed to, found by the role index."""
    if ALL_ROLES in roles:
        return [p for p in peers.values() if p.peer_id != exclude]
    return [
        peers[pid]
        for role in sorted(roles)
        for pid in by_role.get(role, ())
        if pid != exclude
    ]


def obj_type(text: str) -> str | None:
    """The ``type`` of a frame, best effort (to shape error replies)."""
    try:
        value = loads_object(text).get("type")
    except SleapRTCError:
        return None
    return value if isinstance(value, str) else None


def _generated_id(role: str, name: str) -> str:
    prefix = "worker" if role == "worker" else "client"
    return f"{prefix}-{name}-{secrets.token_hex(2)}"
