"""Several signaling server processes sharing one view of rooms and peers via Redis.

Each process keeps serving from its in-memory :class:`~..server.registry.Registry` (so
``discover_peers`` stays an index lookup), and this backend keeps that registry a
replica of every process's peers:

* A local ``register``, metadata change or leave (the router's ``on_change``) is
  written to a Redis hash per peer and announced on one shared events channel;
  every process applies the announcements of the others and tells its own peers
  (``peer_joined`` / ``peer_updated`` / ``peer_left``).
* A frame for a peer held by another process (the router's ``forward_remote``) is
  sent, untouched, to that process's inbox (a stream and a channel, one per
  process, whatever the message type); the process reads it, hands it to its
  peer and acknowledges it once written, and what a killed process had not
  acknowledged is taken back by its senders and held for the targets
  (:mod:`.inbox_io`). Frames queued together for one process go as one message.
* Delivery does not depend on how far behind the replica is: a ``register`` is
  answered only after its hash is in Redis (:meth:`RedisBackend.commit`), and a
  frame for a peer this process does not know yet is parked by the router while
  the hash is looked up (the router's ``lookup_remote``), then delivered to the
  process named there or answered with the router's typed "not found".
* Every refresh interval a metrics task publishes this process's ``/metrics``
  body and reads the other live processes' (:meth:`RedisBackend.cluster_metrics`).
* Every ``refresh_interval`` a heartbeat task, on a connection of its own,
  renews this process's liveness key (and, if it finds the key had vanished,
  announces its peers again); a refresh task renews the peers' hashes and drops
  the peers of processes whose liveness key has expired: a crashed process's
  peers vanish within ``ttl`` plus one refresh interval. A process that stops
  cleanly announces it at once.

Failure handling: Redis unreachable at :meth:`RedisBackend.start` raises
:class:`RedisUnavailable` naming the URL. Redis lost while running is logged; the
process forgets the other processes' peers (telling its own peers they left),
keeps routing between its own peers, and reconnects with exponential backoff and
jitter. When Redis is back it re-publishes its own peers and reloads everyone
else's. Nothing here raises into the router: its callbacks only queue work.

Tasks: one reads the pub/sub connection (and reconnects) and applies what it
finds in batches, one writes queued changes and frames in pipelined batches (so
they reach Redis in order), one looks peers up, one beats, one refreshes
expiries, one exchanges metrics, one takes frames back from dead processes,
one fails held frames past their grace. All belong to the backend and are cancelled
by :meth:`stop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ...aio import wait_for
from ...errors import SleapRTCError
from ...protocol.json_text import dumps_bytes, loads_object
from ..server.claims import Claim, Verdict
from ..server.registry import PeerRecord
from ..server.router import Router
from .claims_io import ClaimsIO
from .config import RedisConfig, RedisUnavailable, redact_url
from .inbox import after
from .inbox_io import Frame, Item, Relay, fill, noop
from .replica import Replica
from .wire import (
    DELETE_SCRIPT,
    LOOKUP_SCRIPT,
    PUT_SCRIPT,
    RENEW_SCRIPT,
    Keys,
    Kind,
    decode_record,
    encode_record,
    is_admin_record,
    join_message,
)

__all__ = ["RedisBackend", "RedisConfig", "RedisUnavailable", "redact_url"]

logger = logging.getLogger(__name__)

_ERRORS = (RedisError, OSError, TimeoutError)
"""What a lost or unreachable Redis raises (redis-py wraps most in RedisError)."""

WRITE_BATCH = 1024
"""Queued writes sent in one pipeline round trip at most."""

READ_BATCH = 512
"""Pub/sub messages applied per wake-up of the reader at most."""

LOOKUP_BATCH = 256
"""Peer lookups sent in one pipeline round trip at most."""


def _default_node() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class RedisBackend(Relay):
    """Replicates a router's registry through Redis and relays between processes.

    Args:
        config: The Redis URL and timings.

    Attributes:
        node: This process's id (peers it holds carry it as ``PeerRecord.node``).
        router: The router it serves, once started.
        metrics_source: This process's ``/metrics`` body (set by the server),
            published for the other processes' sums.
    """

    def __init__(self, config: RedisConfig) -> None:
        self.config = config
        self.node = config.node_id or _default_node()
        self.keys = Keys(config.prefix)
        self.router: Router | None = None
        self._replica: Replica | None = None
        self.url = redact_url(config.url)
        self._client: aioredis.Redis | None = None
        self._beat_client: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._queue: asyncio.Queue[Item] = asyncio.Queue()
        self._lookups: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._up = False
        self._stopping = False
        self._ttl_ms = max(1, int(config.ttl * 1000))
        self.metrics_source: Callable[[], dict[str, Any]] | None = None
        self._cluster: dict[str, dict[str, Any]] = {}
        self._init_relay()
        self.claims = ClaimsIO(
            self.keys,
            self.node,
            lambda: self._client if self._up else None,
            fresh=max(config.ttl, config.connect_timeout),
            timeout=config.connect_timeout,
        )
        """Credential counts and admin slots decided in Redis (:mod:`.claims`)."""

    @property
    def replica(self) -> Replica:
        """The other processes' peers as this one sees them (once started).

        Raises:
            RuntimeError: The backend was not started.
        """
        if self._replica is None:
            raise RuntimeError("the Redis backend is not started")
        return self._replica

    @property
    def up(self) -> bool:
        """Whether Redis is connected and the replica is current."""
        return self._up

    # --- lifecycle

    async def start(self, router: Router) -> None:
        """Connect, load the other processes' peers, and start the tasks.

        Raises:
            RedisUnavailable: Redis cannot be reached at the configured URL.
        """
        self.router = router
        self._replica = Replica(
            router, self.node, lambda rec: self._put(rec, Kind.JOIN)
        )
        self._replica.seen = self._seen
        self._replica.orphaned = self._orphaned
        self._replica.moved = self._left_node
        self._replica.deliver = self._relayed
        router.node = self.node
        self._wire(router, on=True)
        try:
            self._client = self._new_client()
            # Heartbeats never queue behind bulk traffic: their own connection.
            self._beat_client = self._new_client(single_connection_client=True)
            await wait_for(self._connect(), self.config.connect_timeout)
        except (*_ERRORS, ValueError) as exc:
            await self._close_client()
            self._wire(router, on=False)
            raise RedisUnavailable(
                f"cannot use Redis at {self.url}: {exc or type(exc).__name__}"
            ) from exc
        self._tasks = [
            asyncio.create_task(self._read_loop(), name="redis-reader"),
            asyncio.create_task(self._write_loop(), name="redis-writer"),
            asyncio.create_task(self._lookup_loop(), name="redis-lookups"),
            asyncio.create_task(self._heartbeat_loop(), name="redis-heartbeat"),
            asyncio.create_task(self._refresh_loop(), name="redis-refresh"),
            asyncio.create_task(self._metrics_loop(), name="redis-metrics"),
            asyncio.create_task(self._holds_loop(), name="redis-holds"),
            asyncio.create_task(
                self.claims.run(lambda: self._stopping), name="redis-claims"
            ),
            asyncio.create_task(self._claim_loop(), name="redis-reclaim"),
        ]
        logger.info("= node %s joined Redis at %s", self.node, self.url)

    def _new_client(self, **kwargs: Any) -> aioredis.Redis:
        return aioredis.Redis.from_url(
            self.config.url,
            socket_timeout=self.config.connect_timeout,
            socket_connect_timeout=self.config.connect_timeout,
            retry=Retry(NoBackoff(), 0),
            **kwargs,
        )

    def _wire(self, router: Router, *, on: bool) -> None:
        """Install (or remove) this backend's callbacks on the router."""
        router.forward_remote = self._forward if on else None
        router.on_change = self._on_change if on else None
        router.commit_register = self._must_commit if on else None
        router.lookup_remote = self._lookup if on else None
        router.on_admin = self._admin if on else None
        router.claim_register = (lambda: self._up) if on else None

    async def stop(self) -> None:
        """Withdraw this process's peers, stop the tasks, close the connections."""
        if self._stopping:
            return
        self._stopping = True
        if self._up and self._client is not None and self._replica is not None:
            with contextlib.suppress(*_ERRORS):
                await wait_for(self._withdraw(), self.config.connect_timeout)
        self._set_down()
        await self._cancel_tasks()
        self._set_down()  # what the tasks left
        await self._close_pubsub()
        await self._close_client()
        if self.router is not None:
            self._wire(self.router, on=False)
            for room_id, peer_id in self.router.unresolved.targets():
                self.router.resolved(room_id, peer_id, None, failed=True)

    async def commit(self, record: PeerRecord) -> None:
        """Return once ``record``'s registration is in Redis (or cannot be),
        so that every process can find the peer once it has its reply.

        A barrier queued behind the registration's write: writes reach Redis
        in order, so the barrier's batch is acknowledged after that write.
        Bounded by ``connect_timeout``; never raises.
        """
        if not self._up or self._stopping:
            return
        barrier: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(barrier)
        try:
            await wait_for(barrier, self.config.connect_timeout)
        except TimeoutError:
            logger.warning(
                "! registration of %s not confirmed by Redis", record.peer_id
            )

    async def claim(self, claim: Claim) -> Verdict | None:
        """Decide ``claim``'s credential count and admin slot in Redis, for
        every process at once (``None`` while Redis cannot say)."""
        if not self._up or self._stopping:
            return None
        return await self.claims.claim(claim)

    def unclaim(self, claim: Claim) -> None:
        """Give back an admitted claim that no registration holds."""
        if self._up:
            self.claims.release(claim.room_id, claim.peer_id, claim.credential_id)

    def _announce_local(self) -> None:
        """Write this process's peers (and their claims) to Redis again."""
        router = self.router
        for rec in self.replica.local_records():
            self._put(rec, Kind.JOIN)
            room = router.registry.rooms.get(rec.room_id) if router else None
            admin = room is not None and room.admin_peer_id == rec.peer_id
            self.claims.restore(rec, admin)

    async def _cancel_tasks(self) -> None:
        # A cancellation can be lost inside redis-py on Python 3.11 (its
        # asyncio.wait_for drops one that races with completion), so the loops
        # also check ``_stopping``, and a no-op wakes a writer waiting for work.
        pending = list(self._tasks)
        for _ in range(20):
            pending = [t for t in pending if not t.done()]
            if not pending:
                break
            for task in pending:
                task.cancel()
            self._queue.put_nowait(noop)
            self._lookups.put_nowait(None)
            self.claims.wake()
            self._claims.put_nowait(None)
            await asyncio.wait(pending, timeout=0.25)
        else:
            logger.error("! Redis backend tasks did not stop: %s", pending)
        self._tasks.clear()

    async def _withdraw(self) -> None:
        assert self._client is not None
        pipe = self._client.pipeline(transaction=False)
        for rec in self.replica.local_records():
            pipe.eval(
                DELETE_SCRIPT,
                1,
                self.keys.peer(rec.room_id, rec.peer_id),
                self.node,
                self.keys.events,
                join_message([Kind.LEAVE, self.node, rec.room_id, rec.peer_id]),
            )
        done = self._acks.ready(lambda conn: True)  # its peers are closing
        if done is not None:
            pipe.xtrim(
                self.keys.stream(self.node), minid=after(done), approximate=False
            )
        pipe.delete(self.keys.node(self.node), self.keys.metrics(self.node))
        pipe.publish(self.keys.events, join_message([Kind.DOWN, self.node]))
        await pipe.execute(raise_on_error=False)

    async def _close_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(*_ERRORS):
                await pubsub.aclose()

    async def _close_client(self) -> None:
        for client in (self._client, self._beat_client):
            if client is not None:
                with contextlib.suppress(*_ERRORS):
                    await client.aclose()
        self._client = self._beat_client = None

    # --- connecting and rebuilding

    async def _connect(self) -> None:
        """Subscribe, announce this node, re-publish its peers, load the others'."""
        assert self._client is not None
        await self._client.ping()
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.keys.events, self.keys.inbox(self.node))
            await self._client.set(
                self.keys.node(self.node), str(time.time()), px=self._ttl_ms
            )
            self._pubsub = pubsub
            self._up = True
            self._announce_local()
            # Messages published meanwhile wait in the subscription and are
            # applied after the snapshot: they are newer than what it read.
            await self._reload()
        except BaseException:
            self._set_down()
            self._pubsub = None
            with contextlib.suppress(*_ERRORS):
                await pubsub.aclose()
            raise

    async def _reload(self) -> None:
        """Replace the replica of other nodes' peers with what Redis holds."""
        assert self._client is not None
        client = self._client
        keys = [key async for key in client.scan_iter(self.keys.peer_pattern, 500)]
        found: dict[tuple[str, str], PeerRecord] = {}
        admins: set[tuple[str, str]] = set()
        for start in range(0, len(keys), 1000):
            pipe = client.pipeline(transaction=False)
            for key in keys[start : start + 1000]:
                pipe.hget(key, "record")
            for raw in await pipe.execute():
                if raw is None:
                    continue  # expired or deleted since the scan
                try:
                    rec = decode_record(raw)
                except ValueError as exc:
                    logger.warning("! skipping a peer record in Redis: %s", exc)
                    continue
                if rec.node != self.node:
                    found[(rec.room_id, rec.peer_id)] = rec
                    if is_admin_record(raw):
                        admins.add((rec.room_id, rec.peer_id))
        nodes = sorted({rec.node for rec in found.values()})
        alive = await self._alive(nodes)
        self.replica.replace(
            {k: r for k, r in found.items() if r.node in alive}, frozenset(admins)
        )

    async def _alive(self, nodes: list[str]) -> set[str]:
        """Which of ``nodes`` still have a liveness key."""
        if not nodes:
            return set()
        assert self._client is not None
        pipe = self._client.pipeline(transaction=False)
        for node in nodes:
            pipe.exists(self.keys.node(node))
        return {n for n, ok in zip(nodes, await pipe.execute(), strict=True) if ok}

    # --- the router's callbacks (synchronous: they only queue work)

    def _on_change(self, kind: str, rec: PeerRecord) -> None:
        if not self._up:
            return  # rebuilt from the local registry when Redis is back
        if kind == "leave":
            self._delete(rec)
            self.claims.release(rec.room_id, rec.peer_id, rec.credential_id)
        else:
            self._put(rec, Kind.JOIN if kind == "join" else Kind.UPDATE)
            if kind == "join":
                self._seen(rec)

    def _must_commit(self, rec: PeerRecord) -> bool:
        """A registration is answered after its write only while Redis is up
        (down, this process serves its own peers alone)."""
        return self._up

    def _lookup(self, room_id: str, peer_id: str) -> bool:
        """Queue an authoritative lookup (the router bounds how many wait)."""
        if not self._up:
            return False
        self._lookups.put_nowait((room_id, peer_id))
        return True

    def _admin(self, kind: str, first: str, second: str) -> None:
        """Have every other process do a revocation or a peer deletion."""
        if not self._up:
            return  # its own peers only: the store's poll catches revocations
        message = join_message([Kind(kind), self.node, first, second])
        channel = self.keys.events
        self._queue.put_nowait(lambda pipe: pipe.publish(channel, message))

    def _put(self, rec: PeerRecord, kind: Kind) -> None:
        room = self.router.registry.rooms.get(rec.room_id) if self.router else None
        admin = room is not None and room.admin_peer_id == rec.peer_id
        record = encode_record(rec, admin=admin)
        args = (
            self.keys.peer(rec.room_id, rec.peer_id),
            self.node,
            repr(rec.connected_at),
            record,
            self._ttl_ms,
            self.keys.events,
            join_message([kind, self.node], record),
            self.keys.node_prefix,
        )
        self._queue.put_nowait(lambda pipe: pipe.eval(PUT_SCRIPT, 1, *args))

    def _delete(self, rec: PeerRecord) -> None:
        args = (
            self.keys.peer(rec.room_id, rec.peer_id),
            self.node,
            self.keys.events,
            join_message([Kind.LEAVE, self.node, rec.room_id, rec.peer_id]),
        )
        self._queue.put_nowait(lambda pipe: pipe.eval(DELETE_SCRIPT, 1, *args))

    # --- tasks

    async def _read_loop(self) -> None:
        """The one reader of the pub/sub connection; reconnects when it is lost."""
        delay = self.config.retry_initial
        while not self._stopping:
            if self._pubsub is None:
                try:
                    await wait_for(self._connect(), self.config.connect_timeout)
                except Exception as exc:
                    logger.debug("! Redis at %s still unavailable: %s", self.url, exc)
                    await asyncio.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, self.config.retry_max)
                    continue
                logger.warning("= Redis at %s is back; state rebuilt", self.url)
                delay = self.config.retry_initial
            try:
                await self._read(self._pubsub)
            except Exception as exc:
                if not isinstance(exc, _ERRORS):
                    logger.exception("! unexpected error reading from Redis")
                logger.warning(
                    "! lost Redis at %s (%s); serving local peers only, retrying",
                    self.url,
                    exc or type(exc).__name__,
                )
                await self._lost()

    async def _read(self, pubsub: Any) -> None:
        loop = asyncio.get_running_loop()
        next_reload = loop.time() + self.config.resync_interval
        wait = min(1.0, self.config.refresh)
        conn = pubsub.connection
        # Whether a reply has (begun to) arrive, without reading it (redis-py 8
        # renamed can_read_destructive, which redis-py 5 has).
        has_data = getattr(conn, "can_read", None) or conn.can_read_destructive
        inbox = self._inbox
        while not self._stopping:
            # Entries not yet acknowledged: look again soon, not in a second.
            timeout = 0.05 if len(self._acks) else wait
            msg = await pubsub.get_message(
                ignore_subscribe_messages=True, timeout=timeout
            )
            # Drain what has arrived already before looking at the clock.
            for _ in range(READ_BATCH):
                if msg is not None and msg.get("type") == "message":
                    try:
                        if msg.get("channel") == inbox:
                            self._inbox_message(msg["data"])
                        else:
                            self.replica.apply(msg["data"])
                    except Exception:
                        logger.exception("! could not apply a message from Redis")
                if not await has_data():
                    break
                msg = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=wait
                )
            if len(self._acks):
                # The frames go out at the end of this loop turn (one write
                # per connection): acknowledge once they have.
                await asyncio.sleep(0)
                self._ack()
            if loop.time() >= next_reload:
                await self._reload()
                next_reload = loop.time() + self.config.resync_interval

    def _set_down(self) -> None:
        """Stop queueing writes and discard the queued ones (rebuilt on return);
        release the registrations and lookups that waited for them."""
        self._up = False
        self.claims.fail_all()
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, asyncio.Future) and not item.done():
                item.set_result(None)
            elif isinstance(item, Frame):
                self._landed(item, None)
        while not self._lookups.empty():
            key = self._lookups.get_nowait()
            if key is not None and self.router is not None:
                self.router.resolved(*key, None, failed=True)

    async def _lost(self) -> None:
        """Redis is gone: forget remote peers and queued writes; keep local ones."""
        self._set_down()
        await self._close_pubsub()
        if self._client is not None:
            with contextlib.suppress(*_ERRORS):
                await self._client.connection_pool.disconnect()
        self.replica.drop_all()

    async def _write_loop(self) -> None:
        """Send queued writes in order, in pipelined batches (what queued while
        one round trip was out goes in the next); release barriers after."""
        while not self._stopping:
            batch = [await self._queue.get()]
            while len(batch) < WRITE_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            finally:
                for item in batch:
                    if isinstance(item, asyncio.Future) and not item.done():
                        item.set_result(None)

    async def _write(self, batch: list[Item]) -> None:
        frames = [item for item in batch if isinstance(item, Frame)]
        if not self._up or self._client is None:
            for frame in frames:
                self._landed(frame, None)
            return
        pipe = self._client.pipeline(transaction=False)
        slots = fill(pipe, batch, self._send)
        if not slots:
            return
        try:
            results = await pipe.execute(raise_on_error=False)
        except Exception as exc:
            logger.warning("! %d writes to Redis lost: %r", len(batch), exc)
            results = [exc] * len(slots)
        touched: set[tuple[str, str]] = set()
        for slot, result in zip(slots, results, strict=True):
            if isinstance(result, Exception):
                logger.warning("! a write to Redis failed: %s", result)
            if slot is None:
                continue
            for frame in slot:
                self._landed(frame, result)
                touched.add((frame.room_id, frame.peer_id))
        if self.holds.holds:
            for key in touched:
                if key in self.holds.holds:
                    self._release(key)

    async def _lookup_loop(self) -> None:
        """Look peers up in Redis, batched, and hand the answers to the router."""
        while not self._stopping:
            first = await self._lookups.get()
            batch = [first] if first is not None else []
            while len(batch) < LOOKUP_BATCH and not self._lookups.empty():
                key = self._lookups.get_nowait()
                if key is not None:
                    batch.append(key)
            if batch:
                await self._look_up(batch)

    async def _look_up(self, batch: list[tuple[str, str]]) -> None:
        router = self.router
        assert router is not None
        results: list[Any] = []
        try:
            if not self._up or self._client is None:
                raise ConnectionError("Redis is not connected")
            pipe = self._client.pipeline(transaction=False)
            for room_id, peer_id in batch:
                key = self.keys.peer(room_id, peer_id)
                pipe.eval(LOOKUP_SCRIPT, 1, key, self.keys.node_prefix)
            results = await pipe.execute(raise_on_error=False)
        except Exception as exc:
            logger.warning("! could not look up %d peers in Redis: %r", len(batch), exc)
            results = [exc] * len(batch)
        for (room_id, peer_id), raw in zip(batch, results, strict=True):
            if isinstance(raw, Exception):
                router.resolved(room_id, peer_id, None, failed=True)
                continue
            found: PeerRecord | None = None
            if raw is not None:
                try:
                    found = decode_record(raw)
                except ValueError as exc:
                    logger.warning("! bad peer record in Redis: %s", exc)
            if found is not None and found.node == self.node:
                found = None  # ours, and gone from here: stale
            router.counters["redis_lookups"] += 1
            target = (room_id, peer_id)
            if found is None:
                if self.holds.waits(target, time.monotonic()):
                    # Its process died a moment ago: wait for it elsewhere.
                    self._deferred.add(target)
                    self._release(target)  # it may have registered meanwhile
                    continue
                router.counters["redis_lookups_absent"] += 1
            elif target in self.holds.holds:
                self._release(target, found)
            router.resolved(room_id, peer_id, found)

    async def _heartbeat_loop(self) -> None:
        """Renew this node's liveness key on time, whatever the traffic.

        Its own task and connection, on a fixed schedule (a late beat does not
        push the next ones back). A key that had vanished (this process was
        presumed dead: a stall, or Redis restarted) means the others dropped
        its peers: they are announced again.
        """
        loop = asyncio.get_running_loop()
        interval = self.config.refresh
        due = loop.time()
        while not self._stopping:
            due += interval
            now = loop.time()
            if due < now:
                due = now  # fell behind: beat now, do not burst
            await asyncio.sleep(due - now)
            client = self._beat_client
            if not self._up or self._stopping or client is None:
                continue
            key = self.keys.node(self.node)
            pipe = client.pipeline(transaction=False)
            pipe.exists(key)  # not SET ... GET: that needs Redis 6.2
            pipe.set(key, str(time.time()), px=self._ttl_ms)
            try:
                existed, _ = await wait_for(pipe.execute(), interval)
            except Exception as exc:
                logger.warning("! heartbeat to Redis failed: %r", exc)
                continue
            if not existed and self._up and self.router is not None:
                logger.warning(
                    "= node %s was presumed dead; announcing again", self.node
                )
                self.router.counters["redis_rejoined"] += 1
                self._announce_local()

    def cluster_metrics(self) -> dict[str, dict[str, Any]]:
        """The other live processes' ``/metrics`` bodies by node, as last read
        (none while Redis is down: the sum is then this process alone)."""
        return dict(self._cluster) if self._up else {}

    async def _metrics_loop(self) -> None:
        """Publish this process's metrics and read the others', every refresh."""
        while not self._stopping:
            if self._up:
                try:
                    await self._exchange_metrics()
                except Exception as exc:
                    logger.debug("! could not exchange metrics: %r", exc)
            await asyncio.sleep(self.config.refresh)

    async def _exchange_metrics(self) -> None:
        client = self._client
        if client is None:
            return
        if self.metrics_source is not None:
            body = dumps_bytes(self.metrics_source())
            await client.set(self.keys.metrics(self.node), body, px=self._ttl_ms)
        prefix = self.keys.metrics_prefix
        keys = [k async for k in client.scan_iter(prefix + "*", 500)]
        raws = await client.mget(keys) if keys else []
        found: dict[str, dict[str, Any]] = {}
        for key, raw in zip(keys, raws, strict=True):
            name = key.decode() if isinstance(key, bytes) else str(key)
            node = name.removeprefix(prefix)
            if raw is None or node == self.node:
                continue
            try:
                found[node] = loads_object(raw)
            except SleapRTCError:
                logger.debug("! bad metrics of node %s in Redis", node)
        alive = await self._alive(sorted(found))
        self._cluster = {n: m for n, m in found.items() if n in alive}

    async def _refresh_loop(self) -> None:
        """Renew this node's expiries; drop the peers of nodes that expired."""
        while not self._stopping:
            await asyncio.sleep(self.config.refresh)
            if not self._up or self._stopping:
                continue
            try:
                await self._refresh()
            except Exception as exc:
                logger.warning("! could not refresh Redis expiries: %r", exc)

    async def _refresh(self) -> None:
        assert self._client is not None
        local = self.replica.local_records()
        pipe = self._client.pipeline(transaction=False)
        for rec in local:
            key = self.keys.peer(rec.room_id, rec.peer_id)
            pipe.eval(RENEW_SCRIPT, 1, key, self.node, self._ttl_ms)
        results = await pipe.execute() if local else []
        for rec, renewed in zip(local, results, strict=True):
            if not renewed and self.replica.is_current(rec) and self._up:
                # Lost from Redis, or still a dead node's: write it again.
                self._put(rec, Kind.JOIN)
        self._retry_claims(time.monotonic())
        nodes = sorted({rec.node for rec in self.replica.remote_records()})
        alive = await self._alive(nodes)
        for node in nodes:
            if node not in alive:
                logger.warning("= node %s expired; dropping its peers", node)
                if self.router is not None:
                    self.router.counters["redis_nodes_expired"] += 1
                self.replica.drop_node(node)
