"""The P2P authentication handshake of the data channel (PROTOCOL.md B §4.2):
its ``AUTH_*`` messages and the pure helpers that make and check their values.

On channel open the worker sends ``AUTH_CHALLENGE::<nonce>`` (32 random bytes,
base64url without padding). The client answers ``AUTH_RESPONSE::<value>``, in
order of preference: an Ed25519 signature over the nonce *string* (UTF-8), an
HMAC-SHA256 keyed by the room secret over the nonce *bytes*, or ``missing``;
signatures and HMACs are base64url without padding. The worker replies
``AUTH_SUCCESS`` or ``AUTH_FAILURE::invalid|missing|timeout``, and runs no
command on a channel before ``AUTH_SUCCESS`` (A.3).

Randomness comes from the caller (``make_nonce(secrets.token_bytes(32))``) so
that everything here is a pure function; a fresh nonce per channel is what
defeats replay, since an answer only verifies for the nonce it was made for.
Base64url is decoded strictly (no padding, no stray bits), so one signature has
one spelling. Comparisons are constant-time. Malformed material of ours
(secret, keys, our own nonce) raises :class:`LocalProtocolError`; a malformed
nonce from the peer raises :class:`RemoteProtocolError`; a malformed answer
simply does not verify.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..errors import LocalProtocolError
from ._channel_args import NAME, enum_arg, invalid, is_b64url, local
from ._channel_base import ChannelMessage, ChannelMessageType

__all__ = [
    "AUTH_MISSING",
    "NONCE_BYTES",
    "AuthChallengeMsg",
    "AuthFailureMsg",
    "AuthFailureReason",
    "AuthResponseMsg",
    "AuthSuccessMsg",
    "PublicKeyLike",
    "answer_challenge",
    "b64url_decode",
    "b64url_encode",
    "check_auth_response",
    "ed25519_public_key_b64url",
    "ed25519_sign",
    "ed25519_verify",
    "load_ed25519_private_key",
    "load_ed25519_public_key",
    "make_nonce",
    "psk_response",
    "room_key",
    "verify_psk",
]

AUTH_MISSING = "missing"
"""The ``AUTH_RESPONSE`` value of a client that has no key or secret."""

NONCE_BYTES = 32
"""Random bytes in a challenge nonce (43 base64url characters)."""

_MIN_NONCE_BYTES = 16

PublicKeyLike = Ed25519PublicKey | str
"""A public key object, or its 32 raw bytes in base64url (as the server lists)."""


class AuthFailureReason(StrEnum):
    """Why the worker refused a channel (``AUTH_FAILURE::<reason>``)."""

    INVALID = "invalid"
    """The signature or HMAC did not verify."""
    MISSING = "missing"
    """The client answered ``missing``: it has no key or secret."""
    TIMEOUT = "timeout"
    """No ``AUTH_RESPONSE`` within the time allowed."""


# ------------------------------------------------------------------ messages


@dataclass(frozen=True, slots=True)
class AuthChallengeMsg(ChannelMessage):
    """``AUTH_CHALLENGE::<nonce>``: base64url without padding (43 chars)."""

    TYPE = ChannelMessageType.AUTH_CHALLENGE
    ARGS = (("nonce", NAME),)

    nonce: str

    def _check(self) -> None:
        if not is_b64url(self.nonce):
            raise local("AUTH_CHALLENGE nonce must be base64url without padding")


@dataclass(frozen=True, slots=True)
class AuthResponseMsg(ChannelMessage):
    """``AUTH_RESPONSE::<value>``: a signature, an HMAC or ``missing``."""

    TYPE = ChannelMessageType.AUTH_RESPONSE
    ARGS = (("value", NAME),)

    value: str

    @property
    def is_missing(self) -> bool:
        """The client has no credentials."""
        return self.value == AUTH_MISSING


@dataclass(frozen=True, slots=True)
class AuthSuccessMsg(ChannelMessage):
    """``AUTH_SUCCESS``: the channel may carry commands."""

    TYPE = ChannelMessageType.AUTH_SUCCESS


@dataclass(frozen=True, slots=True)
class AuthFailureMsg(ChannelMessage):
    """``AUTH_FAILURE::invalid|missing|timeout``."""

    TYPE = ChannelMessageType.AUTH_FAILURE
    ARGS = (("reason", enum_arg(AuthFailureReason)),)

    reason: AuthFailureReason


# ------------------------------------------------------------------ base64url


def b64url_encode(data: bytes) -> str:
    """URL-safe base64 without ``=`` padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strictly decode URL-safe base64 without padding.

    Raises:
        ValueError: when ``text`` holds other characters, padding, a length no
            byte string encodes to, or non-zero unused bits (a second spelling
            of the same bytes).
    """
    if not isinstance(text, str) or not is_b64url(text):
        raise ValueError("not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        raise ValueError("not unpadded base64url") from None
    if b64url_encode(data) != text:
        raise ValueError("not canonical base64url")
    return data


# ------------------------------------------------------------------ nonces, PSK


def make_nonce(random_bytes: bytes) -> str:
    """The challenge nonce for these random bytes (pass ``NONCE_BYTES`` of them).

    Raises:
        LocalProtocolError: fewer than 16 bytes.
    """
    if len(random_bytes) < _MIN_NONCE_BYTES:
        raise LocalProtocolError(f"a nonce needs >= {_MIN_NONCE_BYTES} random bytes")
    return b64url_encode(bytes(random_bytes))


def _peer_nonce(nonce: str) -> bytes:
    """The bytes of a nonce the worker sent us."""
    try:
        return b64url_decode(nonce)
    except ValueError:
        raise invalid("the challenge nonce is not unpadded base64url") from None


def _own_nonce(nonce: str) -> bytes:
    """The bytes of a nonce we made."""
    try:
        return b64url_decode(nonce)
    except ValueError:
        raise LocalProtocolError("our nonce is not unpadded base64url") from None


_B64URL_ALPHABET = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_="
)


def room_key(secret: str) -> bytes:
    """The HMAC key of a room secret.

    A secret written in base64url (``sleap-rtc room create`` prints one; so do
    sleap-rtc 0.0.7 labs) is the key's bytes, decoded as 0.0.7 decodes it
    (padding added, stray bits ignored), so both stay compatible. Any other
    text is a passphrase: its key is SHA-256 of its UTF-8 bytes.

    Raises:
        LocalProtocolError: an empty secret.
    """
    if not isinstance(secret, str) or not secret.strip():
        raise LocalProtocolError("the room secret is empty")
    text = secret.strip()
    if set(text) <= _B64URL_ALPHABET and len(text.rstrip("=")) % 4 != 1:
        try:
            body = text.rstrip("=")
            key = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            key = b""
        if key:
            return key
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def _secret_bytes(secret: str) -> bytes:
    return room_key(secret)


def _hmac(secret: bytes, nonce: bytes) -> str:
    return b64url_encode(hmac.new(secret, nonce, hashlib.sha256).digest())


def psk_response(secret_b64url: str, nonce: str) -> str:
    """HMAC-SHA256(key = secret bytes, msg = nonce bytes), base64url.

    Raises:
        LocalProtocolError: the secret is empty.
        RemoteProtocolError: the nonce is not base64url.
    """
    return _hmac(_secret_bytes(secret_b64url), _peer_nonce(nonce))


def verify_psk(secret_b64url: str, nonce: str, response: str) -> bool:
    """Whether ``response`` is the HMAC of ``nonce`` (constant-time compare).

    Raises:
        LocalProtocolError: the secret or our own nonce is malformed.
    """
    expected = _hmac(_secret_bytes(secret_b64url), _own_nonce(nonce))
    if not isinstance(response, str):
        return False
    given = response.encode("utf-8", "surrogatepass")
    return hmac.compare_digest(expected.encode("ascii"), given)


# ------------------------------------------------------------------ Ed25519


def load_ed25519_private_key(b64url: str) -> Ed25519PrivateKey:
    """A private key from its 32 raw bytes in base64url.

    Raises:
        LocalProtocolError: not 32 bytes of base64url.
    """
    try:
        return Ed25519PrivateKey.from_private_bytes(b64url_decode(b64url))
    except ValueError:
        raise LocalProtocolError("not an Ed25519 private key") from None


def load_ed25519_public_key(b64url: str) -> Ed25519PublicKey:
    """A public key from its 32 raw bytes in base64url.

    Raises:
        LocalProtocolError: not 32 bytes of base64url.
    """
    try:
        return Ed25519PublicKey.from_public_bytes(b64url_decode(b64url))
    except ValueError:
        raise LocalProtocolError("not an Ed25519 public key") from None


def ed25519_public_key_b64url(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """The raw public key in base64url (the form the server lists)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return b64url_encode(public.public_bytes(Encoding.Raw, PublicFormat.Raw))


