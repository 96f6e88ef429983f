"""The AUTH handshake between two real peers: success with a room secret and
with Ed25519, both ends proving themselves, every failure reason, and commands
refused before success.

Tests that need a client which does *not* authenticate replace the client's
handshake in :mod:`sleap_rtc_core.transport.peer` with one that only keeps the
connection's binding, and then speak the handshake by hand over the real
channel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sleap_rtc_core.protocol.channel_auth import (
    AuthChallengeMsg,
    AuthFailureMsg,
    AuthFailureReason,
    AuthResponseMsg,
    AuthSuccessMsg,
    ChannelBinding,
    PublicKeyLike,
    b64url_encode,
    client_proof,
    ed25519_public_key_b64url,
    make_nonce,
    psk_response,
    verify_worker_proof,
)
from sleap_rtc_core.protocol.channel_legacy import ErrorMsg
from sleap_rtc_core.protocol.channel_messages import JobCancelMsg, JobStopMsg
from sleap_rtc_core.transport import (
    AUTH_REQUIRED,
    Channel,
    ChannelAuth,
    ChannelAuthFailed,
    KeyCache,
    open_channel,
)
from sleap_rtc_core.transport import peer as peer_module
from tests.fixtures.timing import scaled
from tests.fixtures.transport import TransportPair


async def _connect(pair: TransportPair, auth: ChannelAuth) -> Channel:
    return await open_channel(pair.signaling.client, "w", auth=auth, timeout=scaled(10))


async def _unauthenticated(
    pair: TransportPair,
    monkeypatch: pytest.MonkeyPatch,
    bindings: list[ChannelBinding] | None = None,
) -> Channel:
    """A client channel whose own handshake was skipped (its binding is kept
    in ``bindings``)."""

    async def skip(
        channel: Channel, auth: ChannelAuth, *, binding: ChannelBinding, **_: object
    ) -> None:
        if bindings is not None:
            bindings.append(binding)

    monkeypatch.setattr(peer_module, "authenticate", skip)
    return await _connect(pair, ChannelAuth())


async def test_psk_success(transport_pair: TransportPair, room_secret: str) -> None:
    auth = ChannelAuth(secret=room_secret)
    async with transport_pair.acceptor(auth):
        async with await _connect(transport_pair, auth) as client:
            worker = await transport_pair.worker_channel()
            assert client.authenticated
            assert worker.authenticated


async def test_ed25519_success_with_a_sync_key_source(
    transport_pair: TransportPair, signing_key: Ed25519PrivateKey
) -> None:
    other = Ed25519PrivateKey.generate()
    keys = [ed25519_public_key_b64url(other), ed25519_public_key_b64url(signing_key)]
    worker_auth = ChannelAuth(authorized_keys=lambda: keys)
    async with transport_pair.acceptor(worker_auth):
        async with await _connect(
            transport_pair, ChannelAuth(private_key=signing_key)
        ) as client:
            assert client.authenticated
            assert (await transport_pair.worker_channel()).authenticated


async def test_ed25519_success_with_a_cached_async_key_source(
    transport_pair: TransportPair, signing_key: Ed25519PrivateKey
) -> None:
    fetched = 0

    async def fetch() -> Iterable[PublicKeyLike]:
        nonlocal fetched
        fetched += 1
        return [signing_key.public_key()]

    worker_auth = ChannelAuth(authorized_keys=KeyCache(fetch))
    # The client key given as base64url text, as a config file would hold it.
    raw = signing_key.private_bytes_raw()
    client_auth = ChannelAuth(private_key=b64url_encode(raw))
    async with transport_pair.acceptor(worker_auth):
        for _ in range(2):
            async with await _connect(transport_pair, client_auth) as client:
                assert client.authenticated
    assert fetched == 1


async def test_a_signature_is_preferred_over_the_secret(
    transport_pair: TransportPair, signing_key: Ed25519PrivateKey
) -> None:
    """The client holds both and signs; the worker knows the key and the
    secret, so it verifies the signature and proves the secret back."""
    worker_auth = ChannelAuth(
        secret="c2VjcmV0", authorized_keys=lambda: [signing_key.public_key()]
    )
    client_auth = ChannelAuth(secret="c2VjcmV0", private_key=signing_key)
    async with transport_pair.acceptor(worker_auth):
        async with await _connect(transport_pair, client_auth) as client:
            assert client.authenticated


async def test_a_client_with_the_secret_refuses_a_worker_that_cannot_prove_it(
    transport_pair: TransportPair, signing_key: Ed25519PrivateKey
) -> None:
    """A worker that knows only the room's keys accepts the signature but
    cannot prove the room secret; a client holding it refuses the channel."""
    worker_auth = ChannelAuth(authorized_keys=lambda: [signing_key.public_key()])
    client_auth = ChannelAuth(secret="c2VjcmV0", private_key=signing_key)
    async with transport_pair.acceptor(worker_auth):
        with pytest.raises(ChannelAuthFailed, match="did not prove") as caught:
            await _connect(transport_pair, client_auth)
    assert caught.value.reason is AuthFailureReason.INVALID


async def test_the_worker_proves_the_transcript_of_this_connection(
    transport_pair: TransportPair,
    room_secret: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Spoken by hand: the worker's AUTH_SUCCESS carries its HMAC over the
    transcript both ends see, and a one-way answer from a current client (its
    offer carries our version) is refused."""
    bindings: list[ChannelBinding] = []
    async with transport_pair.acceptor(ChannelAuth(secret=room_secret)):
        client = await _unauthenticated(transport_pair, monkeypatch, bindings)
        async with client:
            challenge = await client.recv(scaled(5))
            assert isinstance(challenge, AuthChallengeMsg)
            proof = client_proof(
                challenge.nonce,
                make_nonce(bytes(range(32))),
                bindings[0],
                secret_b64url=room_secret,
            )
            assert proof is not None
            await client.send(proof)
            success = await client.recv(scaled(5))
            assert isinstance(success, AuthSuccessMsg)
            assert verify_worker_proof(
                room_secret,
                success.proof,
                challenge.nonce,
                proof.client_nonce,
                bindings[0],
            )
        client = await _unauthenticated(transport_pair, monkeypatch)
        async with client:
            challenge = await client.recv(scaled(5))
            assert isinstance(challenge, AuthChallengeMsg)
            await client.send(
                AuthResponseMsg(psk_response(room_secret, challenge.nonce))
            )
            assert await client.recv(scaled(5)) == AuthFailureMsg(
                AuthFailureReason.INVALID
            )


