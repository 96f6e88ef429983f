"""Rooms, memberships and invites: the room tables of the store."""

from __future__ import annotations

import secrets
import sqlite3
import string

from .database import random_id
from .keys import KeyTables
from .records import (
    Invite,
    MemberRole,
    Membership,
    Room,
    User,
    member_credential,
    room_credential,
)

__all__ = ["RoomTables"]

_INVITE_ALPHABET = string.ascii_uppercase + string.digits


class RoomTables(KeyTables):
    """The room half of :class:`~sleap_rtc_core.signaling.store.auth_store.Store`."""

    # --- rooms and memberships

    def create_room(
        self,
        name: str | None = None,
        *,
        owner_id: str | None = None,
        expires_at: float | None = None,
    ) -> Room:
        """Create a room with a fresh id and a strong token (192 bits).

        Args:
            name: Display name (defaults to the room id).
            owner_id: A user who becomes its owner (a member).
            expires_at: When registration stops working; ``None`` for never.

        Raises:
            KeyError: ``owner_id`` names no user.
        """
        room_id = random_id(12)
        room = Room(
            room_id=room_id,
            name=name or room_id,
            token=secrets.token_hex(24),
            created_by=owner_id,
            created_at=self.clock(),
            expires_at=expires_at,
        )
        with self.transaction() as cur:
            if owner_id is not None and (
                cur.execute(
                    "SELECT 1 FROM users WHERE user_id = ?", (owner_id,)
                ).fetchone()
                is None
            ):
                raise KeyError(owner_id)
            cur.execute(
                "INSERT INTO rooms (room_id, name, token, created_by, created_at,"
                " expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                (room_id, room.name, room.token, owner_id, room.created_at, expires_at),
            )
            if owner_id is not None:
                cur.execute(
                    "INSERT INTO memberships (user_id, room_id, role, invited_by,"
                    " joined_at) VALUES (?, ?, 'owner', NULL, ?)",
                    (owner_id, room_id, room.created_at),
                )
        return room

    def get_room(self, room_id: str) -> Room | None:
        """A room by id."""
        row = self.query_one("SELECT * FROM rooms WHERE room_id = ?", (room_id,))
        return Room.from_row(row) if row else None

    def rooms_named(self, name: str) -> list[Room]:
        """The rooms whose display name is exactly ``name``, oldest first."""
        rows = self.query(
            "SELECT * FROM rooms WHERE name = ? ORDER BY created_at, room_id", (name,)
        )
        return [Room.from_row(r) for r in rows]

    def list_rooms(self) -> list[Room]:
        """Every room, oldest first."""
        rows = self.query("SELECT * FROM rooms ORDER BY created_at, room_id")
        return [Room.from_row(r) for r in rows]

    def rename_room(self, room_id: str, name: str) -> bool:
        """Change a room's display name."""
        sql = "UPDATE rooms SET name = ? WHERE room_id = ?"
        return self.execute(sql, (name, room_id)) > 0

    def delete_room(self, room_id: str) -> bool:
        """Delete a room with its memberships, invites and worker keys; every
        peer in it is revoked."""
        with self.transaction() as cur:
            cur.execute("DELETE FROM rooms WHERE room_id = ?", (room_id,))
            if cur.rowcount == 0:
                return False
            self.record_revocation(cur, room_credential(room_id), self.clock())
            return True

    def rooms_for_user(self, user_id: str) -> list[tuple[Room, Membership]]:
        """The rooms a user belongs to, with the membership, oldest join first."""
        rows = self.query(
            "SELECT r.*, m.user_id, m.role, m.invited_by, m.joined_at FROM rooms r"
            " JOIN memberships m ON m.room_id = r.room_id WHERE m.user_id = ?"
            " ORDER BY m.joined_at, r.room_id",
            (user_id,),
        )
        return [(Room.from_row(r), Membership.from_row(r)) for r in rows]

    def add_member(
        self,
        room_id: str,
        user_id: str,
        role: MemberRole = MemberRole.MEMBER,
        *,
        invited_by: str | None = None,
    ) -> tuple[Membership, bool]:
        """Make a user a member (no change if already one).

        Returns:
            The membership and whether it was created now.

        Raises:
            KeyError: The room or the user does not exist.
        """
        now = self.clock()
        with self.transaction() as cur:
            for table, column, value in (
                ("rooms", "room_id", room_id),
                ("users", "user_id", user_id),
            ):
                sql = f"SELECT 1 FROM {table} WHERE {column} = ?"
                if cur.execute(sql, (value,)).fetchone() is None:
                    raise KeyError(value)
            cur.execute(
                "INSERT OR IGNORE INTO memberships (user_id, room_id, role,"
                " invited_by, joined_at) VALUES (?, ?, ?, ?, ?)",
                (user_id, room_id, MemberRole(role).value, invited_by, now),
            )
            created = cur.rowcount > 0
            row = cur.execute(
                "SELECT * FROM memberships WHERE user_id = ? AND room_id = ?",
                (user_id, room_id),
            ).fetchone()
        return Membership.from_row(row), created

    def get_membership(self, room_id: str, user_id: str) -> Membership | None:
        """A user's membership in a room, or ``None``."""
        row = self.query_one(
            "SELECT * FROM memberships WHERE user_id = ? AND room_id = ?",
            (user_id, room_id),
        )
        return Membership.from_row(row) if row else None

    def room_members(self, room_id: str) -> list[tuple[Membership, User]]:
        """Members of a room with their users, owners first."""
        rows = self.query(
            "SELECT m.role, m.invited_by, m.joined_at, m.room_id, u.* FROM memberships"
            " m JOIN users u ON u.user_id = m.user_id WHERE m.room_id = ?"
            " ORDER BY m.role = 'member', m.joined_at",
            (room_id,),
        )
        return [(Membership.from_row(r), User.from_row(r)) for r in rows]

    def remove_member(self, room_id: str, user_id: str) -> bool:
        """End a membership; the user's peers in the room are revoked."""
        with self.transaction() as cur:
            cur.execute(
                "DELETE FROM memberships WHERE user_id = ? AND room_id = ?",
                (user_id, room_id),
            )
            if cur.rowcount == 0:
                return False
            cred = member_credential(room_id, user_id)
            self.record_revocation(cur, cred, self.clock())
            return True

    # --- invites

    def create_invite(
        self, room_id: str, *, created_by: str | None = None, ttl: float = 3600.0
    ) -> Invite:
        """A reusable 8-character invite code for a room, valid ``ttl`` seconds.

        Raises:
            KeyError: The room does not exist.
        """
        now = self.clock()
        with self.transaction() as cur:
            cur.execute("DELETE FROM invites WHERE expires_at <= ?", (now,))
            self.require_room(cur, room_id)
            while True:
                code = "".join(secrets.choice(_INVITE_ALPHABET) for _ in range(8))
                try:
                    cur.execute(
                        "INSERT INTO invites (code, room_id, created_by, created_at,"
                        " expires_at) VALUES (?, ?, ?, ?, ?)",
                        (code, room_id, created_by, now, now + ttl),
                    )
                except sqlite3.IntegrityError:
                    continue
                return Invite(code, room_id, created_by, now, now + ttl)

    def get_invite(self, code: str) -> Invite | None:
        """An unexpired invite by code (case-insensitive), or ``None``."""
        row = self.query_one(
            "SELECT * FROM invites WHERE code = ? AND expires_at > ?",
            (code.strip().upper(), self.clock()),
        )
        return Invite.from_row(row) if row else None
