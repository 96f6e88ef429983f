"""``sleap-rtc user …``, ``jwt issue`` and ``account-key …``: users' credentials.

Local users log in with a password (hashed with argon2id) on the server's login
page or through ``sleap-rtc login``; for automation and tests an admin can issue a
JWT directly, signed with the server's key from the same data folder. Forms users'
scripts rely on::

    sleap-rtc user add NAME [--data-dir DIR]        # password read from stdin
    sleap-rtc jwt issue --user NAME [--data-dir DIR] # the JWT is the last line

The password is one line of stdin (prompted twice, hidden, on a terminal), so
``printf '%s\\n' "$PW" | sleap-rtc user add alice`` works and nothing shows in
``ps`` or the shell history.

Account keys (``slp_acct_…``, per user, for headless clients) are shown in clear
once, by ``account-key create``; afterwards they are known by a public id
(``ak_…``) that ``list`` shows and ``revoke`` takes.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from ..signaling.auth.jwt_keys import DEFAULT_TTL, JwtKeys
from ..signaling.auth.passwords import check_password_policy, hash_password
from ..signaling.store.auth_store import Store, check_username, default_data_dir
from ..signaling.store.records import iso_time
from ._admin_util import (
    AdminError,
    add_action,
    add_group,
    emit,
    emit_json,
    emit_listing,
    flag,
    positive_int,
    resolve_user,
)
from ._env_help import JWT_KEY_ENV

__all__ = ["read_password", "register"]

_DAY = 24 * 3600.0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``user``, ``jwt`` and ``account-key`` to the CLI."""
    _register_user(sub)
    _register_jwt(sub)
    _register_account_key(sub)


def read_password(*, confirm: bool = True) -> str:
    """The new password: one line of stdin, or typed twice on a terminal.

    Raises:
        AdminError: Nothing was given, the two entries differ, or the password
            breaks the policy (length).
    """
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if confirm and getpass.getpass("Repeat password: ") != password:
            raise AdminError("the passwords do not match")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise AdminError("empty password (give it as one line on stdin)")
    problem = check_password_policy(password)
    if problem is not None:
        raise AdminError(problem)
    return password


# --- user

_NAME = flag("name", metavar="NAME", help="username or user id")


def _register_user(sub: argparse._SubParsersAction) -> None:
    actions = add_group(
        sub,
        "user",
        help="local users (password login)",
        description="Local users, who log in with a password (sleap-rtc login) "
        "and join the rooms they are members of.",
    )
    add_action(
        actions,
        "add",
        _user_add,
        help="add a user; the password is read from stdin",
        description="Add a user; the password is read from stdin (asked for "
        "twice on a terminal).",
        flags=[flag("name", metavar="NAME", help="username")],
        json=True,
    )
    add_action(
        actions,
        "list",
        _user_list,
        help="list users",
        description="List the users, with their ids.",
        json=True,
    )
    add_action(
        actions,
        "passwd",
        _user_passwd,
        help="set a user's password (from stdin)",
        description="Set a user's password, read from stdin.",
        flags=[_NAME],
    )
    add_action(
        actions,
        "delete",
        _user_delete,
        help="delete a user, their memberships and keys (disconnects them)",
        description="Delete a user with their memberships and account keys; "
        "their connections to a running server end.",
        flags=[_NAME],
    )


def _user_add(args: argparse.Namespace, store: Store) -> int:
    # Refuse a bad or taken name before asking for (and hashing) a password.
    problem = check_username(args.name)
    if problem is not None:
        raise AdminError(problem)
    if store.get_user_by_name(args.name) is not None:
        raise AdminError(f"user {args.name!r} already exists")
    password_hash = hash_password(read_password())
    user = store.add_user(args.name, password_hash)  # AlreadyExists if raced
    if args.json:
        emit_json({"user_id": user.user_id, "username": user.username})
    else:
        emit(f"added user {user.username} ({user.user_id})")
    return 0


def _user_list(args: argparse.Namespace, store: Store) -> int:
    return emit_listing(
        args,
        "users",
        store.list_users(),
        as_json=lambda u: {
            "user_id": u.user_id,
            "username": u.username,
            "password": u.password_hash is not None,
            "github_id": u.github_id,
            "created_at": iso_time(u.created_at),
            "rooms": [r.room_id for r, _ in store.rooms_for_user(u.user_id)],
        },
        headers=["USERNAME", "USER_ID", "LOGIN", "ROOMS"],
        as_row=lambda u: [
            u.username,
            u.user_id,
            "password" if u.password_hash else ("github" if u.github_id else "-"),
            str(len(store.rooms_for_user(u.user_id))),
        ],
    )


def _user_passwd(args: argparse.Namespace, store: Store) -> int:
    user = resolve_user(store, args.name)
    password = read_password()
    if not store.set_password(user.user_id, hash_password(password)):
        raise AdminError(f"user {user.username} was deleted meanwhile")
    emit(f"password of {user.username} changed")
    return 0


