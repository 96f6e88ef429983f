"""``sleap-rtc room …`` and ``token …``: rooms and their worker keys.

Admin commands on the server's data folder; they work while ``sleap-rtc server``
runs on it, and a key revoked or a room deleted here disconnects its peers from
the running server within its revocation poll. Users' scripts rely on these forms::

    sleap-rtc room create --name NAME [--owner USER] [--expires-days N] \\
        [--data-dir DIR] [--json]          # {"room_id": …, "room_token": …}
    sleap-rtc token create --room ROOM --worker-name NAME [--expires-days N] \\
        [--data-dir DIR] [--json]          # {"secret": "slp_…", "id": "wk_…", …}

A room is named by its id or by its (unique) name, a user by username or id.
Worker keys are shown in clear once, by ``create``; afterwards they are known by
a public id (``wk_…``) that ``list`` shows and ``revoke`` takes (the clear key is
accepted too). Account keys are in :mod:`.users`.
"""

from __future__ import annotations

import argparse
import secrets

from ..signaling.store.auth_store import Store
from ..signaling.store.records import MemberRole, iso_time
from ._admin_util import (
    AdminError,
    add_action,
    add_group,
    emit,
    emit_json,
    emit_listing,
    expiry_from_days,
    flag,
    positive_int,
    resolve_room,
    resolve_user,
    short_time,
)

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``room`` and ``token`` to the CLI."""
    _register_room(sub)
    _register_token(sub)


# --- room

_ROOM = flag("room", metavar="ROOM", help="room id or name")
_USER = flag("user", metavar="USER", help="username or user id")


def _register_room(sub: argparse._SubParsersAction) -> None:
    actions = add_group(
        sub,
        "room",
        help="create, list and delete rooms",
        description="Rooms group a lab's workers and clients; each has a token "
        "(to join) and members (users who join with a JWT).",
    )
    add_action(
        actions,
        "create",
        _room_create,
        help="create a room and print its token and a fresh room secret",
        description="Create a room; print its id, its token and a fresh room "
        "secret (shown once: the server never keeps it; hand it to the room's "
        "workers and clients for data-channel authentication).",
        flags=[
            flag("--name", required=True, help="display name"),
            flag(
                "--owner",
                metavar="USER",
                help="a user who owns it (and may join with a JWT)",
            ),
            flag(
                "--expires-days",
                type=positive_int,
                metavar="N",
                help="registration stops working after N days (default: never)",
            ),
        ],
        json=True,
    )
    add_action(
        actions,
        "list",
        _room_list,
        help="list rooms",
        description="List the rooms, with their expiry.",
        json=True,
    )
    add_action(
        actions,
        "show",
        _room_show,
        help="a room with its token and members",
        description="Show a room: its token, its members and their roles.",
        flags=[_ROOM],
        json=True,
    )
    add_action(
        actions,
        "delete",
        _room_delete,
        help="delete a room, its memberships and worker keys",
        description="Delete a room with its memberships and worker keys; its "
        "peers are disconnected from a running server.",
        flags=[_ROOM],
    )
    add_action(
        actions,
        "add-member",
        _room_add_member,
        help="let a user join a room with a JWT",
        description="Make a user a member of a room, so that the user's JWT "
        "(sleap-rtc login) or account key joins it.",
        flags=[
            _ROOM,
            _USER,
            flag(
                "--role",
                choices=[r.value for r in MemberRole],
                default=MemberRole.MEMBER.value,
                help="default: member",
            ),
        ],
    )
    add_action(
        actions,
        "remove-member",
        _room_remove_member,
        help="end a user's membership",
        description="End a user's membership of a room (disconnects the user).",
        flags=[_ROOM, _USER],
    )


def _room_create(args: argparse.Namespace, store: Store) -> int:
    name = args.name.strip()
    if not name:
        raise AdminError("the room name must not be empty")
    owner = resolve_user(store, args.owner) if args.owner else None
    room = store.create_room(
        name,
        owner_id=owner.user_id if owner else None,
        expires_at=expiry_from_days(store, args.expires_days),
    )
    # The room secret authenticates data channels peer to peer; the server
    # never learns it, so it is made here and printed once.
    room_secret = secrets.token_urlsafe(32)
    if args.json:
        emit_json(
            {
                "room_id": room.room_id,
                "room_token": room.token,
                "room_secret": room_secret,
                "name": room.name,
                "owner": owner.username if owner else None,
                "expires_at": iso_time(room.expires_at),
            }
        )
    else:
        emit(f"room_id: {room.room_id}")
        emit(f"room_token: {room.token}")
        emit(f"room_secret: {room_secret}  (shown once; the server does not keep it)")
        emit(f"expires: {short_time(room.expires_at)}")
    return 0


def _room_list(args: argparse.Namespace, store: Store) -> int:
    now = store.clock()
    return emit_listing(
        args,
        "rooms",
        store.list_rooms(),
        as_json=lambda r: {
            "room_id": r.room_id,
            "name": r.name,
            "created_at": iso_time(r.created_at),
            "expires_at": iso_time(r.expires_at),
            "expired": r.expired(now),
            "members": len(store.room_members(r.room_id)),
        },
        headers=["ROOM_ID", "NAME", "EXPIRES (UTC)", "MEMBERS"],
        as_row=lambda r: [
            r.room_id,
            r.name,
            short_time(r.expires_at) + (" (expired)" if r.expired(now) else ""),
            str(len(store.room_members(r.room_id))),
        ],
    )


def _room_show(args: argparse.Namespace, store: Store) -> int:
    room = resolve_room(store, args.room)
    members = store.room_members(room.room_id)
    tokens = store.list_worker_tokens(room_id=room.room_id)
    if args.json:
        emit_json(
            {
                "room_id": room.room_id,
                "name": room.name,
                "room_token": room.token,
                "created_at": iso_time(room.created_at),
                "expires_at": iso_time(room.expires_at),
                "members": [
                    {
                        "user_id": u.user_id,
                        "username": u.username,
                        "role": m.role.value,
                        "joined_at": iso_time(m.joined_at),
                    }
                    for m, u in members
                ],
                "worker_keys": len(tokens),
            }
        )
        return 0
    emit(f"room_id: {room.room_id}")
    emit(f"name: {room.name}")
    emit(f"room_token: {room.token}")
    emit(f"expires: {short_time(room.expires_at)}")
    emit(f"worker keys: {len(tokens)}")
    emit("members:")
    for m, u in members:
        emit(f"  {u.username} ({m.role.value})")
    return 0


def _room_delete(args: argparse.Namespace, store: Store) -> int:
    room = resolve_room(store, args.room)
    if not store.delete_room(room.room_id):
        raise AdminError(f"room {room.room_id} was deleted meanwhile")
    emit(f"deleted room {room.room_id} ({room.name})")
    return 0


def _room_add_member(args: argparse.Namespace, store: Store) -> int:
    room = resolve_room(store, args.room)
    user = resolve_user(store, args.user)
    try:
        membership, created = store.add_member(
            room.room_id, user.user_id, MemberRole(args.role)
        )
    except KeyError:
        raise AdminError("the room or the user was deleted meanwhile") from None
    if created:
        emit(f"{user.username} is now {membership.role.value} of room {room.room_id}")
    else:
        emit(
            f"{user.username} was already {membership.role.value} of room "
            f"{room.room_id}"
        )
    return 0


def _room_remove_member(args: argparse.Namespace, store: Store) -> int:
    room = resolve_room(store, args.room)
    user = resolve_user(store, args.user)
    if not store.remove_member(room.room_id, user.user_id):
        raise AdminError(f"{user.username} is not a member of room {room.room_id}")
    emit(f"removed {user.username} from room {room.room_id}")
    return 0


# --- token (worker keys)


def _register_token(sub: argparse._SubParsersAction) -> None:
    actions = add_group(
        sub,
        "token",
        help="per-room worker keys (slp_…)",
        description="Worker keys (slp_…) let a worker join one room without a "
        "room token.",
    )
    add_action(
        actions,
        "create",
        _token_create,
        help="make a worker key for a room",
        description="Make a worker key; it is shown once (--json: as "
        '"secret"), afterwards only its id (wk_…).',
        flags=[
            flag("--room", required=True, help="room id or name"),
            flag(
                "--worker-name",
                required=True,
                metavar="NAME",
                help="the worker the key is for (shown by `token list`)",
            ),
            flag(
                "--expires-days",
                type=positive_int,
                metavar="N",
                help="the key stops working after N days (default: never)",
            ),
        ],
        json=True,
    )
    add_action(
        actions,
        "list",
        _token_list,
        help="list worker keys (never the keys themselves)",
        description="List worker keys by id (wk_…), room and worker name; "
        "the keys themselves are never shown again.",
        flags=[
            flag("--room", help="only this room (id or name)"),
            flag("--active", action="store_true", help="hide revoked and expired"),
        ],
        json=True,
    )
    add_action(
        actions,
        "revoke",
        _token_revoke,
        help="revoke a worker key (disconnects it)",
        description="Revoke a worker key; a worker using it is disconnected "
        "from a running server.",
        flags=[flag("token", metavar="TOKEN", help="its id (wk_…) or the key (slp_…)")],
    )


def _token_create(args: argparse.Namespace, store: Store) -> int:
    worker_name = args.worker_name.strip()
    if not worker_name:
        raise AdminError("the worker name must not be empty")
    room = resolve_room(store, args.room)
    if room.expired(store.clock()):
        raise AdminError(f"room {room.room_id} has expired")
    try:
        token, secret = store.create_worker_token(
            room.room_id,
            worker_name,
            expires_at=expiry_from_days(store, args.expires_days),
        )
    except KeyError:
        raise AdminError(f"room {room.room_id} was deleted meanwhile") from None
    if args.json:
        emit_json(
            {
                "secret": secret,  # the name account-key create uses too
                "token_id": secret,  # the reference API's name for it
                "id": token.token_id,
                "room_id": token.room_id,
                "worker_name": token.worker_name,
                "expires_at": iso_time(token.expires_at),
            }
        )
    else:
        emit(f"worker key (shown once, keep it secret): {secret}")
        emit(f"id: {token.token_id}")
        emit(f"room: {token.room_id}")
        emit(f"expires: {short_time(token.expires_at)}")
    return 0


def _token_list(args: argparse.Namespace, store: Store) -> int:
    room_id = resolve_room(store, args.room).room_id if args.room else None
    now = store.clock()
    tokens = store.list_worker_tokens(room_id=room_id)
    if args.active:
        tokens = [t for t in tokens if t.is_active(now)]
    return emit_listing(
        args,
        "tokens",
        tokens,
        as_json=lambda t: {
            "id": t.token_id,
            "room_id": t.room_id,
            "worker_name": t.worker_name,
            "created_at": iso_time(t.created_at),
            "expires_at": iso_time(t.expires_at),
            "revoked_at": iso_time(t.revoked_at),
            "is_active": t.is_active(now),
        },
        headers=["ID", "ROOM_ID", "WORKER", "EXPIRES (UTC)", "STATE"],
        as_row=lambda t: [
            t.token_id,
            t.room_id,
            t.worker_name,
            short_time(t.expires_at),
            "revoked"
            if t.revoked_at is not None
            else ("expired" if t.expired(now) else "active"),
        ],
    )


def _token_revoke(args: argparse.Namespace, store: Store) -> int:
    token = store.get_worker_token(args.token)
    if token is None:
        raise AdminError(f"no worker key {args.token!r} (see 'sleap-rtc token list')")
    if not store.revoke_worker_token(token.token_id):
        raise AdminError(f"worker key {token.token_id} is already revoked")
    emit(f"revoked worker key {token.token_id} ({token.worker_name})")
    return 0
