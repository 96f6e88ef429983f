"""Room endpoints: rooms, invites, members, and the rooms' worker keys.

Shapes follow PROTOCOL.md B §1.8. A room the caller is not a member of answers
404 whether or not it exists, so room ids cannot be probed. Deleting a room,
removing a member or revoking a worker key disconnects the peers that lose
access, at once.

A worker key (``slp_…``) is shown in clear once, as ``token_id`` of the reply
that creates it (the reference's field, which ``sleap-rtc token create`` prints);
from then on it is named by its public id ``wk_…``, which listings call
``token_id``. Revoking or deleting accepts either.
"""

from __future__ import annotations

from typing import Any

from ..store.records import (
    MemberRole,
    Membership,
    Room,
    WorkerToken,
    iso_time,
    member_credential,
    room_credential,
)
from .base import (
    ApiContext,
    HttpError,
    RouteTable,
    body_int,
    body_str,
    client_host,
    json_response,
)
from .wire import HttpRequest, HttpResponse

__all__ = ["routes"]

routes = RouteTable()

_DAY = 86400.0
_SORT_KEYS = {"name", "joined_at", "expires_at", "role"}
_TOKEN_SORT_KEYS = {"created_at", "expires_at", "worker_name", "room_name"}


def _room_item(room: Room, membership: Membership) -> dict[str, Any]:
    return {
        "room_id": room.room_id,
        "name": room.name,
        "expires_at": iso_time(room.expires_at),
        "role": membership.role.value,
        "joined_at": iso_time(membership.joined_at),
        "created_at": iso_time(room.created_at),
    }


@routes("POST", "/api/auth/rooms")
async def create_room(
    ctx: ApiContext, request: HttpRequest, _: dict[str, str]
) -> HttpResponse:
    """``{name?, expires_in_days?}`` → a room the caller owns, with its token."""
    caller = await ctx.caller(request)
    body = ctx.body(request)
    name = body_str(body, "name", required=False, max_len=50)
    days = body_int(body, "expires_in_days", ctx.config.room_ttl_days, 1, 365)
    expires_at = None if days is None else ctx.clock() + days * _DAY
    try:
        room = await ctx.db(
            ctx.store.create_room, name, owner_id=caller.user_id, expires_at=expires_at
        )
    except KeyError:
        raise HttpError(401, "User not found") from None
    return json_response(
        200,
        {
            "room_id": room.room_id,
            "room_token": room.token,
            "name": room.name,
            "expires_at": iso_time(room.expires_at),
        },
    )


@routes("GET", "/api/auth/rooms")
async def list_rooms(
    ctx: ApiContext, request: HttpRequest, _: dict[str, str]
) -> HttpResponse:
    """The caller's rooms; ``role``, ``search``, ``sort_by``, ``sort_order``."""
    caller = await ctx.caller(request)
    pairs = await ctx.db(ctx.store.rooms_for_user, caller.user_id)
    role = request.query.get("role")
    if role:
        pairs = [(r, m) for r, m in pairs if m.role.value == role]
    search = request.query.get("search", "").strip().lower()
    if search:
        pairs = [
            (r, m)
            for r, m in pairs
            if search in r.name.lower() or search in r.room_id.lower()
        ]
    items = [_room_item(r, m) for r, m in pairs]
    sort_by = request.query.get("sort_by", "joined_at")
    if sort_by not in _SORT_KEYS:
        raise HttpError(400, f"'sort_by' must be one of {sorted(_SORT_KEYS)}")
    reverse = request.query.get("sort_order", "asc").lower() == "desc"
    items.sort(key=lambda i: (i[sort_by] is None, i[sort_by] or ""), reverse=reverse)
    return json_response(200, {"rooms": items})


