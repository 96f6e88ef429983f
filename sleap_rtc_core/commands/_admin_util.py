"""What the admin commands (``room``, ``token``, ``user``, ``jwt`` …) share.

They open the store of a data folder (the one ``sleap-rtc server`` uses, so they
work while it runs: SQLite in WAL mode with a busy timeout), name rooms and users
the way a person types them, and report errors as one line on stderr with exit
status 1, leaving exit status 2 to argparse's usage errors.

Each is a group of actions (``sleap-rtc room create``) built the same way:
:func:`add_group` adds the group, :func:`add_action` one action with its flags
(declared with :func:`flag`), then ``--data-dir``, ``--json`` and the
environment it reads, in that order, so every action's ``--help`` reads alike.
A listing prints one JSON object or a table (:func:`emit_listing`).
"""

from __future__ import annotations

import argparse
import functools
import json
import sqlite3
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from ..errors import AdminError
from ..signaling.store.auth_store import (
    AlreadyExists,
    Store,
    default_data_dir,
    open_store,
)
from ..signaling.store.records import Room, User
from ._env_help import DATA_DIR_ENV, add_env_help

__all__ = [
    "DATA_DIR_NOTE",
    "AdminError",
    "Flag",
    "StoreHandler",
    "add_action",
    "add_data_dir",
    "add_group",
    "add_json",
    "emit",
    "emit_json",
    "emit_listing",
    "emit_table",
    "expiry_from_days",
    "flag",
    "positive_int",
    "resolve_room",
    "resolve_user",
    "short_time",
    "with_store",
]

_DAY = 24 * 3600.0

StoreHandler = Callable[[argparse.Namespace, Store], int]

Flag = tuple[tuple[str, ...], dict[str, Any]]
"""One argument of an action: the names and options ``add_argument`` takes."""

_T = TypeVar("_T")

DATA_DIR_NOTE = (
    "Works on the server's data folder (--data-dir), also while the server runs."
)
"""The admin groups' descriptions end with this."""


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    """Add ``--data-dir`` (default: ``$SLEAP_RTC_DATA_DIR`` or the user data
    folder, read when the command runs)."""
    add_env_help(parser, *DATA_DIR_ENV)
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        default=None,
        help="the server's data folder (default: $SLEAP_RTC_DATA_DIR or "
        f"{default_data_dir()})",
    )


def add_json(parser: argparse.ArgumentParser) -> None:
    """Add ``--json`` (machine-readable output on stdout)."""
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object on stdout"
    )


def flag(*names: str, **options: Any) -> Flag:
    """One argument of an action, declared as ``add_argument`` would take it."""
    return names, options


def add_group(
    sub: argparse._SubParsersAction, name: str, *, help: str, description: str
) -> argparse._SubParsersAction:
    """Add the admin group ``sleap-rtc NAME ACTION …`` and return where its
    actions go; its description ends with :data:`DATA_DIR_NOTE`."""
    parser = sub.add_parser(
        name, help=help, description=f"{description} {DATA_DIR_NOTE}"
    )
    return parser.add_subparsers(dest="action", metavar="ACTION", required=True)


def add_action(
    actions: argparse._SubParsersAction,
    name: str,
    handler: StoreHandler,
    *,
    help: str,
    description: str,
    flags: Sequence[Flag] = (),
    json: bool = False,
    env: Sequence[str] = (),
) -> argparse.ArgumentParser:
    """Add one action of a group: its ``flags``, then ``--data-dir``, ``--json``
    when it can print JSON, and the variables of ``env`` in its ``--help``; it
    runs ``handler`` on the opened store (:func:`with_store`)."""
    parser = actions.add_parser(name, help=help, description=description)
    for names, options in flags:
        parser.add_argument(*names, **options)
    add_data_dir(parser)
    if json:
        add_json(parser)
    if env:
        add_env_help(parser, *env)
    parser.set_defaults(handler=with_store(handler))
    return parser


def positive_int(text: str) -> int:
    """An argparse ``type`` for whole numbers ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def with_store(fn: StoreHandler) -> Callable[[argparse.Namespace], int]:
    """Wrap a command: open the store of ``args.data_dir``, close it after, and
    turn expected failures into one line on stderr and exit status 1."""

    @functools.wraps(fn)
    def run(args: argparse.Namespace) -> int:
        try:
            data_dir = args.data_dir or default_data_dir()
            try:
                store = open_store(data_dir)
            except (OSError, sqlite3.Error) as exc:
                raise AdminError(f"cannot open the store in {data_dir}: {exc}") from exc
            try:
                return fn(args, store)
            finally:
                store.close()
        except (AdminError, AlreadyExists) as exc:
            sys.stderr.write(f"sleap-rtc: error: {exc}\n")
            return 1
        except sqlite3.OperationalError as exc:  # e.g. locked past the timeout
            sys.stderr.write(f"sleap-rtc: error: database: {exc}\n")
            return 1

    return run


def resolve_room(store: Store, ref: str) -> Room:
    """The room whose id is ``ref``, else the one room named ``ref``.

    Raises:
        AdminError: No room, or several rooms, have that id or name.
    """
    room = store.get_room(ref)
    if room is not None:
        return room
    named = store.rooms_named(ref)
    if len(named) == 1:
        return named[0]
    if not named:
        raise AdminError(f"no room with id or name {ref!r} (see 'sleap-rtc room list')")
    ids = ", ".join(r.room_id for r in named)
    raise AdminError(f"several rooms are named {ref!r}; use an id: {ids}")


def resolve_user(store: Store, ref: str) -> User:
    """The user named ``ref`` (any case), else the user whose id is ``ref``.

    Raises:
        AdminError: No such user.
    """
    user = store.get_user_by_name(ref) or store.get_user(ref)
    if user is None:
        raise AdminError(
            f"no user {ref!r}: add it first (sleap-rtc user add {ref}) "
            "or see 'sleap-rtc user list'"
        )
    return user


def expiry_from_days(store: Store, days: int | None) -> float | None:
    """``days`` from now as epoch seconds, or ``None`` (never) for ``None``."""
    return None if days is None else store.clock() + days * _DAY


def short_time(ts: float | None, never: str = "never") -> str:
    """``ts`` as ``YYYY-MM-DD HH:MM`` UTC for tables, or ``never``."""
    if ts is None:
        return never
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def emit(line: str = "") -> None:
    """Write one line on stdout."""
    sys.stdout.write(line + "\n")


def emit_json(obj: Any) -> None:
    """Write ``obj`` as one line of JSON on stdout."""
    sys.stdout.write(json.dumps(obj, sort_keys=False) + "\n")


def emit_listing(
    args: argparse.Namespace,
    key: str,
    items: Iterable[_T],
    *,
    as_json: Callable[[_T], dict[str, Any]],
    headers: Sequence[str],
    as_row: Callable[[_T], Sequence[str]],
) -> int:
    """Print ``items`` as ``{key: [as_json(item), …]}`` with ``--json``, else as
    a table of ``as_row(item)`` under ``headers``; the exit status (0)."""
    items = list(items)
    if args.json:
        emit_json({key: [as_json(item) for item in items]})
    else:
        emit_table(headers, [as_row(item) for item in items])
    return 0


def emit_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Write rows as aligned columns under ``headers`` (nothing but a note when
    there are no rows)."""
    if not rows:
        emit("(none)")
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for row in (headers, *rows):
        emit(
            "  ".join(
                cell.ljust(w) for cell, w in zip(row, widths, strict=True)
            ).rstrip()
        )
