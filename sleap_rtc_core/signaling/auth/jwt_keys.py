"""The server's RS256 key pair, and issuing and verifying sleap-rtc JWTs.

Tokens are the reference's (PROTOCOL.md B §2.1): RS256, ``iss`` = ``aud`` =
``"sleap-rtc"``, ``sub`` = the user id, ``username``, ``iat``, ``exp`` (7 days).

Where the keys come from, first match wins:

1. ``SLEAP_JWT_PRIVATE_KEY_FILE`` / ``SLEAP_JWT_PUBLIC_KEY_FILE`` (PEM files);
2. ``SLEAP_JWT_PRIVATE_KEY`` / ``SLEAP_JWT_PUBLIC_KEY`` (inline PEM, ``|`` standing
   for a newline, as the reference reads them);
3. ``jwt_private.pem`` in the data folder, generated on first start (mode 0600;
   two processes starting together agree on one key).

A public key alone verifies but cannot issue. Verification accepts RS256 only,
whatever the token's header says, so neither ``alg: none`` nor an HS256 token
"signed" with the public key passes.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ...errors import AuthError

__all__ = [
    "AUDIENCE",
    "DEFAULT_TTL",
    "ISSUER",
    "PRIVATE_KEY_FILENAME",
    "PUBLIC_KEY_FILENAME",
    "JwtKeys",
]

logger = logging.getLogger(__name__)

ISSUER = "sleap-rtc"
AUDIENCE = "sleap-rtc"
DEFAULT_TTL = 7 * 24 * 3600.0
"""Seconds a JWT is valid (7 days, as the reference)."""
PRIVATE_KEY_FILENAME = "jwt_private.pem"
PUBLIC_KEY_FILENAME = "jwt_public.pem"
_REQUIRED = ["exp", "iat", "sub", "iss", "aud"]


class JwtKeys:
    """Issues and verifies sleap-rtc JWTs with one RSA key pair.

    Args:
        private_key: Signs tokens; ``None`` for a verify-only instance.
        public_key: Verifies tokens (derived from ``private_key`` if omitted).
        clock: Seconds since the epoch, for ``iat``/``exp`` (injectable).
        leeway: Seconds of clock skew tolerated when checking times.

    Raises:
        ValueError: Neither key was given.
    """

    def __init__(
        self,
        private_key: rsa.RSAPrivateKey | None,
        public_key: rsa.RSAPublicKey | None = None,
        *,
        clock: Callable[[], float] = time.time,
        leeway: float = 30.0,
    ) -> None:
        if public_key is None:
            if private_key is None:
                raise ValueError("a JWT key pair needs at least a public key")
            public_key = private_key.public_key()
        self._private = private_key
        self._public = public_key
        self._clock = clock
        self._leeway = leeway
        self.public_pem: bytes = public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        """The public key as PEM (SubjectPublicKeyInfo)."""
        self.kid: str = hashlib.sha256(self.public_pem).hexdigest()[:16]
        """Key id put in token headers (a digest of the public key)."""

    # --- construction

    @classmethod
    def generate(cls, *, clock: Callable[[], float] = time.time) -> JwtKeys:
        """A fresh 2048-bit key pair held in memory (tests, ephemeral servers)."""
        return cls(_new_private_key(), clock=clock)

    @classmethod
    def from_pem(
        cls,
        private_pem: bytes | str | None,
        public_pem: bytes | str | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> JwtKeys:
        """Keys from PEM text (either may be ``None``, not both).

        Raises:
            ValueError: The PEM is not an RSA key.
        """
        private = _load_private(_as_bytes(private_pem)) if private_pem else None
        public = _load_public(_as_bytes(public_pem)) if public_pem else None
        return cls(private, public, clock=clock)

    @classmethod
    def load(
        cls,
        data_dir: str | Path | None,
        *,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> JwtKeys:
        """Keys from the environment, else from (or generated into) ``data_dir``.

        Args:
            data_dir: Folder for ``jwt_private.pem``; ``None`` means environment
                only.
            env: Variables to read (default ``os.environ``).
            clock: Passed to the instance.

        Raises:
            ValueError: A configured key is unreadable or not RSA, or no key is
                configured and there is no data folder.
        """
        env = os.environ if env is None else env
        priv_file = env.get("SLEAP_JWT_PRIVATE_KEY_FILE")
        pub_file = env.get("SLEAP_JWT_PUBLIC_KEY_FILE")
        if priv_file or pub_file:
            return cls.from_pem(
                Path(priv_file).read_bytes() if priv_file else None,
                Path(pub_file).read_bytes() if pub_file else None,
                clock=clock,
            )
        priv_inline = env.get("SLEAP_JWT_PRIVATE_KEY")
        pub_inline = env.get("SLEAP_JWT_PUBLIC_KEY")
        if priv_inline or pub_inline:
            return cls.from_pem(
                priv_inline.replace("|", "\n") if priv_inline else None,
                pub_inline.replace("|", "\n") if pub_inline else None,
                clock=clock,
            )
        if data_dir is None:
            raise ValueError("no JWT key configured and no data folder to keep one")
        return cls(_load_or_create(Path(data_dir)), clock=clock)

    # --- tokens

    @property
    def can_issue(self) -> bool:
        """Whether the private key is present."""
        return self._private is not None

    def issue(
        self,
        user_id: str,
        username: str,
        ttl: float = DEFAULT_TTL,
        *,
        now: float | None = None,
    ) -> str:
        """A signed JWT for a user.

        Raises:
            ValueError: This instance has no private key.
        """
        if self._private is None:
            raise ValueError("this server has only the public JWT key")
        iat = int(self._clock() if now is None else now)
        claims = {
            "sub": user_id,
            "username": username,
            "iat": iat,
            "exp": iat + int(ttl),
            "iss": ISSUER,
            "aud": AUDIENCE,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(
            claims, self._private, algorithm="RS256", headers={"kid": self.kid}
        )

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid token.

        Raises:
            AuthError: ``AUTH_FAILED`` with reason ``Invalid token: <why>`` for a
                malformed, forged, foreign, not-RS256 or expired token.
        """
        if not isinstance(token, str) or not token:
            raise AuthError("Invalid token: empty")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError(f"Invalid token: {exc}") from None
        if header.get("alg") != "RS256":
            raise AuthError("Invalid token: The specified alg value is not allowed")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._public,
                algorithms=["RS256"],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={
                    "require": _REQUIRED,
                    "verify_exp": False,  # checked below, against our clock
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise AuthError(f"Invalid token: {exc}") from None
        now = self._clock()
        exp, iat = claims["exp"], claims["iat"]
        if not _is_number(exp) or not _is_number(iat):
            raise AuthError("Invalid token: exp and iat must be numbers")
        if exp <= now - self._leeway:
            raise AuthError("Invalid token: Signature has expired")
        if iat > now + self._leeway:
            raise AuthError("Invalid token: The token is not yet valid (iat)")
        nbf = claims.get("nbf")
        if nbf is not None and (not _is_number(nbf) or nbf > now + self._leeway):
            raise AuthError("Invalid token: The token is not yet valid (nbf)")
        if not isinstance(claims["sub"], str) or not claims["sub"]:
            raise AuthError("Invalid token: sub must be a non-empty string")
        return claims


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_bytes(text: bytes | str) -> bytes:
    return text.encode() if isinstance(text, str) else text


def _new_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _load_private(pem: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the JWT private key must be an RSA key")
    return key


def _load_public(pem: bytes) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the JWT public key must be an RSA key")
    return key


def _load_or_create(folder: Path) -> rsa.RSAPrivateKey:
    """Read ``jwt_private.pem`` from ``folder``, creating it atomically if absent.

    The new key is written to a private temporary file and hard-linked into
    place, which fails if another process got there first; then theirs is used.
    """
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / PRIVATE_KEY_FILENAME
    if not path.exists():
        key = _new_private_key()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = folder / f".{PRIVATE_KEY_FILENAME}.{secrets.token_hex(6)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
                logger.info("generated a JWT key pair in %s", folder)
        finally:
            tmp.unlink(missing_ok=True)
    if os.name == "posix" and path.stat().st_mode & 0o077:
        logger.warning("%s is readable by other users; chmod 600 it", path)
    key = _load_private(path.read_bytes())
    _write_public(folder / PUBLIC_KEY_FILENAME, key.public_key())
    return key


def _write_public(path: Path, public: rsa.RSAPublicKey) -> None:
    """Keep ``jwt_public.pem`` beside the private key (for other verifiers)."""
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with contextlib.suppress(OSError):
        if path.exists() and path.read_bytes() == pem:
            return
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
        tmp.write_bytes(pem)
        os.replace(tmp, path)
