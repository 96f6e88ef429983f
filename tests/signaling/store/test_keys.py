"""The key tables: worker keys, account keys and public keys, kept as
digests and named by public ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from sleap_rtc_core.signaling.store.auth_store import (
    Store,
)
from tests.signaling.store.conftest import Clock


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
