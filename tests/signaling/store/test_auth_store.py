"""The store: users, GitHub users, CLI logins, the revocation log and its
watcher, pruning (the tables are tested in ``test_rooms.py`` and
``test_keys.py``, the connection in ``test_database.py``)."""

from __future__ import annotations

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
from sleap_rtc_core.signaling.store.records import (
    room_credential,
    user_credential,
)
from tests.signaling.store.conftest import Clock


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
