"""The P2P authentication handshake of the data channel (PROTOCOL.md B §4.2):
its ``AUTH_*`` messages and the pure helpers that make and check their values.

On channel open the worker sends ``AUTH_CHALLENGE::<nonce>`` (32 bytes,
base64url without padding). What follows depends on who answers:

* **Two current peers: mutual and bound to this connection.** Our workers'
  nonces are *bound nonces*: 16 random bytes followed by 16 bytes of their
  SHA-256 under a fixed label (:func:`is_bound_nonce`). A current client that
  sees one answers ``AUTH_PROOF::<method>::<client nonce>::<proof>``: an HMAC
  under the room secret (``psk``) or an Ed25519 signature (``ed25519``) over
  the :func:`transcript`, which names both nonces, both peer ids and the DTLS
  certificate fingerprints of both ends of *this* connection. The worker checks
  it against its own view of the connection and answers
  ``AUTH_SUCCESS::<proof>``, its HMAC over the same transcript (or ``none``
  when it holds no room secret); a client holding the secret refuses a worker
  whose proof does not verify. An answer relayed from another connection names
  other fingerprints and other peers, so it verifies nowhere else.
* **A sleap-rtc 0.0.7 peer: the one-way scheme.** The client answers
  ``AUTH_RESPONSE::<value>``: an Ed25519 signature over the nonce *string*
  (UTF-8), an HMAC-SHA256 keyed by the room secret over the nonce *bytes*, or
  ``missing``; the worker replies ``AUTH_SUCCESS`` or
  ``AUTH_FAILURE::invalid|missing|timeout``. Our client answers this way only
  to a nonce that is not bound (a 0.0.7 worker's): a bound nonce came from one
  of our workers, so a peer asking for a one-way answer to it is relaying.

No command runs on a channel before ``AUTH_SUCCESS`` (A.3).

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
from ._channel_args import NAME, OPT_NAME, enum_arg, invalid, is_b64url, local
from ._channel_base import ChannelMessage, ChannelMessageType

__all__ = [
    "AUTH_MISSING",
    "NONCE_BYTES",
    "NO_PROOF",
    "AuthChallengeMsg",
    "AuthFailureMsg",
    "AuthFailureReason",
    "AuthMethod",
    "AuthProofMsg",
    "AuthResponseMsg",
    "AuthSuccessMsg",
    "ChannelBinding",
    "PublicKeyLike",
    "answer_challenge",
    "check_client_proof",
    "client_proof",
    "b64url_decode",
    "b64url_encode",
    "check_auth_response",
    "ed25519_public_key_b64url",
    "ed25519_sign",
    "ed25519_verify",
    "load_ed25519_private_key",
    "load_ed25519_public_key",
    "is_bound_nonce",
    "make_nonce",
    "psk_response",
    "room_key",
    "transcript",
    "verify_psk",
    "verify_worker_proof",
    "worker_proof",
]

AUTH_MISSING = "missing"
"""The ``AUTH_RESPONSE`` value of a client that has no key or secret."""

NONCE_BYTES = 32
"""Bytes in a challenge nonce (43 base64url characters)."""

NO_PROOF = "none"
"""The proof in ``AUTH_SUCCESS`` of a worker that holds no room secret."""

_MIN_NONCE_BYTES = 16
_BOUND_RANDOM_BYTES = 16
_BOUND_NONCE_LABEL = b"sleap-rtc bound nonce v2\x00"
_TRANSCRIPT_LABEL = b"sleap-rtc channel auth v2"

PublicKeyLike = Ed25519PublicKey | str
"""A public key object, or its 32 raw bytes in base64url (as the server lists)."""


class AuthMethod(StrEnum):
    """How a current client proves itself in ``AUTH_PROOF``."""

    PSK = "psk"
    """HMAC-SHA256 under the room secret's key."""
    ED25519 = "ed25519"
    """Ed25519 signature by a room member's key."""


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
class AuthProofMsg(ChannelMessage):
    """``AUTH_PROOF::<method>::<client nonce>::<proof>``: a current client's
    answer to a bound nonce (see the module docstring)."""

    TYPE = ChannelMessageType.AUTH_PROOF
    ARGS = (
        ("method", enum_arg(AuthMethod)),
        ("client_nonce", NAME),
        ("proof", NAME),
    )

    method: AuthMethod
    client_nonce: str
    proof: str

    def _check(self) -> None:
        if not is_b64url(self.client_nonce):
            raise local("AUTH_PROOF client nonce must be base64url without padding")


@dataclass(frozen=True, slots=True)
class AuthSuccessMsg(ChannelMessage):
    """``AUTH_SUCCESS`` (to a 0.0.7 client) or ``AUTH_SUCCESS::<proof>`` (to a
    current one: the worker's HMAC over the transcript, or ``none``): the
    channel may carry commands."""

    TYPE = ChannelMessageType.AUTH_SUCCESS
    ARGS = (("proof", OPT_NAME),)
    MIN_ARGS = 0

    proof: str | None = None


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


def _nonce_tag(random_part: bytes) -> bytes:
    digest = hashlib.sha256(_BOUND_NONCE_LABEL + random_part).digest()
    return digest[: NONCE_BYTES - _BOUND_RANDOM_BYTES]


