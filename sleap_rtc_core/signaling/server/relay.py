"""Frames from one registered peer to another (sans-I/O; the base of the router).

:class:`Relay` delivers a peer's ``peer_message``, SDP, mesh and error frames to
their target in the sender's room: straight to a session of this process, to
another process through ``forward_remote``, or (a target unknown here, with a
replicating backend) parked in :mod:`.unresolved` while ``lookup_remote`` asks
the others, answered by :meth:`Relay.resolved`. Every pair that exchanged a
frame becomes contacts, so either hears the other leave whatever it subscribed
to. A claimed sender that is not the connection's own peer is
``IDENTITY_MISMATCH``; ``peer_message`` frames are forwarded untouched.
:class:`~.router.Router` adds connections, ``register`` and the room views.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable

from ...errors import ErrorCode, RemoteProtocolError, SignalingError, SleapRTCError
from ...protocol import signaling as sig
from ...protocol.codec import encode, error_for
from ...protocol.json_text import dumps_bytes, loads_object, peer_message_ends
from .limits import Limits
from .registry import PeerRecord, Registry
from .session import Session
from .unresolved import Unresolved, Waiting

__all__ = ["Relay", "request_id_of"]

logger = logging.getLogger(__name__)


class Relay:
    """Routes frames between the registered peers of one server process.

    Args:
        registry: Rooms and peers (shared with a replicating backend, if any).
        limits: The bounds to enforce.
        node: This process's id; peers held by other nodes are remote.
        forward_remote: Deliver a frame to a peer held by another node
            (returns False when it cannot); ``None`` in a single process.

    Attributes:
        lookup_remote: Set by a replicating backend: start an authoritative
            lookup of ``(room_id, peer_id)`` among the other processes, to be
            answered with :meth:`resolved`; False when none can be asked (the
            peer is then absent, as in a single process).
        unresolved: Frames parked while their target is looked up.
        counters: Events counted for ``/metrics``.
        errors: Error replies sent, by code.
    """

    def __init__(
        self,
        registry: Registry,
        limits: Limits,
        *,
        node: str,
        forward_remote: Callable[[PeerRecord, bytes], bool] | None,
    ) -> None:
        self.registry = registry
        self.limits = limits
        self.node = node
        self.forward_remote = forward_remote
        self.counters: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.lookup_remote: Callable[[str, str], bool] | None = None
        self.unresolved = Unresolved()
        self.contact_index: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
        """``(room_id, peer_id)`` → this node's peers that exchanged frames with
        it: they hear it leave even when it was on another node (its record
        here is a replica, which may be replaced)."""

    # --- routing

    def _require_peer(self, session: Session, claimed: str | None) -> PeerRecord:
        rec = session.peer
        if rec is None:
            raise SignalingError(
                "register before sending this message", code=ErrorCode.NOT_IN_ROOM
            )
        if claimed is not None and claimed != rec.peer_id:
            raise SignalingError(
                f"this connection is registered as {rec.peer_id!r}, not {claimed!r}",
                code=ErrorCode.IDENTITY_MISMATCH,
            )
        return rec

    def _route(
        self,
        session: Session,
        rec: PeerRecord,
        target_id: str,
        data: bytes,
        miss: ErrorCode | Callable[[], None],
        request_id: str | None = None,
    ) -> None:
        """Deliver ``data`` to ``target_id`` in the sender's room.

        A target unknown here is looked up among the other processes (the
        frame parks until the answer); while a lookup is in flight, later
        frames for that target park behind it, so none overtakes another.
        ``miss`` is the error code (or the reply) for an absent target.
        """
        key = (rec.room_id, target_id)
        unresolved = self.unresolved
        if unresolved and key in unresolved:
            self._park(session, key, data, miss, request_id)
            return
        target = self.registry.get(rec.room_id, target_id)
        if target is not None:
            self._deliver(target, data)
            self._contact(rec, target)
            return
        if self.lookup_remote is not None:
            self._park(session, key, data, miss, request_id)
            if self.lookup_remote(*key):
                self.counters["remote_lookups"] += 1
                return
            unresolved.take(key)  # nobody else to ask: absent
        if callable(miss):
            miss()
            return
        raise SignalingError(f"peer {target_id!r} is not in this room", code=miss)

    def _park(
        self,
        session: Session,
        key: tuple[str, str],
        data: bytes,
        miss: ErrorCode | Callable[[], None],
        request_id: str | None,
    ) -> None:
        if callable(miss):
            answer = miss
        else:
            error = SignalingError(f"peer {key[1]!r} is not in this room", code=miss)

            def answer() -> None:
                self._reply_error(session, error, request_id=request_id)

        if not self.unresolved.park(key, Waiting(session, data, answer, request_id)):
            self._limit(session, "lookups")
            raise SignalingError(
                f"too many frames waiting for peer {key[1]!r} to be found",
                code=ErrorCode.DELIVERY_FAILED,
            )

    def resolved(
        self,
        room_id: str,
        peer_id: str,
        found: PeerRecord | None,
        *,
        failed: bool = False,
    ) -> None:
        """Answer a ``lookup_remote``: deliver the parked frames in order.

        Args:
            room_id: The target's room.
            peer_id: The target.
            found: Its record in the shared directory (held by another
                process), or ``None`` when it is nowhere.
            failed: The lookup could not be made (Redis lost): each sender
                gets ``DELIVERY_FAILED``.
        """
        waiting = self.unresolved.take((room_id, peer_id))
        target = self.registry.get(room_id, peer_id) or found
        for entry in waiting:
            session = entry.session
            assert isinstance(session, Session)
            if session.closed:
                continue
            try:
                if failed:
                    raise SignalingError(
                        f"could not look up peer {peer_id!r}",
                        code=ErrorCode.DELIVERY_FAILED,
                    )
                if target is None:
                    entry.miss()
                else:
                    self._deliver(target, entry.data)
                    sender = session.peer
                    if sender is not None:
                        self._contact(sender, target)
            except SleapRTCError as exc:
                self._reply_error(session, exc, request_id=entry.request_id)

    def _peer_message(self, session: Session, msg: sig.PeerMessage, text: str) -> None:
        rec = self._require_peer(session, msg.from_peer_id)
        # The frame holds exactly the delivered fields: forward it untouched.
        self._route(
            session,
            rec,
            msg.to_peer_id,
            text.encode(),
            ErrorCode.PEER_NOT_IN_ROOM,
            request_id_of(msg),
        )

    def _relay_sdp(
        self, session: Session, msg: sig.Offer | sig.Answer | sig.Candidate, text: str
    ) -> None:
        rec = self._require_peer(session, msg.sender)
        data = text.encode() if msg.sender is not None else _with_sender(msg, rec)
        self._route(
            session, rec, msg.target, data, ErrorCode.PEER_NOT_FOUND, request_id_of(msg)
        )

    def _relay_mesh(
        self,
        session: Session,
        msg: sig.MeshConnect | sig.MeshAnswer | sig.IceCandidate,
    ) -> None:
        rec = self._require_peer(session, msg.from_peer_id)
        target_id = msg.target_peer_id
        if not target_id:
            raise RemoteProtocolError(
                f"{msg.TYPE.value}: missing field 'target_peer_id'",
                code=ErrorCode.INVALID_MESSAGE,
            )

        def missing() -> None:
            if isinstance(msg, sig.IceCandidate):
                return  # the reference ignores these silently
            self._send(
                session,
                sig.ErrorMessage(
                    code=ErrorCode.PEER_NOT_FOUND.value,
                    message=f"peer {target_id!r} is not in this room",
                    reason="peer_not_found",
                    extra={"target_peer_id": target_id},
                ),
            )
            self.errors[ErrorCode.PEER_NOT_FOUND.value] += 1

        out: sig.Message
        if isinstance(msg, sig.MeshConnect):
            out = sig.MeshOffer(from_peer_id=rec.peer_id, offer=msg.offer)
        elif isinstance(msg, sig.MeshAnswer):
            out = sig.MeshAnswer(from_peer_id=rec.peer_id, answer=msg.answer)
        else:
            out = sig.IceCandidate(from_peer_id=rec.peer_id, candidate=msg.candidate)
        self._route(session, rec, target_id, encode(out).encode(), missing)

    def _relay_error(self, session: Session, msg: sig.ErrorMessage, text: str) -> None:
        if msg.target is None:
            logger.debug("! peer sent an error without target: %s", msg.message)
            return
        rec = self._require_peer(session, msg.sender)
        data = text.encode() if msg.sender is not None else _with_sender(msg, rec)
        self._route(session, rec, msg.target, data, ErrorCode.PEER_NOT_FOUND)

    # --- delivering

    def _deliver(self, target: PeerRecord, data: bytes) -> None:
        if isinstance(target.conn, Session):
            ok = target.conn.push(data)
        elif self.forward_remote is not None and target.node != self.node:
            ok = self.forward_remote(target, data)
        else:
            ok = False
        if not ok:
            raise SignalingError(
                f"could not deliver to {target.peer_id!r}",
                code=ErrorCode.DELIVERY_FAILED,
            )
        self.counters["total_messages"] += 1

    def deliver_local(self, room_id: str, peer_id: str, data: bytes) -> bool:
        """Deliver a frame forwarded by another node to a local peer (its
        sender becomes a contact: the peer hears it leave, from any node)."""
        rec = self.registry.get(room_id, peer_id)
        if rec is None or not isinstance(rec.conn, Session):
            return False
        if not rec.conn.push(data):
            return False
        sender = _sender_of(data)
        if sender is not None and sender not in rec.contacts:
            rec.contacts.add(sender)
            self.contact_index[(room_id, sender)].add(peer_id)
        return True

    def _contact(self, local: PeerRecord, other: PeerRecord) -> None:
        """``local`` (a peer of this node) exchanged a frame with ``other``:
        either hears the other leave, whatever it subscribed to, even when
        ``other`` is on another node and its record there is replaced."""
        room_id = local.room_id
        if other.peer_id not in local.contacts:
            local.contacts.add(other.peer_id)
            self.contact_index[(room_id, other.peer_id)].add(local.peer_id)
        if local.peer_id not in other.contacts:
            other.contacts.add(local.peer_id)
            if isinstance(other.conn, Session):
                self.contact_index[(room_id, local.peer_id)].add(other.peer_id)

    def _gather_contacts(self, rec: PeerRecord) -> None:
        """Before a leave is announced: every local peer that exchanged frames
        with ``rec`` is among its contacts; a local leaver is forgotten from
        the index of the peers it contacted."""
        watchers = self.contact_index.pop((rec.room_id, rec.peer_id), None)
        if watchers:
            rec.contacts |= watchers
        if isinstance(rec.conn, Session):
            for other in rec.contacts:
                local = self.contact_index.get((rec.room_id, other))
                if local is not None:
                    local.discard(rec.peer_id)
                    if not local:
                        del self.contact_index[(rec.room_id, other)]

    # --- replying

    def _send(self, session: Session, msg: sig.Message) -> None:
        session.push(encode(msg).encode())

    def _error(self, session: Session, code: ErrorCode, message: str) -> None:
        self._reply_error(session, SignalingError(message, code=code))

    def _reply_error(
        self,
        session: Session,
        exc: SleapRTCError,
        *,
        reason: bool = False,
        request_id: str | None = None,
    ) -> None:
        self.errors[exc.code] += 1
        logger.debug("! %s: %s %s", session.remote, exc.code, exc.message)
        self._send(session, error_for(exc, reason=reason, request_id=request_id))

    def _limit(self, session: Session, kind: str) -> None:
        self.counters[f"limit_{kind}"] += 1


def _sender_of(data: bytes) -> str | None:
    """The verified sender a relayed frame names (the forwarding node set it):
    ``from_peer_id`` or ``sender``."""
    ends = peer_message_ends(data)
    if ends is not None:
        return ends[0]
    try:
        obj = loads_object(data)
    except SleapRTCError:
        return None
    value = obj.get("from_peer_id", obj.get("sender"))
    return value if isinstance(value, str) and value else None


def request_id_of(msg: sig.Message | None) -> str | None:
    value = getattr(msg, "request_id", None)
    return value if isinstance(value, str) else None


def _with_sender(
    msg: sig.Offer | sig.Answer | sig.Candidate | sig.ErrorMessage, rec: PeerRecord
) -> bytes:
    obj = msg.to_dict()
    obj["sender"] = rec.peer_id
    return dumps_bytes(obj)
