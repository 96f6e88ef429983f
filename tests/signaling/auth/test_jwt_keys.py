"""RS256 JWTs: issuing, verifying, and the key pair kept in the data folder."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import jwt as pyjwt
import pytest

from sleap_rtc_core.errors import AuthError, ErrorCode
from sleap_rtc_core.signaling.auth.jwt_keys import (
    AUDIENCE,
    DEFAULT_TTL,
    ISSUER,
    PRIVATE_KEY_FILENAME,
    PUBLIC_KEY_FILENAME,
    JwtKeys,
)

NOW = 1_700_000_000.0


@pytest.fixture(scope="module")
def keys() -> JwtKeys:
    """One real 2048-bit key pair, with a fixed clock."""
    return JwtKeys.generate(clock=lambda: NOW)


@pytest.fixture(scope="module")
def other_keys() -> JwtKeys:
    """A second, unrelated key pair (a forger's)."""
    return JwtKeys.generate(clock=lambda: NOW)


def _b64(obj: dict[str, object]) -> str:
    raw = json.dumps(obj).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(**over: object) -> dict[str, object]:
    claims: dict[str, object] = {
        "sub": "u1",
        "username": "alice",
        "iat": int(NOW),
        "exp": int(NOW + 60),
        "iss": ISSUER,
        "aud": AUDIENCE,
    }
    claims.update(over)
    return claims


def test_issue_and_verify(keys: JwtKeys) -> None:
    token = keys.issue("u1", "alice")
    claims = keys.verify(token)
    assert claims["sub"] == "u1"
    assert claims["username"] == "alice"
    assert claims["iss"] == claims["aud"] == "sleap-rtc"
    assert claims["exp"] - claims["iat"] == DEFAULT_TTL == 7 * 24 * 3600
    header = pyjwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    assert header["kid"] == keys.kid


def test_expired_token(keys: JwtKeys) -> None:
    token = keys.issue("u1", "alice", ttl=60, now=NOW - 3600)
    with pytest.raises(AuthError, match="expired") as info:
        keys.verify(token)
    assert info.value.code == ErrorCode.AUTH_FAILED


def test_token_from_the_future(keys: JwtKeys) -> None:
    token = keys.issue("u1", "alice", now=NOW + 3600)
    with pytest.raises(AuthError, match="not yet valid"):
        keys.verify(token)


def test_alg_none_is_refused(keys: JwtKeys) -> None:
    token = _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(_claims()) + "."
    with pytest.raises(AuthError, match="alg"):
        keys.verify(token)


def test_hs256_signed_with_the_public_key_is_refused(keys: JwtKeys) -> None:
    import hashlib
    import hmac

    signing_input = _b64({"alg": "HS256", "typ": "JWT"}) + "." + _b64(_claims())
    mac = hmac.new(keys.public_pem, signing_input.encode(), hashlib.sha256).digest()
    sig = base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    with pytest.raises(AuthError, match="alg"):
        keys.verify(signing_input + "." + sig)


def test_forged_with_another_key(keys: JwtKeys, other_keys: JwtKeys) -> None:
    with pytest.raises(AuthError, match="Invalid token"):
        keys.verify(other_keys.issue("u1", "alice"))


def test_tampered_payload_and_signature(keys: JwtKeys) -> None:
    header, payload, sig = keys.issue("u1", "alice").split(".")
    forged_payload = _b64(_claims(sub="admin", exp=int(NOW + DEFAULT_TTL)))
    with pytest.raises(AuthError, match="Signature verification failed"):
        keys.verify(f"{header}.{forged_payload}.{sig}")
    flipped = ("A" if sig[10] != "A" else "B").join([sig[:10], sig[11:]])
    with pytest.raises(AuthError, match="Invalid token"):
        keys.verify(f"{header}.{payload}.{flipped}")


@pytest.mark.parametrize(
    "bad",
    [
        {"iss": "someone-else"},
        {"aud": "someone-else"},
        {"sub": ""},
        {"sub": 5},
        {"exp": "tomorrow"},
    ],
)
def test_wrong_claims(keys: JwtKeys, bad: dict[str, object]) -> None:
    assert keys._private is not None
    token = pyjwt.encode(_claims(**bad), keys._private, algorithm="RS256")
    with pytest.raises(AuthError, match="Invalid token"):
        keys.verify(token)


def test_missing_claims(keys: JwtKeys) -> None:
    assert keys._private is not None
    claims = _claims()
    del claims["exp"]
    token = pyjwt.encode(claims, keys._private, algorithm="RS256")
    with pytest.raises(AuthError, match="exp"):
        keys.verify(token)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "x" * 5000])
def test_garbage(keys: JwtKeys, garbage: str) -> None:
    with pytest.raises(AuthError, match="Invalid token"):
        keys.verify(garbage)


def test_key_pair_is_generated_into_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = JwtKeys.load(data, env={})
    path = data / PRIVATE_KEY_FILENAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (data / PUBLIC_KEY_FILENAME).read_bytes() == first.public_pem
    second = JwtKeys.load(data, env={})
    assert second.kid == first.kid
    assert second.verify(first.issue("u1", "alice"))["sub"] == "u1"
    assert [p.name for p in data.iterdir() if p.name.startswith(".")] == []


def test_keys_from_the_environment(tmp_path: Path, keys: JwtKeys) -> None:
    data = tmp_path / "data"
    source = JwtKeys.load(data, env={})
    private_pem = (data / PRIVATE_KEY_FILENAME).read_text()
    public_pem = (data / PUBLIC_KEY_FILENAME).read_text()
    inline = JwtKeys.load(
        None, env={"SLEAP_JWT_PRIVATE_KEY": private_pem.replace("\n", "|")}
    )
    assert inline.kid == source.kid
    from_files = JwtKeys.load(
        None, env={"SLEAP_JWT_PUBLIC_KEY_FILE": str(data / PUBLIC_KEY_FILENAME)}
    )
    assert not from_files.can_issue
    assert from_files.verify(inline.issue("u1", "alice"))["sub"] == "u1"
    with pytest.raises(ValueError, match="public"):
        from_files.issue("u1", "alice")
    verify_only = JwtKeys.from_pem(None, public_pem)
    assert verify_only.kid == source.kid
    with pytest.raises(ValueError, match="no data folder"):
        JwtKeys.load(None, env={})
    with pytest.raises(ValueError, match="at least a public key"):
        JwtKeys(None, None)
