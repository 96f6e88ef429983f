"""The signaling client against the real server: requests, messages, reconnects."""

from __future__ import annotations

import asyncio
import logging

import pytest

from sleap_rtc_core.errors import AuthError, ConnectionLost, ServerError
from sleap_rtc_core.protocol import signaling as sig
from sleap_rtc_core.signaling.auth.jwt_keys import JwtKeys
from sleap_rtc_core.signaling.client.session_io import (
    Backoff,
    SignalingClient,
    split_urls,
)
from sleap_rtc_core.signaling.server.router_io import ServerConfig
from sleap_rtc_core.signaling.service import Service, build_service
from sleap_rtc_core.signaling.store.auth_store import Store
from tests.fixtures.signaling import RoomCreds
from tests.fixtures.timing import async_wait_until, scaled

FAST = Backoff(initial=0.05, factor=2.0, cap=0.2)


def client_for(
    url: str | list[str],
    room: RoomCreds,
    peer_id: str,
    role: str = "worker",
    **kwargs: object,
) -> SignalingClient:
    register = sig.Register(
        peer_id=peer_id,
        role=role,
        room_id=room.room_id,
        token=room.token,
        metadata={"tags": ["sleap-rtc"], "properties": {"status": "available"}},
    )
    return SignalingClient(url, register, backoff=FAST, **kwargs)  # type: ignore[arg-type]


async def test_requests_and_peer_messages(service: Service, room: RoomCreds) -> None:
    url = service.server.url
    async with (
        client_for(url, room, "w") as worker,
        client_for(url, room, "c", "client") as client,
    ):
        assert client.peer_id == "c"
        peers = await client.discover({"role": "worker"})
        assert [p["peer_id"] for p in peers] == ["w"]

        stored = await worker.update_metadata({"properties": {"status": "busy"}})
        assert stored["properties"]["status"] == "busy"
        assert await client.discover({"properties": {"status": "available"}}) == []

        async with worker.subscribe("peer_message") as inbox:
            await client.send_peer_message("w", {"app_message_type": "hello"})
            msg = await inbox.get(timeout=scaled(5))
        assert isinstance(msg, sig.PeerMessage)
        assert msg.from_peer_id == "c"
        assert msg.payload == {"app_message_type": "hello"}

        with pytest.raises(ServerError) as bad:
            await client.discover({"properties": {"x": {"$nope": 1}}})
        assert bad.value.code == "INVALID_MESSAGE"
    # Leaving the block cancelled the reader tasks the clients owned and
    # closed their sockets, so the server forgets them at once.
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("signaling")]
    registry = service.server.router.registry
    await async_wait_until(lambda: not list(registry.all_peers()))


async def test_bad_credentials_fail_start(service: Service, room: RoomCreds) -> None:
    client = client_for(service.server.url, RoomCreds(room.room_id, "wrong"), "w")
    with pytest.raises(AuthError):
        await client.start(timeout=scaled(5))


async def test_reconnects_after_server_restart_with_latest_metadata(
    server_config: ServerConfig,
    store: Store,
    jwt_keys: JwtKeys,
    room: RoomCreds,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="sleap_rtc_core.signaling.client")
    first = build_service(server_config, store, jwt_keys)
    await first.server.start()
    port = first.server.port
    client = client_for(first.server.url, room, "w")
    reconnected = asyncio.Event()
    client.on_registered.append(
        lambda _reply, again: reconnected.set() if again else None
    )
    await client.start(timeout=scaled(5))
    try:
        await client.update_metadata({"properties": {"status": "busy"}})
        await first.server.stop()
        await async_wait_until(lambda: not client.connected)

        # A request made while down waits and is answered after the reconnect.
        pending = asyncio.ensure_future(client.discover(timeout=scaled(10)))
        server_config.port = port
        second = build_service(server_config, store, jwt_keys)
        await second.server.start()
        try:
            await asyncio.wait_for(reconnected.wait(), scaled(10))
            assert await pending == []
            assert client.reconnects >= 1
            assert "signaling connection lost" in caplog.text
            assert f"signaling connection back: {second.server.url}" in caplog.text
            record = second.server.router.registry.get(room.room_id, "w")
            assert record is not None
            assert record.metadata["properties"]["status"] == "busy"
        finally:
            await client.close()
            await second.server.stop()
    finally:
        await client.close()


async def test_gives_up_with_connection_lost(
    server_config: ServerConfig, store: Store, jwt_keys: JwtKeys, room: RoomCreds
) -> None:
    svc = build_service(server_config, store, jwt_keys)
    await svc.server.start()
    client = client_for(svc.server.url, room, "w", give_up_after=0.3)
    await client.start(timeout=scaled(5))
    try:
        await svc.server.stop()
        with pytest.raises(ConnectionLost):
            await client.discover(timeout=scaled(10))
        with pytest.raises(ConnectionLost):
            await client.wait_registered(timeout=scaled(10))
    finally:
        await client.close()


async def test_unreachable_server_is_connection_lost() -> None:
    register = sig.Register(peer_id="w", role="worker", room_id="r", token="t")
    # Port 9 (discard) on loopback: nothing listens there in the test sandbox.
    client = SignalingClient(
        "ws://127.0.0.1:9", register, backoff=FAST, give_up_after=0.2
    )
    with pytest.raises(ConnectionLost):
        await client.start(timeout=scaled(10))


def test_split_urls_takes_one_a_list_or_comma_separated() -> None:
    assert split_urls("ws://a") == ("ws://a",)
    assert split_urls(" ws://a , ws://b,") == ("ws://a", "ws://b")
    assert split_urls(["ws://a,ws://b", "ws://c"]) == ("ws://a", "ws://b", "ws://c")
    with pytest.raises(ValueError, match="no signaling server"):
        split_urls(" , ")


async def test_an_unreachable_first_url_moves_on_to_the_next(
    service: Service, room: RoomCreds
) -> None:
    # Port 9 (discard) on loopback: nothing listens there in the test sandbox.
    urls = ["ws://127.0.0.1:9", service.server.url]
    async with client_for(urls, room, "w") as client:
        assert client.url == service.server.url
        assert service.server.router.registry.get(room.room_id, "w") is not None


async def test_a_lost_server_moves_the_peer_to_the_next_url(
    server_config: ServerConfig, store: Store, jwt_keys: JwtKeys, room: RoomCreds
) -> None:
    """Two servers on one store: when the first stops, the client registers on
    the second with the same peer id and metadata, round-robin."""
    services = []
    for _ in range(2):
        svc = build_service(server_config, store, jwt_keys)
        await svc.server.start()
        services.append(svc)
    a, b = services
    client = client_for([a.server.url, b.server.url], room, "w")
    reconnected = asyncio.Event()
    client.on_registered.append(
        lambda _reply, again: reconnected.set() if again else None
    )
    try:
        await client.start(timeout=scaled(5))
        assert client.url == a.server.url
        await client.update_metadata({"properties": {"status": "busy"}})
        await a.server.stop()
        await asyncio.wait_for(reconnected.wait(), scaled(10))
        assert client.url == b.server.url
        record = b.server.router.registry.get(room.room_id, "w")
        assert record is not None
        assert record.metadata["properties"]["status"] == "busy"
        assert await client.discover(timeout=scaled(5)) == []
    finally:
        await client.close()
        for svc in services:
            await svc.server.stop()
