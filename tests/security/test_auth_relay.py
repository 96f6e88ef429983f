"""A room member cannot borrow another peer's credentials on the channel:
the relay of PROTOCOL.md B §4.2's one-way scheme fails with three real peers
(our worker, a hostile room member, our client) on one real server, and a
worker that cannot prove the room secret is refused by our client.

The hostile member holds the room token but not the room secret. It answers
our client's offer and opens its own connection to the real worker, then
passes the worker's challenge to the client and the client's answer back.
Our answers name this connection (both peer ids and both DTLS
fingerprints), so the worker refuses the relayed one, whichever dialect the
relay claims on either side.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from sleap_rtc_core.protocol.channel_auth import (
    NO_PROOF,
    AuthChallengeMsg,
    AuthFailureMsg,
    AuthFailureReason,
    AuthProofMsg,
    AuthSuccessMsg,
    b64url_encode,
    make_nonce,
)
from sleap_rtc_core.signaling.client.session_io import SignalingClient
from sleap_rtc_core.signaling.service import Service
from sleap_rtc_core.transport import (
    Channel,
    ChannelAcceptor,
    ChannelAuth,
    ChannelAuthFailed,
    open_channel,
)
from tests.fixtures.signaling import RoomCreds
from tests.fixtures.timing import async_wait_until, scaled
from tests.fixtures.transport import make_signaling

from .raw_peer import accept_raw, open_raw


@dataclass
class Room:
    """The real worker ``w``, the hostile member ``m`` and our client ``c``."""

    worker: SignalingClient
    mallory: SignalingClient
    client: SignalingClient
    accepted: list[Channel] = field(default_factory=list)

    async def keep(self, channel: Channel) -> None:
        self.accepted.append(channel)
        await channel.closed.wait()


@pytest.fixture
async def three(service: Service, room: RoomCreds) -> AsyncIterator[Room]:
    url = service.server.url
    peers = [
        make_signaling(url, room, "w", "worker"),
        make_signaling(url, room, "m", "worker"),
        make_signaling(url, room, "c", "client"),
    ]
    started: list[SignalingClient] = []
    try:
        for peer in peers:
            await peer.start(timeout=scaled(5))
            started.append(peer)
        yield Room(*peers)
    finally:
        for peer in started:
            await peer.close()


@dataclass
class Relayed:
    """What passed through the relay."""

    answer: object = None
    verdict: object = None


async def _relay(
    room: Room, accepted: asyncio.Future[Channel], current: bool
) -> Relayed:
    """Mallory's side: pass the handshake between the client and the worker."""
    seen = Relayed()
    from_client = await asyncio.wait_for(accepted, scaled(15))
    to_worker = await open_raw(room.mallory, "w", current=current)
    async with to_worker:
        challenge = await to_worker.recv(scaled(5))
        assert isinstance(challenge, AuthChallengeMsg)
        await from_client.send(challenge)
        seen.answer = await from_client.recv(scaled(5))
        await to_worker.send(seen.answer)  # type: ignore[arg-type]
        seen.verdict = await to_worker.recv(scaled(5))
        await from_client.send(seen.verdict)  # type: ignore[arg-type]
    return seen


@pytest.mark.parametrize("current_offer", [True, False], ids=["as-ours", "as-0.0.7"])
@pytest.mark.parametrize("legacy_looking", [False, True], ids=["ours", "looks-0.0.7"])
async def test_a_relayed_answer_authenticates_no_one(
    three: Room, room_secret: str, current_offer: bool, legacy_looking: bool
) -> None:
    """Whatever Mallory claims to be (a current or a 0.0.7 client to the
    worker; a current or a 0.0.7 worker to the client), the client answers
    the worker's bound nonce with a proof of *its* connection, and the worker
    refuses it: no channel of Mallory's is authenticated."""
    auth = ChannelAuth(secret=room_secret)
    async with ChannelAcceptor(three.worker, auth=auth, on_channel=three.keep):
        async with accept_raw(three.mallory) as accepted:
            relay = asyncio.create_task(_relay(three, accepted, current_offer))
            with pytest.raises(ChannelAuthFailed) as caught:
                await open_channel(
                    three.client,
                    "m",
                    auth=auth,
                    timeout=scaled(10),
                    legacy_worker=legacy_looking,
                )
            seen = await relay
    assert isinstance(seen.answer, AuthProofMsg)  # never a one-way answer
    assert seen.verdict == AuthFailureMsg(AuthFailureReason.INVALID)
    assert caught.value.reason is AuthFailureReason.INVALID
    assert three.accepted == []


async def test_the_same_client_reaches_the_real_worker(
    three: Room, room_secret: str
) -> None:
    """The control: without a relay, the same credentials open a channel."""
    auth = ChannelAuth(secret=room_secret)
    async with ChannelAcceptor(three.worker, auth=auth, on_channel=three.keep):
        async with await open_channel(
            three.client, "w", auth=auth, timeout=scaled(10)
        ) as channel:
            assert channel.authenticated
            await async_wait_until(lambda: bool(three.accepted), scaled(5))


@pytest.mark.parametrize(
    "verdict",
    [
        AuthSuccessMsg(),
        AuthSuccessMsg(NO_PROOF),
        AuthSuccessMsg(b64url_encode(bytes(32))),
    ],
    ids=["bare", "none", "forged"],
)
async def test_an_impostor_worker_is_refused(
    three: Room, room_secret: str, verdict: AuthSuccessMsg
) -> None:
    """Mallory plays the worker itself: a bound nonce of its own, then
    ``AUTH_SUCCESS`` without a valid proof of the room secret."""
    async with accept_raw(three.mallory) as accepted:

        async def impostor() -> object:
            channel = await asyncio.wait_for(accepted, scaled(15))
            await channel.send(AuthChallengeMsg(make_nonce(bytes(range(32)))))
            answer = await channel.recv(scaled(5))
            await channel.send(verdict)
            return answer

        task = asyncio.create_task(impostor())
        with pytest.raises(ChannelAuthFailed, match="did not prove"):
            await open_channel(
                three.client,
                "m",
                auth=ChannelAuth(secret=room_secret),
                timeout=scaled(10),
            )
        assert isinstance(await task, AuthProofMsg)


async def test_a_current_worker_asking_a_one_way_answer_is_refused(
    three: Room, room_secret: str
) -> None:
    """A peer registered as a current worker that sends an unbound nonce (a
    0.0.7 worker's, relayed, or its own) gets no answer at all."""
    async with accept_raw(three.mallory) as accepted:

        async def downgrade() -> object:
            channel = await asyncio.wait_for(accepted, scaled(15))
            await channel.send(AuthChallengeMsg(b64url_encode(bytes(32))))
            try:
                return await channel.recv(scaled(3))
            except (TimeoutError, Exception):
                return None

        task = asyncio.create_task(downgrade())
        with pytest.raises(ChannelAuthFailed, match="one-way"):
            await open_channel(
                three.client,
                "m",
                auth=ChannelAuth(secret=room_secret),
                timeout=scaled(10),
            )
        assert not isinstance(await task, AuthProofMsg)