def ed25519_sign(private_key: Ed25519PrivateKey, nonce: str) -> str:
    """The signature of the nonce string (UTF-8), base64url.

    Raises:
        RemoteProtocolError: the nonce is not base64url (we only sign nonces,
            never other text a peer hands us).
    """
    _peer_nonce(nonce)
    return b64url_encode(private_key.sign(nonce.encode("ascii")))


def ed25519_verify(
    public_keys: PublicKeyLike | Iterable[PublicKeyLike], nonce: str, signature: str
) -> bool:
    """Whether ``signature`` signs ``nonce`` under one of the keys.

    Entries that are not keys (text that does not decode, other objects) count
    as not matching, so that one bad entry in an authorized-keys list does not
    lock everyone out.
    """
    if isinstance(public_keys, Ed25519PublicKey | str):
        public_keys = [public_keys]
    try:
        sig = b64url_decode(signature)
        message = nonce.encode("utf-8")
    except (ValueError, AttributeError):
        return False
    for entry in public_keys:
        key = _as_public_key(entry)
        if key is None:
            continue
        try:
            key.verify(sig, message)
        except InvalidSignature:
            continue
        return True
    return False


def _as_public_key(entry: object) -> Ed25519PublicKey | None:
    if isinstance(entry, Ed25519PublicKey):
        return entry
    if isinstance(entry, str):
        try:
            return load_ed25519_public_key(entry)
        except LocalProtocolError:
            return None
    return None


