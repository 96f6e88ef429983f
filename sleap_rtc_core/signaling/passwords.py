"""Password hashing for local users: argon2id, a memory-hard KDF.

Hashes are PHC strings (``$argon2id$v=19$m=…,t=…,p=…$salt$hash``) that carry their
own parameters, so stronger defaults later still verify old hashes (and
:func:`needs_rehash` says when to upgrade one at the next login). Hashing costs a
fraction of a second of CPU on purpose: call these through ``asyncio.to_thread``
from async code (argon2 releases the GIL).
"""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "check_password_policy",
    "dummy_verify",
    "hash_password",
    "needs_rehash",
    "verify_password",
]

MIN_PASSWORD_LENGTH = 8
"""Shortest password :func:`check_password_policy` accepts."""
MAX_PASSWORD_LENGTH = 1024
"""Longest password accepted (bounds the work an attacker can ask for)."""

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile (64 MiB, t=3)


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash("sleap-rtc dummy password")


def check_password_policy(password: str) -> str | None:
    """Why ``password`` is unacceptable, or ``None`` when it is fine."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"password must have at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"password must have at most {MAX_PASSWORD_LENGTH} characters"
    return None


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (random salt)."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``; malformed hashes fail."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with weaker parameters than today's."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


def dummy_verify(password: str) -> None:
    """Spend the time of one verification, for logins of unknown users.

    Answering "no such user" faster than "wrong password" would tell an attacker
    which usernames exist.
    """
    verify_password(_dummy_hash(), password[:MAX_PASSWORD_LENGTH])
