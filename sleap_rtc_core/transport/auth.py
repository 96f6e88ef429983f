"""Peer authentication on the data channel (PROTOCOL.md B §4.2, A.3).

Every channel is authenticated before it carries a command, whatever the
offer said: ``"role":"client"`` in an offer (the reference's dashboard bypass)
never skips the challenge here.

* The worker (:func:`verify_peer`) sends ``AUTH_CHALLENGE`` with a fresh bound
  nonce, waits up to ``ChannelAuth.timeout`` seconds for the answer, refuses
  anything else meanwhile (``ERROR::AUTH_REQUIRED: …``; binary frames are
  dropped), and answers ``AUTH_SUCCESS`` or
  ``AUTH_FAILURE::invalid|missing|timeout``. A current client's ``AUTH_PROOF``
  must verify for this connection (:class:`ChannelBinding`) under the room
  secret or an authorized Ed25519 key, and gets the worker's own proof back; a
  one-way ``AUTH_RESPONSE`` is taken only from a 0.0.7 client.
* The client (:func:`authenticate`) waits for the challenge, proves the
  transcript of this connection with its Ed25519 key or the room secret, and
  checks the worker's proof; a 0.0.7 worker gets the one-way answer. A refusal
  either way raises :class:`ChannelAuthFailed`.

The cryptography lives in :mod:`sleap_rtc_core.protocol.channel_auth`; this
module only runs the exchange over a :class:`~.channel.Channel`; the binding
comes from the peer connection (:func:`~.peer.channel_binding`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..errors import ChannelAuthFailed
from ..protocol.channel_auth import (
    AUTH_MISSING,
    NONCE_BYTES,
    AuthChallengeMsg,
    AuthFailureMsg,
    AuthFailureReason,
    AuthProofMsg,
    AuthResponseMsg,
    AuthSuccessMsg,
    ChannelBinding,
    PublicKeyLike,
    answer_challenge,
    check_auth_response,
    check_client_proof,
    client_proof,
    is_bound_nonce,
    load_ed25519_private_key,
    make_nonce,
    room_key,
    verify_worker_proof,
    worker_proof,
)
from ..protocol.channel_legacy import ErrorMsg
from .channel import Channel

__all__ = [
    "AUTH_REQUIRED",
    "AuthorizedKeys",
    "ChannelAuth",
    "ChannelAuthFailed",
    "KeyCache",
    "authenticate",
    "verify_peer",
]

logger = logging.getLogger(__name__)

AUTH_REQUIRED = "AUTH_REQUIRED"
"""Code in the ``ERROR::`` reply to a command sent before ``AUTH_SUCCESS``."""

AuthorizedKeys = Callable[
    [], Iterable[PublicKeyLike] | Awaitable[Iterable[PublicKeyLike]]
]
"""Returns the room's authorized public keys (plain or awaitable)."""


@dataclass(frozen=True, slots=True)
class ChannelAuth:
    """Credentials and limits of the AUTH handshake, for either side.

    A client sets ``private_key`` and/or ``secret``; a worker sets ``secret``
    and/or ``authorized_keys``. With none of them a client answers ``missing``
    and a worker verifies nothing (every channel is refused).
    """

    secret: str | None = None
    """The room secret (PSK): base64url (as ``room create`` prints it) or any
    passphrase (:func:`~sleap_rtc_core.protocol.channel_auth.room_key`)."""

    private_key: Ed25519PrivateKey | str | None = None
    """The client's Ed25519 key (object, or 32 raw bytes in base64url)."""

    authorized_keys: AuthorizedKeys | None = None
    """Worker: returns the room's authorized public keys (see :class:`KeyCache`)."""

    timeout: float = 10.0
    """Worker: seconds to wait for ``AUTH_RESPONSE`` before ``timeout``."""

    client_timeout: float = 15.0
    """Client: seconds to wait for the challenge and for the verdict."""

    def __post_init__(self) -> None:
        if self.secret is not None:
            room_key(self.secret)  # an empty secret fails here, not per channel
        if isinstance(self.private_key, str):
            key = load_ed25519_private_key(self.private_key)
            object.__setattr__(self, "private_key", key)

    @property
    def signing_key(self) -> Ed25519PrivateKey | None:
        """The client's private key object, if any."""
        key = self.private_key
        return key if isinstance(key, Ed25519PrivateKey) else None

    async def public_keys(self) -> list[PublicKeyLike]:
        """The room's authorized keys now (empty without a source)."""
        if self.authorized_keys is None:
            return []
        result = self.authorized_keys()
        if inspect.isawaitable(result):
            result = await result
        return list(result)


