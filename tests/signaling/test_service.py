"""The assembled service (:mod:`sleap_rtc_core.signaling.service`): a real
server on 127.0.0.1 wired to the store and JWT keys of a data folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from sleap_rtc_core.errors import AuthError
from sleap_rtc_core.protocol import signaling as sig
from sleap_rtc_core.signaling.auth.jwt_keys import PRIVATE_KEY_FILENAME, JwtKeys
from sleap_rtc_core.signaling.client.session_io import Backoff, SignalingClient
from sleap_rtc_core.signaling.http.wire import HttpRequest, HttpResponse
from sleap_rtc_core.signaling.server.router_io import HttpHandler, ServerConfig
from sleap_rtc_core.signaling.service import Service, build_service, open_service
from sleap_rtc_core.signaling.store.auth_store import DB_FILENAME, Store
from tests.fixtures.timing import scaled

FAST = Backoff(initial=0.05, cap=0.2)


def config() -> ServerConfig:
    return ServerConfig(host="127.0.0.1", port=0, ping_interval=60.0)


def worker(url: str, room_id: str, token: str) -> SignalingClient:
    register = sig.Register(
        peer_id="w1", role="worker", room_id=room_id, token=token, metadata={}
    )
    return SignalingClient(url, register, backoff=FAST)


async def test_a_service_on_a_data_folder_admits_the_rooms_of_its_store(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    service = open_service(config(), data)
    assert (data / DB_FILENAME).is_file()
    assert (data / PRIVATE_KEY_FILENAME).is_file()  # made on first use
    assert service.server.backend is None  # no Redis: peers kept in memory
    assert service.server.http is None  # /health and /metrics only
    room = service.store.create_room("lab")
    try:
        async with service.server:
            async with worker(service.server.url, room.room_id, room.token) as peer:
                await peer.wait_registered(scaled(10))
            wrong = worker(service.server.url, room.room_id, "not-the-token")
            with pytest.raises(AuthError):
                async with wrong:
                    await wrong.wait_registered(scaled(10))
    finally:
        service.store.close()

    # The same folder again: the same room, and JWTs the first service signed.
    token = service.jwt_keys.issue("u1", "alice", 60)
    again = open_service(config(), data)
    try:
        assert again.store.get_room(room.room_id) == room
        assert again.jwt_keys.verify(token)["username"] == "alice"
    finally:
        again.store.close()


def test_the_http_api_is_built_for_the_service_it_serves(store: Store) -> None:
    built: list[Service] = []

    async def handler(request: HttpRequest) -> HttpResponse:
        raise AssertionError("not called here")

    def make(service: Service) -> HttpHandler:
        built.append(service)
        return handler

    service = build_service(config(), store, JwtKeys.generate(), http=make)
    assert built == [service]
    assert service.server.http is handler
    assert service.authenticator.store is store
