"""The auth HTTP API the signaling server serves beside the WebSocket.

:class:`HttpApi` is the ``http`` handler of
:class:`~..server.router_io.SignalingServer`: the server answers ``/health`` and
``/metrics`` itself and hands every other plain HTTP request to it. It routes the
request to the endpoint modules (:mod:`.auth_routes`,
:mod:`.room_routes`, and the live-peer endpoints below), and turns every
failure into JSON ``{"detail": "..."}`` with the right status, never a stack
trace.

The API reads and closes live connections only through a
:class:`~.base.LiveView`; :class:`RouterLiveView` is that view over the
server's :class:`~..server.router.Router`. With :mod:`..service`::

    service = open_service(config, data_dir, http=http_api_factory())
    async with service.server:
        ...

or by hand: ``server.http = HttpApi(store, keys, RouterLiveView(server.router))``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ...protocol.metadata import public_metadata
from ..auth.github import GitHubOAuth
from ..auth.jwt_keys import JwtKeys
from ..server.registry import PeerRecord
from ..server.router import Router
from ..store.auth_store import AlreadyExists, Store
from ..store.records import MemberRole, iso_time
from .auth_routes import routes as auth_routes
from .base import (
    ApiContext,
    HttpApiConfig,
    HttpError,
    LiveView,
    RouteTable,
    body_str,
    json_response,
)
from .room_routes import routes as room_routes
from .wire import HttpRequest, HttpResponse

if TYPE_CHECKING:
    from ..service import Service

__all__ = [
    "HttpApi",
    "RouterLiveView",
    "http_api_factory",
]

logger = logging.getLogger(__name__)

live_routes = RouteTable()
"""The endpoints that read or close live connections."""


# --- the live view over the router


class RouterLiveView:
    """:class:`~.base.LiveView` over a server's :class:`~..router.Router`.

    Args:
        router: The router of the running server (called on its loop).
    """

    def __init__(self, router: Router) -> None:
        self.router = router

    def room_peers(self, room_id: str) -> list[PeerRecord]:
        """The peers registered in a room (``_`` metadata included)."""
        return self.router.registry.peers(room_id)

    def find_peers(self, peer_id: str) -> list[PeerRecord]:
        """Every registered peer with this id, in any room."""
        return [p for p in self.router.registry.all_peers() if p.peer_id == peer_id]

    def disconnect_credential(self, credential_id: str, reason: str) -> int:
        """Close every connection a revocation id (key, room, member, user)
        covers."""
        n = self.router.disconnect_credential(credential_id, reason)
        if n:
            logger.info("= closed %d connection(s): %s", n, reason)
        return n

    def disconnect_peer(self, room_id: str, peer_id: str) -> bool:
        """Close one peer's connection."""
        return self.router.disconnect_peer(room_id, peer_id)


# --- the handler


