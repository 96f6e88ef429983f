"""Keep WebRTC on loopback: host candidates from 127.0.0.1 only.

aioice gathers every non-loopback address of the machine by default. The demo
and tests run both peers on one machine and must touch no other interface, so
they gather 127.0.0.1 alone. Real deployments never call this.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import aioice.ice

__all__ = ["loopback_only"]


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """Within the block, ICE offers only 127.0.0.1 host candidates."""
    original = aioice.ice.get_host_addresses

    def loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return ["127.0.0.1"] if use_ipv4 else []

    aioice.ice.get_host_addresses = loopback
    try:
        yield
    finally:
        aioice.ice.get_host_addresses = original