@pytest.mark.parametrize(
    ("worker_auth", "client_auth", "reason"),
    [
        pytest.param(
            ChannelAuth(secret="c2VjcmV0LW9uZQ"),
            ChannelAuth(secret="c2VjcmV0LXR3bw"),
            AuthFailureReason.INVALID,
            id="wrong-secret",
        ),
        pytest.param(
            ChannelAuth(
                authorized_keys=lambda: [Ed25519PrivateKey.generate().public_key()]
            ),
            ChannelAuth(private_key=Ed25519PrivateKey.generate()),
            AuthFailureReason.INVALID,
            id="unlisted-key",
        ),
        pytest.param(
            ChannelAuth(),
            ChannelAuth(secret="c2VjcmV0"),
            AuthFailureReason.INVALID,
            id="worker-without-credentials",
        ),
        pytest.param(
            ChannelAuth(secret="c2VjcmV0"),
            ChannelAuth(),
            AuthFailureReason.MISSING,
            id="client-without-credentials",
        ),
    ],
)
async def test_refused_channels_fail_on_both_sides(
    transport_pair: TransportPair,
    worker_auth: ChannelAuth,
    client_auth: ChannelAuth,
    reason: AuthFailureReason,
) -> None:
    """The worker never skips the challenge, whatever the offer says (the
    ``missing`` case proves it)."""
    async with transport_pair.acceptor(worker_auth) as acceptor:
        with pytest.raises(ChannelAuthFailed) as caught:
            await _connect(transport_pair, client_auth)
        assert caught.value.reason is reason
        assert caught.value.code == "AUTH_FAILED"
        assert transport_pair.channels == []
        assert not acceptor.channels


