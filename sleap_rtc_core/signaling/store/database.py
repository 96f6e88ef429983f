"""The SQLite connection under :class:`~.auth_store.Store`.

One connection per :class:`Database`, opened with ``check_same_thread=False`` and
guarded by a lock, so that the server may call the store from whichever thread
``asyncio.to_thread`` picks. Files use WAL and a busy timeout, so that the admin
CLI can write while a server process reads and writes the same file; every write
is one ``BEGIN IMMEDIATE`` transaction, which waits for the write lock instead of
failing when another process holds it.

Also here: the secret and id helpers every table shares (secrets are stored only
as SHA-256 digests; the public id of a key is a prefix of that digest).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import sqlite3
import string
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "SCHEMA_VERSION",
    "Database",
    "hash_secret",
    "new_secret",
    "public_id",
    "random_id",
]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    user_id       TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT,
    github_id     TEXT UNIQUE,
    avatar_url    TEXT,
    created_at    REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS rooms (
    room_id    TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    token      TEXT NOT NULL,
    created_by TEXT,
    created_at REAL NOT NULL,
    expires_at REAL
);
CREATE TABLE IF NOT EXISTS memberships (
    user_id    TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    room_id    TEXT NOT NULL REFERENCES rooms(room_id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'member')),
    invited_by TEXT,
    joined_at  REAL NOT NULL,
    PRIMARY KEY (user_id, room_id)
);
CREATE INDEX IF NOT EXISTS memberships_room ON memberships(room_id);
CREATE TABLE IF NOT EXISTS worker_tokens (
    token_id    TEXT PRIMARY KEY,
    key_hash    TEXT NOT NULL UNIQUE,
    room_id     TEXT NOT NULL REFERENCES rooms(room_id) ON DELETE CASCADE,
    worker_name TEXT NOT NULL,
    created_by  TEXT,
    created_at  REAL NOT NULL,
    expires_at  REAL,
    revoked_at  REAL
);
CREATE INDEX IF NOT EXISTS worker_tokens_room ON worker_tokens(room_id);
CREATE INDEX IF NOT EXISTS worker_tokens_creator ON worker_tokens(created_by);
CREATE TABLE IF NOT EXISTS account_keys (
    key_id     TEXT PRIMARY KEY,
    key_hash   TEXT NOT NULL UNIQUE,
    user_id    TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL
);
CREATE INDEX IF NOT EXISTS account_keys_user ON account_keys(user_id);
CREATE TABLE IF NOT EXISTS public_keys (
    user_id     TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    public_key  TEXT NOT NULL,
    device_name TEXT NOT NULL,
    created_at  REAL NOT NULL,
    PRIMARY KEY (user_id, public_key)
);
CREATE TABLE IF NOT EXISTS invites (
    code       TEXT PRIMARY KEY,
    room_id    TEXT NOT NULL REFERENCES rooms(room_id) ON DELETE CASCADE,
    created_by TEXT,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS cli_deposits (
    state_hash TEXT PRIMARY KEY,
    jwt        TEXT NOT NULL,
    user_json  TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS revocations (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    credential_id TEXT NOT NULL,
    revoked_at    REAL NOT NULL
);
"""

_ID_ALPHABET = string.ascii_lowercase + string.digits


def random_id(length: int = 12) -> str:
    """A random id of lower-case letters and digits (62 bits at 12 chars).

    Ids never start with ``-``, so they are safe as command-line arguments.
    """
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def new_secret(prefix: str = "", nbytes: int = 24) -> str:
    """``prefix`` + base64url(``nbytes`` random bytes), without padding.

    The random part never starts with ``-`` (argparse would read it as an
    option) nor with ``acct_`` (a worker key must not look like an account key).
    """
    while True:
        body = secrets.token_urlsafe(nbytes)
        if not body.startswith(("-", "acct_")):
            return prefix + body


def hash_secret(secret: str) -> str:
    """The SHA-256 hex digest under which a secret is stored and looked up."""
    return hashlib.sha256(secret.encode()).hexdigest()


def public_id(prefix: str, secret: str) -> str:
    """A non-secret id for a key: ``prefix`` + the first 16 hex of its digest."""
    return prefix + hash_secret(secret)[:16]


class Database:
    """A locked sqlite3 connection with the sleap-rtc schema.

    Args:
        path: A database file (created with mode 0600), or ``":memory:"``.
        clock: Seconds since the epoch; injectable for tests.
        busy_timeout: Seconds a write waits for another process's lock.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        busy_timeout: float = 10.0,
    ) -> None:
        self.path = str(path)
        self.clock = clock
        self._lock = threading.RLock()
        if self.path != ":memory:":
            _touch_private(Path(self.path))
        self._conn = sqlite3.connect(
            self.path,
            timeout=busy_timeout,
            check_same_thread=False,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        self._conn.execute("PRAGMA foreign_keys = ON")
        if self.path != ":memory:":
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
        with self.transaction() as cur:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    cur.execute(statement)
            cur.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        """Close the connection; the store is unusable afterwards."""
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        """One ``BEGIN IMMEDIATE`` write transaction, committed on success."""
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            else:
                cur.execute("COMMIT")
            finally:
                cur.close()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Rows of one read-only statement."""
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        """The first row of one read-only statement, or ``None``."""
        with self._lock:
            row: sqlite3.Row | None = self._conn.execute(sql, params).fetchone()
            return row

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one write statement in its own transaction; rows changed."""
        with self.transaction() as cur:
            cur.execute(sql, params)
            return cur.rowcount

    @staticmethod
    def require_room(cur: sqlite3.Cursor, room_id: str) -> None:
        """Raise ``KeyError`` unless the room exists (inside a transaction, so a
        write that follows cannot race its deletion)."""
        if (
            cur.execute("SELECT 1 FROM rooms WHERE room_id = ?", (room_id,)).fetchone()
            is None
        ):
            raise KeyError(room_id)

    @staticmethod
    def record_revocation(cur: sqlite3.Cursor, credential_id: str, now: float) -> None:
        """Append ``credential_id`` to the revocation log (inside a transaction)."""
        cur.execute(
            "INSERT INTO revocations (credential_id, revoked_at) VALUES (?, ?)",
            (credential_id, now),
        )


def _touch_private(path: Path) -> None:
    """Create the database file with mode 0600 (its folder 0700) if missing.

    SQLite gives its ``-wal`` and ``-shm`` files the mode of the database file.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)
