"""What the Redis backend writes to Redis: key names, records, messages, scripts.

Pure data and encoding (no I/O), so that the layout is in one place and tested
without a server. The layout, for a key prefix ``P``:

* ``P:peer:<room_id>:<peer_id>``: a hash per registered peer with the fields
  ``node`` (the process holding its socket), ``connected_at`` (epoch seconds, as
  text) and ``record`` (the whole record as JSON); it expires unless its node
  refreshes it.
* ``P:node:<node>``: a string per live process, with the same expiry; a peer
  whose node key is gone belongs to a dead process.
* ``P:metrics:<node>``: a process's last ``/metrics`` body (JSON), with the same
  expiry, for the sum over processes.
* ``P:inbox:<node>``: the one pub/sub channel of a process; frames for its peers.
* ``P:stream:<node>``: the same frames, kept until the process acknowledges
  them (a stream: entries ``n`` = the sending process, ``d`` = the message), so
  that what a killed process had read but not written is taken back by its
  senders (:data:`SEND_SCRIPT`, :data:`CLAIM_SCRIPT`, :mod:`.inbox`).
* ``P:events``: the pub/sub channel every process reads for registry changes
  (join, update, leave, node down), from which each process tells its own peers.

A message on either channel is a JSON header (a list whose first item is the
kind) and a body, joined by a newline: a JSON string never holds a raw newline,
and a relayed frame travels as the body without being re-encoded. Frames queued
together for one process travel as one message (``frames``: their targets and
lengths in the header, the frames back to back in the body), so that a busy
process costs Redis and its reader one message per batch, not per frame.

A process looks up a peer it does not know yet in Redis itself
(:data:`LOOKUP_SCRIPT`): the hash is written before the peer's
``registered_auth`` is sent, so a peer that has its reply can be found.

Writes that may race with another process go through Lua scripts: a process
only overwrites a peer held by another process when its registration is newer
(a reconnect moved the peer), and only deletes a peer it still holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ...errors import SleapRTCError
from ...protocol.json_text import dumps_bytes, loads, loads_object
from ..server.registry import PeerRecord

__all__ = [
    "CLAIM_SCRIPT",
    "DELETE_SCRIPT",
    "LOOKUP_SCRIPT",
    "MAX_FRAMES_BYTES",
    "PUT_SCRIPT",
    "RENEW_SCRIPT",
    "SEND_SCRIPT",
    "Keys",
    "Kind",
    "decode_record",
    "encode_record",
    "is_admin_record",
    "join_frames",
    "join_message",
    "split_frames",
    "split_message",
]

MAX_FRAMES_BYTES = 1 << 20
"""Bytes of frames one ``frames`` message carries at most (more go in another)."""


class Kind(StrEnum):
    """The kinds of messages on the backend's channels."""

    FRAME = "frame"
    """``[frame, room_id, peer_id]`` + the frame to deliver (inbox)."""
    FRAMES = "frames"
    """``[frames, [[room_id, peer_id, length], ...]]`` + the frames, back to
    back, in order (inbox)."""
    JOIN = "join"
    """``[join, node]`` + record: a peer registered (events)."""
    UPDATE = "update"
    """``[update, node]`` + record: a peer's metadata changed (events)."""
    LEAVE = "leave"
    """``[leave, node, room_id, peer_id]``: a peer left (events)."""
    DOWN = "down"
    """``[down, node]``: a process is stopping; its peers are gone (events)."""
    REVOKE = "revoke"
    """``[revoke, node, credential_id, reason]``: close every peer that
    credential (key, token, room, user) admitted (events)."""
    DELETE = "delete"
    """``[delete, node, room_id, peer_id]``: close that peer's connection,
    wherever it is (``/delete-peer``; events)."""


@dataclass(frozen=True, slots=True)
class Keys:
    """Key and channel names under one prefix."""

    prefix: str

    @property
    def events(self) -> str:
        """The channel every process reads for registry changes."""
        return f"{self.prefix}:events"

    @property
    def peer_pattern(self) -> str:
        """A ``SCAN MATCH`` pattern for every peer hash."""
        return f"{self.prefix}:peer:*"

    def peer(self, room_id: str, peer_id: str) -> str:
        """The hash of one peer."""
        return f"{self.prefix}:peer:{room_id}:{peer_id}"

    def node(self, node: str) -> str:
        """The liveness key of one process."""
        return f"{self.prefix}:node:{node}"

    @property
    def node_prefix(self) -> str:
        """What every liveness key starts with (for :data:`LOOKUP_SCRIPT`)."""
        return f"{self.prefix}:node:"

    def metrics(self, node: str) -> str:
        """The last ``/metrics`` body one process published (JSON)."""
        return f"{self.prefix}:metrics:{node}"

    @property
    def metrics_prefix(self) -> str:
        """What every metrics key starts with."""
        return f"{self.prefix}:metrics:"

    def inbox(self, node: str) -> str:
        """The pub/sub channel of one process."""
        return f"{self.prefix}:inbox:{node}"

    def stream(self, node: str) -> str:
        """The stream of one process's frames not yet acknowledged."""
        return f"{self.prefix}:stream:{node}"


