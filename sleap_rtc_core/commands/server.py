"""``sleap-rtc server``: run the lab's signaling server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tomllib
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from ..errors import SignalingError
from ..signaling.http.api import http_api_factory
from ..signaling.redis.config import RedisConfig
from ..signaling.server.limits import LIMIT_NAMES, Limits, limits_from, parse_limit
from ..signaling.server.router import ANNOUNCE_DEFAULTS
from ..signaling.server.router_io import ServerConfig
from ..signaling.service import open_service
from ..signaling.store.auth_store import default_data_dir
from ._env_help import DATA_DIR_ENV, JWT_KEY_ENV, add_env_help

__all__ = ["MAX_HOLD_GRACE", "register"]

MAX_HOLD_GRACE = 300.0
"""Longest ``--hold-grace`` in seconds: held frames take memory, and an offer
held longer than this is stale for its sender anyway."""


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``server`` to the CLI."""
    parser = sub.add_parser(
        "server",
        help="run the signaling server (WebSocket + HTTP on one port)",
        description="Run the signaling server. Prints 'listening on ws://HOST:PORT' "
        "when ready; SIGINT or SIGTERM stops it. Settings come from --config "
        "(TOML), then these flags.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="server config file (TOML): host, port, data_dir, ping_interval, "
        "tls_cert, tls_key, redis, hold_grace, announce_default, and a [limits] "
        "table",
    )
    parser.add_argument(
        "--host", default=None, help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=None, help="TCP port (default 8080; 0: any free)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder for the database and JWT keys "
        "(default: $SLEAP_RTC_DATA_DIR or the user data folder)",
    )
    parser.add_argument(
        "--ping-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds between pings; peers silent for two are dropped (default 20)",
    )
    parser.add_argument(
        "--announce-default",
        choices=sorted(ANNOUNCE_DEFAULTS),
        default=None,
        help="what a peer that sends no 'subscribe' hears of its room's joins, "
        "leaves and updates: all (default; as 0.0.7 peers expect) or none",
    )
    add_env_help(parser, *DATA_DIR_ENV, "SLEAP_RTC_REDIS_URL", *JWT_KEY_ENV)
    defaults = Limits()
    parser.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set one limit (repeatable); the limits and their defaults: "
        + ", ".join(f"{n}={getattr(defaults, n):g}" for n in LIMIT_NAMES),
    )
    parser.add_argument("--tls-cert", help="PEM certificate chain (serve wss/https)")
    parser.add_argument("--tls-key", help="PEM private key for --tls-cert")
    parser.add_argument(
        "--redis",
        metavar="URL",
        default=None,
        help="share rooms and peers with other server processes through Redis, "
        "e.g. redis://127.0.0.1:6379/0 (default: $SLEAP_RTC_REDIS_URL; none: "
        "this process alone, in memory); the processes share one --data-dir",
    )
    parser.add_argument(
        "--hold-grace",
        type=float,
        default=None,
        metavar="SECONDS",
        help="with --redis: how long a frame for a peer whose server process "
        "died waits for that peer to register again (on any process) before "
        "its sender gets DELIVERY_FAILED (default 1.25 x --ping-interval: 25 s "
        f"at the default interval; at most {MAX_HOLD_GRACE:g})",
    )
    parser.set_defaults(handler=run)