# ------------------------------------------------------------------ both ends


def answer_challenge(
    nonce: str,
    *,
    private_key: Ed25519PrivateKey | None = None,
    secret_b64url: str | None = None,
) -> str:
    """The client's ``AUTH_RESPONSE`` value: a signature if it has a key, else
    an HMAC if it has the room secret, else ``missing``.

    Raises:
        LocalProtocolError: the secret is malformed.
        RemoteProtocolError: the nonce is not base64url.
    """
    if private_key is not None:
        return ed25519_sign(private_key, nonce)
    if secret_b64url is not None:
        return psk_response(secret_b64url, nonce)
    return AUTH_MISSING


def check_auth_response(
    nonce: str,
    value: str,
    *,
    secret_b64url: str | None = None,
    public_keys: Iterable[PublicKeyLike] = (),
) -> AuthFailureReason | None:
    """The worker's verdict on an ``AUTH_RESPONSE``: ``None`` if it verifies
    (HMAC under the room secret, or a signature by an authorized key), else
    why not. With neither a secret nor keys nothing verifies.

    Raises:
        LocalProtocolError: the secret or our nonce is malformed.
    """
    _own_nonce(nonce)
    if value == AUTH_MISSING:
        return AuthFailureReason.MISSING
    if secret_b64url is not None and verify_psk(secret_b64url, nonce, value):
        return None
    if ed25519_verify(list(public_keys), nonce, value):
        return None
    return AuthFailureReason.INVALID