def make_nonce(random_bytes: bytes) -> str:
    """The bound challenge nonce made from these random bytes (pass
    ``NONCE_BYTES`` of them; the first 16 are used).

    Raises:
        LocalProtocolError: fewer than 16 bytes.
    """
    if len(random_bytes) < _MIN_NONCE_BYTES:
        raise LocalProtocolError(f"a nonce needs >= {_MIN_NONCE_BYTES} random bytes")
    random_part = bytes(random_bytes[:_BOUND_RANDOM_BYTES])
    return b64url_encode(random_part + _nonce_tag(random_part))


def is_bound_nonce(nonce: str) -> bool:
    """Whether a challenge nonce was made by :func:`make_nonce` (one of our
    workers'); a 0.0.7 worker's random nonce is one by chance 1 in 2^128."""
    try:
        raw = b64url_decode(nonce)
    except ValueError:
        return False
    if len(raw) != NONCE_BYTES:
        return False
    random_part = raw[:_BOUND_RANDOM_BYTES]
    return hmac.compare_digest(raw[_BOUND_RANDOM_BYTES:], _nonce_tag(random_part))


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


# ------------------------------------------------------------------ bound proofs


@dataclass(frozen=True, slots=True)
class ChannelBinding:
    """What names one connection: both peer ids and the DTLS certificate
    fingerprints of both ends (``"sha-256 AB:CD:…"`` lines, sorted, one per
    algorithm), each as that side sees it. Both ends of one honest connection
    build the same binding; ends of two relayed connections cannot."""

    client_id: str
    worker_id: str
    client_fingerprints: tuple[str, ...]
    worker_fingerprints: tuple[str, ...]


def _field(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def transcript(
    role: str, worker_nonce: str, client_nonce: str, binding: ChannelBinding
) -> bytes:
    """The bytes a side proves for ``role`` (``client`` or ``worker``): every
    field length-prefixed, so no two transcripts read alike."""
    parts = [
        _TRANSCRIPT_LABEL,
        role.encode(),
        worker_nonce.encode(),
        client_nonce.encode(),
        binding.client_id.encode("utf-8", "surrogatepass"),
        binding.worker_id.encode("utf-8", "surrogatepass"),
        "\n".join(binding.client_fingerprints).encode(),
        "\n".join(binding.worker_fingerprints).encode(),
    ]
    return b"".join(_field(p) for p in parts)


def _transcript_mac(secret: str, message: bytes) -> str:
    return b64url_encode(hmac.new(room_key(secret), message, hashlib.sha256).digest())


def _same(expected: str, given: object) -> bool:
    if not isinstance(given, str):
        return False
    return hmac.compare_digest(
        expected.encode("ascii"), given.encode("utf-8", "surrogatepass")
    )


def client_proof(
    worker_nonce: str,
    client_nonce: str,
    binding: ChannelBinding,
    *,
    private_key: Ed25519PrivateKey | None = None,
    secret_b64url: str | None = None,
) -> AuthProofMsg | None:
    """The client's ``AUTH_PROOF``: signed with its key if it has one, else an
    HMAC under the room secret; ``None`` with neither.

    Raises:
        LocalProtocolError: the secret is empty.
        RemoteProtocolError: the worker's nonce is not base64url.
    """
    _peer_nonce(worker_nonce)
    message = transcript("client", worker_nonce, client_nonce, binding)
    if private_key is not None:
        signature = b64url_encode(private_key.sign(message))
        return AuthProofMsg(AuthMethod.ED25519, client_nonce, signature)
    if secret_b64url is not None:
        mac = _transcript_mac(secret_b64url, message)
        return AuthProofMsg(AuthMethod.PSK, client_nonce, mac)
    return None


def check_client_proof(
    msg: AuthProofMsg,
    worker_nonce: str,
    binding: ChannelBinding,
    *,
    secret_b64url: str | None = None,
    public_keys: Iterable[PublicKeyLike] = (),
) -> AuthFailureReason | None:
    """The worker's verdict on an ``AUTH_PROOF``: ``None`` if it verifies for
    this connection, else ``invalid``.

    Raises:
        LocalProtocolError: the secret or our nonce is malformed.
    """
    _own_nonce(worker_nonce)
    message = transcript("client", worker_nonce, msg.client_nonce, binding)
    if msg.method is AuthMethod.PSK:
        if secret_b64url is not None and _same(
            _transcript_mac(secret_b64url, message), msg.proof
        ):
            return None
        return AuthFailureReason.INVALID
    try:
        signature = b64url_decode(msg.proof)
    except ValueError:
        return AuthFailureReason.INVALID
    for entry in public_keys:
        key = _as_public_key(entry)
        if key is None:
            continue
        try:
            key.verify(signature, message)
        except InvalidSignature:
            continue
        return None
    return AuthFailureReason.INVALID


def worker_proof(
    secret_b64url: str | None,
    worker_nonce: str,
    client_nonce: str,
    binding: ChannelBinding,
) -> str:
    """The worker's proof in ``AUTH_SUCCESS``: its HMAC over the transcript,
    or :data:`NO_PROOF` when it holds no room secret (it knows only keys)."""
    if secret_b64url is None:
        return NO_PROOF
    message = transcript("worker", worker_nonce, client_nonce, binding)
    return _transcript_mac(secret_b64url, message)


def verify_worker_proof(
    secret_b64url: str,
    proof: str | None,
    worker_nonce: str,
    client_nonce: str,
    binding: ChannelBinding,
) -> bool:
    """Whether the worker's ``AUTH_SUCCESS`` proof shows it holds the room
    secret and sees this very connection."""
    expected = worker_proof(secret_b64url, worker_nonce, client_nonce, binding)
    return _same(expected, proof)


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
