"""A worker registered with a worker key accepts channels signed by a room
member's Ed25519 key (the server's list), with no room secret; other keys are
refused. Real server (HTTP API), real worker, real WebRTC channel on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sleap_rtc_core.errors import TransportError
from sleap_rtc_core.protocol.channel_auth import ed25519_public_key_b64url
from sleap_rtc_core.signaling.auth.jwt_keys import JwtKeys
from sleap_rtc_core.signaling.http.api import http_api_factory
from sleap_rtc_core.signaling.server.router_io import ServerConfig
from sleap_rtc_core.signaling.service import Service, build_service
from sleap_rtc_core.signaling.store.auth_store import Store
from sleap_rtc_core.transport import ChannelAuth, ChannelAuthFailed, open_channel
from sleap_rtc_core.worker.capabilities import StatedGpu, WorkerCapabilities
from sleap_rtc_core.worker.files.mounts import MountPolicy
from sleap_rtc_core.worker.hardware import JobHardware
from sleap_rtc_core.worker.room_keys import room_key_cache
from sleap_rtc_core.worker.service import WorkerService
from tests.fixtures.redis import free_port
from tests.fixtures.signaling import RoomCreds
from tests.fixtures.timing import scaled
from tests.fixtures.transport import FAST_BACKOFF, make_signaling


@pytest.fixture
async def lab(jwt_keys: JwtKeys) -> AsyncIterator[tuple[Service, Store]]:
    store = Store(":memory:")
    svc = build_service(
        ServerConfig(host="127.0.0.1", port=0), store, jwt_keys, http=http_api_factory()
    )
    await svc.server.start()
    try:
        yield svc, store
    finally:
        await svc.server.stop()
        store.close()


async def test_a_members_key_opens_a_channel_without_a_room_secret(
    lab: tuple[Service, Store], tmp_path: Path
) -> None:
    svc, store = lab
    room = store.create_room("lab")
    user = store.add_user("alice")
    store.add_member(room.room_id, user.user_id)
    member_key = Ed25519PrivateKey.generate()
    store.add_public_key(
        user.user_id, ed25519_public_key_b64url(member_key), "alice-laptop"
    )
    _record, worker_key = store.create_worker_token(room.room_id, "gpu-box")
    worker = WorkerService(
        svc.server.url,
        {"api_key": worker_key},
        # The GPU is stated (a boundary fake); its jobs would run on this CPU.
        WorkerCapabilities.from_probe(StatedGpu("NVIDIA A40", 46068, "12.8")),
        MountPolicy([str(tmp_path)]),
        auth=ChannelAuth(),  # no room secret at all
        hardware=JobHardware(),
        peer_id="w",
        backoff=FAST_BACKOFF,
    )
    creds = RoomCreds(room.room_id, room.token)
    async with worker, make_signaling(svc.server.url, creds, "c", "client") as client:
        signed = ChannelAuth(private_key=member_key)
        channel = await open_channel(client, "w", auth=signed, timeout=scaled(10))
        await channel.close()
        stranger = ChannelAuth(private_key=Ed25519PrivateKey.generate())
        with pytest.raises(ChannelAuthFailed):
            await open_channel(client, "w", auth=stranger, timeout=scaled(10))


async def test_the_keys_come_from_any_live_server_of_the_list(
    lab: tuple[Service, Store],
) -> None:
    """The URL in use is dead (its process just died): the keys are fetched
    from the next live URL of the worker's list; none live is a typed error."""
    svc, store = lab
    room = store.create_room("lab")
    user = store.add_user("alice")
    store.add_member(room.room_id, user.user_id)
    member_key = Ed25519PrivateKey.generate()
    public = ed25519_public_key_b64url(member_key)
    store.add_public_key(user.user_id, public, "alice-laptop")
    _record, worker_key = store.create_worker_token(room.room_id, "gpu-box")
    dead = f"ws://127.0.0.1:{free_port()}"
    keys = room_key_cache(
        [dead, svc.server.url], worker_key, lambda: room.room_id, current=lambda: dead
    )
    assert await keys() == [public]
    nowhere = room_key_cache([dead], worker_key, lambda: room.room_id)
    with pytest.raises(TransportError, match="cannot fetch the room's keys"):
        await nowhere.fetch()
