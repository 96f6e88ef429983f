"""argon2id password hashing for local users."""

from __future__ import annotations

from argon2 import PasswordHasher

from sleap_rtc_core.signaling.auth.passwords import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    check_password_policy,
    dummy_verify,
    hash_password,
    needs_rehash,
    verify_password,
)


def test_hash_and_verify() -> None:
    h = hash_password("correct horse")
    assert h.startswith("$argon2id$")
    assert "correct horse" not in h
    assert verify_password(h, "correct horse")
    assert not verify_password(h, "correct horsE")
    assert not verify_password(h, "")


def test_salts_differ() -> None:
    assert hash_password("same password") != hash_password("same password")


def test_malformed_hashes_fail_closed() -> None:
    assert not verify_password("not a hash", "x")
    assert not verify_password("", "x")
    assert needs_rehash("not a hash")


def test_too_long_passwords_are_not_hashed() -> None:
    h = hash_password("short enough")
    assert not verify_password(h, "x" * (MAX_PASSWORD_LENGTH + 1))


def test_weaker_parameters_need_a_rehash() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("pw")
    assert verify_password(weak, "pw")
    assert needs_rehash(weak)
    assert not needs_rehash(hash_password("pw"))


def test_policy() -> None:
    assert check_password_policy("x" * MIN_PASSWORD_LENGTH) is None
    assert "at least" in (check_password_policy("x" * (MIN_PASSWORD_LENGTH - 1)) or "")
    assert "at most" in (check_password_policy("x" * (MAX_PASSWORD_LENGTH + 1)) or "")


def test_dummy_verify_accepts_anything() -> None:
    dummy_verify("whatever")
    dummy_verify("x" * (MAX_PASSWORD_LENGTH * 2))
