"""Several signaling server processes sharing one view of rooms and peers via Redis.

Each process keeps serving from its in-memory :class:`~.registry.Registry` (so
``discover_peers`` stays an index lookup), and this backend keeps that registry a
replica of every process's peers:

* A local ``register``, metadata change or leave (the router's ``on_change``) is
  written to a Redis hash per peer and announced on one shared events channel;
  every process applies the announcements of the others and tells its own peers
  (``peer_joined`` / ``peer_updated`` / ``peer_left``).
* A frame for a peer held by another process (the router's ``forward_remote``) is
  published, untouched, on that process's own channel (one per process, whatever
  the message type); the process reads it and hands it to its peer.
* Every ``refresh_interval`` the process renews the expiry of its peers' hashes
  and of its own liveness key, and drops the peers of processes whose liveness
  key has expired: a crashed process's peers vanish within ``ttl`` plus one
  refresh interval. A process that stops cleanly announces it at once.

Failure handling: Redis unreachable at :meth:`RedisBackend.start` raises
:class:`RedisUnavailable` naming the URL. Redis lost while running is logged; the
process forgets the other processes' peers (telling its own peers they left),
keeps routing between its own peers, and reconnects with exponential backoff and
jitter. When Redis is back it re-publishes its own peers and reloads everyone
else's. Nothing here raises into the router: its callbacks only queue work.

Tasks: one reads the pub/sub connection (and reconnects), one writes queued
changes in pipelined batches (so they reach Redis in order), one refreshes
expiries. All three belong to the backend and are cancelled by :meth:`stop`.
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
from ..registry import PeerRecord
from ..router import Router
from .config import RedisConfig, RedisUnavailable, redact_url
from .replica import Replica
from .wire import (
    DELETE_SCRIPT,
    PUT_SCRIPT,
    Keys,
    Kind,
    decode_record,
    encode_record,
    join_message,
)

__all__ = ["RedisBackend", "RedisConfig", "RedisUnavailable", "redact_url"]

logger = logging.getLogger(__name__)

_ERRORS = (RedisError, OSError, TimeoutError)
"""What a lost or unreachable Redis raises (redis-py wraps most in RedisError)."""

Op = Callable[[Any], Any]
"""A queued write: adds its commands to a pipeline."""


def _noop(pipe: Any) -> None:
    """A queued write that writes nothing (wakes the writer)."""


def _default_node() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class RedisBackend:
    """Replicates a router's registry through Redis and relays between processes.

    Args:
        config: The Redis URL and timings.

    Attributes:
        node: This process's id (peers it holds carry it as ``PeerRecord.node``).
        router: The router it serves, once started.
    """

    def __init__(self, config: RedisConfig) -> None:
        self.config = config
        self.node = config.node_id or _default_node()
        self.keys = Keys(config.prefix)
        self.router: Router | None = None
        self._replica: Replica | None = None
        self.url = redact_url(config.url)
        self._client: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._queue: asyncio.Queue[Op] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._up = False
        self._stopping = False
        self._ttl_ms = max(1, int(config.ttl * 1000))

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
        router.node = self.node
        router.forward_remote = self._forward
        router.on_change = self._on_change
        try:
            self._client = aioredis.Redis.from_url(
                self.config.url,
                socket_timeout=self.config.connect_timeout,
                socket_connect_timeout=self.config.connect_timeout,
                retry=Retry(NoBackoff(), 0),
            )
            await wait_for(self._connect(), self.config.connect_timeout)
        except (*_ERRORS, ValueError) as exc:
            await self._close_client()
            router.forward_remote = None
            router.on_change = None
            raise RedisUnavailable(
                f"cannot use Redis at {self.url}: {exc or type(exc).__name__}"
            ) from exc
        self._tasks = [
            asyncio.create_task(self._read_loop(), name="redis-reader"),
            asyncio.create_task(self._write_loop(), name="redis-writer"),
            asyncio.create_task(self._refresh_loop(), name="redis-refresh"),
        ]
        logger.info("= node %s joined Redis at %s", self.node, self.url)

    async def stop(self) -> None:
        """Withdraw this process's peers, stop the tasks, close the connections."""
        if self._stopping:
            return
        self._stopping = True
        if self._up and self._client is not None and self._replica is not None:
            with contextlib.suppress(*_ERRORS):
                await wait_for(self._withdraw(), self.config.connect_timeout)
        self._up = False
        await self._cancel_tasks()
        await self._close_pubsub()
        await self._close_client()
        if self.router is not None:
            self.router.forward_remote = None
            self.router.on_change = None

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
            self._queue.put_nowait(_noop)
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
        pipe.delete(self.keys.node(self.node))
        pipe.publish(self.keys.events, join_message([Kind.DOWN, self.node]))
        await pipe.execute(raise_on_error=False)

    async def _close_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(*_ERRORS):
                await pubsub.aclose()

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(*_ERRORS):
                await client.aclose()

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
            for rec in self.replica.local_records():
                self._put(rec, Kind.JOIN)
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
        nodes = sorted({rec.node for rec in found.values()})
        alive = await self._alive(nodes)
        self.replica.replace({k: r for k, r in found.items() if r.node in alive})

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
        else:
            self._put(rec, Kind.JOIN if kind == "join" else Kind.UPDATE)

    def _forward(self, target: PeerRecord, data: bytes) -> bool:
        if not self._up or self._queue.qsize() >= self.config.max_pending:
            return False
        channel = self.keys.inbox(target.node)
        message = join_message([Kind.FRAME, target.room_id, target.peer_id], data)
        self._queue.put_nowait(lambda pipe: pipe.publish(channel, message))
        return True

    def _put(self, rec: PeerRecord, kind: Kind) -> None:
        record = encode_record(rec)
        args = (
            self.keys.peer(rec.room_id, rec.peer_id),
            self.node,
            repr(rec.connected_at),
            record,
            self._ttl_ms,
            self.keys.events,
            join_message([kind, self.node], record),
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
        while not self._stopping:
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=wait)
            if msg is not None and msg.get("type") == "message":
                try:
                    self.replica.apply(msg["data"])
                except Exception:
                    logger.exception("! could not apply a message from Redis")
            if loop.time() >= next_reload:
                await self._reload()
                next_reload = loop.time() + self.config.resync_interval

    def _set_down(self) -> None:
        """Stop queueing writes and discard the queued ones (rebuilt on return)."""
        self._up = False
        while not self._queue.empty():
            self._queue.get_nowait()

    async def _lost(self) -> None:
        """Redis is gone: forget remote peers and queued writes; keep local ones."""
        self._set_down()
        await self._close_pubsub()
        if self._client is not None:
            with contextlib.suppress(*_ERRORS):
                await self._client.connection_pool.disconnect()
        self.replica.drop_all()

    async def _write_loop(self) -> None:
        """Send queued writes in order, in pipelined batches."""
        while not self._stopping:
            batch = [await self._queue.get()]
            while len(batch) < 512 and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            if not self._up or self._client is None or batch == [_noop]:
                continue
            pipe = self._client.pipeline(transaction=False)
            for op in batch:
                op(pipe)
            try:
                results = await pipe.execute(raise_on_error=False)
            except Exception as exc:
                logger.warning("! %d writes to Redis lost: %r", len(batch), exc)
                continue
            for result in results:
                if isinstance(result, Exception):
                    logger.warning("! a write to Redis failed: %s", result)

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
        pipe.set(self.keys.node(self.node), str(time.time()), px=self._ttl_ms)
        for rec in local:
            pipe.pexpire(self.keys.peer(rec.room_id, rec.peer_id), self._ttl_ms)
        results = await pipe.execute()
        for rec, renewed in zip(local, results[1:], strict=True):
            if not renewed and self.replica.is_current(rec) and self._up:
                self._put(rec, Kind.JOIN)  # lost from Redis: write it again
        nodes = sorted({rec.node for rec in self.replica.remote_records()})
        alive = await self._alive(nodes)
        for node in nodes:
            if node not in alive:
                logger.warning("= node %s expired; dropping its peers", node)
                self.replica.drop_node(node)
