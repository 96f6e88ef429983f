"""The real signaling server on 127.0.0.1 with real WebSocket peers.

Routing rules are tested exhaustively on the sans-I/O router
(``test_router.py``); here every path goes through real sockets: HTTP on the
same port, each credential kind against the real SQLite store and RSA JWTs,
relays between rooms, reconnects, pings, limits, TLS and hostile frames.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import random
import ssl
import time
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from sleap_rtc_core.signaling.auth.jwt_keys import JwtKeys
from sleap_rtc_core.signaling.server.limits import Limits
from sleap_rtc_core.signaling.server.router_io import ServerConfig
from sleap_rtc_core.signaling.service import Service, build_service
from sleap_rtc_core.signaling.store.auth_store import Store
from tests.fixtures.signaling import RoomCreds, WsPeer
from tests.fixtures.timing import async_wait_until, scaled

WORKER_MD = {
    "tags": ["sleap-rtc", "training-worker"],
    "properties": {"gpu_memory_mb": 24576, "status": "available"},
}


async def http_get(
    svc: Service, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 GET over a real socket; returns (status, headers, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", svc.server.port)
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), scaled(5))
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    parsed = dict(h.lower().split(": ", 1) for h in header_lines)
    return int(status_line.split()[1]), parsed, body


def peer_ids(svc: Service, room_id: str) -> set[str]:
    room = svc.server.router.registry.rooms.get(room_id)
    return set(room.peers) if room else set()


# --- HTTP on the WebSocket port


async def test_health_and_metrics_share_the_port(service: Service) -> None:
    status, _, body = await http_get(service, "/health")
    health = json.loads(body)
    assert status == 200
    assert health["status"] == "healthy"
    assert {"timestamp", "version"} <= set(health)

    status, headers, body = await http_get(service, "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    metrics = json.loads(body)
    assert {"active_connections", "active_rooms", "total_messages"} <= set(metrics)

    status, headers, body = await http_get(
        service, "/metrics", {"Accept": "text/plain"}
    )
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    assert b"# TYPE" in body


async def test_unknown_http_path_is_404_json(service: Service) -> None:
    status, _, body = await http_get(service, "/nope")
    assert status == 404
    assert "detail" in json.loads(body)


async def test_garbage_request_head_gets_400(service: Service) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", service.server.port)
    writer.write(b"\x00\x01 not http\r\n\r\n")
    raw = await asyncio.wait_for(reader.read(), scaled(5))
    writer.close()
    assert raw.startswith(b"HTTP/1.1 400")


# --- credentials, each against the real store and keys


async def test_room_token_registers_with_reference_reply(
    service: Service, room: RoomCreds
) -> None:
    service.server.router.ice_servers = [{"urls": ["stun:127.0.0.1:3478"]}]
    worker = await WsPeer.joined(service, room, "w1", metadata=WORKER_MD)
    client = await WsPeer.connect(service.server.url)
    reply = await client.register(
        "c1", "client", room_id=room.room_id, token=room.token
    )
    assert reply["type"] == "registered_auth"
    assert reply["peer_id"] == "c1"
    assert reply["room_id"] == room.room_id
    assert reply["peer_list"] == ["w1"]
    assert reply["peer_metadata"]["w1"] == WORKER_MD
    assert reply["ice_servers"] == [{"urls": ["stun:127.0.0.1:3478"]}]
    assert "admin_peer_id" in reply
    await worker.expect("peer_joined")
    await worker.close()
    await client.close()


@pytest.mark.parametrize(
    ("creds", "code"),
    [
        ({"token": "wrong"}, "AUTH_FAILED"),
        ({"room_id": "nosuchroom00", "token": "x"}, "ROOM_NOT_FOUND"),
        ({}, "AUTH_FAILED"),
        ({"api_key": "slp_not_a_real_key"}, "AUTH_FAILED"),
        ({"jwt": "not.a.jwt"}, "AUTH_FAILED"),
    ],
)
async def test_bad_credentials_are_refused(
    service: Service, room: RoomCreds, creds: dict[str, Any], code: str
) -> None:
    peer = await WsPeer.connect(service.server.url)
    reply = await peer.register("p", **{"room_id": room.room_id, **creds})
    assert reply["type"] == "error"
    assert reply["code"] == code
    assert peer_ids(service, room.room_id) == set()
    # The socket stays usable: a correct register now succeeds.
    reply = await peer.register("p", room_id=room.room_id, token=room.token)
    assert reply["type"] == "registered_auth"
    await peer.close()


async def test_expired_room_is_refused(service: Service, store: Store) -> None:
    created = store.create_room("old", expires_at=time.time() - 1)
    peer = await WsPeer.connect(service.server.url)
    reply = await peer.register("p", room_id=created.room_id, token=created.token)
    assert reply["type"] == "error"
    assert reply["code"] == "ROOM_EXPIRED"
    await peer.close()


async def test_worker_key_registers_and_hides_its_secret(
    service: Service, room: RoomCreds, store: Store
) -> None:
    record, secret = store.create_worker_token(room.room_id, "gpu-box")
    worker = await WsPeer.connect(service.server.url)
    reply = await worker.register("w", api_key=secret, metadata=WORKER_MD)
    assert reply["type"] == "registered_auth", reply
    assert reply["room_id"] == room.room_id
    client = await WsPeer.joined(service, room, "c", "client")
    peers = await client.request({"type": "discover_peers"}, "peer_list")
    dumped = json.dumps(peers)
    assert secret not in dumped
    assert record.token_id not in dumped  # server-only metadata stays private
    await worker.close()
    await client.close()


async def test_revoking_a_worker_key_disconnects_its_peer(
    server_config: ServerConfig, store: Store, jwt_keys: JwtKeys, room: RoomCreds
) -> None:
    server_config.revocation_poll = 0.05
    svc = build_service(server_config, store, jwt_keys)
    await svc.server.start()
    try:
        record, secret = store.create_worker_token(room.room_id, "gpu-box")
        worker = await WsPeer.connect(svc.server.url)
        assert (await worker.register("w", api_key=secret))["type"] == (
            "registered_auth"
        )
        other = await WsPeer.joined(svc, room, "c", "client")
        store.revoke_worker_token(record.token_id)
        with pytest.raises(ConnectionClosed) as closed:
            await worker.expect("never")
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4001
        assert (await other.expect("peer_left"))["peer_id"] == "w"
        reply = await WsPeer.connect(svc.server.url)
        refused = await reply.register("w", api_key=secret)
        assert refused["code"] == "AUTH_FAILED"
        await reply.close()
        await other.close()
    finally:
        await svc.server.stop()


async def test_account_key_needs_membership(
    service: Service, room: RoomCreds, store: Store
) -> None:
    user = store.add_user("ana", password_hash=None)
    _, secret = store.create_account_key(user.user_id, "laptop")
    peer = await WsPeer.connect(service.server.url)
    refused = await peer.register("c", "client", api_key=secret, room_id=room.room_id)
    assert refused["type"] == "error"
    store.add_member(room.room_id, user.user_id)
    reply = await peer.register("c", "client", api_key=secret, room_id=room.room_id)
    assert reply["type"] == "registered_auth", reply
    await peer.close()


async def test_jwt_of_a_member_registers(
    service: Service, room: RoomCreds, store: Store, jwt_keys: JwtKeys
) -> None:
    user = store.add_user("ben", password_hash=None)
    store.add_member(room.room_id, user.user_id)
    token = jwt_keys.issue(user.user_id, user.username)
    peer = await WsPeer.connect(service.server.url)
    reply = await peer.register("c", "client", jwt=token, room_id=room.room_id)
    assert reply["type"] == "registered_auth", reply
    await peer.close()


async def test_jwt_of_a_non_member_is_refused(
    service: Service, room: RoomCreds, store: Store, jwt_keys: JwtKeys
) -> None:
    user = store.add_user("eve", password_hash=None)
    token = jwt_keys.issue(user.user_id, user.username)
    peer = await WsPeer.connect(service.server.url)
    reply = await peer.register("c", "client", jwt=token, room_id=room.room_id)
    assert reply["type"] == "error"
    await peer.close()


def _forged_tokens(user_id: str) -> list[str]:
    now = int(time.time())
    claims = {
        "sub": user_id,
        "iss": "sleap-rtc",
        "aud": "sleap-rtc",
        "iat": now,
        "exp": now + 3600,
    }
    other_keys = JwtKeys.generate()
    return [
        pyjwt.encode(claims, None, algorithm="none"),
        pyjwt.encode(claims, "a-forger-guessing-an-hmac-secret", algorithm="HS256"),
        other_keys.issue(user_id, "eve"),
    ]


async def test_forged_and_unsigned_jwts_are_refused(
    service: Service, room: RoomCreds, store: Store, jwt_keys: JwtKeys
) -> None:
    user = store.add_user("mallory", password_hash=None)
    store.add_member(room.room_id, user.user_id)
    peer = await WsPeer.connect(service.server.url)
    for token in _forged_tokens(user.user_id):
        reply = await peer.register("c", "client", jwt=token, room_id=room.room_id)
        assert reply["type"] == "error"
        assert reply["code"] == "AUTH_FAILED"
    assert peer_ids(service, room.room_id) == set()
    await peer.close()


# --- messages between peers, over real sockets


async def test_discover_message_offer_and_metadata_round_trip(
    service: Service, room: RoomCreds
) -> None:
    worker = await WsPeer.joined(service, room, "w", metadata=WORKER_MD)
    client = await WsPeer.joined(service, room, "c", "client")

    found = await client.request(
        {
            "type": "discover_peers",
            "filters": {"role": "worker", "properties": {"gpu_memory_mb": {"$gte": 8}}},
        },
        "peer_list",
    )
    assert [p["peer_id"] for p in found["peers"]] == ["w"]

    await client.send(
        {
            "type": "peer_message",
            "from_peer_id": "c",
            "to_peer_id": "w",
            "payload": {"app_message_type": "job_request", "job_id": "j1"},
        }
    )
    delivered = await worker.expect("peer_message")
    assert delivered["from_peer_id"] == "c"
    assert delivered["payload"]["job_id"] == "j1"

    await client.send({"type": "offer", "sender": "c", "target": "w", "sdp": "v=0"})
    offer = await worker.expect("offer")
    assert offer == {"type": "offer", "sender": "c", "target": "w", "sdp": "v=0"}

    updated = await worker.request(
        {"type": "update_metadata", "metadata": {"properties": {"status": "busy"}}},
        "metadata_updated",
    )
    assert updated["metadata"]["properties"] == {
        "gpu_memory_mb": 24576,
        "status": "busy",
    }
    gone = await client.request(
        {
            "type": "discover_peers",
            "filters": {"properties": {"status": "available"}},
        },
        "peer_list",
    )
    assert gone["peers"] == []

    await client.send({"type": "offer", "sender": "c", "target": "ghost", "sdp": "x"})
    error = await client.expect("error")
    assert error["code"] == "PEER_NOT_FOUND"
    await worker.close()
    await client.close()


async def test_rooms_are_sealed_from_each_other(
    service: Service, room: RoomCreds, store: Store
) -> None:
    other_room = store.create_room("other")
    victim = await WsPeer.joined(service, room, "victim", metadata=WORKER_MD)
    mate = await WsPeer.joined(service, room, "mate", "client")
    other = RoomCreds(other_room.room_id, other_room.token)
    attacker = await WsPeer.joined(service, other, "attacker", "client")

    seen = await attacker.request({"type": "discover_peers"}, "peer_list")
    assert seen["peers"] == []

    await attacker.send(
        {
            "type": "peer_message",
            "from_peer_id": "attacker",
            "to_peer_id": "victim",
            "payload": {"x": 1},
        }
    )
    assert (await attacker.expect("error"))["code"] == "PEER_NOT_IN_ROOM"
    await attacker.send(
        {"type": "offer", "sender": "attacker", "target": "victim", "sdp": "x"}
    )
    assert (await attacker.expect("error"))["code"] == "PEER_NOT_FOUND"
    # Speaking as another peer of one's own room is refused too.
    await mate.send(
        {
            "type": "peer_message",
            "from_peer_id": "victim",
            "to_peer_id": "victim",
            "payload": {"x": 1},
        }
    )
    assert (await mate.expect("error"))["code"] == "IDENTITY_MISMATCH"
    await mate.send(
        {"type": "offer", "sender": "victim", "target": "mate", "sdp": "v=0"}
    )
    assert (await mate.expect("error"))["code"] == "IDENTITY_MISMATCH"

    record = service.server.router.registry.get(room.room_id, "victim")
    assert record is not None
    assert record.metadata == WORKER_MD
    for peer in (victim, mate, attacker):
        await peer.close()


async def test_reconnect_replaces_the_stale_socket(
    service: Service, room: RoomCreds
) -> None:
    first = await WsPeer.joined(service, room, "w")
    second = await WsPeer.joined(service, room, "w")
    with pytest.raises(ConnectionClosed):
        await first.recv(timeout=5)
    await first.close()
    # The stale socket's close never removes the fresh registration.
    await asyncio.sleep(0)
    assert peer_ids(service, room.room_id) == {"w"}
    assert (await second.request({"type": "discover_peers"}, "peer_list"))[
        "type"
    ] == "peer_list"
    await second.close()
    await async_wait_until(lambda: peer_ids(service, room.room_id) == set())


async def test_disconnect_tells_the_room(service: Service, room: RoomCreds) -> None:
    watcher = await WsPeer.joined(service, room, "c", "client")
    worker = await WsPeer.joined(service, room, "w")
    assert (await watcher.expect("peer_joined"))["peer_id"] == "w"
    await worker.close()
    assert (await watcher.expect("peer_left"))["peer_id"] == "w"
    await watcher.close()


# --- timers


class RawPeer:
    """A WebSocket peer that never reads: it cannot answer pings."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.protocol: ClientProtocol | None = None

    @classmethod
    async def connect(cls, url: str) -> RawPeer:
        uri = parse_uri(url)
        reader, writer = await asyncio.open_connection(uri.host, uri.port)
        peer = cls(reader, writer)
        protocol = ClientProtocol(uri)
        peer.protocol = protocol
        protocol.send_request(protocol.connect())
        peer.flush()
        while not protocol.events_received():
            protocol.receive_data(await asyncio.wait_for(reader.read(4096), 5))
        return peer

    def flush(self) -> None:
        assert self.protocol is not None
        for chunk in self.protocol.data_to_send():
            self.writer.write(chunk)

    def send(self, obj: Any) -> None:
        assert self.protocol is not None
        self.protocol.send_text(json.dumps(obj).encode())
        self.flush()

    def send_frame(self, frame: Frame) -> None:
        assert self.protocol is not None
        self.protocol.send_frame(frame)
        self.flush()


