"""``sleap-rtc server``: run the lab's signaling server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from ..errors import SignalingError
from ..signaling.http_api import http_api_factory
from ..signaling.redis_config import RedisConfig
from ..signaling.server import ServerConfig
from ..signaling.service import open_service
from ..signaling.store import default_data_dir

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``server`` to the CLI."""
    parser = sub.add_parser(
        "server",
        help="run the signaling server (WebSocket + HTTP on one port)",
        description="Run the signaling server. Prints 'listening on ws://HOST:PORT' "
        "when ready; SIGINT or SIGTERM stops it.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=int, default=8080, help="TCP port (0: any free port)"
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
        default=20.0,
        metavar="SECONDS",
        help="seconds between pings; peers silent for two are dropped",
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
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM."""
    if args.ping_interval <= 0:
        sys.stderr.write("error: --ping-interval must be positive\n")
        return 2
    if bool(args.tls_cert) != bool(args.tls_key):
        sys.stderr.write("error: --tls-cert and --tls-key go together\n")
        return 2
    config = ServerConfig(
        host=args.host,
        port=args.port,
        ping_interval=args.ping_interval,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
    )
    data_dir = args.data_dir or default_data_dir()
    redis_url = args.redis or os.environ.get("SLEAP_RTC_REDIS_URL")
    redis = None
    if redis_url:
        # Peer entries are refreshed four times per ping interval and expire
        # after three: a crashed process's peers vanish within one interval.
        redis = RedisConfig(url=redis_url, ttl=0.75 * args.ping_interval)
    try:
        _run(_serve(config, data_dir, redis))
    except SignalingError as exc:  # e.g. Redis unreachable
        sys.stderr.write(f"error: {exc.message}\n")
        return 1
    except OSError as exc:
        sys.stderr.write(f"error: cannot listen on {args.host}:{args.port}: {exc}\n")
        return 1
    return 0


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