def _user_delete(args: argparse.Namespace, store: Store) -> int:
    user = resolve_user(store, args.name)
    if not store.delete_user(user.user_id):
        raise AdminError(f"user {user.username} was deleted meanwhile")
    emit(f"deleted user {user.username}")
    return 0


# --- jwt


def _register_jwt(sub: argparse._SubParsersAction) -> None:
    actions = add_group(
        sub,
        "jwt",
        help="issue JWTs signed with the server's key",
        description="JWTs signed with the server's key, for users who do not "
        "log in with a password.",
    )
    add_action(
        actions,
        "issue",
        _jwt_issue,
        help="print a JWT for a user (last line)",
        description="Print a JWT for a user, signed with the key in the data "
        "folder (the last line of the output).",
        flags=[
            flag("--user", required=True, help="username or user id"),
            flag(
                "--days",
                type=positive_int,
                metavar="N",
                help=f"valid for N days (default: {int(DEFAULT_TTL / _DAY)})",
            ),
        ],
        env=JWT_KEY_ENV,
    )


def _jwt_issue(args: argparse.Namespace, store: Store) -> int:
    user = resolve_user(store, args.user)
    data_dir = Path(args.data_dir or default_data_dir())
    try:
        keys = JwtKeys.load(data_dir, clock=store.clock)
    except (OSError, ValueError) as exc:
        raise AdminError(f"cannot load the JWT key: {exc}") from None
    if not keys.can_issue:
        raise AdminError("only the public JWT key is configured; cannot issue")
    ttl = DEFAULT_TTL if args.days is None else args.days * _DAY
    emit(keys.issue(user.user_id, user.username, ttl))
    return 0


# --- account keys


def _register_account_key(sub: argparse._SubParsersAction) -> None:
    actions = add_group(
        sub,
        "account-key",
        help="per-user account keys (slp_acct_…)",
        description="Account keys (slp_acct_…) let a user's scripts join the "
        "user's rooms without a password.",
    )
    add_action(
        actions,
        "create",
        _key_create,
        help="make an account key for a user",
        description="Make an account key; it is shown once (--json: as "
        '"secret"), afterwards only its id (ak_…).',
        flags=[
            flag("--user", required=True, help="username or user id"),
            flag("--name", required=True, help="a label, e.g. the machine"),
        ],
        json=True,
    )
    add_action(
        actions,
        "list",
        _key_list,
        help="list account keys (never the keys)",
        description="List account keys by id (ak_…), user and label; the keys "
        "themselves are never shown again.",
        flags=[flag("--user", help="only this user's")],
        json=True,
    )
    add_action(
        actions,
        "revoke",
        _key_revoke,
        help="revoke an account key (disconnects it)",
        description="Revoke an account key; a connection using it ends.",
        flags=[
            flag("key", metavar="KEY", help="its id (ak_…) or the key (slp_acct_…)")
        ],
    )


def _key_create(args: argparse.Namespace, store: Store) -> int:
    name = args.name.strip()
    if not name:
        raise AdminError("the key name must not be empty")
    user = resolve_user(store, args.user)
    try:
        key, secret = store.create_account_key(user.user_id, name)
    except KeyError:
        raise AdminError(f"user {user.username} was deleted meanwhile") from None
    if args.json:
        emit_json(
            {
                "secret": secret,  # the name token create uses too
                "key_id": secret,  # the reference API's name for it
                "id": key.key_id,
                "user": user.username,
                "name": key.name,
            }
        )
    else:
        emit(f"account key (shown once, keep it secret): {secret}")
        emit(f"id: {key.key_id}")
    return 0


def _key_list(args: argparse.Namespace, store: Store) -> int:
    user_id = resolve_user(store, args.user).user_id if args.user else None
    names = {u.user_id: u.username for u in store.list_users()}
    return emit_listing(
        args,
        "keys",
        store.list_account_keys(user_id),
        as_json=lambda k: {
            "id": k.key_id,
            "user": names.get(k.user_id, k.user_id),
            "name": k.name,
            "created_at": iso_time(k.created_at),
            "revoked_at": iso_time(k.revoked_at),
        },
        headers=["ID", "USER", "NAME", "STATE"],
        as_row=lambda k: [
            k.key_id,
            names.get(k.user_id, k.user_id),
            k.name,
            "revoked" if k.revoked_at is not None else "active",
        ],
    )


def _key_revoke(args: argparse.Namespace, store: Store) -> int:
    key = store.get_account_key(args.key)
    if key is None:
        raise AdminError(f"no account key {args.key!r}")
    if not store.revoke_account_key(key.key_id):
        raise AdminError(f"account key {key.key_id} is already revoked")
    emit(f"revoked account key {key.key_id} ({key.name})")
    return 0