class HttpApi:
    """Answers the auth API's HTTP requests (an ``HttpHandler`` of the server).

    Args:
        store: Users, rooms and keys.
        keys: Issues and verifies JWTs.
        live: The running server's connected peers (:class:`RouterLiveView`).
        config: Limits and options; the defaults suit a lab server.
        github: The GitHub OAuth app; ``None`` disables GitHub login.
        clock: Seconds since the epoch (injectable for tests).
    """

    def __init__(
        self,
        store: Store,
        keys: JwtKeys,
        live: LiveView,
        config: HttpApiConfig | None = None,
        *,
        github: GitHubOAuth | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or HttpApiConfig()
        self.context = ApiContext(store, keys, live, self.config, github, clock)
        self.routes = [*auth_routes.routes, *room_routes.routes, *live_routes.routes]

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        """Answer one request; errors become JSON ``{"detail": ...}``."""
        origin = request.headers.get("origin")
        try:
            if request.method == "OPTIONS" and origin is not None:
                response = self._preflight(origin)
            else:
                response = await self._dispatch(request)
        except HttpError as exc:
            response = json_response(exc.status, {"detail": exc.detail}, exc.headers)
        except AlreadyExists as exc:
            response = json_response(409, {"detail": str(exc)})
        if origin is not None and origin in self.config.cors_origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        return response

    async def _dispatch(self, request: HttpRequest) -> HttpResponse:
        allowed: list[str] = []
        for route in self.routes:
            match = route.pattern.fullmatch(request.path)
            if match is None:
                continue
            if route.method != request.method:
                allowed.append(route.method)
                continue
            return await route.handler(self.context, request, match.groupdict())
        if allowed:
            raise HttpError(
                405,
                f"Method {request.method} not allowed on {request.path}",
                {"Allow": ", ".join(sorted(set(allowed)))},
            )
        raise HttpError(404, "Not Found")

    def _preflight(self, origin: str) -> HttpResponse:
        if origin not in self.config.cors_origins:
            raise HttpError(403, "Origin not allowed")
        return HttpResponse(
            204,
            b"",
            headers={
                "Access-Control-Allow-Methods": "GET, POST, PATCH, DELETE",
                "Access-Control-Allow-Headers": "Authorization, Content-Type",
                "Access-Control-Max-Age": "600",
            },
        )


# --- wiring


def http_api_factory(
    config: HttpApiConfig | None = None,
    *,
    github: GitHubOAuth | None = None,
    clock: Callable[[], float] = time.time,
) -> Callable[[Service], HttpApi]:
    """The ``http`` argument of :func:`~.service.build_service` for this API.

    Args:
        config: HTTP API options (defaults suit a lab server).
        github: Enables GitHub login when given.
        clock: Seconds since the epoch, for expiry checks.
    """

    def make(service: Service) -> HttpApi:
        live = RouterLiveView(service.server.router)
        return HttpApi(
            service.store, service.jwt_keys, live, config, github=github, clock=clock
        )

    return make


# --- live-peer endpoints


def _is_owner(rows: Iterable[tuple[Any, Any]], room_id: str) -> bool:
    return any(r.room_id == room_id and m.role is MemberRole.OWNER for r, m in rows)


@live_routes("GET", "/api/rooms/{room_id}/workers")
async def room_workers(
    ctx: ApiContext, request: HttpRequest, params: dict[str, str]
) -> HttpResponse:
    """The workers connected to a room (a worker key of the room may ask)."""
    caller = await ctx.caller(request, allow_worker_key=True)
    room, _ = await ctx.room_for(params["room_id"], caller)
    workers = []
    for peer in ctx.live.room_peers(room.room_id):
        if peer.role != "worker":
            continue
        public = public_metadata(peer.metadata)
        props = public.get("properties")
        name = peer.metadata.get("_worker_name")
        workers.append(
            {
                "peer_id": peer.peer_id,
                "worker_name": name if isinstance(name, str) else peer.peer_id,
                "properties": props if isinstance(props, dict) else {},
                "tags": public.get("tags", []),
                "connected_at": iso_time(peer.connected_at),
            }
        )
    return json_response(200, {"workers": workers, "count": len(workers)})


@live_routes("GET", "/api/auth/tokens/{token_id}/workers")
async def token_workers(
    ctx: ApiContext, request: HttpRequest, params: dict[str, str]
) -> HttpResponse:
    """The peers connected with one worker key (its creator or room owner)."""
    caller = await ctx.caller(request)
    token = await ctx.db(ctx.store.get_worker_token, params["token_id"])
    if token is None:
        raise HttpError(404, "Token not found")
    if token.created_by != caller.user_id:
        membership = await ctx.membership(token.room_id, caller.user_id)
        if membership is None or membership.role is not MemberRole.OWNER:
            raise HttpError(404, "Token not found")
    workers = [
        {"peer_id": p.peer_id, "connected_at": iso_time(p.connected_at)}
        for p in ctx.live.room_peers(token.room_id)
        if p.credential_id == token.token_id
    ]
    return json_response(200, {"workers": workers, "count": len(workers)})


@live_routes("POST", "/delete-peer")
async def delete_peer(
    ctx: ApiContext, request: HttpRequest, _: dict[str, str]
) -> HttpResponse:
    """``{peer_id, room_id?}``: close a peer's connection.

    Unlike the reference (no auth at all), the caller must own the peer's room
    or be who registered the peer (the same user or worker key). A peer the
    caller may not touch answers 404, like one that does not exist.
    """
    caller = await ctx.caller(request, allow_worker_key=True)
    body = ctx.body(request)
    peer_id = body_str(body, "peer_id", max_len=256) or ""
    room_id = body_str(body, "room_id", required=False, max_len=64)
    peers = [
        p
        for p in ctx.live.find_peers(peer_id)
        if room_id is None or p.room_id == room_id
    ]
    rows = []
    if caller.user is not None and any(p.principal != caller.principal for p in peers):
        rows = await ctx.db(ctx.store.rooms_for_user, caller.user.user_id)
    closed = [
        p.room_id
        for p in peers
        if (p.principal == caller.principal or _is_owner(rows, p.room_id))
        and ctx.live.disconnect_peer(p.room_id, p.peer_id)
    ]
    if not closed:
        raise HttpError(404, "Peer not found")
    return json_response(
        200, {"status": "deleted", "peer_id": peer_id, "room_ids": closed}
    )