@routes("GET", "/api/auth/rooms/{room_id}")
async def get_room(
    ctx: ApiContext, request: HttpRequest, params: dict[str, str]
) -> HttpResponse:
    """One room; owners also see the token and the members."""
    caller = await ctx.caller(request)
    room, _ = await ctx.room_for(params["room_id"], caller)
    membership = await ctx.membership(room.room_id, caller.user_id)
    if membership is None:
        raise HttpError(404, "Room not found")
    item = _room_item(room, membership)
    if membership.role is MemberRole.OWNER:
        members = await ctx.db(ctx.store.room_members, room.room_id)
        item["token"] = room.token
        item["members"] = [
            {
                "user_id": u.user_id,
                "username": u.username,
                "role": m.role.value,
                "joined_at": iso_time(m.joined_at),
            }
            for m, u in members
        ]
    return json_response(200, item)


@routes("PATCH", "/api/auth/rooms/{room_id}")
async def rename_room(
    ctx: ApiContext, request: HttpRequest, params: dict[str, str]
) -> HttpResponse:
    """``{name}`` (1-50 characters), owner only."""
    caller = await ctx.caller(request)
    room = await ctx.owned_room(params["room_id"], caller)
    name = body_str(ctx.body(request), "name", max_len=50) or ""
    await ctx.db(ctx.store.rename_room, room.room_id, name)
    return json_response(200, {"room_id": room.room_id, "name": name})


@routes("DELETE", "/api/auth/rooms/{room_id}")
async def delete_room(
    ctx: ApiContext, request: HttpRequest, params: dict[str, str]
) -> HttpResponse:
    """Delete a room with its memberships and worker keys; owner only."""
    caller = await ctx.caller(request)
    room = await ctx.owned_room(params["room_id"], caller)
    await ctx.db(ctx.store.delete_room, room.room_id)
    n = ctx.revoke(room_credential(room.room_id), "room deleted")
    return json_response(
        200, {"status": "deleted", "room_id": room.room_id, "disconnected": n}
    )


@routes("POST", "/api/auth/rooms/{room_id}/invite")
async def invite(
    ctx: ApiContext, request: HttpRequest, params: dict[str, str]
) -> HttpResponse:
    """A reusable invite code (8 characters), owner only."""
    caller = await ctx.caller(request)
    room = await ctx.owned_room(params["room_id"], caller)
    ttl = ctx.config.invite_ttl
    try:
        inv = await ctx.db(
            ctx.store.create_invite, room.room_id, created_by=caller.user_id, ttl=ttl
        )
    except KeyError:
        raise HttpError(404, "Room not found") from None
    return json_response(
        200,
        {
            "invite_code": inv.code,
            "room_id": room.room_id,
            "expires_in_seconds": int(ttl),
            "expires_at": iso_time(inv.expires_at),
        },
    )


@routes("POST", "/api/auth/rooms/join")
async def join(
    ctx: ApiContext, request: HttpRequest, _: dict[str, str]
) -> HttpResponse:
    """``{invite_code}`` → membership of the invite's room."""
    caller = await ctx.caller(request)
    code = body_str(ctx.body(request), "invite_code", max_len=32) or ""
    key = f"join|{client_host(request)}"
    ctx.check_limit(key, "Too many invalid invite codes; try again later")
    inv = await ctx.db(ctx.store.get_invite, code)
    room = await ctx.db(ctx.store.get_room, inv.room_id) if inv else None
    if inv is None or room is None:
        ctx.limiter.fail(key)
        raise HttpError(404, "Invalid or expired invite code")
    if room.expired(ctx.clock()):
        raise HttpError(400, "Room expired")
    try:
        _membership, created = await ctx.db(
            ctx.store.add_member,
            room.room_id,
            caller.user_id,
            MemberRole.MEMBER,
            invited_by=inv.created_by,
        )
    except KeyError:
        raise HttpError(404, "Invalid or expired invite code") from None
    message = "Joined successfully" if created else "Already a member"
    return json_response(200, {"message": message, "room_id": room.room_id})


