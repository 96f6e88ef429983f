"""Persistent auth state of the signaling server, in SQLite.

:class:`Store` holds users, rooms, memberships, invites, worker keys, account keys,
public keys and pending CLI logins, in one file in the data folder (``":memory:"``
for tests). The API is synchronous (SQLite on a local disk answers in
microseconds); the server calls it through ``asyncio.to_thread`` so the event loop
never waits on a lock held by the admin CLI in another process. Several processes
may open the same file: it uses WAL and a busy timeout.

Revocations (a key revoked, a room deleted, a member removed, a user deleted) are
appended to a log so that a running server can disconnect the peers they affect
even when the admin CLI made them: poll :meth:`RevocationWatcher.poll`.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
from pathlib import Path
from typing import Any

import platformdirs

from ...errors import AlreadyExists
from .database import hash_secret
from .keys import ACCOUNT_KEY_PREFIX, WORKER_KEY_PREFIX
from .records import User, user_credential
from .rooms import RoomTables

__all__ = [
    "ACCOUNT_KEY_PREFIX",
    "DB_FILENAME",
    "MAX_USERNAME_LENGTH",
    "WORKER_KEY_PREFIX",
    "AlreadyExists",
    "RevocationWatcher",
    "Store",
    "check_username",
    "default_data_dir",
    "open_store",
]

DB_FILENAME = "sleap-rtc.db"
"""The database file inside the data folder."""

_REVOCATION_LOG_KEEP = 7 * 24 * 3600.0


MAX_USERNAME_LENGTH = 64
"""Longest username accepted."""


def check_username(username: str) -> str | None:
    """Why ``username`` is unacceptable, or ``None`` when it is fine.

    Usernames appear in peer ids, logs and command lines, so they are printable,
    without spaces, and never start with ``-``.
    """
    if not username:
        return "username must not be empty"
    if len(username) > MAX_USERNAME_LENGTH:
        return f"username must have at most {MAX_USERNAME_LENGTH} characters"
    if username.startswith("-"):
        return "username must not start with '-'"
    if not username.isprintable() or any(c.isspace() for c in username):
        return "username must not contain spaces or control characters"
    return None


def default_data_dir() -> Path:
    """``$SLEAP_RTC_DATA_DIR``, else the platform's user data folder."""
    env = os.environ.get("SLEAP_RTC_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("sleap-rtc"))


def open_store(data_dir: str | Path) -> Store:
    """Open (creating if needed, mode 0700) the store of a data folder."""
    folder = Path(data_dir).expanduser()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return Store(folder / DB_FILENAME)


class Store(RoomTables):
    """Users, rooms, memberships, invites, keys and CLI logins (see module doc).

    Args:
        path: Database file, or ``":memory:"``.
        clock: Seconds since the epoch (injectable for tests).
        busy_timeout: Seconds a write waits for another process's lock.

    Every method is thread-safe (one connection behind a lock).
    """

    # --- users

    def add_user(
        self,
        username: str,
        password_hash: str | None = None,
        *,
        user_id: str | None = None,
        github_id: str | None = None,
        avatar_url: str | None = None,
    ) -> User:
        """Create a user.

        Raises:
            AlreadyExists: The username (any case) or id is taken.
            ValueError: The username is not acceptable (see
                :func:`check_username`).
        """
        problem = check_username(username)
        if problem is not None:
            raise ValueError(problem)
        user = User(
            user_id=user_id or "u" + secrets.token_hex(8),
            username=username,
            password_hash=password_hash,
            github_id=github_id,
            avatar_url=avatar_url,
            created_at=self.clock(),
        )
        try:
            self.execute(
                "INSERT INTO users (user_id, username, password_hash, github_id,"
                " avatar_url, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    user.user_id,
                    username,
                    password_hash,
                    github_id,
                    avatar_url,
                    user.created_at,
                ),
            )
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"user {username!r} already exists") from None
        return user

    def get_user(self, user_id: str) -> User | None:
        """A user by id."""
        row = self.query_one("SELECT * FROM users WHERE user_id = ?", (user_id,))
        return User.from_row(row) if row else None

    def get_user_by_name(self, username: str) -> User | None:
        """A user by username (case-insensitive)."""
        row = self.query_one("SELECT * FROM users WHERE username = ?", (username,))
        return User.from_row(row) if row else None

    def list_users(self) -> list[User]:
        """Every user, by username."""
        return [
            User.from_row(r)
            for r in self.query("SELECT * FROM users ORDER BY username")
        ]

    def set_password(self, user_id: str, password_hash: str) -> bool:
        """Replace a user's password hash."""
        return (
            self.execute(
                "UPDATE users SET password_hash = ? WHERE user_id = ?",
                (password_hash, user_id),
            )
            > 0
        )

    def delete_user(self, user_id: str) -> bool:
        """Delete a user, their memberships and keys; their sessions are revoked."""
        with self.transaction() as cur:
            keys = cur.execute(
                "SELECT key_id FROM account_keys WHERE user_id = ?"
                " AND revoked_at IS NULL",
                (user_id,),
            ).fetchall()
            cur.execute("DELETE FROM users WHERE user_id = ?", (user_id,))
            if cur.rowcount == 0:
                return False
            now = self.clock()
            self.record_revocation(cur, user_credential(user_id), now)
            for row in keys:
                self.record_revocation(cur, row["key_id"], now)
            return True

    def upsert_github_user(
        self, github_id: str, login: str, avatar_url: str | None
    ) -> User:
        """The user linked to a GitHub account, created on first login.

        A new user's id is the GitHub id (the reference JWT ``sub``); the username
        is the GitHub login, or ``login-github`` when a local user has it.
        """
        row = self.query_one("SELECT * FROM users WHERE github_id = ?", (github_id,))
        if row is not None:
            self.execute(
                "UPDATE users SET avatar_url = ? WHERE user_id = ?",
                (avatar_url, row["user_id"]),
            )
            found = self.get_user(row["user_id"])
            if found is not None:
                return found
        for name in (login, f"{login}-github", f"{login}-github-{github_id}"):
            try:
                return self.add_user(
                    name,
                    None,
                    user_id=github_id,
                    github_id=github_id,
                    avatar_url=avatar_url,
                )
            except AlreadyExists:
                continue
        raise AlreadyExists(f"cannot create a user for GitHub account {github_id}")

    # --- CLI login deposits

    def put_cli_deposit(
        self, state: str, jwt: str, user: dict[str, Any], *, ttl: float = 300.0
    ) -> None:
        """Leave a JWT for the CLI that polls with ``state`` (kept ``ttl`` s).

        Raises:
            AlreadyExists: Something was already deposited for ``state``; the
                first deposit wins, so a second one cannot swap the identity.
        """
        now = self.clock()
        with self.transaction() as cur:
            cur.execute("DELETE FROM cli_deposits WHERE expires_at <= ?", (now,))
            try:
                cur.execute(
                    "INSERT INTO cli_deposits (state_hash, jwt, user_json, expires_at)"
                    " VALUES (?, ?, ?, ?)",
                    (hash_secret(state), jwt, json.dumps(user), now + ttl),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists("this login was already completed") from None

    def take_cli_deposit(self, state: str) -> tuple[str, dict[str, Any]] | None:
        """The JWT and user deposited for ``state``, removed on read (one-shot)."""
        key = hash_secret(state)
        with self.transaction() as cur:
            row = cur.execute(
                "SELECT jwt, user_json FROM cli_deposits"
                " WHERE state_hash = ? AND expires_at > ?",
                (key, self.clock()),
            ).fetchone()
            cur.execute("DELETE FROM cli_deposits WHERE state_hash = ?", (key,))
        if row is None:
            return None
        return row["jwt"], json.loads(row["user_json"])

    # --- revocation log

    def revocation_cursor(self) -> int:
        """The position of the newest revocation (0 when none)."""
        row = self.query_one("SELECT COALESCE(MAX(seq), 0) AS seq FROM revocations")
        return int(row["seq"]) if row else 0

    def revocations_since(self, cursor: int) -> tuple[int, list[str]]:
        """Revocation ids logged after ``cursor``, and the new cursor.

        A cursor (not a time) so that nothing committed late by another process
        is skipped: SQLite serialises writers, so positions grow in commit order.
        """
        rows = self.query(
            "SELECT seq, credential_id FROM revocations WHERE seq > ? ORDER BY seq",
            (cursor,),
        )
        if not rows:
            return cursor, []
        return int(rows[-1]["seq"]), [r["credential_id"] for r in rows]

    def expirations_between(self, start: float, end: float) -> list[str]:
        """Revocation ids of worker keys and rooms that expired in (start, end]."""
        rows = self.query(
            "SELECT token_id AS id FROM worker_tokens WHERE revoked_at IS NULL"
            " AND expires_at > ? AND expires_at <= ?"
            " UNION ALL SELECT 'room:' || room_id FROM rooms"
            " WHERE expires_at > ? AND expires_at <= ?",
            (start, end, start, end),
        )
        return [r[0] for r in rows]

    def prune(self) -> None:
        """Drop expired invites and deposits and old revocation log entries."""
        now = self.clock()
        with self.transaction() as cur:
            cur.execute("DELETE FROM invites WHERE expires_at <= ?", (now,))
            cur.execute("DELETE FROM cli_deposits WHERE expires_at <= ?", (now,))
            cur.execute(
                "DELETE FROM revocations WHERE revoked_at < ?",
                (now - _REVOCATION_LOG_KEEP,),
            )


class RevocationWatcher:
    """Tells a running server which credentials were revoked or expired.

    The server calls :meth:`poll` every few seconds (through
    ``asyncio.to_thread``) and disconnects every peer whose identity lists one of
    the ids returned (``Identity.revocation_ids``). It sees what this process did
    and what the admin CLI did in another process on the same file.

    Args:
        store: The store to watch; starts from its current state.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._cursor = store.revocation_cursor()
        self._since = store.clock()
        self._polls = 0

    def poll(self) -> list[str]:
        """Revocation ids new since the last poll (revoked, deleted or expired)."""
        now = self._store.clock()
        self._cursor, ids = self._store.revocations_since(self._cursor)
        ids += self._store.expirations_between(self._since, now)
        self._since = now
        self._polls += 1
        if self._polls % 1000 == 0:
            self._store.prune()
        return list(dict.fromkeys(ids))

    def __call__(self, since: float | None = None) -> list[str]:
        """:meth:`poll`, in the shape ``SignalingServer(revocations=...)`` takes.

        ``since`` is ignored: the watcher keeps its own position in the log,
        which (unlike a time) cannot skip a row another process committed late.
        """
        return self.poll()
