"""The room's authorized Ed25519 keys, for workers that accept key-signed channels.

Clients that sign the challenge with a key (``sleap-rtc key`` users, and the
sleap-rtc 0.0.7 Python API) have no room secret. A worker registered with a
worker key fetches the public keys of its room's members from the server
(``GET /api/rooms/{room_id}/authorized-keys``, PROTOCOL.md A) and caches them
for five minutes (:class:`~sleap_rtc_core.transport.auth.KeyCache`). With
several server URLs (processes behind one Redis), the one the worker's
connection uses is asked first, then the others: any live one answers.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import TransportError
from ..http_json import get_json, normalize_server
from ..signaling.client.session_io import split_urls
from ..transport.auth import KeyCache

__all__ = ["room_key_cache"]

logger = logging.getLogger(__name__)

_TIMEOUT = 10.0


def room_key_cache(
    servers: str | Sequence[str],
    api_key: str,
    room_id: Callable[[], str],
    *,
    current: Callable[[], str] | None = None,
    ttl: float = 300.0,
) -> KeyCache:
    """A key source for ``ChannelAuth.authorized_keys``.

    Args:
        servers: The signaling server's URLs (``ws://`` or ``http://``): one
            process, or several behind one Redis; any live one answers.
        api_key: The worker key (the Bearer the route accepts).
        room_id: The worker's room, once registered.
        current: The URL the worker's signaling connection uses now (tried
            first: it was live a moment ago).
        ttl: Seconds a fetched list stays fresh.
    """
    bases = [normalize_server(url) for url in split_urls(servers)]

    async def fetch() -> list[str]:
        room = urllib.parse.quote(room_id(), safe="")
        order = list(bases)
        if current is not None:
            first = normalize_server(current())
            order = [first, *(b for b in order if b != first)]
        failures = []
        for base in order:
            url = f"{base}/api/rooms/{room}/authorized-keys"
            try:
                status, body = await asyncio.to_thread(
                    get_json, url, _TIMEOUT, bearer=api_key
                )
            except OSError as exc:  # URLError too: this process is gone
                failures.append(f"{base}: {exc}")
                continue
            if status >= 500:
                failures.append(f"{base}: HTTP {status}")
                continue
            if status != 200:
                raise TransportError(
                    f"the server refused the room's keys (HTTP {status})"
                )
            return _keys(body, room_id())
        raise TransportError(f"cannot fetch the room's keys: {'; '.join(failures)}")

    return KeyCache(fetch, ttl=ttl)


def _keys(body: dict[str, Any], room_id: str) -> list[str]:
    items = body.get("authorized_keys")
    keys = [
        item["public_key"]
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, dict) and isinstance(item.get("public_key"), str)
    ]
    logger.info("= %d authorized key(s) for room %s", len(keys), room_id)
    return keys
