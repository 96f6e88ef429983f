"""What the auth store holds, as frozen records (one per table row).

Times are seconds since the epoch (``float``); ``None`` means "never" for expiry
and "not yet" for revocation. Secrets never appear here: a room token is kept (its
owner may read it back, as in the reference server), but worker and account keys
are stored as SHA-256 digests only, and a record names them by a non-secret
public id (``wk_…`` / ``ak_…``, a prefix of the digest).

Revocation ids name what can be taken away from a connected peer: a worker key
(its ``wk_…`` id), an account key (``ak_…``), a room (``room:<room_id>``), one
membership (``member:<room_id>:<user_id>``) or a user (``user:<user_id>``). The
store logs them when it revokes or deletes; the server disconnects every peer whose
identity lists one of them.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "AccountKey",
    "Invite",
    "MemberRole",
    "Membership",
    "PublicKey",
    "Room",
    "User",
    "WorkerToken",
    "iso_time",
    "member_credential",
    "room_credential",
    "user_credential",
]


def room_credential(room_id: str) -> str:
    """The revocation id of a room: every peer in it goes when it is deleted."""
    return f"room:{room_id}"


def member_credential(room_id: str, user_id: str) -> str:
    """The revocation id of one user's membership in one room."""
    return f"member:{room_id}:{user_id}"


def user_credential(user_id: str) -> str:
    """The revocation id of a user (deleted: all their sessions go)."""
    return f"user:{user_id}"


def iso_time(ts: float | None) -> str | None:
    """``ts`` as ISO 8601 UTC with a ``Z`` (the reference API's format)."""
    if ts is None:
        return None
    text = datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
    return text.replace("+00:00", "Z")


class MemberRole(StrEnum):
    """A user's role in a room."""

    OWNER = "owner"
    MEMBER = "member"


@dataclass(frozen=True, slots=True)
class User:
    """A person who can log in.

    Attributes:
        user_id: Stable id (``u…`` for local users, the numeric GitHub id as a
            string for GitHub users, as the reference JWT ``sub``).
        username: Unique, compared without case.
        password_hash: argon2id hash, ``None`` for GitHub-only users.
        github_id: The GitHub account id, if linked.
        avatar_url: Picture URL (GitHub), shown by dashboards.
        created_at: When the user was added.
    """

    user_id: str
    username: str
    password_hash: str | None = field(repr=False)
    github_id: str | None
    avatar_url: str | None
    created_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> User:
        """Build from a ``users`` row."""
        return cls(
            row["user_id"],
            row["username"],
            row["password_hash"],
            row["github_id"],
            row["avatar_url"],
            row["created_at"],
        )

    def public(self) -> dict[str, Any]:
        """The ``user`` object of API replies (never the password hash)."""
        return {
            "user_id": self.user_id,
            "username": self.username,
            "avatar_url": self.avatar_url,
        }


@dataclass(frozen=True, slots=True)
class Room:
    """A room: peers that may see and message each other.

    Attributes:
        room_id: Opaque id (12 lower-case letters and digits).
        name: Display name.
        token: The room token (a password, ≥ 128 bits); ``room_id`` + ``token``
            registers.
        created_by: The user id of the creator, or ``None`` (admin CLI).
        created_at: Creation time.
        expires_at: When registration stops working, or ``None`` for never.
    """

    room_id: str
    name: str
    token: str = field(repr=False)
    created_by: str | None
    created_at: float
    expires_at: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Room:
        """Build from a ``rooms`` row."""
        return cls(
            row["room_id"],
            row["name"],
            row["token"],
            row["created_by"],
            row["created_at"],
            row["expires_at"],
        )

    def expired(self, now: float) -> bool:
        """Whether the room has expired at ``now``."""
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True, slots=True)
class Membership:
    """A user's place in a room."""

    user_id: str
    room_id: str
    role: MemberRole
    invited_by: str | None
    joined_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Membership:
        """Build from a ``memberships`` row."""
        return cls(
            row["user_id"],
            row["room_id"],
            MemberRole(row["role"]),
            row["invited_by"],
            row["joined_at"],
        )


@dataclass(frozen=True, slots=True)
class Invite:
    """A reusable invite code for a room, valid until ``expires_at``."""

    code: str
    room_id: str
    created_by: str | None
    created_at: float
    expires_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Invite:
        """Build from an ``invites`` row."""
        return cls(
            row["code"],
            row["room_id"],
            row["created_by"],
            row["created_at"],
            row["expires_at"],
        )


@dataclass(frozen=True, slots=True)
class WorkerToken:
    """A per-room worker key (``slp_…``), known here by its public id.

    Attributes:
        token_id: Public id ``wk_`` + 16 hex of the key's SHA-256; safe to show.
        room_id: The room the key registers into.
        worker_name: Name the server injects as ``metadata._worker_name``.
        created_by: Creator's user id, or ``None`` (admin CLI).
        created_at: Creation time.
        expires_at: Expiry, or ``None`` for never.
        revoked_at: Revocation time, or ``None``.
    """

    token_id: str
    room_id: str
    worker_name: str
    created_by: str | None
    created_at: float
    expires_at: float | None
    revoked_at: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> WorkerToken:
        """Build from a ``worker_tokens`` row."""
        return cls(
            row["token_id"],
            row["room_id"],
            row["worker_name"],
            row["created_by"],
            row["created_at"],
            row["expires_at"],
            row["revoked_at"],
        )

    def expired(self, now: float) -> bool:
        """Whether the key has expired at ``now``."""
        return self.expires_at is not None and self.expires_at <= now

    def is_active(self, now: float) -> bool:
        """Neither revoked nor expired."""
        return self.revoked_at is None and not self.expired(now)


@dataclass(frozen=True, slots=True)
class AccountKey:
    """A per-user account key (``slp_acct_…``), known by its public id.

    Attributes:
        key_id: Public id ``ak_`` + 16 hex of the key's SHA-256.
        user_id: The owner.
        name: A label the owner chose.
        created_at: Creation time.
        revoked_at: Revocation time, or ``None``.
    """

    key_id: str
    user_id: str
    name: str
    created_at: float
    revoked_at: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> AccountKey:
        """Build from an ``account_keys`` row."""
        return cls(
            row["key_id"],
            row["user_id"],
            row["name"],
            row["created_at"],
            row["revoked_at"],
        )


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A user's Ed25519 public key for peer-to-peer auth (base64url, raw)."""

    user_id: str
    public_key: str
    device_name: str
    created_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> PublicKey:
        """Build from a ``public_keys`` row."""
        return cls(
            row["user_id"], row["public_key"], row["device_name"], row["created_at"]
        )
