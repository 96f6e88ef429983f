"""Who may ``register``, and as whom: credentials checked against the store.

The precedence is the reference server's (PROTOCOL.md B §1.2), with the reasons
of B §1.4, plus the room-token path that a self-hosted lab needs:

1. ``api_key`` starting with ``slp_``: an account key ``slp_acct_…`` (needs
   ``room_id`` and a membership) or a worker key ``slp_…`` (its room; a
   ``room_id`` naming another room is refused, where the reference ignores it);
2. ``jwt``: a sleap-rtc RS256 JWT, needs ``room_id`` and a membership;
3. ``id_token``: legacy Cognito, always refused;
4. ``room_id`` + ``token``: the room token (our addition);
5. otherwise "No authentication provided…".

Keys are looked up by their SHA-256 digest and the room token is compared in
constant time. The result is an :class:`Identity` the server binds to the socket;
nothing secret is in it.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ...errors import AuthError, ErrorCode
from ...protocol.signaling import Register
from ..store.auth_store import ACCOUNT_KEY_PREFIX, WORKER_KEY_PREFIX, Store
from ..store.records import (
    Room,
    User,
    member_credential,
    room_credential,
    user_credential,
)
from .jwt_keys import JwtKeys

__all__ = ["NO_AUTH", "Authenticator", "CredentialKind", "Identity"]

NO_AUTH = "No authentication provided. Use api_key, jwt, or id_token."


class CredentialKind(StrEnum):
    """Which credential a peer registered with."""

    ROOM_TOKEN = "room_token"
    WORKER_KEY = "worker_key"
    ACCOUNT_KEY = "account_key"
    JWT = "jwt"


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated peer, as the server binds it to the socket.

    Attributes:
        room_id: The room the credential admits to.
        kind: The credential used.
        principal: Who registered: ``user:<id>`` (JWT, account key), the worker
            key's ``wk_…`` id, or ``room:<id>`` (room token). A new socket may
            take over a live peer id only with the same principal.
        display_name: The username, or the worker key's worker name.
        credential_id: The non-secret id to revoke this credential by: ``wk_…``,
            ``ak_…``, ``user:<id>`` (JWT) or ``room:<id>`` (room token).
        user_id: The user behind a JWT or account key, else ``None``.
        revocation_ids: Every revocation id that must disconnect this peer (its
            credential, its room, its membership, its user).
        server_metadata: The ``_``-prefixed metadata the server injects, e.g.
            ``{"_worker_name": …, "_token_id": "wk_…"}``; never a secret.
    """

    room_id: str
    kind: CredentialKind
    principal: str
    display_name: str
    credential_id: str
    user_id: str | None = None
    revocation_ids: frozenset[str] = frozenset()
    server_metadata: dict[str, Any] = field(
        default_factory=dict, hash=False, compare=False
    )