async def test_pings_and_silent_peers_are_dropped(
    server_config: ServerConfig, store: Store, jwt_keys: JwtKeys, room: RoomCreds
) -> None:
    server_config.ping_interval = 0.1
    svc = build_service(server_config, store, jwt_keys)
    await svc.server.start()
    try:
        live = await WsPeer.joined(svc, room, "live")
        silent = await RawPeer.connect(svc.server.url)
        silent.send(
            {
                "type": "register",
                "peer_id": "silent",
                "role": "worker",
                "room_id": room.room_id,
                "token": room.token,
            }
        )
        await async_wait_until(lambda: "silent" in peer_ids(svc, room.room_id))
        raw = await asyncio.wait_for(live.ws.recv(), scaled(5))
        while json.loads(raw)["type"] != "ping":
            raw = await asyncio.wait_for(live.ws.recv(), scaled(5))
        # The live peer answers protocol pings (websockets does it while
        # reading); the raw one never reads, so it is dropped.
        await async_wait_until(
            lambda: peer_ids(svc, room.room_id) == {"live"}, timeout=scaled(5)
        )
        assert (await live.expect("peer_left"))["peer_id"] == "silent"
        await live.close()
        silent.writer.close()
    finally:
        await svc.server.stop()


# --- limits and hostile input


