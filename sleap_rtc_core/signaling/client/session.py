"""A signaling client's state, without I/O (sans-I/O core of :mod:`.session_io`).

:class:`ClientSession` knows what was asked and what is still owed: it builds the
frames to send (``outgoing()``), takes every frame received (``receive()``) and
reports what happened as events (``events()``). The adapter owns the socket, the
timers and the reconnect loop, and never parses a frame itself.

Requests (``register``, ``discover_peers``, ``update_metadata``) carry a
``request_id`` that our server echoes; against a server that does not echo it,
replies are matched to the oldest request waiting for that reply type, and an
error to the oldest request of any type unless its code belongs to routing
(those answer a ``peer_message`` or an ``offer``, which have no reply).

After a reconnect the session registers again with the same peer id and the
metadata as last stored (every ``update_metadata`` is merged into it), then
re-sends the requests still unanswered.

Requests name their sender (``from_peer_id`` on ``discover_peers``, ``peer_id`` on
``update_metadata``) as the reference server requires (PROTOCOL.md B §1.2), and an
``update_metadata`` repeats the stored top-level keys it does not change (``tags``
first of all): that server *replaces* the stored metadata with each update, and a
worker whose tags vanished would no longer be found.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from ...errors import AuthError, ErrorCode, ServerError, SleapRTCError
from ...protocol import signaling as sig
from ...protocol.codec import decode, encode

__all__ = [
    "ClientSession",
    "ClientState",
    "Incoming",
    "RegisterFailed",
    "Registered",
    "Replied",
    "RequestFailed",
]

logger = logging.getLogger(__name__)

_REPLY_TYPES: dict[type[sig.Message], type[sig.Message]] = {
    sig.Register: sig.RegisteredAuth,
    sig.DiscoverPeers: sig.PeerList,
    sig.UpdateMetadata: sig.MetadataUpdated,
}
_ROUTING_CODES = frozenset(
    {
        ErrorCode.PEER_NOT_FOUND.value,
        ErrorCode.PEER_NOT_IN_ROOM.value,
        ErrorCode.DELIVERY_FAILED.value,
    }
)
_AUTH_CODES = frozenset(
    {
        ErrorCode.AUTH_FAILED.value,
        ErrorCode.ROOM_NOT_FOUND.value,
        ErrorCode.ROOM_EXPIRED.value,
        ErrorCode.IDENTITY_MISMATCH.value,
        ErrorCode.ROOM_FULL.value,
    }
)


class ClientState(StrEnum):
    """Where the session stands."""

    DISCONNECTED = "disconnected"
    REGISTERING = "registering"
    REGISTERED = "registered"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Registered:
    """``registered_auth`` arrived (also after each reconnect)."""

    reply: sig.RegisteredAuth
    reconnect: bool


@dataclass(frozen=True, slots=True)
class RegisterFailed:
    """The server refused ``register``; retrying would not help."""

    error: SleapRTCError


@dataclass(frozen=True, slots=True)
class Replied:
    """A request got its reply."""

    request_id: str
    reply: sig.Message


@dataclass(frozen=True, slots=True)
class RequestFailed:
    """A request got an error."""

    request_id: str
    error: SleapRTCError


@dataclass(frozen=True, slots=True)
class Incoming:
    """Anything else the server sent: peer messages, offers, room events, and
    errors that answer no request."""

    message: sig.Message


Event = Registered | RegisterFailed | Replied | RequestFailed | Incoming


@dataclass(slots=True)
class _Pending:
    request_id: str
    message: sig.Message
    reply_type: type[sig.Message]
    sent: bool = False


@dataclass(slots=True)
class ClientSession:
    """State of one logical signaling client across reconnects.

    Args:
        register: The ``register`` to send on every (re)connect; its metadata is
            kept up to date with every ``update_metadata``.
    """

    register: sig.Register
    state: ClientState = ClientState.DISCONNECTED
    reply: sig.RegisteredAuth | None = None
    registrations: int = 0
    _pending: dict[str, _Pending] = field(default_factory=dict)
    _out: list[str] = field(default_factory=list)
    _events: list[Event] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    @property
    def peer_id(self) -> str | None:
        """The registered id (the server may have chosen it)."""
        return self.reply.peer_id if self.reply is not None else self.register.peer_id

    @property
    def metadata(self) -> dict[str, Any]:
        """Metadata as last stored (sent again at every re-register)."""
        return dict(self.register.metadata)

    # --- connection lifecycle (called by the adapter)

    def connected(self) -> None:
        """The socket is open: register (again)."""
        if self.state is ClientState.CLOSED:
            return
        self.state = ClientState.REGISTERING
        rid = self._next_id()
        msg = replace(self.register, request_id=rid)
        self._pending = {
            rid: _Pending(rid, msg, sig.RegisteredAuth, sent=True),
            **{k: _unsent(p) for k, p in self._pending.items() if not _is_reg(p)},
        }
        self._out.append(encode(msg))

    def disconnected(self) -> None:
        """The socket closed; requests wait for the next connection."""
        if self.state is not ClientState.CLOSED:
            self.state = ClientState.DISCONNECTED
        self._out.clear()  # unanswered requests are re-sent after re-register
        self._pending = {k: v for k, v in self._pending.items() if not _is_reg(v)}

    def close(self) -> list[str]:
        """Stop for good; returns the ids of requests that will never be answered."""
        self.state = ClientState.CLOSED
        ids = list(self._pending)
        self._pending.clear()
        return ids

    # --- what the application asks

    def request(self, message: sig.DiscoverPeers | sig.UpdateMetadata) -> str:
        """Queue a request; returns its id (see :class:`Replied`)."""
        rid = self._next_id()
        msg = replace(message, request_id=rid)
        pending = _Pending(rid, msg, _REPLY_TYPES[type(message)])
        self._pending[rid] = pending
        if self.state is ClientState.REGISTERED:
            self._send_pending(pending)
        return rid

    def cancel(self, request_id: str) -> None:
        """Forget a request the application no longer waits for."""
        self._pending.pop(request_id, None)

    def send(self, message: sig.Message) -> str:
        """The text of a fire-and-forget message (caller sends it when connected)."""
        return encode(message)

    # --- frames

    def receive(self, text: str | bytes) -> None:
        """Take one frame from the server."""
        try:
            msg = decode(text)
        except SleapRTCError as exc:
            logger.warning("! undecodable frame from server: %s", exc)
            return
        if isinstance(msg, sig.Ping):
            return
        if isinstance(msg, sig.RegisteredAuth | sig.PeerList | sig.MetadataUpdated):
            self._reply(msg)
        elif isinstance(msg, sig.ErrorMessage) and msg.target is None:
            self._error(msg)
        else:
            self._events.append(Incoming(msg))

    def outgoing(self) -> list[str]:
        """Frames to send now, in order."""
        out, self._out = self._out, []
        return out

    def events(self) -> list[Event]:
        """What happened since the last call."""
        out, self._events = self._events, []
        return out

    # --- internals

    def _next_id(self) -> str:
        return f"r{next(self._ids)}"

    def _match(
        self, request_id: str | None, reply_type: type | None
    ) -> _Pending | None:
        if request_id is not None and request_id in self._pending:
            return self._pending[request_id]
        for pending in self._pending.values():
            if pending.sent and (
                reply_type is None or pending.reply_type is reply_type
            ):
                return pending
        return None

    def _reply(
        self, msg: sig.RegisteredAuth | sig.PeerList | sig.MetadataUpdated
    ) -> None:
        pending = self._match(msg.request_id, type(msg))
        if pending is None:
            logger.debug("< unexpected %s", msg.TYPE.value)
            return
        del self._pending[pending.request_id]
        if isinstance(msg, sig.RegisteredAuth):
            self._registered(msg)
            return
        if isinstance(msg, sig.MetadataUpdated):
            self.register = replace(self.register, metadata=dict(msg.metadata))
        self._events.append(Replied(pending.request_id, msg))

    def _registered(self, msg: sig.RegisteredAuth) -> None:
        reconnect = self.registrations > 0
        self.registrations += 1
        self.reply = msg
        self.state = ClientState.REGISTERED
        # Keep the id the server gave us, so a reconnect reclaims it.
        self.register = replace(self.register, peer_id=msg.peer_id, request_id=None)
        self._events.append(Registered(msg, reconnect))
        for pending in self._pending.values():
            if not pending.sent:
                self._send_pending(pending)

    def _send_pending(self, pending: _Pending) -> None:
        """Queue a request, stamped with our id (the server may have chosen it
        at register, so it is added only now)."""
        pending.sent = True
        msg = pending.message
        if isinstance(msg, sig.DiscoverPeers):
            msg = replace(msg, from_peer_id=self.peer_id)
        elif isinstance(msg, sig.UpdateMetadata):
            kept = {
                k: v
                for k, v in self.register.metadata.items()
                if k not in msg.metadata and k != "properties" and not k.startswith("_")
            }
            msg = replace(msg, peer_id=self.peer_id, metadata={**kept, **msg.metadata})
        self._out.append(encode(msg))

    def _error(self, msg: sig.ErrorMessage) -> None:
        code = msg.code or ErrorCode.INTERNAL_ERROR.value
        text = msg.message or msg.reason or code
        pending = None
        if msg.request_id is not None or code not in _ROUTING_CODES:
            pending = self._match(msg.request_id, None)
        if pending is None:
            self._events.append(Incoming(msg))
            return
        del self._pending[pending.request_id]
        if _is_reg(pending):
            error: SleapRTCError = (
                AuthError(text, code=code)
                if code in _AUTH_CODES
                else ServerError(text, code=code, reply=msg.to_dict())
            )
            self._events.append(RegisterFailed(error))
            return
        self._events.append(
            RequestFailed(
                pending.request_id, ServerError(text, code=code, reply=msg.to_dict())
            )
        )


def _is_reg(p: _Pending) -> bool:
    return isinstance(p.message, sig.Register)


def _unsent(p: _Pending) -> _Pending:
    p.sent = False
    return p
