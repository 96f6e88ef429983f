"""An XPUB that holds what it is given until someone subscribes.

Both ends of the progress link publish to a peer that may not be there yet: the
worker's :class:`~.trainer_link.TrainerLink` sends ``{"command": "stop"}`` to a
trainer that has not connected its control SUB, and the labeler's
:class:`~.zmq_bridge.ProgressBridge` sends ``train_begin`` to a LossViewer that
opened a moment late. A plain PUB drops both (ZMQ's "slow joiner" gap). An XPUB
tells its owner about each (un)subscription, so :class:`HeldXPub` counts the
subscribers and keeps messages in a bounded queue (the oldest dropped first)
until the first one joins, then flushes them in order.

It is the sending side only: the owner's reader task, which already polls its
other socket, receives the XPUB's subscription frames and hands each to
:meth:`HeldXPub.on_subscription`. Sends never block: they go through a
synchronous shadow of the socket with ``NOBLOCK``, so a full socket drops (and
counts) at once instead of leaving an error in a future nobody awaits.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

import zmq
import zmq.asyncio

from ..errors import InvalidState

__all__ = ["HeldXPub", "bound_port"]

logger = logging.getLogger(__name__)


def bound_port(socket: zmq.asyncio.Socket) -> int:
    """The TCP port ``socket`` was last bound to (after binding to port 0)."""
    endpoint = socket.getsockopt_string(zmq.LAST_ENDPOINT)
    return int(endpoint.rsplit(":", 1)[1])


class HeldXPub:
    """The sending side of one XPUB socket: publish now, or hold until subscribed.

    Args:
        socket: A fresh XPUB socket (configured here, bound or connected by the
            owner); the owner closes it.
        max_held: Messages held while nobody is subscribed; beyond it the
            oldest are dropped.
        name: Who listens, for log lines (``"LossViewer on :9001"``).

    Attributes:
        sent: Messages handed to ZMQ.
        dropped: Messages dropped: held too long, the socket was full, or
            discarded by :meth:`discard`.
    """

    def __init__(self, socket: zmq.asyncio.Socket, *, max_held: int, name: str) -> None:
        if max_held < 1:
            raise ValueError("max_held must be positive")
        if socket.getsockopt(zmq.TYPE) != zmq.XPUB:
            raise InvalidState("HeldXPub needs an XPUB socket")
        # Report every (un)subscription, even repeated ones, so that the count
        # of subscribers stays right.
        socket.setsockopt(zmq.XPUB_VERBOSER, 1)
        socket.setsockopt(zmq.LINGER, 0)
        self._sender: zmq.Socket[bytes] | None = zmq.Socket.shadow(socket.underlying)
        self._held: deque[str] = deque()
        self._max_held = max_held
        self._subscribers = 0
        self._subscribed = asyncio.Event()
        self.name = name
        self.sent = 0
        self.dropped = 0

    @property
    def subscribed(self) -> bool:
        """Whether a subscriber is there right now."""
        return self._subscribers > 0

    @property
    def held(self) -> int:
        """Messages waiting for a subscriber."""
        return len(self._held)

    def publish(self, text: str) -> bool:
        """Send ``text`` now, or hold it until a subscriber joins.

        Returns:
            True if handed to ZMQ now; False if held (or dropped: full socket).

        Raises:
            InvalidState: After :meth:`discard`.
        """
        if self._sender is None:
            raise InvalidState(f"the publisher to {self.name} is closed")
        if self._subscribers:
            return self._send(text)
        self._held.append(text)
        if len(self._held) > self._max_held:
            self._held.popleft()
            self._drop()
        return False

    def on_subscription(self, frame: bytes) -> None:
        """Take one frame the XPUB received: byte 1 joins, byte 0 leaves."""
        if not frame:
            return
        if frame[0] == 1:
            self._subscribers += 1
            logger.debug("= %s subscribed", self.name)
            self._subscribed.set()
            while self._held and self._subscribers and self._sender is not None:
                self._send(self._held.popleft())
        elif frame[0] == 0:
            self._subscribers = max(0, self._subscribers - 1)
            logger.debug("= %s left", self.name)
            if not self._subscribers:
                self._subscribed.clear()

    async def wait_subscribed(self) -> None:
        """Return once a subscriber is there."""
        await self._subscribed.wait()

    def discard(self) -> int:
        """Stop publishing; drop (and count) what is held. Returns that count.

        The owner closes the socket itself (the shadow needs no closing).
        """
        count = len(self._held)
        self._held.clear()
        self.dropped += count
        self._sender = None
        return count

    def _send(self, text: str) -> bool:
        sender = self._sender
        if sender is None:  # pragma: no cover - callers check
            return False
        try:
            sender.send_string(text, zmq.NOBLOCK)
        except zmq.Again:
            self._drop()
            return False
        self.sent += 1
        logger.debug("> %s %s", self.name, text[:200])
        return True

    def _drop(self) -> None:
        self.dropped += 1
        if self.dropped == 1:
            logger.warning("! nobody reads on %s; dropping", self.name)