_FILE_KEYS = frozenset(
    {
        "host",
        "port",
        "data_dir",
        "ping_interval",
        "tls_cert",
        "tls_key",
        "redis",
        "hold_grace",
        "announce_default",
    }
)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The config file's settings with the flags given on top.

    Raises:
        ValueError: an unreadable file, an unknown key or a bad limit.
    """
    settings: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    if args.config is not None:
        try:
            data = tomllib.loads(args.config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"{args.config}: {exc}") from None
        table = data.pop("limits", {})
        unknown = sorted(set(data) - _FILE_KEYS)
        if unknown or not isinstance(table, dict):
            what = unknown[0] if unknown else "limits (must be a table)"
            raise ValueError(f"{args.config}: unknown setting {what!r}")
        settings.update(data)
        limits.update(table)
    for flag in _FILE_KEYS:
        value = getattr(args, flag, None)
        if value is not None:
            settings[flag] = value
    limits.update(parse_limit(text) for text in args.limit)
    settings["limits"] = limits_from(limits)
    return settings


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM."""
    try:
        settings = _settings(args)
        ping_interval = float(settings.get("ping_interval", 20.0))
        host = str(settings.get("host", "127.0.0.1"))
        port = int(settings.get("port", 8080))
        announce_default = settings.get("announce_default", "all")
        if announce_default not in ANNOUNCE_DEFAULTS:
            raise ValueError(
                "announce_default must be one of "
                f"{', '.join(sorted(ANNOUNCE_DEFAULTS))}, not {announce_default!r}"
            )
    except (ValueError, TypeError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    if ping_interval <= 0:
        sys.stderr.write("error: --ping-interval must be positive\n")
        return 2
    tls_cert, tls_key = settings.get("tls_cert"), settings.get("tls_key")
    if bool(tls_cert) != bool(tls_key):
        sys.stderr.write("error: --tls-cert and --tls-key go together\n")
        return 2
    config = ServerConfig(
        host=host,
        port=port,
        ping_interval=ping_interval,
        tls_cert=tls_cert,
        tls_key=tls_key,
        limits=settings["limits"],
        announce_default=announce_default,
    )
    data_dir = Path(settings.get("data_dir") or default_data_dir())
    try:
        redis = redis_config(settings, ping_interval)
    except (ValueError, TypeError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    try:
        _run(_serve(config, data_dir, redis))
    except SignalingError as exc:  # e.g. Redis unreachable
        sys.stderr.write(f"error: {exc.message}\n")
        return 1
    except OSError as exc:
        sys.stderr.write(f"error: cannot listen on {host}:{port}: {exc}\n")
        return 1
    return 0


def redis_config(settings: dict[str, Any], ping_interval: float) -> RedisConfig | None:
    """How this process joins others through Redis, from the settings (the
    ``redis`` URL, else ``$SLEAP_RTC_REDIS_URL``); ``None``: it runs alone.

    Peer entries are refreshed four times per ping interval and expire after
    three: a crashed process's peers vanish within one interval.

    Raises:
        ValueError: ``hold_grace`` is not a number in (0, MAX_HOLD_GRACE], or
            is given without Redis.
    """
    url = settings.get("redis") or os.environ.get("SLEAP_RTC_REDIS_URL")
    grace = settings.get("hold_grace")
    if grace is not None:
        if isinstance(grace, bool) or not isinstance(grace, int | float):
            raise ValueError(f"hold_grace must be a number of seconds, not {grace!r}")
        if not 0 < grace <= MAX_HOLD_GRACE:
            raise ValueError(
                f"--hold-grace must be above 0 and at most {MAX_HOLD_GRACE:g} "
                f"seconds, not {grace:g}"
            )
        if not url:
            raise ValueError("--hold-grace applies only with --redis")
    if not url:
        return None
    return RedisConfig(
        url=str(url),
        ttl=0.75 * ping_interval,
        hold_grace=None if grace is None else float(grace),
    )


def _run(main: Coroutine[Any, Any, None]) -> None:
    """``asyncio.run`` on uvloop when it is installed (the ``server`` extra)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


async def _serve(
    config: ServerConfig, data_dir: Path, redis: RedisConfig | None = None
) -> None:
    service = open_service(config, data_dir, http=http_api_factory(), redis=redis)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows
            loop.add_signal_handler(sig, stop.set)
    async with service.server:
        sys.stdout.write(f"listening on {service.server.url}\n")
        sys.stdout.flush()
        await stop.wait()
    service.store.close()
