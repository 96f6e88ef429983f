"""Assemble a complete signaling service: server, store, JWT keys, auth, HTTP API.

The server (:mod:`.server`) knows nothing about SQLite or JWTs; this module
wires the pieces a lab deploys together, so that ``sleap-rtc server``, the demo
and the tests all build the same thing::

    service = open_service(ServerConfig(port=0), data_dir)
    async with service.server:
        ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .auth.authenticator import Authenticator
from .auth.jwt_keys import JwtKeys
from .redis.config import RedisConfig
from .server.router_io import HttpHandler, ServerConfig, SignalingServer
from .store.auth_store import RevocationWatcher, Store, open_store

__all__ = ["Service", "build_service", "open_service"]

HttpFactory = Callable[["Service"], HttpHandler]
"""Builds the HTTP API handler once the server exists (it needs the live peers)."""


@dataclass(slots=True)
class Service:
    """A signaling server with its store and keys."""

    server: SignalingServer
    store: Store
    jwt_keys: JwtKeys
    authenticator: Authenticator


def build_service(
    config: ServerConfig,
    store: Store,
    jwt_keys: JwtKeys,
    *,
    http: HttpFactory | None = None,
    redis: RedisConfig | None = None,
) -> Service:
    """Wire a server to ``store`` and ``jwt_keys``.

    Args:
        config: Where and how to listen.
        store: Users, rooms and keys (a file, or ``":memory:"`` in tests).
        jwt_keys: Signs and verifies JWTs.
        http: Makes the HTTP API handler; ``None`` serves only ``/health`` and
            ``/metrics``.
        redis: Share peers with other processes through Redis (the backend
            connects when the server starts); ``None`` keeps them in memory.
    """
    authenticator = Authenticator(store, jwt_keys)
    backend = None
    if redis is not None:
        from .redis.backend import RedisBackend  # the ``server`` extra

        backend = RedisBackend(redis)
    server = SignalingServer(
        config, authenticator, revocations=RevocationWatcher(store), backend=backend
    )
    service = Service(server, store, jwt_keys, authenticator)
    if http is not None:
        server.http = http(service)
    return service


def open_service(
    config: ServerConfig,
    data_dir: str | Path,
    *,
    http: HttpFactory | None = None,
    redis: RedisConfig | None = None,
) -> Service:
    """A service on the store and keys of ``data_dir`` (created on first use)."""
    return build_service(
        config, open_store(data_dir), JwtKeys.load(data_dir), http=http, redis=redis
    )