async def test_oversized_frames(
    server_config: ServerConfig, store: Store, jwt_keys: JwtKeys, room: RoomCreds
) -> None:
    server_config.limits = Limits(max_frame_bytes=1000, hard_frame_bytes=5000)
    svc = build_service(server_config, store, jwt_keys)
    await svc.server.start()
    try:
        peer = await WsPeer.joined(svc, room, "w")
        await peer.send({"type": "discover_peers", "pad": "x" * 2000})
        assert (await peer.expect("error"))["code"] == "MESSAGE_TOO_LARGE"
        # Still connected after a typed error.
        assert (await peer.request({"type": "discover_peers"}, "peer_list"))[
            "peers"
        ] == []
        # Beyond the hard bound the WebSocket layer closes with 1009.
        await peer.send("y" * 6000)
        with pytest.raises(ConnectionClosed) as closed:
            await peer.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009
        metrics = json.loads((await http_get(svc, "/metrics"))[2])
        assert metrics["limits_exceeded"]["frame_size"] >= 1
    finally:
        await svc.server.stop()


async def test_rate_limit_is_typed_and_counted(
    server_config: ServerConfig, store: Store, jwt_keys: JwtKeys, room: RoomCreds
) -> None:
    server_config.limits = Limits(messages_per_second=1, burst=5)
    svc = build_service(server_config, store, jwt_keys)
    await svc.server.start()
    try:
        peer = await WsPeer.joined(svc, room, "w")
        for _ in range(10):
            await peer.send({"type": "discover_peers"})
        # Four tokens left after register: four answers, then one RATE_LIMITED
        # for the whole episode; the rest waits (held, not dropped).
        replies = [await peer.recv() for _ in range(5)]
        assert [r["type"] for r in replies[:4]] == ["peer_list"] * 4
        assert replies[4]["code"] == "RATE_LIMITED"
        with pytest.raises(TimeoutError):
            await peer.recv(timeout=0.3)
        # As the budget refills, every held request is answered, in order.
        later = [await peer.recv(timeout=scaled(10)) for _ in range(6)]
        assert [r["type"] for r in later] == ["peer_list"] * 6
        # After the pause the peer is served again.
        await asyncio.sleep(scaled(1.2))
        assert (await peer.request({"type": "discover_peers"}, "peer_list"))[
            "type"
        ] == "peer_list"
        metrics = json.loads((await http_get(svc, "/metrics"))[2])
        assert metrics["limits_exceeded"]["rate"] >= 1
    finally:
        await svc.server.stop()