@routes("GET", "/api/auth/rooms/{room_id}/members")
async def members(
    ctx: ApiContext, request: HttpRequest, params: dict[str, str]
) -> HttpResponse:
    """The members of a room the caller belongs to."""
    caller = await ctx.caller(request)
    room, _ = await ctx.room_for(params["room_id"], caller)
    rows = await ctx.db(ctx.store.room_members, room.room_id)
    return json_response(
        200,
        {
            "members": [
                {
                    "user_id": u.user_id,
                    "username": u.username,
                    "avatar_url": u.avatar_url,
                    "role": m.role.value,
                    "joined_at": iso_time(m.joined_at),
                }
                for m, u in rows
            ]
        },
    )


@routes("DELETE", "/api/auth/rooms/{room_id}/members/{user_id}")
async def remove_member(
    ctx: ApiContext, request: HttpRequest, params: dict[str, str]
) -> HttpResponse:
    """Leave a room (yourself) or remove a member (owner); the owner stays."""
    caller = await ctx.caller(request)
    room, role = await ctx.room_for(params["room_id"], caller)
    target = params["user_id"]
    leaving = target == caller.user_id
    if not leaving and role is not MemberRole.OWNER:
        raise HttpError(403, "Only the room owner can remove members")
    membership = await ctx.membership(room.room_id, target)
    if membership is None:
        raise HttpError(404, "Not a member of this room")
    if membership.role is MemberRole.OWNER:
        raise HttpError(400, "The room owner cannot leave the room")
    await ctx.db(ctx.store.remove_member, room.room_id, target)
    ctx.revoke(member_credential(room.room_id, target), "removed from the room")
    status = "left" if leaving else "removed"
    return json_response(
        200, {"status": status, "room_id": room.room_id, "user_id": target}
    )


# --- worker keys


def _token_item(
    token: WorkerToken, room_name: str | None, now: float
) -> dict[str, Any]:
    return {
        "token_id": token.token_id,
        "room_id": token.room_id,
        "room_name": room_name,
        "worker_name": token.worker_name,
        "created_by": token.created_by,
        "created_at": iso_time(token.created_at),
        "expires_at": iso_time(token.expires_at),
        "revoked_at": iso_time(token.revoked_at),
        "is_active": token.is_active(now),
    }


async def _visible_tokens(
    ctx: ApiContext, user_id: str, room_id: str | None
) -> tuple[list[WorkerToken], dict[str, str]]:
    """Worker keys a user may see: all of the rooms they own, else their own.

    Returns:
        The keys and the names of the rooms involved.
    """
    pairs = await ctx.db(ctx.store.rooms_for_user, user_id)
    names = {r.room_id: r.name for r, _ in pairs}
    owned = {r.room_id for r, m in pairs if m.role is MemberRole.OWNER}
    if room_id is not None and room_id not in names:
        raise HttpError(404, "Room not found")
    found: dict[str, WorkerToken] = {}
    for token in await ctx.db(
        ctx.store.list_worker_tokens, room_id=room_id, created_by=user_id
    ):
        found[token.token_id] = token
    for rid in owned if room_id is None else owned & {room_id}:
        for token in await ctx.db(ctx.store.list_worker_tokens, room_id=rid):
            found[token.token_id] = token
    return sorted(found.values(), key=lambda t: t.created_at), names


async def _managed_token(ctx: ApiContext, user_id: str, token_id: str) -> WorkerToken:
    """A worker key the user created or whose room they own.

    Raises:
        HttpError: 404 otherwise (existence is not revealed).
    """
    token = await ctx.db(ctx.store.get_worker_token, token_id)
    if token is None:
        raise HttpError(404, "Token not found")
    if token.created_by == user_id:
        return token
    membership = await ctx.membership(token.room_id, user_id)
    if membership is None or membership.role is not MemberRole.OWNER:
        raise HttpError(404, "Token not found")
    return token