@dataclass
class KeyCache:
    """Caches an async key source for ``ttl`` seconds (the reference keeps the
    server's list 5 minutes); pass the instance as ``authorized_keys``.

    A failing fetch keeps serving the last list it got (an empty one if none).
    """

    fetch: Callable[[], Awaitable[Iterable[PublicKeyLike]]]
    """Fetches the keys, e.g. from ``/api/rooms/{id}/authorized-keys``."""

    ttl: float = 300.0
    """Seconds a fetched list stays fresh."""

    _keys: list[PublicKeyLike] = field(default_factory=list, init=False)
    _fetched_at: float | None = field(default=None, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    async def __call__(self) -> list[PublicKeyLike]:
        async with self._lock:
            now = time.monotonic()
            if self._fetched_at is None or now - self._fetched_at >= self.ttl:
                try:
                    self._keys = list(await self.fetch())
                except Exception:
                    logger.exception("! cannot fetch the authorized keys")
                else:
                    self._fetched_at = now
            return list(self._keys)


def _our_nonce() -> str:
    return make_nonce(secrets.token_bytes(NONCE_BYTES))


async def verify_peer(
    channel: Channel,
    auth: ChannelAuth,
    *,
    binding: ChannelBinding,
    legacy: bool = False,
    nonce: str | None = None,
) -> AuthFailureReason | None:
    """Run the worker's side of the handshake; ``None`` when the peer passed.

    A current client proves the bound transcript (``AUTH_PROOF``) and gets our
    proof back; the one-way ``AUTH_RESPONSE`` of sleap-rtc 0.0.7 is taken only
    from a peer whose offer was a 0.0.7 one (``legacy``). On success
    ``channel.authenticated`` is set and ``AUTH_SUCCESS`` sent; on failure
    ``AUTH_FAILURE::<reason>`` is sent (the caller closes the channel).

    Raises:
        ChannelClosed: the channel closed during the handshake.
    """
    nonce = nonce or _our_nonce()
    await channel.send(AuthChallengeMsg(nonce))
    deadline = asyncio.get_running_loop().time() + auth.timeout
    answer: AuthResponseMsg | AuthProofMsg | None = None
    while answer is None:
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            item = await channel.recv(timeout=max(remaining, 0.0))
        except TimeoutError:
            break
        if isinstance(item, AuthResponseMsg | AuthProofMsg):
            answer = item
        elif isinstance(item, bytes):
            logger.warning("! %s sent bytes before AUTH; dropped", channel.peer_id)
        else:
            logger.warning(
                "! %s sent %s before AUTH; refused",
                channel.peer_id,
                getattr(item.TYPE, "value", type(item).__name__),
            )
            await channel.send(ErrorMsg(f"{AUTH_REQUIRED}: authenticate first"))
    keys = await auth.public_keys() if auth.authorized_keys else []
    success = AuthSuccessMsg()
    reason: AuthFailureReason | None
    if answer is None:
        reason = AuthFailureReason.TIMEOUT
    elif isinstance(answer, AuthResponseMsg) and answer.is_missing:
        reason = AuthFailureReason.MISSING
    elif isinstance(answer, AuthProofMsg):
        reason = check_client_proof(
            answer, nonce, binding, secret_b64url=auth.secret, public_keys=keys
        )
        proof = worker_proof(auth.secret, nonce, answer.client_nonce, binding)
        success = AuthSuccessMsg(proof)
    elif not legacy:
        logger.warning(
            "! %s offered as a current client but answered one-way; refused",
            channel.peer_id,
        )
        reason = AuthFailureReason.INVALID
    else:
        reason = check_auth_response(
            nonce, answer.value, secret_b64url=auth.secret, public_keys=keys
        )
    if reason is None:
        channel.authenticated = True
        await channel.send(success)
        logger.debug("= %s authenticated", channel.peer_id)
    else:
        logger.warning("! %s failed AUTH: %s", channel.peer_id, reason.value)
        await channel.send(AuthFailureMsg(reason))
    return reason


async def authenticate(
    channel: Channel,
    auth: ChannelAuth,
    *,
    binding: ChannelBinding,
    legacy_worker: bool = False,
    timeout: float | None = None,
) -> None:
    """Run the client's side of the handshake.

    Waits for ``AUTH_CHALLENGE``. A bound nonce (one of our workers') is
    answered with ``AUTH_PROOF`` over this connection's transcript, and the
    worker's ``AUTH_SUCCESS`` must carry its proof when we hold the room
    secret. Any other nonce is a 0.0.7 worker's: answered one-way only when
    the worker registered as one (``legacy_worker``). A worker sends nothing
    else before its verdict; anything else is logged and dropped.

    Raises:
        ChannelAuthFailed: the worker answered ``AUTH_FAILURE`` (its reason),
            did not prove itself, asked a one-way answer it may not have, or
            no challenge or verdict came in time (``timeout``).
        ChannelClosed: the channel closed during the handshake.
    """
    limit = auth.client_timeout if timeout is None else timeout
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    challenge: AuthChallengeMsg | None = None
    proof: AuthProofMsg | None = None
    while True:
        try:
            item = await channel.recv(timeout=max(deadline - loop.time(), 0.0))
        except TimeoutError:
            waiting_for = "AUTH_CHALLENGE" if challenge is None else "verdict"
            raise ChannelAuthFailed(
                f"no {waiting_for} from {channel.peer_id} within {limit:.0f} s",
                reason=AuthFailureReason.TIMEOUT,
            ) from None
        if isinstance(item, AuthChallengeMsg) and challenge is None:
            challenge = item
            proof = await _answer(channel, auth, item.nonce, binding, legacy_worker)
        elif isinstance(item, AuthSuccessMsg) and challenge is not None:
            if proof is not None:
                _check_worker(channel, auth, item, challenge.nonce, proof, binding)
            channel.authenticated = True
            logger.debug("= authenticated to %s", channel.peer_id)
            return
        elif isinstance(item, AuthFailureMsg):
            raise ChannelAuthFailed(
                f"{channel.peer_id} refused the channel ({item.reason.value}): "
                + _refusal(auth, item.reason),
                reason=item.reason,
            )
        else:
            logger.warning(
                "! %s sent %s during AUTH; dropped",
                channel.peer_id,
                "bytes" if isinstance(item, bytes) else type(item).__name__,
            )


def _refusal(auth: ChannelAuth, reason: AuthFailureReason) -> str:
    """What a worker's ``AUTH_FAILURE`` reason means for the person here."""
    if reason is AuthFailureReason.INVALID:
        if auth.secret is not None:
            return (
                "the room secrets differ: this client's (--room-secret, "
                "$SLEAP_ROOM_SECRET or ~/.sleap-rtc/room-secrets/ROOM) is not the "
                "worker's"
            )
        return "it does not know this client's key (not a room member's)"
    if reason is AuthFailureReason.MISSING:
        return "it wants the room secret and this client has none (--room-secret)"
    return "the answer did not reach it in time"


async def _answer(
    channel: Channel,
    auth: ChannelAuth,
    nonce: str,
    binding: ChannelBinding,
    legacy_worker: bool,
) -> AuthProofMsg | None:
    """Send our answer to the challenge; the proof we sent, if bound."""
    if is_bound_nonce(nonce):
        proof = client_proof(
            nonce,
            _our_nonce(),
            binding,
            private_key=auth.signing_key,
            secret_b64url=auth.secret,
        )
        if proof is None:
            await channel.send(AuthResponseMsg(AUTH_MISSING))
        else:
            await channel.send(proof)
        return proof
    if not legacy_worker:
        raise ChannelAuthFailed(
            f"{channel.peer_id} registered as a current worker but asked a "
            "one-way answer (a relayed or impostor worker); channel refused",
            reason=AuthFailureReason.INVALID,
        )
    value = answer_challenge(
        nonce, private_key=auth.signing_key, secret_b64url=auth.secret
    )
    await channel.send(AuthResponseMsg(value))
    return None


def _check_worker(
    channel: Channel,
    auth: ChannelAuth,
    success: AuthSuccessMsg,
    nonce: str,
    sent: AuthProofMsg,
    binding: ChannelBinding,
) -> None:
    """Refuse a worker whose ``AUTH_SUCCESS`` does not prove the room secret
    (when we hold it: without it we cannot check, and say so)."""
    if auth.secret is None:
        logger.info(
            "= %s accepted our key; without the room secret we cannot check it",
            channel.peer_id,
        )
        return
    if not verify_worker_proof(
        auth.secret, success.proof, nonce, sent.client_nonce, binding
    ):
        raise ChannelAuthFailed(
            f"{channel.peer_id} did not prove it holds the room secret "
            "(an impostor or relayed worker); channel refused",
            reason=AuthFailureReason.INVALID,
        )
