"""The store's rows as records: times, expiry, activity, revocation ids, and
what a record never shows (read back from a real store)."""

from __future__ import annotations

from sleap_rtc_core.signaling.store.auth_store import Store
from sleap_rtc_core.signaling.store.records import (
    MemberRole,
    iso_time,
    member_credential,
    room_credential,
    user_credential,
)
from tests.signaling.store.conftest import Clock


def test_iso_time() -> None:
    assert iso_time(None) is None
    assert iso_time(0) == "1970-01-01T00:00:00Z"
    assert iso_time(1.9) == "1970-01-01T00:00:01Z"


def test_revocation_ids_name_what_they_take_away() -> None:
    assert room_credential("r1") == "room:r1"
    assert member_credential("r1", "u1") == "member:r1:u1"
    assert user_credential("u1") == "user:u1"


def test_a_room_expires_at_its_time_and_never_without_one(
    store: Store, clock: Clock
) -> None:
    forever = store.create_room("lab")
    timed = store.create_room("course", expires_at=clock.now + 10)
    assert not forever.expired(clock.now + 1e9)
    assert not timed.expired(clock.now + 9)
    assert timed.expired(clock.now + 10)  # at the instant, not after
    assert forever.token not in repr(forever)  # the token stays out of logs


def test_a_worker_key_is_active_until_revoked_or_expired(
    store: Store, clock: Clock
) -> None:
    room = store.create_room("lab")
    token, secret = store.create_worker_token(
        room.room_id, "gpu", expires_at=clock.now + 10
    )
    assert token.is_active(clock.now)
    assert not token.is_active(clock.now + 10)
    assert secret not in repr(token)
    store.revoke_worker_token(token.token_id)
    revoked = store.get_worker_token(token.token_id)
    assert revoked is not None
    assert revoked.revoked_at == clock.now
    assert not revoked.is_active(clock.now)
    assert not revoked.expired(clock.now)


def test_a_users_public_form_has_no_password_hash(store: Store) -> None:
    user = store.add_user("alice", "$argon2id$hash")
    assert user.public() == {
        "user_id": user.user_id,
        "username": "alice",
        "avatar_url": None,
    }
    owner = store.create_room("lab", owner_id=user.user_id)
    [(membership, member)] = store.room_members(owner.room_id)
    assert (membership.role, member) == (MemberRole.OWNER, user)
