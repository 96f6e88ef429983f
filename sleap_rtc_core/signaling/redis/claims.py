"""Per-credential peer counts and admin slots decided in Redis (layout, scripts).

Pure data and decoding, as :mod:`.wire` is for the rest of the layout. For a
key prefix ``P``:

* ``P:cred:<room_id>:<credential_id>``: a hash per credential of a room, one
  field per peer it admitted: ``peer_id`` → ``<node>|<claimed at, ms>``.
* ``P:admin:<room_id>``: a hash naming the room's admin slot holder: ``peer``,
  ``node``, ``at`` (ms).

One script (:data:`CLAIM_SCRIPT`) counts and claims at once, so two processes
admitting peers of one credential at the same moment cannot both take the last
place, and two claims of an admin slot have one winner: whichever Redis runs
first. An entry counts while its process lives (its liveness key, as in
:mod:`.wire`) and either its peer's hash names that process or it was claimed
a moment ago (its registration is on its way); the others, a dead process's
included, are removed as they are met. :data:`RELEASE_SCRIPT` gives a leaving
peer's entries back.
"""

from __future__ import annotations

from typing import Any

from ..server.claims import Verdict
from .wire import Keys

__all__ = [
    "CLAIM_SCRIPT",
    "NO_CREDENTIAL",
    "RELEASE_SCRIPT",
    "admin_key",
    "credential_key",
    "parse_verdict",
]

NO_CREDENTIAL = "~none"
"""The credential part of the key for peers admitted without a credential id."""


def credential_key(keys: Keys, room_id: str, credential_id: str | None) -> str:
    """The hash of one credential's peers in a room."""
    return f"{keys.prefix}:cred:{room_id}:{credential_id or NO_CREDENTIAL}"


def admin_key(keys: Keys, room_id: str) -> str:
    """The hash naming a room's admin slot holder."""
    return f"{keys.prefix}:admin:{room_id}"


_LIVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local fresh = tonumber(ARGV[6])
local alive = {}
local function live(peer, node, at)
  if not node then return false end
  if alive[node] == nil then
    alive[node] = redis.call('EXISTS', ARGV[4] .. node) == 1
  end
  if not alive[node] then return false end
  if at and now - at < fresh then return true end
  return redis.call('HGET', ARGV[5] .. peer, 'node') == node
end
local function entry(value)
  local bar = string.find(value, '|', 1, true)
  if not bar then return nil, nil end
  return string.sub(value, 1, bar - 1), tonumber(string.sub(value, bar + 1))
end
"""

CLAIM_SCRIPT = (
    _LIVE
    + """
local me, node, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local members = redis.call('HGETALL', KEYS[1])
local held, mine = 0, false
for i = 1, #members, 2 do
  local peer = members[i]
  local n, at = entry(members[i + 1])
  if live(peer, n, at) then
    if peer == me then mine = true else held = held + 1 end
  else
    redis.call('HDEL', KEYS[1], peer)
  end
end
if not mine and held >= limit then return {0, held, false} end
redis.call('HSET', KEYS[1], me, node .. '|' .. now)
if ARGV[7] ~= '1' then return {1, held, false} end
local holder = redis.call('HGET', KEYS[2], 'peer')
if holder and holder ~= me then
  local n = redis.call('HGET', KEYS[2], 'node')
  local at = tonumber(redis.call('HGET', KEYS[2], 'at'))
  if live(holder, n, at) then return {1, held, holder} end
end
redis.call('HSET', KEYS[2], 'peer', me, 'node', node, 'at', now)
return {1, held, me}
"""
)
"""Count a credential's live peers in a room, admit this one if there is room,
and (when asked) claim the room's admin slot unless a live peer holds it.

KEYS: the credential hash, the admin hash. ARGV: peer id, node, limit, prefix
of liveness keys (``P:node:``), prefix of the room's peer hashes
(``P:peer:<room_id>:``), milliseconds a fresh claim counts without its peer
hash, ``1`` to claim the admin slot. Returns ``{admitted, held, holder}``
(``holder`` false when the slot was not asked for, or the peer refused).
"""

RELEASE_SCRIPT = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and string.sub(v, 1, #ARGV[2] + 1) == ARGV[2] .. '|' then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
if redis.call('HGET', KEYS[2], 'peer') == ARGV[1]
   and redis.call('HGET', KEYS[2], 'node') == ARGV[2] then
  redis.call('DEL', KEYS[2])
end
return 1
"""
"""Give back a peer's credential entry and admin slot, if this node holds them
(a peer that moved to another process is that process's now).

KEYS: the credential hash, the admin hash. ARGV: peer id, node.
"""


def parse_verdict(raw: Any) -> Verdict:
    """A :class:`~..server.claims.Verdict` from :data:`CLAIM_SCRIPT`'s reply.

    Raises:
        ValueError: The reply is not ``[admitted, held, holder]``.
    """
    if not isinstance(raw, list | tuple) or len(raw) != 3:
        raise ValueError(f"bad claim reply from Redis: {raw!r}")
    admitted, held, holder = raw
    if not isinstance(admitted, int) or not isinstance(held, int):
        raise ValueError(f"bad claim reply from Redis: {raw!r}")
    if isinstance(holder, bytes):
        holder = holder.decode()
    if holder is not None and not isinstance(holder, str):
        raise ValueError(f"bad claim reply from Redis: {raw!r}")
    return Verdict(admitted=bool(admitted), held=held, admin=holder or None)
