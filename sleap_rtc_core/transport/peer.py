"""Peer connections over the signaling client: offer on the client, answer on
the worker, and the AUTH handshake before anyone sees a :class:`~.channel.Channel`.

The client (:func:`open_channel`) creates the ``RTCPeerConnection`` with the ICE
servers of its ``registered_auth``, one data channel, and sends ``offer``
(``sender``, ``target``, ``sdp``, ``role: "client"``) through the server; aiortc
puts every candidate in the SDP, so no ``candidate`` messages are needed. It
applies the worker's ``answer``, waits for the channel to open and
authenticates. Whatever fails on the way, the peer connection is closed.

The worker (:class:`ChannelAcceptor`) subscribes to offers addressed to it,
answers each in a task of its own, challenges the peer on the new channel
(always: ``role`` in the offer is ignored) and hands an authenticated channel
to ``on_channel``, which runs in that same task. When ``on_channel`` returns
(or raises) the channel is closed. :meth:`ChannelAcceptor.close` cancels every
task it owns and closes every connection.

Timers live here, in the adapter: ``timeout`` bounds offer → authenticated
channel on the client; ``ice_timeout`` bounds answer → open channel on the
worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.sdp import SessionDescription

from .. import __version__
from ..aio import wait_for
from ..errors import (
    ChannelClosed,
    ErrorCode,
    IceFailed,
    PeerNotFound,
    SleapRTCError,
    TransportError,
)
from ..protocol import signaling as sig
from ..protocol.channel_auth import ChannelBinding
from ..protocol.dialect import VERSION_KEY, Dialect, offer_dialect
from ..signaling.client.session_io import SignalingClient
from . import loopback
from .auth import ChannelAuth, authenticate, verify_peer
from .channel import (
    KEEPALIVE_INTERVAL,
    PC_CLOSE_TIMEOUT,
    Channel,
    close_peer_connection,
)

__all__ = [
    "DEFAULT_LABEL",
    "ChannelAcceptor",
    "ChannelHandler",
    "channel_binding",
    "ice_configuration",
    "open_channel",
]

logger = logging.getLogger(__name__)

DEFAULT_LABEL = "training"
"""The data channel label our client uses (workers accept any)."""

ChannelHandler = Callable[[Channel], Awaitable[None]]
"""What a worker runs for each authenticated channel."""

_FAILURE_LINGER = 1.0
"""Seconds a worker waits for the peer to hang up after ``AUTH_FAILURE``."""


def ice_configuration(signaling: SignalingClient) -> RTCConfiguration:
    """The ``RTCConfiguration`` of the ICE servers the server handed us.

    An empty list stays empty: aiortc would otherwise contact a public STUN
    server, and a lab on one network needs none.
    """
    loopback.apply_env()
    servers: list[RTCIceServer] = []
    for entry in signaling.registration.ice_servers:
        if isinstance(entry, dict) and entry.get("urls"):
            servers.append(
                RTCIceServer(
                    urls=entry["urls"],
                    username=entry.get("username"),
                    credential=entry.get("credential"),
                )
            )
        else:
            logger.warning("! ignoring malformed ICE server entry %r", entry)
    return RTCConfiguration(iceServers=servers)


_DIGESTS = ("sha-256", "sha-384", "sha-512")
"""The fingerprint algorithms aiortc checks the peer's certificate against
(every one the remote description lists must match it)."""


def _fingerprints(fingerprints: Any) -> tuple[str, ...]:
    lines = {
        f"{f.algorithm.lower()} {f.value.upper()}"
        for f in fingerprints
        if f.algorithm.lower() in _DIGESTS
    }
    return tuple(sorted(lines))


def channel_binding(
    pc: RTCPeerConnection, *, client_id: str, worker_id: str, we_are_client: bool
) -> ChannelBinding:
    """The binding of this connection: our certificate's fingerprints, and the
    peer's from its description. aiortc's DTLS handshake has checked the
    peer's certificate against every one of those, so both name the keys
    that really hold this connection's ends.

    Raises:
        TransportError: the connection has no DTLS transport, or the peer's
            description lists no fingerprint we can check.
    """
    sctp = pc.sctp
    remote = pc.remoteDescription
    if sctp is None or remote is None:
        raise TransportError("the connection is not set up: nothing to bind")
    ours = _fingerprints(sctp.transport.getLocalParameters().fingerprints)
    theirs: tuple[str, ...] = ()
    for media in SessionDescription.parse(remote.sdp).media:
        if media.dtls is not None:
            theirs = _fingerprints(media.dtls.fingerprints)
            break
    if not ours or not theirs:
        raise TransportError("no DTLS fingerprint to bind the channel to")
    return ChannelBinding(
        client_id=client_id,
        worker_id=worker_id,
        client_fingerprints=ours if we_are_client else theirs,
        worker_fingerprints=theirs if we_are_client else ours,
    )


async def open_channel(
    signaling: SignalingClient,
    peer_id: str,
    *,
    auth: ChannelAuth,
    timeout: float = 15.0,
    label: str = DEFAULT_LABEL,
    keepalive_interval: float | None = KEEPALIVE_INTERVAL,
    legacy_worker: bool = False,
) -> Channel:
    """Connect to ``peer_id`` and return an authenticated channel.

    Args:
        signaling: A started (registered) signaling client.
        peer_id: The worker to connect to.
        auth: Our credentials (Ed25519 key and/or room secret).
        timeout: Seconds for the answer and the ICE/DTLS/SCTP set-up; the AUTH
            handshake then has ``auth.client_timeout``.
        label: The data channel label.
        keepalive_interval: Seconds between binary keep-alives (``None``: off).
        legacy_worker: The worker registered as a sleap-rtc 0.0.7 one: its
            one-way challenge is answered (it cannot prove who it is).

    Raises:
        IceFailed: no answer, or the connection did not open, within ``timeout``.
        PeerNotFound: the server does not know ``peer_id``.
        TransportError: the worker refused the offer (e.g. ``worker_busy``).
        ChannelAuthFailed: the worker refused our credentials.
        ChannelClosed: the channel closed during the handshake.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pc = RTCPeerConnection(ice_configuration(signaling))
    try:
        dc = pc.createDataChannel(label)
        channel = Channel(dc, peer_id, pc=pc, keepalive_interval=keepalive_interval)
        async with signaling.subscribe("answer", "error") as inbox:
            offer = await pc.createOffer()
            await pc.setLocalDescription(offer)
            me = signaling.peer_id
            await signaling.send(
                sig.Offer(
                    target=peer_id,
                    sdp=pc.localDescription.sdp,
                    sender=me,
                    # Our marker, never ``role``: a 0.0.7 worker takes
                    # ``"role":"client"`` as its dashboard and skips the challenge.
                    extra={VERSION_KEY: __version__},
                )
            )
            logger.debug("> offer to %s", peer_id)
            answer = await _await_answer(inbox, peer_id, me, deadline, timeout)
        await pc.setRemoteDescription(RTCSessionDescription(answer.sdp, "answer"))
        remaining = deadline - loop.time()
        try:
            await channel.wait_open(max(remaining, 0.0))
        except (TimeoutError, ChannelClosed):
            raise IceFailed(
                f"no connection to {peer_id} within {timeout:.1f} s "
                f"(ICE {pc.iceConnectionState}, {pc.connectionState})"
            ) from None
        binding = channel_binding(
            pc, client_id=me or "", worker_id=peer_id, we_are_client=True
        )
        await authenticate(channel, auth, binding=binding, legacy_worker=legacy_worker)
        return channel
    except BaseException:
        await close_peer_connection(pc)
        raise


