"""Peer authentication on the data channel (PROTOCOL.md B §4.2, A.3).

Every channel is authenticated before it carries a command, whatever the
offer said: ``"role":"client"`` in an offer (the reference's dashboard bypass)
never skips the challenge here.

* The worker (:func:`verify_peer`) sends ``AUTH_CHALLENGE::<nonce>`` with a
  fresh nonce, waits up to ``ChannelAuth.timeout`` seconds for
  ``AUTH_RESPONSE``, refuses anything else meanwhile (``ERROR::AUTH_REQUIRED:
  …``; binary frames are dropped), and answers ``AUTH_SUCCESS`` or
  ``AUTH_FAILURE::invalid|missing|timeout``. A response verifies under the room
  secret (HMAC) or under one of the room's authorized Ed25519 keys.
* The client (:func:`authenticate`) waits for the challenge, answers with its
  Ed25519 signature, else the HMAC under the room secret, else ``missing``,
  and waits for the verdict; a refusal raises :class:`ChannelAuthFailed`.

The cryptography lives in :mod:`sleap_rtc_core.protocol.channel_auth`; this
module only runs the exchange over a :class:`~.channel.Channel`.
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
    NONCE_BYTES,
    AuthChallengeMsg,
    AuthFailureMsg,
    AuthFailureReason,
    AuthResponseMsg,
    AuthSuccessMsg,
    PublicKeyLike,
    answer_challenge,
    check_auth_response,
    load_ed25519_private_key,
    make_nonce,
    room_key,
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


async def verify_peer(
    channel: Channel, auth: ChannelAuth, *, nonce: str | None = None
) -> AuthFailureReason | None:
    """Run the worker's side of the handshake; ``None`` when the peer passed.

    On success ``channel.authenticated`` is set and ``AUTH_SUCCESS`` sent; on
    failure ``AUTH_FAILURE::<reason>`` is sent (the caller closes the channel).

    Raises:
        ChannelClosed: the channel closed during the handshake.
    """
    nonce = nonce or make_nonce(secrets.token_bytes(NONCE_BYTES))
    await channel.send(AuthChallengeMsg(nonce))
    deadline = asyncio.get_running_loop().time() + auth.timeout
    response: AuthResponseMsg | None = None
    while response is None:
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            item = await channel.recv(timeout=max(remaining, 0.0))
        except TimeoutError:
            break
        if isinstance(item, AuthResponseMsg):
            response = item
        elif isinstance(item, bytes):
            logger.warning("! %s sent bytes before AUTH; dropped", channel.peer_id)
        else:
            logger.warning(
                "! %s sent %s before AUTH; refused",
                channel.peer_id,
                getattr(item.TYPE, "value", type(item).__name__),
            )
            await channel.send(ErrorMsg(f"{AUTH_REQUIRED}: authenticate first"))
    if response is None:
        reason: AuthFailureReason | None = AuthFailureReason.TIMEOUT
    else:
        reason = check_auth_response(
            nonce,
            response.value,
            secret_b64url=auth.secret,
            public_keys=await auth.public_keys() if auth.authorized_keys else (),
        )
    if reason is None:
        channel.authenticated = True
        await channel.send(AuthSuccessMsg())
        logger.debug("= %s authenticated", channel.peer_id)
    else:
        logger.warning("! %s failed AUTH: %s", channel.peer_id, reason.value)
        await channel.send(AuthFailureMsg(reason))
    return reason


async def authenticate(
    channel: Channel, auth: ChannelAuth, *, timeout: float | None = None
) -> None:
    """Run the client's side of the handshake.

    Waits for ``AUTH_CHALLENGE``, answers it, and waits for the verdict. A
    worker sends nothing else before its verdict; anything else is logged and
    dropped.

    Raises:
        ChannelAuthFailed: the worker answered ``AUTH_FAILURE`` (its reason),
            or no challenge or verdict came in time (``timeout``).
        ChannelClosed: the channel closed during the handshake.
    """
    limit = auth.client_timeout if timeout is None else timeout
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    answered = False
    while True:
        try:
            item = await channel.recv(timeout=max(deadline - loop.time(), 0.0))
        except TimeoutError:
            waiting_for = "verdict" if answered else "AUTH_CHALLENGE"
            raise ChannelAuthFailed(
                f"no {waiting_for} from {channel.peer_id} within {limit:.0f} s",
                reason=AuthFailureReason.TIMEOUT,
            ) from None
        if isinstance(item, AuthChallengeMsg) and not answered:
            value = answer_challenge(
                item.nonce, private_key=auth.signing_key, secret_b64url=auth.secret
            )
            await channel.send(AuthResponseMsg(value))
            answered = True
        elif isinstance(item, AuthSuccessMsg) and answered:
            channel.authenticated = True
            logger.debug("= authenticated to %s", channel.peer_id)
            return
        elif isinstance(item, AuthFailureMsg):
            raise ChannelAuthFailed(
                f"{channel.peer_id} refused the channel: {item.reason.value}",
                reason=item.reason,
            )
        else:
            logger.warning(
                "! %s sent %s during AUTH; dropped",
                channel.peer_id,
                "bytes" if isinstance(item, bytes) else type(item).__name__,
            )
