"""The room tables: rooms, memberships and invites, and what deleting logs."""

from __future__ import annotations

import pytest

from sleap_rtc_core.signaling.store.auth_store import (
    Store,
)
from sleap_rtc_core.signaling.store.records import (
    MemberRole,
    member_credential,
    room_credential,
)
from tests.signaling.store.conftest import Clock


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
