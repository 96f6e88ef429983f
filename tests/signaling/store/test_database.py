"""The SQLite connection under the store: a private file in WAL mode, one
write transaction at a time across connections, rollback, the secret helpers."""

from __future__ import annotations

import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from sleap_rtc_core.signaling.store.auth_store import (
    Store,
)
from sleap_rtc_core.signaling.store.database import (
    Database,
    hash_secret,
    new_secret,
    random_id,
)
from tests.fixtures.timing import scaled


def test_file_is_private_and_in_wal_mode(store: Store, db_path: Path) -> None:
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(db_path.parent.stat().st_mode) == 0o700
    row = store.query_one("PRAGMA journal_mode")
    assert row is not None
    assert row[0] == "wal"
    version = store.query_one("PRAGMA user_version")
    assert version is not None
    assert version[0] == 1


def test_reopening_keeps_the_data(db_path: Path) -> None:
    s = Store(db_path)
    room = s.create_room("lab")
    s.close()
    s = Store(db_path)
    assert s.get_room(room.room_id) == room
    s.close()


def test_secret_helpers() -> None:
    for _ in range(200):
        secret = new_secret("slp_")
        assert secret.startswith("slp_")
        assert not secret.startswith("slp_acct_")
        assert not secret[4:].startswith("-")
    assert len(random_id()) == 12
    assert random_id().isalnum()
    assert hash_secret("a") != hash_secret("b")


def test_a_write_waits_for_another_connections_lock(db_path: Path) -> None:
    """WAL + busy timeout: the admin CLI's write waits, it does not fail."""
    holder = Store(db_path)
    other = Store(db_path, busy_timeout=scaled(20))
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        with holder.transaction() as cur:
            cur.execute("INSERT INTO rooms VALUES ('held', 'h', 't', NULL, 0, NULL)")
            locked.set()
            release.wait(scaled(20))

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert locked.wait(scaled(10))
        # Reads are not blocked by the writer (WAL).
        assert other.get_room("held") is None
        threading.Timer(scaled(0.2), release.set).start()
        room = other.create_room("lab")  # blocks until the holder commits
    finally:
        release.set()
        thread.join()
    assert other.get_room("held") is not None
    assert other.get_room(room.room_id) is not None
    holder.close()
    other.close()


def test_a_failed_transaction_rolls_back(store: Store) -> None:
    def insert_twice() -> None:
        with store.transaction() as cur:
            cur.execute("INSERT INTO rooms VALUES ('r1', 'n', 't', NULL, 0, NULL)")
            cur.execute("INSERT INTO rooms VALUES ('r1', 'n', 't', NULL, 0, NULL)")

    with pytest.raises(sqlite3.IntegrityError):
        insert_twice()
    assert store.get_room("r1") is None


def test_database_is_the_base_of_the_store() -> None:
    assert issubclass(Store, Database)
