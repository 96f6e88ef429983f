"""What the HTTP route modules share: errors, JSON, callers, the live view.

The API is transport-agnostic: it takes an :class:`~.wire.HttpRequest` and
returns an :class:`~.wire.HttpResponse`, and reads the server's live state only
through :class:`LiveView`, which the signaling server implements. Every store call
goes through ``asyncio.to_thread`` (:meth:`ApiContext.db`).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ParamSpec, Protocol, TypeVar

from ...errors import AuthError, HttpError, RemoteProtocolError
from ...protocol.json_text import dumps_bytes, loads_object
from ..auth.github import GitHubOAuth
from ..auth.jwt_keys import JwtKeys
from ..store.auth_store import ACCOUNT_KEY_PREFIX, WORKER_KEY_PREFIX, Store
from ..store.records import MemberRole, Membership, Room, User
from .wire import HttpRequest, HttpResponse

__all__ = [
    "ApiContext",
    "Caller",
    "FailureLimiter",
    "HttpApiConfig",
    "HttpError",
    "LiveView",
    "PeerView",
    "Route",
    "RouteTable",
    "body_int",
    "body_str",
    "json_response",
    "client_host",
    "parse_body",
]

P = ParamSpec("P")
T = TypeVar("T")


def json_response(
    status: int, obj: Any, headers: Mapping[str, str] | None = None
) -> HttpResponse:
    """A JSON response (``Cache-Control: no-store`` is added by the server)."""
    return HttpResponse(
        status, dumps_bytes(obj), "application/json", dict(headers or {})
    )


class PeerView(Protocol):
    """A connected peer as the API sees it (the server's peer record fits)."""

    @property
    def peer_id(self) -> str: ...
    @property
    def room_id(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def metadata(self) -> dict[str, Any]: ...
    @property
    def connected_at(self) -> float: ...
    @property
    def principal(self) -> str: ...
    @property
    def credential_id(self) -> str | None: ...


class LiveView(Protocol):
    """What the API needs from the running server (all calls are on the loop)."""

    def room_peers(self, room_id: str) -> Sequence[PeerView]:
        """The peers registered in a room (``_`` metadata included)."""
        ...

    def find_peers(self, peer_id: str) -> Sequence[PeerView]:
        """Every registered peer with this id, in any room."""
        ...

    def disconnect_credential(self, credential_id: str, reason: str) -> int:
        """Close every peer whose identity lists this revocation id."""
        ...

    def disconnect_peer(self, room_id: str, peer_id: str) -> bool:
        """Close one peer's connection."""
        ...


@dataclass(frozen=True, slots=True)
class HttpApiConfig:
    """Settings of the auth HTTP API."""

    github_client_id: str | None = None
    """GitHub OAuth app client id; with the secret, enables GitHub login."""

    github_client_secret: str | None = field(default=None, repr=False)
    """GitHub OAuth app secret."""

    github_redirect_uri: str | None = None
    """The callback registered with GitHub (this server's ``/login`` page)."""

    max_body_bytes: int = 64 * 1024
    """Largest request body accepted (413 beyond)."""

    room_ttl_days: int = 30
    """Default room lifetime for ``POST /api/auth/rooms``."""

    token_ttl_days: int = 7
    """Default worker key lifetime for ``POST /api/auth/token``."""

    invite_ttl: float = 3600.0
    """Seconds an invite code stays valid."""

    cli_deposit_ttl: float = 300.0
    """Seconds a CLI login deposit waits for its poller."""

    login_failures: int = 10
    """Failed logins (or invite joins) per client allowed in ``login_window``."""

    login_failures_per_address: int = 40
    """Failed logins from one address, whatever the user names, allowed in
    ``login_window`` (spraying many names from one address is throttled too)."""

    login_window: float = 300.0
    """Seconds over which failures are counted."""

    max_account_keys: int = 50
    """Active account keys one user may hold."""

    max_worker_keys: int = 1000
    """Active worker keys one room may hold."""

    cors_origins: tuple[str, ...] = ()
    """Origins allowed to call the API from a browser (none by default)."""


class FailureLimiter:
    """Counts failures per key in a sliding window (login brute force)."""

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._events: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        events = self._events.get(key)
        if events is None:
            return deque()
        cutoff = self.clock() - self.window
        while events and events[0] <= cutoff:
            events.popleft()
        if not events:
            del self._events[key]
        return events

    def blocked(self, key: str, limit: int | None = None) -> bool:
        """Whether ``key`` used up its failures (``limit``: not the default)."""
        return len(self._recent(key)) >= (self.limit if limit is None else limit)

    def fail(self, key: str) -> None:
        """Record one failure for ``key``."""
        self._recent(key)
        self._events.setdefault(key, deque()).append(self.clock())
        if len(self._events) > 10_000:  # bound memory under a spray of keys
            oldest = min(self._events, key=lambda k: self._events[k][-1])
            del self._events[oldest]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent an authenticated request.

    Attributes:
        via: ``jwt``, ``account_key`` or ``worker_key``.
        user: The user (``None`` for a worker key).
        key_id: The public id of the key used, if any.
        room_id: The worker key's room, if any.
    """

    via: str
    user: User | None
    key_id: str | None = None
    room_id: str | None = None

    @property
    def principal(self) -> str:
        """Compared with a peer's principal (``user:<id>`` or ``wk_…``)."""
        if self.user is not None:
            return f"user:{self.user.user_id}"
        return self.key_id or ""

    @property
    def user_id(self) -> str:
        """The user id.

        Raises:
            HttpError: 403 for a worker key, which has no user.
        """
        if self.user is None:
            raise HttpError(403, "A worker key cannot do this")
        return self.user.user_id


def parse_body(request: HttpRequest, limit: int) -> dict[str, Any]:
    """The request body as a JSON object (an empty body is ``{}``).

    Raises:
        HttpError: 413 past ``limit``, 400 for anything but a JSON object.
    """
    if len(request.body) > limit:
        raise HttpError(413, "Request body too large")
    if not request.body.strip():
        return {}
    try:
        return loads_object(request.body)
    except RemoteProtocolError:
        raise HttpError(400, "Body must be a JSON object") from None


def body_str(
    body: Mapping[str, Any],
    name: str,
    *,
    required: bool = True,
    max_len: int = 200,
    strip: bool = True,
) -> str | None:
    """A string field of a JSON body.

    Raises:
        HttpError: 400 when missing (and required), not a string, or too long.
    """
    value = body.get(name)
    if value is None:
        if required:
            raise HttpError(400, f"'{name}' is required")
        return None
    if not isinstance(value, str):
        raise HttpError(400, f"'{name}' must be a string")
    if strip:
        value = value.strip()
    if required and not value:
        raise HttpError(400, f"'{name}' must not be empty")
    if len(value) > max_len:
        raise HttpError(400, f"'{name}' must have at most {max_len} characters")
    return value


def body_int(
    body: Mapping[str, Any], name: str, default: int | None, low: int, high: int
) -> int | None:
    """An optional integer field in ``[low, high]``; ``null`` gives ``None``.

    Raises:
        HttpError: 400 when not an integer or out of range.
    """
    if name not in body:
        return default
    value = body[name]
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise HttpError(400, f"'{name}' must be an integer")
    if not low <= value <= high:
        raise HttpError(400, f"'{name}' must be between {low} and {high}")
    return value


class ApiContext:
    """State and helpers shared by the route handlers.

    Args:
        store: The auth store.
        keys: Issues and verifies JWTs.
        live: The running server's view of connected peers.
        config: API settings.
        github: The GitHub OAuth app, when configured.
        clock: Seconds since the epoch.
    """

    def __init__(
        self,
        store: Store,
        keys: JwtKeys,
        live: LiveView,
        config: HttpApiConfig,
        github: GitHubOAuth | None,
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.keys = keys
        self.live = live
        self.config = config
        self.github = github
        self.clock = clock
        self.limiter = FailureLimiter(config.login_failures, config.login_window)

    async def db(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a store call in a worker thread."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    def body(self, request: HttpRequest) -> dict[str, Any]:
        """The JSON object body (see :func:`parse_body`)."""
        return parse_body(request, self.config.max_body_bytes)

    async def caller(
        self, request: HttpRequest, *, allow_worker_key: bool = False
    ) -> Caller:
        """Authenticate the ``Authorization: Bearer`` header.

        A JWT or an account key always works; a worker key only where
        ``allow_worker_key`` (room-scoped reads).

        Raises:
            HttpError: 401 when missing or invalid, 403 for a worker key where
                none is accepted.
        """
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise _unauthorized("Not authenticated")
        if credential.startswith(ACCOUNT_KEY_PREFIX):
            key = await self.db(self.store.find_account_key, credential)
            if key is None or key.revoked_at is not None:
                raise _unauthorized("Invalid API key")
            user = await self.db(self.store.get_user, key.user_id)
            if user is None:
                raise _unauthorized("Invalid API key")
            return Caller("account_key", user, key.key_id)
        if credential.startswith(WORKER_KEY_PREFIX):
            token = await self.db(self.store.find_worker_token, credential)
            if token is None:
                raise _unauthorized("Invalid API key")
            if not token.is_active(self.clock()):
                raise _unauthorized("Token revoked or expired")
            if not allow_worker_key:
                raise HttpError(
                    403, "A worker key cannot do this; use a JWT or an account key"
                )
            return Caller("worker_key", None, token.token_id, token.room_id)
        try:
            claims = self.keys.verify(credential)
        except AuthError as exc:
            raise _unauthorized(exc.message) from None
        user = await self.db(self.store.get_user, claims["sub"])
        if user is None:
            raise _unauthorized("User not found")
        return Caller("jwt", user)

    async def room_for(self, room_id: str, caller: Caller) -> tuple[Room, MemberRole]:
        """The room and the caller's role in it (a worker key counts as member).

        Raises:
            HttpError: 404 for no such room or no access (not told apart, so
                room ids cannot be probed).
        """
        room = await self.db(self.store.get_room, room_id)
        if room is None:
            raise HttpError(404, "Room not found")
        if caller.user is None:
            if caller.room_id == room_id:
                return room, MemberRole.MEMBER
            raise HttpError(404, "Room not found")
        membership = await self.membership(room_id, caller.user.user_id)
        if membership is None:
            raise HttpError(404, "Room not found")
        return room, membership.role

    async def membership(self, room_id: str, user_id: str) -> Membership | None:
        """A user's membership, or ``None``."""
        return await self.db(self.store.get_membership, room_id, user_id)

    async def owned_room(self, room_id: str, caller: Caller) -> Room:
        """The room, when the caller owns it.

        Raises:
            HttpError: 404 without access, 403 for a plain member.
        """
        room, role = await self.room_for(room_id, caller)
        if role is not MemberRole.OWNER:
            raise HttpError(403, "Only the room owner can do this")
        return room

    def check_limit(self, key: str, detail: str, limit: int | None = None) -> None:
        """Refuse a request whose client used up its failures (brute force).

        Raises:
            HttpError: 429 with ``Retry-After`` while ``key`` is blocked.
        """
        if self.limiter.blocked(key, limit):
            retry = str(int(self.config.login_window))
            raise HttpError(429, detail, {"Retry-After": retry})

    def revoke(self, credential_id: str, reason: str) -> int:
        """Disconnect, now, every live peer that a revocation id covers.

        The store logs the revocation too (the server's poll would catch it
        within seconds); doing it here makes an HTTP revocation immediate.
        """
        return self.live.disconnect_credential(credential_id, reason)


def _unauthorized(detail: str) -> HttpError:
    return HttpError(401, detail, {"WWW-Authenticate": "Bearer"})


def client_host(request: HttpRequest) -> str:
    """The client's address without the port (``[::1]:5`` → ``::1``)."""
    client = request.client
    if client.startswith("["):
        return client[1:].partition("]")[0]
    if client.count(":") == 1:
        return client.partition(":")[0]
    return client


Handler = Callable[[ApiContext, HttpRequest, dict[str, str]], Awaitable[HttpResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint: a method, a path pattern and its handler."""

    method: str
    pattern: re.Pattern[str]
    handler: Handler


class RouteTable:
    """Collects a module's routes; ``{name}`` in a path matches one segment."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def __call__(self, method: str, template: str) -> Callable[[Handler], Handler]:
        """Decorator adding ``handler`` for ``method`` on ``template``."""
        regex = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(template))
        pattern = re.compile(regex)

        def add(handler: Handler) -> Handler:
            self.routes.append(Route(method, pattern, handler))
            return handler

        return add