def join_message(header: list[Any], body: bytes = b"") -> bytes:
    """A channel message: the JSON header, a newline, the body."""
    return dumps_bytes(header) + b"\n" + body


def split_message(data: bytes) -> tuple[list[Any], bytes]:
    """The header and body of a channel message.

    Raises:
        ValueError: The message is not header + newline + body.
    """
    head, sep, body = data.partition(b"\n")
    if not sep:
        raise ValueError("channel message without a header line")
    try:
        header = loads(head)
    except SleapRTCError as exc:
        raise ValueError(f"bad channel message header: {exc.message}") from exc
    if not isinstance(header, list) or not header or not isinstance(header[0], str):
        raise ValueError("channel message header is not [kind, ...]")
    return header, body


def join_frames(frames: list[tuple[str, str, bytes]]) -> bytes:
    """One inbox message carrying ``(room_id, peer_id, frame)`` in order."""
    if len(frames) == 1:
        room_id, peer_id, data = frames[0]
        return join_message([Kind.FRAME, room_id, peer_id], data)
    header = [[room_id, peer_id, len(data)] for room_id, peer_id, data in frames]
    return join_message([Kind.FRAMES, header], b"".join(f[2] for f in frames))


def split_frames(header: list[Any], body: bytes) -> list[tuple[str, str, bytes]]:
    """The ``(room_id, peer_id, frame)`` of a ``frames`` message, in order.

    Raises:
        ValueError: The header does not describe the body.
    """
    if len(header) != 2 or not isinstance(header[1], list):
        raise ValueError("frames message header is not [frames, [...]]")
    out: list[tuple[str, str, bytes]] = []
    pos = 0
    for item in header[1]:
        if (
            not isinstance(item, list)
            or len(item) != 3
            or not isinstance(item[0], str)
            or not isinstance(item[1], str)
            or not isinstance(item[2], int)
            or item[2] < 0
        ):
            raise ValueError(f"frames message: bad entry {item!r}")
        end = pos + item[2]
        if end > len(body):
            raise ValueError("frames message: body shorter than its header says")
        out.append((item[0], item[1], body[pos:end]))
        pos = end
    if pos != len(body):
        raise ValueError("frames message: body longer than its header says")
    return out


ADMIN_MARK = b'{"admin":true,'
"""How a record of the room's admin begins (:func:`encode_record`)."""


def is_admin_record(data: bytes | str) -> bool:
    """Whether an encoded record holds its room's admin slot."""
    raw = data.encode() if isinstance(data, str) else data
    return raw.startswith(ADMIN_MARK)


def encode_record(rec: PeerRecord, *, admin: bool = False) -> bytes:
    """A peer record as JSON (what the ``record`` field and events carry);
    ``admin``: it holds its room's admin slot (the first field, then)."""
    head: dict[str, Any] = {"admin": True} if admin else {}
    return dumps_bytes(
        head
        | {
            "peer_id": rec.peer_id,
            "room_id": rec.room_id,
            "role": rec.role,
            "metadata": rec.metadata,
            "connected_at": rec.connected_at,
            "principal": rec.principal,
            "credential_id": rec.credential_id,
            "revocation_ids": sorted(rec.revocation_ids),
            "node": rec.node,
        }
    )


_STR_FIELDS = ("peer_id", "room_id", "role", "principal", "node")