@routes("POST", "/api/auth/token")
async def create_token(
    ctx: ApiContext, request: HttpRequest, _: dict[str, str]
) -> HttpResponse:
    """``{room_id, worker_name, expires_in_days?}`` (a member) → a worker key."""
    caller = await ctx.caller(request)
    body = ctx.body(request)
    room_id = body_str(body, "room_id", max_len=64) or ""
    worker_name = body_str(body, "worker_name", max_len=100) or ""
    days = body_int(body, "expires_in_days", ctx.config.token_ttl_days, 0, 3650)
    room, _role = await ctx.room_for(room_id, caller)
    if room.expired(ctx.clock()):
        raise HttpError(400, "Room expired")
    existing = await ctx.db(ctx.store.list_worker_tokens, room_id=room.room_id)
    now = ctx.clock()
    if sum(t.is_active(now) for t in existing) >= ctx.config.max_worker_keys:
        raise HttpError(400, f"At most {ctx.config.max_worker_keys} active keys")
    expires_at = None if not days else now + days * _DAY
    try:
        token, secret = await ctx.db(
            ctx.store.create_worker_token,
            room.room_id,
            worker_name,
            created_by=caller.user_id,
            expires_at=expires_at,
        )
    except KeyError:
        raise HttpError(404, "Room not found") from None
    item = _token_item(token, room.name, now)
    return json_response(200, {**item, "token_id": secret, "id": token.token_id})


@routes("GET", "/api/auth/tokens")
async def list_tokens(
    ctx: ApiContext, request: HttpRequest, _: dict[str, str]
) -> HttpResponse:
    """Worker keys: ``room_id``, ``active_only``, ``sort_by``, ``sort_order``."""
    caller = await ctx.caller(request)
    room_id = request.query.get("room_id") or None
    tokens, names = await _visible_tokens(ctx, caller.user_id, room_id)
    now = ctx.clock()
    items = [_token_item(t, names.get(t.room_id), now) for t in tokens]
    if request.query.get("active_only", "").lower() in ("1", "true", "yes"):
        items = [i for i in items if i["is_active"]]
    sort_by = request.query.get("sort_by", "created_at")
    if sort_by not in _TOKEN_SORT_KEYS:
        raise HttpError(400, f"'sort_by' must be one of {sorted(_TOKEN_SORT_KEYS)}")
    reverse = request.query.get("sort_order", "asc").lower() == "desc"
    items.sort(key=lambda i: (i[sort_by] is None, i[sort_by] or ""), reverse=reverse)
    return json_response(200, {"tokens": items})


@routes("DELETE", "/api/auth/token/{token_id}")
async def revoke_token(
    ctx: ApiContext, request: HttpRequest, params: dict[str, str]
) -> HttpResponse:
    """Revoke a worker key (creator or room owner); its workers disconnect."""
    caller = await ctx.caller(request)
    token = await _managed_token(ctx, caller.user_id, params["token_id"])
    await ctx.db(ctx.store.revoke_worker_token, token.token_id)
    n = ctx.revoke(token.token_id, "worker key revoked")
    return json_response(
        200, {"revoked": True, "token_id": token.token_id, "disconnected": n}
    )


@routes("DELETE", "/api/auth/tokens/{token_id}")
async def delete_token(
    ctx: ApiContext, request: HttpRequest, params: dict[str, str]
) -> HttpResponse:
    """Forget a revoked or expired worker key (creator or room owner)."""
    caller = await ctx.caller(request)
    token = await _managed_token(ctx, caller.user_id, params["token_id"])
    if token.is_active(ctx.clock()):
        raise HttpError(400, "Revoke the token before deleting it")
    await ctx.db(ctx.store.delete_worker_token, token.token_id)
    return json_response(200, {"deleted": token.token_id})


@routes("DELETE", "/api/auth/tokens")
async def delete_inactive_tokens(
    ctx: ApiContext, request: HttpRequest, _: dict[str, str]
) -> HttpResponse:
    """Forget every revoked or expired key the caller may see (``room_id``)."""
    caller = await ctx.caller(request)
    room_id = request.query.get("room_id") or None
    tokens, _names = await _visible_tokens(ctx, caller.user_id, room_id)
    now = ctx.clock()
    n = 0
    for token in tokens:
        if not token.is_active(now):
            n += int(await ctx.db(ctx.store.delete_worker_token, token.token_id))
    return json_response(200, {"deleted_count": n})
