"""The server checks against the real embedded signaling service of
``tests/fixtures/signaling.py`` on 127.0.0.1; "unreachable" is a loopback port
that was just released.
"""

from __future__ import annotations

from sleap_rtc_core.doctor.server import (
    check_credentials,
    check_http,
    check_websocket,
    http_url,
)
from sleap_rtc_core.signaling.service import Service
from tests.fixtures.signaling import RoomCreds
from tests.fixtures.timing import scaled


def test_http_url() -> None:
    assert http_url("ws://h:1/") == "http://h:1"
    assert http_url("wss://h") == "https://h"
    assert http_url("http://h:2") == "http://h:2"


async def test_server_reachable(service: Service) -> None:
    ws = await check_websocket(service.server.url, timeout=scaled(5))
    assert ws.ok is True, ws
    assert "round trip" in ws.detail
    http = await check_http(service.server.url, timeout=scaled(5))
    assert http.ok is True, http
    assert "healthy" in http.detail
    assert " ms" in http.detail


async def test_server_unreachable(free_port: int) -> None:
    url = f"ws://127.0.0.1:{free_port}"
    ws = await check_websocket(url, timeout=scaled(5))
    assert ws.ok is False
    assert "Connection refused" in ws.detail
    assert "sleap-rtc server" in ws.advice
    http = await check_http(url, timeout=scaled(5))
    assert http.ok is False
    assert "sleap-rtc server" in http.advice


async def test_websocket_bad_url() -> None:
    bad = await check_websocket("not a url", timeout=scaled(5))
    assert bad.ok is False
    assert "ws://HOST:PORT" in bad.advice


async def test_credentials_valid(service: Service, room: RoomCreds) -> None:
    check = await check_credentials(
        service.server.url,
        {"room_id": room.room_id, "token": room.token},
        described="room token",
        timeout=scaled(5),
    )
    assert check.ok is True, check
    assert room.room_id in check.detail


async def test_credentials_invalid(service: Service, room: RoomCreds) -> None:
    wrong = await check_credentials(
        service.server.url,
        {"room_id": room.room_id, "token": "not-the-token"},
        timeout=scaled(5),
    )
    assert wrong.ok is False
    assert "refused" in wrong.detail
    assert wrong.advice
    no_room = await check_credentials(
        service.server.url,
        {"room_id": "no-such-room", "token": "x"},
        timeout=scaled(5),
    )
    assert no_room.ok is False
    assert no_room.advice