async def test_connection_limit_rejects_the_handshake(
    server_config: ServerConfig, store: Store, jwt_keys: JwtKeys
) -> None:
    server_config.limits = Limits(max_connections=1)
    svc = build_service(server_config, store, jwt_keys)
    await svc.server.start()
    try:
        first = await WsPeer.connect(svc.server.url)
        with pytest.raises(Exception, match="503"):
            await WsPeer.connect(svc.server.url)
        await first.close()
    finally:
        await svc.server.stop()


def _mutations(rng: random.Random, valid: list[str]) -> str:
    """One malformed or mutated frame."""
    base = rng.choice(valid)
    kind = rng.randrange(6)
    if kind == 0:  # truncated
        return base[: rng.randrange(len(base))]
    if kind == 1:  # a byte flipped
        i = rng.randrange(len(base))
        return base[:i] + chr(rng.randrange(32, 0x2FF)) + base[i + 1 :]
    if kind == 2:  # wrong field type
        obj = json.loads(base)
        key = rng.choice([k for k in obj if k != "type"] or ["type"])
        obj[key] = rng.choice([None, 3, [], {}, "s", True, 1.5])
        return json.dumps(obj)
    if kind == 3:  # unknown type
        obj = json.loads(base)
        obj["type"] = rng.choice(["", "x", "REGISTER", 7, None])
        return json.dumps(obj)
    if kind == 4:  # not an object
        return rng.choice(["[]", "1", "null", '"s"', "", "{", "\\ud800"])
    obj = json.loads(base)  # a spoofed sender
    for key in ("from_peer_id", "sender"):
        if key in obj:
            obj[key] = "w"
    return json.dumps(obj)