def decode_record(data: bytes | str) -> PeerRecord:
    """A remote peer record (``conn`` is ``None``) from :func:`encode_record`.

    Raises:
        ValueError: The JSON is not a record (another version, or corrupted).
    """
    try:
        obj = loads_object(data)
    except SleapRTCError as exc:
        raise ValueError(f"bad peer record: {exc.message}") from exc
    for name in _STR_FIELDS:
        if not isinstance(obj.get(name), str):
            raise ValueError(f"peer record: '{name}' is not a string")
    metadata = obj.get("metadata")
    connected_at = obj.get("connected_at")
    credential_id = obj.get("credential_id")
    revocation_ids = obj.get("revocation_ids")
    if not isinstance(metadata, dict):
        raise ValueError("peer record: 'metadata' is not an object")
    if not isinstance(connected_at, int | float) or isinstance(connected_at, bool):
        raise ValueError("peer record: 'connected_at' is not a number")
    if credential_id is not None and not isinstance(credential_id, str):
        raise ValueError("peer record: 'credential_id' is not a string")
    if not isinstance(revocation_ids, list) or not all(
        isinstance(r, str) for r in revocation_ids
    ):
        raise ValueError("peer record: 'revocation_ids' is not a list of strings")
    return PeerRecord(
        peer_id=obj["peer_id"],
        room_id=obj["room_id"],
        role=obj["role"],
        metadata=metadata,
        connected_at=float(connected_at),
        principal=obj["principal"],
        credential_id=credential_id,
        revocation_ids=frozenset(revocation_ids),
        conn=None,
        node=obj["node"],
    )


PUT_SCRIPT = """
local node = redis.call('HGET', KEYS[1], 'node')
if node and node ~= ARGV[1] and redis.call('EXISTS', ARGV[7] .. node) == 1 then
  local at = tonumber(redis.call('HGET', KEYS[1], 'connected_at'))
  if at and at > tonumber(ARGV[2]) then return 0 end
end
redis.call('HSET', KEYS[1], 'node', ARGV[1], 'connected_at', ARGV[2],
           'record', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
"""
"""Write a peer hash and announce it, unless another live node holds a newer
one (a dead node's peer is taken over whatever the clocks say).

KEYS: the peer hash. ARGV: node, connected_at, record JSON, TTL in ms, events
channel, event message, prefix of liveness keys. Returns 1 when written, 0 when
refused.
"""

RENEW_SCRIPT = """
if redis.call('HGET', KEYS[1], 'node') == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
"""Renew a peer hash's expiry if this node still holds it (else 0, and the
node writes it again: :data:`PUT_SCRIPT` decides who wins).

KEYS: the peer hash. ARGV: node, TTL in ms.
"""

DELETE_SCRIPT = """
if redis.call('HGET', KEYS[1], 'node') == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
"""
"""Delete a peer hash if this node still holds it, and announce the leave.

KEYS: the peer hash. ARGV: node, events channel, event message. (Receivers
ignore a leave from a node that no longer holds the peer.)
"""

LOOKUP_SCRIPT = """
local rec = redis.call('HGET', KEYS[1], 'record')
if not rec then return false end
local node = redis.call('HGET', KEYS[1], 'node')
if not node or redis.call('EXISTS', ARGV[1] .. node) == 0 then return false end
return rec
"""
"""The record of a peer, if a live process holds it.

KEYS: the peer hash. ARGV: the prefix of liveness keys (``P:node:``). Returns
the record JSON, or nil when the peer is not registered anywhere (or its
process's liveness key has expired).
"""

SEND_SCRIPT = """
if redis.call('PUBSUB', 'NUMSUB', KEYS[2])[2] == 0 then return 0 end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*',
                      'n', ARGV[1], 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return redis.call('PUBLISH', KEYS[2], id .. ' ' .. ARGV[1] .. '\\n' .. ARGV[2])
"""
"""Send an inbox message to a live process: keep it in its stream and publish
``<id> <sender node>\\n<message>`` on its channel; 0 (nothing kept) when no
process reads the channel (that process died).

KEYS: the stream, the channel. ARGV: this node, the message, the stream's
length bound, its expiry in ms (a dead process's leftovers vanish). Returns
the receivers (as ``PUBLISH``).
"""

CLAIM_SCRIPT = """
if redis.call('PUBSUB', 'NUMSUB', KEYS[2])[2] > 0 then return false end
local out = {}
for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
  local fields = entry[2]
  if fields[2] == ARGV[1] then
    out[#out + 1] = fields[4]
    redis.call('XDEL', KEYS[1], entry[1])
  end
end
if redis.call('XLEN', KEYS[1]) == 0 then redis.call('DEL', KEYS[1]) end
return out
"""
"""Take back, oldest first, the messages this node sent to a dead process
that it did not acknowledge (each sender takes its own: exactly one process
takes each, and in its order).

KEYS: the dead process's stream, its channel. ARGV: this node. Returns nil
while the process still reads its channel (it is alive: nothing taken).
"""
