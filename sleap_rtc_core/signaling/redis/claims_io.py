"""Claims and releases of :mod:`.claims` sent to Redis, batched (the I/O half).

One task owned by the Redis backend sends what queued while the previous round
trip was out as one pipeline, so a room filling with hundreds of peers at once
costs a few round trips, not one per peer. A claim that Redis cannot answer
(down, or slower than ``timeout``) gets ``None``: the router then decides by
this process's replica, as it does while Redis is away.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...aio import wait_for
from ..server.claims import Claim, Verdict
from ..server.registry import PeerRecord
from .claims import (
    CLAIM_SCRIPT,
    RELEASE_SCRIPT,
    admin_key,
    credential_key,
    parse_verdict,
)
from .wire import Keys

__all__ = ["ClaimsIO"]

logger = logging.getLogger(__name__)

BATCH = 256
"""Claims and releases sent in one pipeline at most."""

RESTORE_LIMIT = 1 << 30
"""The limit a restored entry is claimed under: it is there already."""


@dataclass(frozen=True, slots=True)
class _Item:
    script: str
    keys: tuple[str, str]
    args: tuple[Any, ...]
    future: asyncio.Future[Verdict | None] | None = None


class ClaimsIO:
    """Sends a process's claims and releases to Redis.

    Args:
        keys: The deployment's key names.
        node: This process's id.
        client: The Redis client now, or ``None`` while Redis is down.
        fresh: Seconds a claimed entry counts before its peer's hash is in
            Redis (the registration's write is on its way).
        timeout: Seconds a claim waits for its answer.
    """

    def __init__(
        self,
        keys: Keys,
        node: str,
        client: Callable[[], Any],
        *,
        fresh: float,
        timeout: float,
    ) -> None:
        self.keys = keys
        self.node = node
        self._client = client
        self._fresh_ms = max(1, int(fresh * 1000))
        self._timeout = timeout
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()

    def _item(
        self,
        room_id: str,
        peer_id: str,
        credential_id: str | None,
        limit: int,
        admin: bool,
        future: asyncio.Future[Verdict | None] | None = None,
    ) -> _Item:
        args = (
            peer_id,
            self.node,
            limit,
            self.keys.node_prefix,
            self.keys.peer(room_id, ""),
            self._fresh_ms,
            "1" if admin else "0",
        )
        keys = (
            credential_key(self.keys, room_id, credential_id),
            admin_key(self.keys, room_id),
        )
        return _Item(CLAIM_SCRIPT, keys, args, future)

    async def claim(self, claim: Claim) -> Verdict | None:
        """Redis's verdict on ``claim``, or ``None`` when it cannot say."""
        if self._client() is None:
            return None
        future: asyncio.Future[Verdict | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._queue.put_nowait(
            self._item(
                claim.room_id,
                claim.peer_id,
                claim.credential_id,
                claim.limit,
                claim.admin,
                future,
            )
        )
        try:
            return await wait_for(asyncio.shield(future), self._timeout)
        except TimeoutError:
            logger.warning("! Redis did not answer the claim of %s", claim.peer_id)
            return None

    def release(self, room_id: str, peer_id: str, credential_id: str | None) -> None:
        """Give back a peer's entries (if this process still holds them)."""
        keys = (
            credential_key(self.keys, room_id, credential_id),
            admin_key(self.keys, room_id),
        )
        self._queue.put_nowait(_Item(RELEASE_SCRIPT, keys, (peer_id, self.node)))

    def restore(self, rec: PeerRecord, admin: bool) -> None:
        """Count a peer this process holds again (Redis came back empty, or
        this process was presumed dead), whatever the limit; its admin slot
        too, unless another live peer took it meanwhile."""
        self._queue.put_nowait(
            self._item(
                rec.room_id, rec.peer_id, rec.credential_id, RESTORE_LIMIT, admin
            )
        )

    def fail_all(self) -> None:
        """Redis is gone: answer every waiting claim with ``None``."""
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None and item.future is not None and not item.future.done():
                item.future.set_result(None)

    def wake(self) -> None:
        """Wake the task (it checks whether to stop)."""
        self._queue.put_nowait(None)

    async def run(self, stopping: Callable[[], bool]) -> None:
        """Send queued items in batches until ``stopping()``."""
        while not stopping():
            first = await self._queue.get()
            batch = [first] if first is not None else []
            while len(batch) < BATCH and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is not None:
                    batch.append(item)
            if batch:
                await self._send(batch)

    async def _send(self, batch: list[_Item]) -> None:
        results: list[Any]
        client = self._client()
        try:
            if client is None:
                raise ConnectionError("Redis is not connected")
            pipe = client.pipeline(transaction=False)
            for item in batch:
                pipe.eval(item.script, 2, *item.keys, *item.args)
            results = await pipe.execute(raise_on_error=False)
        except Exception as exc:
            logger.warning("! %d claims to Redis lost: %r", len(batch), exc)
            results = [exc] * len(batch)
        for item, raw in zip(batch, results, strict=True):
            future = item.future
            if future is None or future.done():
                continue
            verdict: Verdict | None = None
            if not isinstance(raw, Exception):
                try:
                    verdict = parse_verdict(raw)
                except ValueError as exc:
                    logger.warning("! %s", exc)
            future.set_result(verdict)