async def _await_answer(
    inbox: Any, peer_id: str, me: str, deadline: float, timeout: float
) -> sig.Answer:
    loop = asyncio.get_running_loop()
    while True:
        remaining = deadline - loop.time()
        try:
            if remaining <= 0:
                raise TimeoutError
            msg = await inbox.get(timeout=remaining)
        except TimeoutError:
            raise IceFailed(
                f"no answer from {peer_id} within {timeout:.1f} s"
            ) from None
        if isinstance(msg, sig.Answer):
            if msg.sender == peer_id:
                logger.debug("< answer from %s", peer_id)
                return msg
            continue
        if not isinstance(msg, sig.ErrorMessage):
            continue
        if msg.target == me and msg.code is None:
            if msg.sender is not None and msg.sender != peer_id:
                # Another room member's "refusal": not the worker's word.
                logger.info(
                    "! ignored an error from %s while asking %s", msg.sender, peer_id
                )
                continue
            # A worker's refusal, relayed (B §1.2): e.g. worker_busy.
            raise TransportError(
                f"{peer_id} refused the connection: {msg.message or msg.reason}",
                code=msg.reason or "PEER_REFUSED",
            )
        if msg.code in (ErrorCode.PEER_NOT_FOUND, ErrorCode.PEER_NOT_IN_ROOM):
            raise PeerNotFound(msg.message or f"{peer_id} is not in the room")


