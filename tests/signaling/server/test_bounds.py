"""Bounded work per connection against a real server (loopback, bounded loops):
sockets that never send a request or never register are closed, and a
discovery filter's operands are bounded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from sleap_rtc_core.protocol.filters import MAX_FILTER_NODES
from sleap_rtc_core.signaling.server.limits import Limits
from sleap_rtc_core.signaling.server.router_io import ServerConfig
from sleap_rtc_core.signaling.service import Service
from tests.fixtures.signaling import RoomCreds, WsPeer
from tests.fixtures.timing import scaled

HEAD_TIMEOUT = 0.3
REGISTER_TIMEOUT = 0.5


@pytest.fixture
def server_config() -> ServerConfig:
    return ServerConfig(
        host="127.0.0.1",
        port=0,
        ping_interval=0.1,  # pings are answered: they must not count as life
        limits=Limits(head_timeout=HEAD_TIMEOUT, register_timeout=REGISTER_TIMEOUT),
    )


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Whether the server closes the socket within ``seconds``."""
    try:
        return await asyncio.wait_for(reader.read(), seconds) == b""
    except TimeoutError:
        return False


@pytest.mark.parametrize("sent", [b"", b"GET /health HTTP/1.1\r\nHost: x\r\n"])
async def test_a_socket_without_a_whole_request_is_closed(
    service: Service, sent: bytes
) -> None:
    server = service.server
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(sent)
        await writer.drain()
        assert await closed_within(reader, scaled(HEAD_TIMEOUT * 10))
    finally:
        writer.close()
    assert server.router.counters["timeout_head"] >= 1


async def read_until_closed(peer: WsPeer) -> None:
    """Read (the server's pings, answered by the client library) until the
    server closes the socket."""
    while True:
        await peer.ws.recv()


async def test_a_websocket_that_never_registers_is_closed(service: Service) -> None:
    peer = await WsPeer.connect(service.server.url)
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(read_until_closed(peer), scaled(REGISTER_TIMEOUT * 10))
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008
    assert "register" in closed.value.rcvd.reason
    assert service.server.router.counters["timeout_register"] == 1


async def test_a_registered_peer_stays(service: Service, room: RoomCreds) -> None:
    peer = await WsPeer.joined(service, room, "w1")
    try:
        await asyncio.sleep(REGISTER_TIMEOUT * 2)
        reply = await peer.request(
            {"type": "discover_peers", "from_peer_id": "w1"}, "peer_list"
        )
        assert reply["type"] == "peer_list"
    finally:
        await peer.close()
    assert service.server.router.counters["timeout_register"] == 0


async def test_a_huge_filter_is_refused_and_the_room_goes_on(
    service: Service, room: RoomCreds
) -> None:
    attacker = await WsPeer.joined(service, room, "mallory", role="client")
    other = await WsPeer.joined(service, room, "w1")
    try:
        huge: dict[str, Any] = {
            "type": "discover_peers",
            "filters": {"properties": {"gpu": {"$in": list(range(40_000))}}},
        }
        reply = await attacker.request(huge, "error")
        assert reply["code"] == "INVALID_MESSAGE"
        assert str(MAX_FILTER_NODES) in reply["message"]
        fine = {"type": "discover_peers", "filters": {"role": "client"}}
        listed = await other.request(fine, "peer_list")
        assert [p["peer_id"] for p in listed["peers"]] == ["mallory"]
    finally:
        await attacker.close()
        await other.close()
