"""Keep WebRTC on loopback: host candidates from 127.0.0.1 only.

aioice gathers every non-loopback address of the machine by default. The demo
and tests run both peers on one machine and must touch no other interface, so
they gather 127.0.0.1 alone. Real deployments never call this.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import aioice.ice

__all__ = ["LOOPBACK_ENV", "apply_env", "loopback_only"]

LOOPBACK_ENV = "SLEAP_RTC_ICE_LOOPBACK"
"""Set to ``1`` to gather 127.0.0.1 only in this process (tests, one-machine
set-ups whose peers run as separate processes)."""


def _loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return ["127.0.0.1"] if use_ipv4 else []


def apply_env() -> None:
    """Restrict ICE to loopback for good when ``$SLEAP_RTC_ICE_LOOPBACK`` is 1."""
    if os.environ.get(LOOPBACK_ENV) == "1":
        aioice.ice.get_host_addresses = _loopback


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """Within the block, ICE offers only 127.0.0.1 host candidates."""
    original = aioice.ice.get_host_addresses
    aioice.ice.get_host_addresses = _loopback
    try:
        yield
    finally:
        aioice.ice.get_host_addresses = original
