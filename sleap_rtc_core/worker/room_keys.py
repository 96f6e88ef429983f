"""The room's authorized Ed25519 keys, for workers that accept key-signed channels.

Clients that sign the challenge with a key (``sleap-rtc key`` users, and the
sleap-rtc 0.0.7 Python API) have no room secret. A worker registered with a
worker key fetches the public keys of its room's members from the server
(``GET /api/rooms/{room_id}/authorized-keys``, PROTOCOL.md A) and caches them
for five minutes (:class:`~sleap_rtc_core.transport.auth.KeyCache`).
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections.abc import Callable

from ..errors import TransportError
from ..http_json import get_json, normalize_server
from ..transport.auth import KeyCache

__all__ = ["room_key_cache"]

logger = logging.getLogger(__name__)

_TIMEOUT = 10.0


def room_key_cache(
    server_url: str, api_key: str, room_id: Callable[[], str], *, ttl: float = 300.0
) -> KeyCache:
    """A key source for ``ChannelAuth.authorized_keys``.

    Args:
        server_url: The signaling server (``ws://`` or ``http://``).
        api_key: The worker key (the Bearer the route accepts).
        room_id: The worker's room, once registered.
        ttl: Seconds a fetched list stays fresh.
    """
    base = normalize_server(server_url)

    async def fetch() -> list[str]:
        room = urllib.parse.quote(room_id(), safe="")
        url = f"{base}/api/rooms/{room}/authorized-keys"
        status, body = await asyncio.to_thread(get_json, url, _TIMEOUT, bearer=api_key)
        if status != 200:
            raise TransportError(f"the server refused the room's keys (HTTP {status})")
        items = body.get("authorized_keys")
        keys = [
            item["public_key"]
            for item in (items if isinstance(items, list) else [])
            if isinstance(item, dict) and isinstance(item.get("public_key"), str)
        ]
        logger.info("= %d authorized key(s) for room %s", len(keys), room_id())
        return keys

    return KeyCache(fetch, ttl=ttl)
