"""Frames between server processes: sent, acknowledged, taken back, or held.

The Redis backend's relay, kept apart from its connection and replica
handling (:mod:`.backend`). A frame for a peer on another process goes to that
process's inbox stream and channel in one script (:data:`~.wire.SEND_SCRIPT`);
the owner writes it to the peer's websocket and acknowledges it once the
socket has taken it (:class:`~.inbox.AckWindow`; trimmed from the stream).

A process that dies loses nothing it had not acknowledged: each sender takes
its own unacknowledged entries back (:data:`~.wire.CLAIM_SCRIPT`) once the dead
process no longer reads its channel (found when a send answers 0 receivers,
when the process's peers are dropped, or when one of them turns up on another
process), and holds them (:mod:`.held`) ahead of whatever it held for the same
targets since, so per-sender order is kept. Held frames are delivered when
their target registers again (anywhere), or fail with ``DELIVERY_FAILED`` to
their sender after the grace period. While a claim is out, new frames for the
targets it concerns wait behind it.

A relayed frame whose target is no longer on the receiving process is
answered to its sender (on its own process) with a typed ``PEER_NOT_FOUND``.

Test-only fault injection: with :data:`FAULT_ENV` set to a peer id, a process
stops itself (``SIGSTOP``) on reading a frame for that peer, before writing it,
so that a test can SIGKILL it inside the window this module closes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...errors import ErrorCode, SignalingError, SleapRTCError
from ...protocol.codec import encode, error_for
from ...protocol.json_text import loads_object
from ..server.registry import PeerRecord
from ..server.router import Router, Session
from .config import RedisConfig
from .held import Holds
from .inbox import AckWindow, after, split_inbox, undelivered_reply
from .replica import Replica
from .wire import (
    CLAIM_SCRIPT,
    MAX_FRAMES_BYTES,
    SEND_SCRIPT,
    Keys,
    Kind,
    join_frames,
    split_frames,
    split_message,
)

__all__ = ["FAULT_ENV", "Frame", "Item", "Op", "Relay", "fill", "noop"]

logger = logging.getLogger(__name__)

FAULT_ENV = "SLEAP_RTC_TEST_STOP_BEFORE_WRITING_TO"
"""Test-only: a peer id; the process reading a frame for it stops (SIGSTOP)
before writing it (a fault injected where a kill would strike)."""

STREAM_MAXLEN = 100_000
"""Entries a process's inbox stream keeps at most (approximately)."""

CLAIM_BATCH = 64
"""Claims sent in one pipeline round trip at most."""

Key = tuple[str, str]

Op = Callable[[Any], Any]
"""A queued write: adds its commands to a pipeline."""


@dataclass(frozen=True, slots=True)
class Frame:
    """A queued frame for a peer held by process ``node``."""

    room_id: str
    peer_id: str
    data: bytes
    node: str


Item = Op | Frame | asyncio.Future[None]
"""What the writer's queue holds: a write, a frame, or a barrier (a future set
once everything queued before it has reached Redis)."""


def noop(pipe: Any) -> None:
    """A queued write that writes nothing (wakes the writer)."""


def fill(
    pipe: Any, batch: list[Item], send: Callable[[Any, str, bytes], None]
) -> list[list[Frame] | None]:
    """Add ``batch`` to ``pipe`` in order, one message per run of frames for one
    process (``send(pipe, node, message)``); per command added, the frames it
    carries (``None``: a write)."""
    slots: list[list[Frame] | None] = []
    run: dict[str, list[Frame]] = {}
    run_bytes = 0

    def flush() -> None:
        nonlocal run_bytes
        for node, frames in run.items():
            send(
                pipe,
                node,
                join_frames([(f.room_id, f.peer_id, f.data) for f in frames]),
            )
            slots.append(frames)
        run.clear()
        run_bytes = 0

    for item in batch:
        if isinstance(item, Frame):
            if run_bytes + len(item.data) > MAX_FRAMES_BYTES:
                flush()
            run.setdefault(item.node, []).append(item)
            run_bytes += len(item.data)
        elif callable(item) and item is not noop:
            flush()  # a change keeps its place among the frames
            item(pipe)
            slots.append(None)
    flush()
    return slots


def _drained(conn: object) -> bool:
    """Whether a session wrote everything it was given (or is gone)."""
    if not isinstance(conn, Session):
        return True
    return conn.closed or (conn.outbox is None and conn.backlog() == 0)