class Authenticator:
    """Checks the credentials of a ``register`` message.

    Args:
        store: Users, rooms and keys.
        jwt_keys: Verifies JWTs.
        clock: Seconds since the epoch, for expiry (injectable).

    :meth:`authenticate` blocks on SQLite for microseconds; from the event loop,
    call :meth:`authenticate_async` (or ``asyncio.to_thread``).
    """

    def __init__(
        self,
        store: Store,
        jwt_keys: JwtKeys,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.jwt_keys = jwt_keys
        self.clock = clock

    async def authenticate_async(self, register: Register) -> Identity:
        """:meth:`authenticate` in a worker thread."""
        return await asyncio.to_thread(self.authenticate, register)

    def authenticate(self, register: Register) -> Identity:
        """The identity the credentials in ``register`` prove.

        Raises:
            AuthError: ``AUTH_FAILED`` (unknown, revoked or expired key, a key of
                another room, forged, foreign or expired JWT, unknown user, not a
                member, wrong room token, no credential), ``ROOM_NOT_FOUND`` or
                ``ROOM_EXPIRED``, with the reference's reason as the message.
        """
        api_key = register.api_key
        room_id = self._room_ref(register.room_id)
        if api_key and api_key.startswith(ACCOUNT_KEY_PREFIX):
            return self._account_key(api_key, room_id)
        if api_key and api_key.startswith(WORKER_KEY_PREFIX):
            return self._worker_key(api_key, room_id)
        if register.jwt:
            return self._jwt(register.jwt, room_id)
        if register.id_token:
            raise AuthError("Cognito tokens are not supported")
        if room_id and register.token:
            return self._room_token(room_id, register.token)
        raise AuthError(NO_AUTH)

    def _room_ref(self, ref: str | None) -> str | None:
        """The room id ``ref`` names: itself, else the id of the one room with
        that display name (as the admin commands accept), so ``--room "Lab A"``
        works; an unknown name stays as given (``ROOM_NOT_FOUND`` follows).

        Raises:
            AuthError: several rooms have that name (``ROOM_NOT_FOUND``, with
                what to do).
        """
        if not ref or self.store.get_room(ref) is not None:
            return ref
        named = self.store.rooms_named(ref)
        if len(named) > 1:
            raise AuthError(
                f"several rooms are named {ref!r}: use the room id",
                code=ErrorCode.ROOM_NOT_FOUND,
            )
        return named[0].room_id if named else ref

    # --- the paths

    def _worker_key(self, api_key: str, room_id: str | None) -> Identity:
        token = self.store.find_worker_token(api_key)
        if token is None:
            raise AuthError("Invalid API key")
        if token.revoked_at is not None:
            raise AuthError("Token revoked")
        if token.expired(self.clock()):
            raise AuthError("Token expired")
        if room_id and room_id != token.room_id:
            # The reference ignores room_id here; naming another room is refused
            # rather than silently joining the key's own room.
            raise AuthError("API key is not valid for this room")
        room = self._room(token.room_id)
        return Identity(
            room_id=room.room_id,
            kind=CredentialKind.WORKER_KEY,
            principal=token.token_id,
            display_name=token.worker_name,
            credential_id=token.token_id,
            revocation_ids=frozenset({token.token_id, room_credential(room.room_id)}),
            server_metadata={
                "_worker_name": token.worker_name,
                "_token_id": token.token_id,
            },
        )

    def _account_key(self, api_key: str, room_id: str | None) -> Identity:
        key = self.store.find_account_key(api_key)
        if key is None:
            raise AuthError("Invalid API key")
        if key.revoked_at is not None:
            raise AuthError("Token revoked")
        if not room_id:
            raise AuthError("room_id required for account key auth")
        user = self._member(key.user_id, room_id)
        ident = self._user_identity(user, room_id, CredentialKind.ACCOUNT_KEY)
        return Identity(
            room_id=ident.room_id,
            kind=ident.kind,
            principal=ident.principal,
            display_name=ident.display_name,
            credential_id=key.key_id,
            user_id=user.user_id,
            revocation_ids=ident.revocation_ids | {key.key_id},
            server_metadata={**ident.server_metadata, "_key_id": key.key_id},
        )

    def _jwt(self, token: str, room_id: str | None) -> Identity:
        if not room_id:
            raise AuthError("room_id required for JWT auth")
        claims = self.jwt_keys.verify(token)
        user = self._member(claims["sub"], room_id)
        return self._user_identity(user, room_id, CredentialKind.JWT)

    def _room_token(self, room_id: str, token: str) -> Identity:
        room = self._room(room_id, check_expiry=False)
        if not hmac.compare_digest(room.token.encode(), token.encode()):
            raise AuthError("Invalid token")
        self._check_expiry(room)
        cred = room_credential(room_id)
        return Identity(
            room_id=room_id,
            kind=CredentialKind.ROOM_TOKEN,
            principal=cred,
            display_name="room-token",
            credential_id=cred,
            revocation_ids=frozenset({cred}),
        )

    # --- helpers

    def _room(self, room_id: str, *, check_expiry: bool = True) -> Room:
        room = self.store.get_room(room_id)
        if room is None:
            raise AuthError("Room not found", code=ErrorCode.ROOM_NOT_FOUND)
        if check_expiry:
            self._check_expiry(room)
        return room

    def _check_expiry(self, room: Room) -> None:
        if room.expired(self.clock()):
            raise AuthError("Room expired", code=ErrorCode.ROOM_EXPIRED)

    def _member(self, user_id: str, room_id: str) -> User:
        self._room(room_id)
        user = self.store.get_user(user_id)
        if user is None:
            raise AuthError("Unknown user")
        if self.store.get_membership(room_id, user_id) is None:
            raise AuthError("No access to this room")
        return user

    @staticmethod
    def _user_identity(user: User, room_id: str, kind: CredentialKind) -> Identity:
        principal = user_credential(user.user_id)
        return Identity(
            room_id=room_id,
            kind=kind,
            principal=principal,
            display_name=user.username,
            credential_id=principal,
            user_id=user.user_id,
            revocation_ids=frozenset(
                {
                    principal,
                    member_credential(room_id, user.user_id),
                    room_credential(room_id),
                }
            ),
            server_metadata={"_username": user.username, "_user_id": user.user_id},
        )