async def test_thousands_of_hostile_frames_change_nothing(
    server_config: ServerConfig, store: Store, jwt_keys: JwtKeys, room: RoomCreds
) -> None:
    # No rate limit here: every frame must get its own typed answer.
    server_config.limits = Limits(messages_per_second=1e9, burst=10**9)
    service = build_service(server_config, store, jwt_keys)
    await service.server.start()
    try:
        await _hostile(service, room)
    finally:
        await service.server.stop()


async def _hostile(service: Service, room: RoomCreds) -> None:
    worker = await WsPeer.joined(service, room, "w", metadata=WORKER_MD)
    attacker = await WsPeer.joined(service, room, "a", "client")
    await worker.expect("peer_joined")
    valid = [
        json.dumps({"type": "discover_peers", "filters": {"role": "worker"}}),
        json.dumps(
            {
                "type": "peer_message",
                "from_peer_id": "a",
                "to_peer_id": "w",
                "payload": {"k": 1},
            }
        ),
        json.dumps({"type": "offer", "sender": "a", "target": "w", "sdp": "v=0"}),
        json.dumps({"type": "candidate", "sender": "a", "target": "w"}),
        json.dumps({"type": "mesh_connect", "from_peer_id": "a", "target": "w"}),
    ]
    registry = service.server.router.registry

    def state() -> Any:
        return sorted(
            (r.room_id, r.peer_id, json.dumps(r.metadata, sort_keys=True))
            for r in registry.all_peers()
        )

    before = state()
    rng = random.Random(20261123)
    frames = [_mutations(rng, valid) for _ in range(2000)]
    for frame in frames:
        await attacker.send(frame)
    await attacker.send({"type": "discover_peers", "request_id": "end"})
    replies: list[dict[str, Any]] = []
    while True:
        msg = await attacker.recv()
        if msg.get("request_id") == "end":
            break
        replies.append(msg)
    assert state() == before
    assert {m["type"] for m in replies} <= {"error", "peer_list"}
    assert all("code" in m for m in replies if m["type"] == "error")
    assert len(replies) >= 1000
    # Still registered and served.
    assert peer_ids(service, room.room_id) == {"w", "a"}
    await worker.close()
    await attacker.close()


