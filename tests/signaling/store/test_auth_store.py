"""The SQLite auth store: tables, secrets, revocation log, several connections."""

from __future__ import annotations

import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sleap_rtc_core.signaling.store.auth_store import (
    DB_FILENAME,
    AlreadyExists,
    RevocationWatcher,
    Store,
    check_username,
    default_data_dir,
    open_store,
)
from sleap_rtc_core.signaling.store.database import (
    Database,
    hash_secret,
    new_secret,
    random_id,
)
from sleap_rtc_core.signaling.store.records import (
    MemberRole,
    iso_time,
    member_credential,
    room_credential,
    user_credential,
)
from tests.fixtures.timing import scaled


class Clock:
    """A settable clock (epoch seconds)."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / DB_FILENAME


@pytest.fixture
def store(db_path: Path, clock: Clock) -> Iterator[Store]:
    s = Store(db_path, clock=clock)
    yield s
    s.close()


# --- the file


def test_file_is_private_and_in_wal_mode(store: Store, db_path: Path) -> None:
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(db_path.parent.stat().st_mode) == 0o700
    row = store.query_one("PRAGMA journal_mode")
    assert row is not None
    assert row[0] == "wal"
    version = store.query_one("PRAGMA user_version")
    assert version is not None
    assert version[0] == 1


def test_memory_store_works() -> None:
    s = Store(":memory:")
    user = s.add_user("alice")
    assert s.get_user(user.user_id) == user
    s.close()


def test_open_store_creates_the_folder(tmp_path: Path) -> None:
    s = open_store(tmp_path / "a" / "b")
    s.close()
    assert (tmp_path / "a" / "b" / DB_FILENAME).is_file()


def test_default_data_dir_honours_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLEAP_RTC_DATA_DIR", str(tmp_path / "x"))
    assert default_data_dir() == tmp_path / "x"
    monkeypatch.delenv("SLEAP_RTC_DATA_DIR")
    assert "sleap-rtc" in str(default_data_dir())


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


# --- users


def test_users(store: Store) -> None:
    alice = store.add_user("Alice", "hash")
    assert store.get_user_by_name("alice") == alice
    assert store.get_user_by_name("ALICE") == alice
    assert "hash" not in repr(alice)
    assert alice.public() == {
        "user_id": alice.user_id,
        "username": "Alice",
        "avatar_url": None,
    }
    with pytest.raises(AlreadyExists):
        store.add_user("alice")
    bob = store.add_user("bob")
    assert [u.username for u in store.list_users()] == ["Alice", "bob"]
    assert store.set_password(bob.user_id, "h2")
    updated = store.get_user(bob.user_id)
    assert updated is not None
    assert updated.password_hash == "h2"
    assert not store.set_password("nobody", "h")


@pytest.mark.parametrize("name", ["", "-x", "a b", "tab\there", "x" * 65])
def test_bad_usernames_are_refused(store: Store, name: str) -> None:
    assert check_username(name) is not None
    with pytest.raises(ValueError, match="username"):
        store.add_user(name)


def test_delete_user_cascades_and_logs(store: Store) -> None:
    alice = store.add_user("alice")
    room = store.create_room("lab", owner_id=alice.user_id)
    key, _ = store.create_account_key(alice.user_id, "laptop")
    cursor = store.revocation_cursor()
    assert store.delete_user(alice.user_id)
    assert not store.delete_user(alice.user_id)
    assert store.get_membership(room.room_id, alice.user_id) is None
    assert store.list_account_keys(alice.user_id) == []
    _, ids = store.revocations_since(cursor)
    assert set(ids) == {user_credential(alice.user_id), key.key_id}


def test_github_users(store: Store) -> None:
    store.add_user("octo")
    user = store.upsert_github_user("42", "octo", "https://a/1.png")
    assert user.user_id == "42"
    assert user.username == "octo-github"
    again = store.upsert_github_user("42", "octo", "https://a/2.png")
    assert again.user_id == "42"
    assert again.avatar_url == "https://a/2.png"


# --- rooms, memberships, invites


def test_rooms(store: Store, clock: Clock) -> None:
    owner = store.add_user("alice")
    room = store.create_room("lab", owner_id=owner.user_id, expires_at=clock() + 10)
    assert len(room.token) >= 32
    assert room.token not in repr(room)
    assert store.get_room(room.room_id) == room
    membership = store.get_membership(room.room_id, owner.user_id)
    assert membership is not None
    assert membership.role is MemberRole.OWNER
    assert not room.expired(clock())
    clock.now += 10
    assert room.expired(clock())
    plain = store.create_room()  # created later: listed after
    assert plain.name == plain.room_id
    assert [r.room_id for r in store.list_rooms()] == [room.room_id, plain.room_id]
    assert store.rename_room(plain.room_id, "other")
    renamed = store.get_room(plain.room_id)
    assert renamed is not None
    assert renamed.name == "other"
    with pytest.raises(KeyError):
        store.create_room("x", owner_id="nobody")
    assert store.get_room("nope") is None


def test_delete_room_cascades_and_logs(store: Store) -> None:
    alice = store.add_user("alice")
    room = store.create_room("lab", owner_id=alice.user_id)
    store.create_worker_token(room.room_id, "gpu")
    store.create_invite(room.room_id)
    cursor = store.revocation_cursor()
    assert store.delete_room(room.room_id)
    assert not store.delete_room(room.room_id)
    assert store.list_worker_tokens(room_id=room.room_id) == []
    assert store.rooms_for_user(alice.user_id) == []
    assert store.revocations_since(cursor)[1] == [room_credential(room.room_id)]


def test_memberships(store: Store) -> None:
    alice, bob = store.add_user("alice"), store.add_user("bob")
    room = store.create_room("lab", owner_id=alice.user_id)
    membership, created = store.add_member(
        room.room_id, bob.user_id, invited_by=alice.user_id
    )
    assert created
    assert membership.role is MemberRole.MEMBER
    again, created = store.add_member(room.room_id, bob.user_id, MemberRole.OWNER)
    assert not created
    assert again.role is MemberRole.MEMBER
    members = store.room_members(room.room_id)
    assert [(m.role, u.username) for m, u in members] == [
        (MemberRole.OWNER, "alice"),
        (MemberRole.MEMBER, "bob"),
    ]
    assert [r.room_id for r, _ in store.rooms_for_user(bob.user_id)] == [room.room_id]
    with pytest.raises(KeyError):
        store.add_member("nope", bob.user_id)
    with pytest.raises(KeyError):
        store.add_member(room.room_id, "nobody")
    cursor = store.revocation_cursor()
    assert store.remove_member(room.room_id, bob.user_id)
    assert not store.remove_member(room.room_id, bob.user_id)
    assert store.revocations_since(cursor)[1] == [
        member_credential(room.room_id, bob.user_id)
    ]


def test_invites(store: Store, clock: Clock) -> None:
    room = store.create_room("lab")
    invite = store.create_invite(room.room_id, ttl=60)
    assert len(invite.code) == 8
    assert invite.code.isupper()
    assert store.get_invite(invite.code.lower()) == invite
    clock.now += 61
    assert store.get_invite(invite.code) is None
    with pytest.raises(KeyError):
        store.create_invite("nope")


# --- keys


def test_worker_tokens(store: Store, clock: Clock, db_path: Path) -> None:
    room = store.create_room("lab")
    token, secret = store.create_worker_token(
        room.room_id, "gpu1", expires_at=clock() + 100
    )
    assert secret.startswith("slp_")
    assert not secret.startswith("slp_acct_")
    assert token.token_id.startswith("wk_")
    assert store.find_worker_token(secret) == token
    assert store.get_worker_token(secret) == token
    assert store.get_worker_token(token.token_id) == token
    assert store.find_worker_token(secret + "x") is None
    assert token.is_active(clock())
    clock.now += 100
    assert token.expired(clock())
    assert not token.is_active(clock())
    # Only the digest is kept: the key is nowhere in the file.
    store.query("PRAGMA wal_checkpoint(TRUNCATE)")
    assert secret.encode() not in db_path.read_bytes()
    with pytest.raises(KeyError):
        store.create_worker_token("nope", "gpu")


def test_worker_token_revoke_and_delete(store: Store, clock: Clock) -> None:
    room = store.create_room("lab")
    other = store.create_room("other")
    t1, _ = store.create_worker_token(room.room_id, "a", created_by="u1")
    clock.now += 1
    t2, _ = store.create_worker_token(other.room_id, "b")
    assert store.list_worker_tokens() == [t1, t2]
    assert store.list_worker_tokens(room_id=other.room_id) == [t2]
    assert store.list_worker_tokens(created_by="u1") == [t1]
    cursor = store.revocation_cursor()
    assert store.revoke_worker_token(t1.token_id)
    assert not store.revoke_worker_token(t1.token_id)
    revoked = store.get_worker_token(t1.token_id)
    assert revoked is not None
    assert revoked.revoked_at is not None
    assert store.delete_worker_token(t2.token_id)
    assert not store.delete_worker_token(t2.token_id)
    assert store.revocations_since(cursor)[1] == [t1.token_id, t2.token_id]


def test_account_keys(store: Store) -> None:
    alice = store.add_user("alice")
    key, secret = store.create_account_key(alice.user_id, "laptop")
    assert secret.startswith("slp_acct_")
    assert key.key_id.startswith("ak_")
    assert store.find_account_key(secret) == key
    assert store.get_account_key(secret) == key
    assert store.get_account_key(key.key_id) == key
    assert store.find_worker_token(secret) is None
    assert store.list_account_keys() == [key]
    assert store.list_account_keys(alice.user_id) == [key]
    cursor = store.revocation_cursor()
    assert store.revoke_account_key(key.key_id)
    assert not store.revoke_account_key(key.key_id)
    assert store.revocations_since(cursor)[1] == [key.key_id]
    with pytest.raises(KeyError):
        store.create_account_key("nobody", "x")


def test_public_keys(store: Store) -> None:
    alice, bob = store.add_user("alice"), store.add_user("bob")
    room = store.create_room("lab", owner_id=alice.user_id)
    store.add_public_key(alice.user_id, "AAAA", "laptop")
    store.add_public_key(alice.user_id, "AAAA", "renamed")
    store.add_public_key(bob.user_id, "BBBB", "desk")
    assert [k.device_name for k in store.list_public_keys(alice.user_id)] == ["renamed"]
    pairs = store.room_public_keys(room.room_id)
    assert [(k.public_key, name) for k, name in pairs] == [("AAAA", "alice")]
    assert store.delete_public_key(alice.user_id, "AAAA")
    assert not store.delete_public_key(alice.user_id, "AAAA")


def test_cli_deposits(store: Store, clock: Clock) -> None:
    state = "s" * 32
    store.put_cli_deposit(state, "jwt1", {"username": "alice"}, ttl=10)
    with pytest.raises(AlreadyExists):
        store.put_cli_deposit(state, "jwt2", {"username": "mallory"})
    assert store.take_cli_deposit(state) == ("jwt1", {"username": "alice"})
    assert store.take_cli_deposit(state) is None
    store.put_cli_deposit("t" * 32, "jwt", {}, ttl=10)
    clock.now += 11
    assert store.take_cli_deposit("t" * 32) is None


# --- revocations across connections


def test_watcher_sees_another_connection(db_path: Path, clock: Clock) -> None:
    server = Store(db_path, clock=clock)
    admin = Store(db_path, clock=clock)  # the admin CLI, another connection
    watcher = RevocationWatcher(server)
    room = admin.create_room("lab")
    token, _ = admin.create_worker_token(room.room_id, "gpu")
    assert watcher.poll() == []
    admin.revoke_worker_token(token.token_id)
    assert watcher(0.0) == [token.token_id]
    assert watcher.poll() == []
    admin.delete_room(room.room_id)
    assert watcher.poll() == [room_credential(room.room_id)]
    server.close()
    admin.close()


def test_watcher_reports_expiry(store: Store, clock: Clock) -> None:
    watcher = RevocationWatcher(store)
    room = store.create_room("lab", expires_at=clock() + 5)
    token, _ = store.create_worker_token(room.room_id, "gpu", expires_at=clock() + 3)
    later = store.create_room("later", expires_at=clock() + 50)
    assert watcher.poll() == []
    clock.now += 10
    assert set(watcher.poll()) == {token.token_id, room_credential(room.room_id)}
    assert watcher.poll() == []
    assert later.expires_at is not None


def test_prune_drops_old_log_entries(store: Store, clock: Clock) -> None:
    room = store.create_room("lab")
    token, _ = store.create_worker_token(room.room_id, "gpu")
    store.revoke_worker_token(token.token_id)
    store.create_invite(room.room_id, ttl=1)
    clock.now += 8 * 24 * 3600
    store.prune()
    assert store.revocations_since(0) == (0, [])
    assert store.query("SELECT * FROM invites") == []


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


def test_iso_time() -> None:
    assert iso_time(None) is None
    assert iso_time(0) == "1970-01-01T00:00:00Z"