async def test_worker_times_out_a_silent_client_and_closes(
    transport_pair: TransportPair,
    room_secret: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker_auth = ChannelAuth(secret=room_secret, timeout=scaled(0.3))
    async with transport_pair.acceptor(worker_auth):
        client = await _unauthenticated(transport_pair, monkeypatch)
        async with client:
            assert isinstance(await client.recv(scaled(5)), AuthChallengeMsg)
            failure = await client.recv(scaled(5))
            assert failure == AuthFailureMsg(AuthFailureReason.TIMEOUT)
            await asyncio.wait_for(client.closed.wait(), scaled(5))
    assert transport_pair.channels == []


async def test_client_times_out_a_silent_worker(
    transport_pair: TransportPair,
    room_secret: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def never_challenge(channel: Channel, auth: ChannelAuth, **_: object) -> None:
        await channel.closed.wait()

    monkeypatch.setattr(peer_module, "verify_peer", never_challenge)
    client_auth = ChannelAuth(secret=room_secret, client_timeout=scaled(0.3))
    async with transport_pair.acceptor(ChannelAuth(secret=room_secret)):
        with pytest.raises(ChannelAuthFailed) as caught:
            await _connect(transport_pair, client_auth)
    assert caught.value.reason is AuthFailureReason.TIMEOUT


async def test_commands_before_auth_are_refused_and_never_delivered(
    transport_pair: TransportPair,
    room_secret: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bindings: list[ChannelBinding] = []
    async with transport_pair.acceptor(ChannelAuth(secret=room_secret)):
        client = await _unauthenticated(transport_pair, monkeypatch, bindings)
        async with client:
            challenge = await client.recv(scaled(5))
            assert isinstance(challenge, AuthChallengeMsg)
            await client.send(JobStopMsg())
            await client.send_bytes(b"not yet")
            refusal = await client.recv(scaled(5))
            assert isinstance(refusal, ErrorMsg)
            assert refusal.text.startswith(AUTH_REQUIRED)
            assert transport_pair.channels == []

            proof = client_proof(
                challenge.nonce,
                make_nonce(bytes(32)),
                bindings[0],
                secret_b64url=room_secret,
            )
            assert proof is not None
            await client.send(proof)
            assert isinstance(await client.recv(scaled(5)), AuthSuccessMsg)
            await client.send(JobCancelMsg())
            worker = await transport_pair.worker_channel()
            # The command sent before AUTH_SUCCESS (and the bytes) are gone.
            assert await worker.recv(scaled(5)) == JobCancelMsg()


async def test_a_reply_for_another_nonce_is_invalid(
    transport_pair: TransportPair,
    room_secret: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A replayed answer (computed for an earlier nonce) does not verify."""
    old_nonce = make_nonce(bytes(32))
    async with transport_pair.acceptor(ChannelAuth(secret=room_secret)):
        client = await _unauthenticated(transport_pair, monkeypatch)
        async with client:
            assert isinstance(await client.recv(scaled(5)), AuthChallengeMsg)
            await client.send(AuthResponseMsg(psk_response(room_secret, old_nonce)))
            assert await client.recv(scaled(5)) == AuthFailureMsg(
                AuthFailureReason.INVALID
            )
            await asyncio.wait_for(client.closed.wait(), scaled(5))


async def test_key_cache_refetches_after_ttl_and_survives_a_failure() -> None:
    key = Ed25519PrivateKey.generate().public_key()
    calls = 0

    async def fetch() -> Iterable[PublicKeyLike]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("server down")
        return [key]

    cache = KeyCache(fetch, ttl=0.0)
    assert await cache() == [key]
    assert await cache() == [key]  # the failed refetch keeps the last list
    assert await cache() == [key]
    assert calls == 3
    assert await ChannelAuth().public_keys() == []
