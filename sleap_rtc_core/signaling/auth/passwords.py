"""Password hashing for local users: argon2id, a memory-hard KDF.

Hashes are PHC strings (``$argon2id$v=19$m=…,t=…,p=…$salt$hash``) that carry their
own parameters, so stronger defaults later still verify old hashes (and
:func:`needs_rehash` says when to upgrade one at the next login). Hashing costs a
fraction of a second of CPU and 64 MiB on purpose: from async code call them
through :func:`in_password_pool`, a pool of its own with few threads, so a login
flood neither takes unbounded memory nor starves the default pool that
``register`` and the database use (argon2 releases the GIL).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "check_password_policy",
    "dummy_verify",
    "hash_password",
    "in_password_pool",
    "needs_rehash",
    "verify_password",
]

MIN_PASSWORD_LENGTH = 8
"""Shortest password :func:`check_password_policy` accepts."""
MAX_PASSWORD_LENGTH = 1024
"""Longest password accepted (bounds the work an attacker can ask for)."""

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile (64 MiB, t=3)

PASSWORD_THREADS = 2
"""Password checks that run at once (each holds 64 MiB while it runs)."""

_pool = ThreadPoolExecutor(PASSWORD_THREADS, thread_name_prefix="sleap-rtc-argon2")

T = TypeVar("T")


async def in_password_pool(fn: Callable[..., T], *args: object) -> T:
    """``fn(*args)`` in the password pool (:data:`PASSWORD_THREADS` threads);
    checks beyond that wait their turn there, not in the default pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_pool, functools.partial(fn, *args))


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