async def test_binary_and_fragmented_frames(service: Service, room: RoomCreds) -> None:
    peer = await RawPeer.connect(service.server.url)
    text = json.dumps(
        {
            "type": "register",
            "peer_id": "frag",
            "role": "worker",
            "room_id": room.room_id,
            "token": room.token,
        }
    ).encode()
    peer.send_frame(Frame(Opcode.TEXT, text[:10], fin=False))
    peer.send_frame(Frame(Opcode.CONT, text[10:], fin=True))
    await async_wait_until(lambda: "frag" in peer_ids(service, room.room_id))
    peer.send_frame(Frame(Opcode.BINARY, b"\xff\xfe"))
    peer.writer.close()
    await async_wait_until(lambda: "frag" not in peer_ids(service, room.room_id))


# --- TLS


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_tls(
    tmp_path: Path,
    server_config: ServerConfig,
    store: Store,
    jwt_keys: JwtKeys,
    room: RoomCreds,
) -> None:
    cert, key = _self_signed(tmp_path)
    server_config.tls_cert, server_config.tls_key = str(cert), str(key)
    svc = build_service(server_config, store, jwt_keys)
    await svc.server.start()
    try:
        assert svc.server.url.startswith("wss://")
        ctx = ssl.create_default_context(cafile=str(cert))
        peer = await WsPeer.connect(svc.server.url, ssl=ctx)
        reply = await peer.register("w", room_id=room.room_id, token=room.token)
        assert reply["type"] == "registered_auth"
        await peer.close()
    finally:
        await svc.server.stop()