class ChannelAcceptor:
    """Answers offers addressed to us and runs ``on_channel`` for each
    authenticated channel (see the module docstring).

    Args:
        signaling: A started (registered) signaling client.
        auth: The room secret and/or the authorized-keys source.
        on_channel: Runs once per authenticated channel; the channel closes
            when it returns.
        ice_timeout: Seconds from our answer to an open data channel.
        keepalive_interval: Seconds between binary keep-alives (``None``: off).
        max_connections: Connections (in set-up or running) at once; offers
            beyond it are ignored (logged), so a flood of offers cannot
            exhaust the worker.
        setup_timeout: Seconds from an offer to an authenticated channel; a
            connection that is not there by then is dropped, its slot freed.
        max_setups_per_peer: Connections one peer may have in set-up at once;
            its further offers are ignored until one finishes, so one peer's
            flood of offers that never complete cannot hold every slot.
        accept_legacy: Whether offers from sleap-rtc 0.0.7 clients (no
            version marker) are answered; refused ones get ``error`` with
            reason ``legacy_client_refused``.

    Attributes:
        channels: The authenticated channels whose handler is running.
    """

    def __init__(
        self,
        signaling: SignalingClient,
        *,
        auth: ChannelAuth,
        on_channel: ChannelHandler,
        ice_timeout: float = 15.0,
        keepalive_interval: float | None = KEEPALIVE_INTERVAL,
        max_connections: int = 32,
        setup_timeout: float = 10.0,
        max_setups_per_peer: int = 2,
        accept_legacy: bool = True,
    ) -> None:
        self.signaling = signaling
        self.accept_legacy = accept_legacy
        self.max_connections = max_connections
        self.setup_timeout = setup_timeout
        self.max_setups_per_peer = max_setups_per_peer
        self._setups: dict[str, int] = {}
        self.auth = auth
        self.on_channel = on_channel
        self.ice_timeout = ice_timeout
        self.keepalive_interval = keepalive_interval
        self.channels: set[Channel] = set()
        self._reader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._pcs: set[RTCPeerConnection] = set()
        self._started = asyncio.Event()
        self._closed = False

    async def start(self) -> None:
        """Start answering offers (returns once subscribed)."""
        if self._reader is not None:
            raise RuntimeError("acceptor already started")
        self._reader = asyncio.create_task(self._read(), name="channel acceptor")
        await self._started.wait()

    async def close(self) -> None:
        """Stop answering; cancel every handler and close every connection."""
        self._closed = True
        tasks = [t for t in (self._reader, *self._tasks) if t is not None]
        self._reader = None
        for task in tasks:
            task.cancel()
        if tasks:  # each task's own clean-up is bounded (close_peer_connection)
            await asyncio.wait(tasks, timeout=2 * PC_CLOSE_TIMEOUT)
        for channel in list(self.channels):
            await channel.close("the worker is shutting down")
        for pc in list(self._pcs):
            await close_peer_connection(pc)
        self._pcs.clear()

    async def __aenter__(self) -> ChannelAcceptor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _read(self) -> None:
        async with self.signaling.subscribe("offer") as offers:
            self._started.set()
            while True:
                msg = await offers.get()
                if not isinstance(msg, sig.Offer) or not msg.sender:
                    continue
                if self._closed:
                    return
                if msg.target != self.signaling.peer_id:
                    continue
                if not self.accept_legacy and offer_dialect(msg.extra) is (
                    Dialect.LEGACY
                ):
                    await self._refuse_legacy(msg.sender)
                    continue
                if len(self._tasks) >= self.max_connections:
                    logger.warning(
                        "! %d connections open; ignoring the offer from %s",
                        len(self._tasks),
                        msg.sender,
                    )
                    continue
                if self._setups.get(msg.sender, 0) >= self.max_setups_per_peer:
                    logger.warning(
                        "! %s already has %d connections in set-up; offer ignored",
                        msg.sender,
                        self.max_setups_per_peer,
                    )
                    continue
                self._setups[msg.sender] = self._setups.get(msg.sender, 0) + 1
                task = asyncio.create_task(
                    self._serve(msg), name=f"channel from {msg.sender}"
                )
                self._tasks.add(task)
                task.add_done_callback(self._task_done)

    async def _refuse_legacy(self, peer_id: str) -> None:
        logger.warning("! %s runs sleap-rtc 0.0.7; its offer is refused", peer_id)
        with contextlib.suppress(SleapRTCError):
            await self.signaling.send(
                sig.ErrorMessage(
                    target=peer_id,
                    reason="legacy_client_refused",
                    message=(
                        "this worker accepts no sleap-rtc 0.0.7 clients: "
                        "upgrade sleap-rtc"
                    ),
                )
            )

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("! channel task failed", exc_info=task.exception())

    async def _serve(self, offer: sig.Offer) -> None:
        peer_id = offer.sender
        assert peer_id is not None
        pc = RTCPeerConnection(ice_configuration(self.signaling))
        self._pcs.add(pc)
        opened: asyncio.Future[Channel] = asyncio.get_running_loop().create_future()

        def on_datachannel(dc: RTCDataChannel) -> None:
            # Wrapped at once, so that no frame arrives before our reader.
            channel = Channel(
                dc, peer_id, pc=pc, keepalive_interval=self.keepalive_interval
            )
            channel.legacy_peer = offer_dialect(offer.extra) is Dialect.LEGACY
            if opened.done():
                asyncio.ensure_future(channel.close("one channel per connection"))
            else:
                opened.set_result(channel)

        pc.on("datachannel", on_datachannel)
        channel: Channel | None = None
        try:
            try:
                async with asyncio.timeout(self.setup_timeout):
                    channel = await self._set_up(pc, offer, opened)
            except TimeoutError:
                logger.warning(
                    "! %s did not authenticate within %.1f s; connection dropped",
                    peer_id,
                    self.setup_timeout,
                )
                return
            finally:
                self._setup_done(peer_id)
            if channel is None:
                return
            self.channels.add(channel)
            try:
                await self.on_channel(channel)
            finally:
                self.channels.discard(channel)
        except ChannelClosed:
            logger.debug("= %s closed the channel during set-up", peer_id)
        except (ValueError, TransportError) as exc:  # an SDP we cannot use
            logger.warning("! bad offer from %s: %s", peer_id, exc)
        finally:
            if channel is None and opened.done() and not opened.cancelled():
                channel = opened.result()
            if channel is not None:
                await channel.close()
            await close_peer_connection(pc)
            self._pcs.discard(pc)

    def _setup_done(self, peer_id: str) -> None:
        left = self._setups.get(peer_id, 1) - 1
        if left > 0:
            self._setups[peer_id] = left
        else:
            self._setups.pop(peer_id, None)

    async def _set_up(
        self,
        pc: RTCPeerConnection,
        offer: sig.Offer,
        opened: asyncio.Future[Channel],
    ) -> Channel | None:
        """Answer, wait for the channel and authenticate it; ``None`` when the
        peer failed (the reason is logged and, for AUTH, sent)."""
        peer_id = offer.sender
        assert peer_id is not None
        logger.debug("< offer from %s (role %s)", peer_id, offer.extra.get("role"))
        await pc.setRemoteDescription(RTCSessionDescription(offer.sdp, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await self.signaling.send(
            sig.Answer(
                target=peer_id,
                sdp=pc.localDescription.sdp,
                sender=self.signaling.peer_id,
            )
        )
        try:
            channel = await wait_for(opened, self.ice_timeout)
            await channel.wait_open(self.ice_timeout)
        except (TimeoutError, ChannelClosed):
            logger.warning(
                "! no channel from %s within %.1f s", peer_id, self.ice_timeout
            )
            return None
        binding = channel_binding(
            pc,
            client_id=peer_id,
            worker_id=self.signaling.peer_id or "",
            we_are_client=False,
        )
        reason = await verify_peer(
            channel, self.auth, binding=binding, legacy=channel.legacy_peer
        )
        if reason is not None:
            with contextlib.suppress(TimeoutError):
                await wait_for(channel.closed.wait(), _FAILURE_LINGER)
            return None
        return channel