class Relay:
    """The relay half of :class:`~.backend.RedisBackend` (a mixin: the
    backend owns the connections, queues and tasks it uses)."""

    config: RedisConfig
    keys: Keys
    node: str
    router: Router | None
    _client: Any
    _queue: asyncio.Queue[Item]
    _up: bool
    _stopping: bool

    @property
    def replica(self) -> Replica:  # provided by the backend
        raise NotImplementedError

    def _init_relay(self) -> None:
        self.holds = Holds(self.config.hold, max_total=self.config.max_pending)
        """Frames held for peers of a dead process (:mod:`.held`)."""
        self._flight: dict[Key, tuple[str, int]] = {}
        """Per target: the node its queued frames go to, and how many."""
        self._deferred: set[Key] = set()
        """Lookups that wait for a held target's re-registration."""
        self._acks = AckWindow[object]()
        """Inbox entries read and not yet acknowledged."""
        self._written: list[object] = []
        self._relay_from = ""
        self._sent_to: set[str] = set()
        """Processes this one sent frames to (it may have entries there)."""
        self._claims: asyncio.Queue[str | None] = asyncio.Queue()
        self._claiming: set[str] = set()
        """Processes a claim is queued or out for."""
        self._suspects: dict[str, float] = {}
        """Processes whose claim found them alive, retried until this time."""
        self._blocked: dict[Key, str] = {}
        """Targets whose new frames wait for a claim of this process."""
        self._fault_peer = os.environ.get(FAULT_ENV) or None
        self._inbox = self.keys.inbox(self.node).encode()
        self._stream_ttl = max(1, int(self.config.ttl * 1000)) * 4 + int(
            self.config.hold * 1000
        )

    # --- sending

    def _forward(self, target: PeerRecord, data: bytes) -> bool:
        key = (target.room_id, target.peer_id)
        holds = self.holds
        flight = self._flight.get(key)
        if (
            (holds.holds and key in holds.holds)
            or (flight is not None and flight[0] != target.node)
            or (self._blocked and key in self._blocked)
        ):
            # Behind frames held for it, still on their way to the process
            # it left, or maybe left unread there: wait, so that none
            # overtakes another.
            if holds.fresh(key, data, time.monotonic()):
                self._counter("held")
                return True
            return False
        return self._send_frame(key, target.node, data)

    def _send_frame(self, key: Key, node: str, data: bytes) -> bool:
        if not self._up or self._queue.qsize() >= self.config.max_pending:
            return False
        flight = self._flight.get(key)
        self._flight[key] = (node, 1 if flight is None else flight[1] + 1)
        self._sent_to.add(node)
        self._queue.put_nowait(Frame(key[0], key[1], data, node))
        return True

    def _send(self, pipe: Any, node: str, message: bytes) -> None:
        """Add one inbox message for ``node`` to ``pipe`` (:func:`fill`)."""
        keys = (self.keys.stream(node), self.keys.inbox(node))
        args = (self.node, message, STREAM_MAXLEN, self._stream_ttl)
        pipe.eval(SEND_SCRIPT, 2, *keys, *args)

    def _counter(self, name: str, n: int = 1) -> None:
        if self.router is not None:
            self.router.counters[f"redis_{name}"] += n

    def _landed(self, frame: Frame, receivers: Any) -> None:
        """A queued frame left the writer: sent to ``receivers`` processes (0:
        its process is dead, so it is held, behind what that process had not
        acknowledged), or lost (an exception)."""
        key = (frame.room_id, frame.peer_id)
        flight = self._flight.get(key)
        if flight is not None:
            if flight[1] <= 1:
                del self._flight[key]
            else:
                self._flight[key] = (flight[0], flight[1] - 1)
        if isinstance(receivers, int) and receivers > 0:
            return
        if isinstance(receivers, int) and self.holds.returned(
            key, frame.data, frame.node, time.monotonic()
        ):
            self._counter("held")
            self._claim(frame.node)
            return
        self._fail(key, frame.data)

    def _fail(self, key: Key, data: bytes) -> None:
        """Tell a frame's (local) sender it was not delivered, typed."""
        self._counter("held_failed")
        router = self.router
        if router is None:
            return
        try:
            obj = loads_object(data)
        except SleapRTCError:
            return
        if obj.get("type") == "ice_candidate":
            return  # answered with silence in one process too
        sender = obj.get("from_peer_id") or obj.get("sender")
        rec = router.registry.get(key[0], sender) if isinstance(sender, str) else None
        if rec is None or not isinstance(rec.conn, Session):
            return
        request_id = obj.get("request_id")
        exc = SignalingError(
            f"could not deliver to {key[1]!r}: its server process is gone and "
            "it did not register again in time",
            code=ErrorCode.DELIVERY_FAILED,
        )
        router.errors[exc.code] += 1
        reply = error_for(
            exc, request_id=request_id if isinstance(request_id, str) else None
        )
        rec.conn.push(encode(reply).encode())

    # --- receiving

    def _inbox_message(self, data: bytes) -> None:
        """Deliver one message read from this process's inbox channel and
        note its entry for acknowledgement.

        Raises:
            ValueError: The message is malformed.
        """
        entry, sender_node, message = split_inbox(data)
        self._relay_from = sender_node
        self._written = []
        try:
            self.replica.apply(message)
        finally:
            self._acks.read(entry, self._written)

    def _relayed(self, room_id: str, peer_id: str, frame: bytes) -> None:
        """Hand a relayed frame to its local peer, or answer its sender."""
        router = self.router
        if router is None:
            return
        if self._fault_peer is not None and peer_id == self._fault_peer:
            logger.warning("! %s set: stopping before writing", FAULT_ENV)
            os.kill(os.getpid(), signal.SIGSTOP)
        if router.deliver_local(room_id, peer_id, frame):
            rec = router.registry.get(room_id, peer_id)
            if rec is not None:
                self._written.append(rec.conn)
            return
        self._counter("relayed_not_here")
        rec = router.registry.get(room_id, peer_id)
        here = rec is not None and isinstance(rec.conn, Session)
        code = ErrorCode.DELIVERY_FAILED if here else ErrorCode.PEER_NOT_FOUND
        answer = undelivered_reply(peer_id, frame, code=code)
        if answer is None:
            return
        sender, reply = answer
        router.errors[code.value] += 1
        local = router.registry.get(room_id, sender)
        if local is not None and isinstance(local.conn, Session):
            local.conn.push(reply)
        elif self._relay_from and self._relay_from != self.node:
            self._send_frame((room_id, sender), self._relay_from, reply)

    def _ack(self) -> None:
        """Acknowledge the inbox entries whose frames are with the kernel."""
        done = self._acks.ready(_drained)
        if done is None or not self._up:
            return
        stream, minid = self.keys.stream(self.node), after(done)
        self._queue.put_nowait(
            lambda pipe: pipe.xtrim(stream, minid=minid, approximate=False)
        )

    # --- taking back what a dead process did not acknowledge

    def _claim(self, node: str) -> None:
        """Take back this process's unacknowledged entries of ``node`` (if
        it is dead); frames for the targets held meanwhile wait for it."""
        if node == self.node or node in self._claiming:
            return
        self._claiming.add(node)
        self._claims.put_nowait(node)

    async def _claim_loop(self) -> None:
        """Send queued claims in pipelined batches; hold what comes back."""
        while not self._stopping:
            first = await self._claims.get()
            batch = [first] if first is not None else []
            while len(batch) < CLAIM_BATCH and not self._claims.empty():
                node = self._claims.get_nowait()
                if node is not None:
                    batch.append(node)
            if batch:
                await self._take_back(batch)

    async def _take_back(self, nodes: list[str]) -> None:
        results: list[Any]
        try:
            if not self._up or self._client is None:
                raise ConnectionError("Redis is not connected")
            pipe = self._client.pipeline(transaction=False)
            for node in nodes:
                keys = (self.keys.stream(node), self.keys.inbox(node))
                pipe.eval(CLAIM_SCRIPT, 2, *keys, self.node)
            results = await pipe.execute(raise_on_error=False)
        except Exception as exc:
            logger.warning("! could not take back frames from Redis: %r", exc)
            results = [exc] * len(nodes)
        now = time.monotonic()
        for node, result in zip(nodes, results, strict=True):
            self._claiming.discard(node)
            if isinstance(result, list):
                self._suspects.pop(node, None)
                self._sent_to.discard(node)
                self._reclaimed(node, result, now)
            else:  # alive (or unreachable): look again while it may be dead
                self._suspects.setdefault(node, now + self.holds.grace)
            for key, blocker in list(self._blocked.items()):
                if blocker == node:
                    del self._blocked[key]
        for key in list(self.holds.holds):
            self._release(key)

    def _reclaimed(self, node: str, messages: list[Any], now: float) -> None:
        """Hold the frames taken back from ``node``, oldest first, ahead of
        what was held for the same targets since."""
        by_target: dict[Key, list[bytes]] = {}
        for message in messages:
            try:
                header, body = split_message(bytes(message))
                if header[0] == Kind.FRAME and len(header) == 3:
                    frames = [(str(header[1]), str(header[2]), body)]
                else:
                    frames = split_frames(header, body)
            except ValueError as exc:
                logger.warning("! bad entry taken back from %s: %s", node, exc)
                continue
            for room_id, peer_id, data in frames:
                by_target.setdefault((room_id, peer_id), []).append(data)
        holds = self.holds
        for key, datas in by_target.items():
            old = holds.take(key)
            self._counter("reclaimed", len(datas))
            for data in datas:
                if not holds.returned(key, data, node, now):
                    self._fail(key, data)
            if old is not None:
                for data in old.returned:
                    if not holds.returned(key, data, old.dead or node, now):
                        self._fail(key, data)
                for data in old.fresh:
                    if not holds.fresh(key, data, now):
                        self._fail(key, data)
        if by_target:
            logger.warning(
                "= took back %d frames %s had not delivered",
                sum(len(d) for d in by_target.values()),
                node,
            )

    def _retry_claims(self, now: float) -> None:
        """Claim again from processes found alive that may have died since."""
        for node, until in list(self._suspects.items()):
            if until <= now:
                del self._suspects[node]
            else:
                self._claim(node)

    # --- held frames: delivered once their target is back, or failed

    def _release(self, key: Key, found: PeerRecord | None = None) -> None:
        """Deliver what is held for ``key`` once nothing for it is in flight
        or being taken back and it is registered on a live process
        (``found``, or the registry's); then answer a lookup that waited."""
        router = self.router
        if router is None or key in self._flight or key in self._blocked:
            return
        rec = router.registry.get(*key) or found
        if rec is None:
            return
        hold = self.holds.holds.get(key)
        if hold is not None:
            if hold.dead is not None and hold.dead in self._claiming:
                return  # what it had not acknowledged goes first
            local = isinstance(rec.conn, Session)
            if not local and rec.node == hold.dead:
                return  # still the dead process's record: wait
            self.holds.take(key)
            for data in hold.frames():
                ok = (
                    rec.conn.push(data)
                    if isinstance(rec.conn, Session)
                    else self._forward(rec, data)
                )
                if not ok:
                    self._fail(key, data)
            self._counter("held_delivered", len(hold))
        if key in self._deferred:
            self._deferred.discard(key)
            router.resolved(*key, rec)

    def _seen(self, rec: PeerRecord) -> None:
        """A peer registered (here, or announced by another process)."""
        key = (rec.room_id, rec.peer_id)
        self.holds.orphans.pop(key, None)
        if key in self.holds.holds or key in self._deferred:
            self._release(key)

    def _left_node(self, rec: PeerRecord, node: str) -> None:
        """``rec``'s peer is no longer on ``node`` (it died, stopped, or the
        peer moved): frames this process left unread there go first."""
        if node == self.node or node not in self._sent_to:
            return
        self._blocked[(rec.room_id, rec.peer_id)] = node
        self._claim(node)

    def _orphaned(self, rec: PeerRecord) -> None:
        """A peer's process died or stopped: it may register again elsewhere."""
        self.holds.orphan((rec.room_id, rec.peer_id), time.monotonic())
        self._left_node(rec, rec.node)

    async def _holds_loop(self) -> None:
        """Fail what waited past the grace period; bounded wake-ups."""
        interval = max(0.05, min(0.25, self.config.hold / 4))
        while not self._stopping:
            await asyncio.sleep(interval)
            self._expire(time.monotonic())

    def _expire(self, now: float) -> None:
        holds, _ = self.holds.expired(now)
        for key, hold in holds:
            for data in hold.frames():
                self._fail(key, data)
        router = self.router
        for key in list(self._deferred):
            if not self.holds.waits(key, now):
                self._deferred.discard(key)
                if router is not None:
                    router.resolved(*key, None)
