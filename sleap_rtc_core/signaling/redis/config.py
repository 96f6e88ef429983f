"""How a signaling server process joins others through Redis (settings only).

Kept apart from :mod:`.backend` so that the CLI and the service builder can
describe a Redis deployment without importing redis-py (the ``server`` extra).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from ...errors import RedisUnavailable

__all__ = ["RedisConfig", "RedisUnavailable", "redact_url"]


@dataclass(slots=True)
class RedisConfig:
    """How a server process joins the others through Redis."""

    url: str
    """``redis://[:password@]host:port/db`` (``rediss://`` for TLS)."""

    prefix: str = "sleap-rtc"
    """Prefix of every key and channel (several deployments may share a Redis)."""

    ttl: float = 15.0
    """Seconds a peer hash and a liveness key live without a refresh."""

    refresh_interval: float | None = None
    """Seconds between refreshes; ``None`` means a third of ``ttl``."""

    resync_interval: float = 60.0
    """Seconds between full reloads of the other processes' peers, which repairs
    anything a lost pub/sub message left out."""

    connect_timeout: float = 5.0
    """Seconds to reach Redis at start (and per command)."""

    retry_initial: float = 0.2
    """First reconnect delay in seconds; doubles per failure."""

    retry_max: float = 5.0
    """Longest reconnect delay in seconds."""

    node_id: str | None = None
    """This process's id; ``None`` makes a unique one (host, pid, random)."""

    max_pending: int = 10_000
    """Writes that may wait for Redis before relayed frames are refused
    (``DELIVERY_FAILED``)."""

    hold_grace: float | None = None
    """Seconds a frame for a peer whose process died is held for the peer to
    register again (on any process) before its sender gets
    ``DELIVERY_FAILED``; ``None`` means ``ttl`` plus two refresh intervals
    (counted again from when the process is found expired)."""

    @property
    def hold(self) -> float:
        """The hold grace in effect."""
        if self.hold_grace is not None:
            return self.hold_grace
        return self.ttl + 2 * self.refresh

    @property
    def refresh(self) -> float:
        """The refresh interval in effect."""
        return self.refresh_interval or self.ttl / 3


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]
    user = f"{parts.username}:" if parts.username else ":"
    return urlunsplit(parts._replace(netloc=f"{user}***@{netloc}"))
