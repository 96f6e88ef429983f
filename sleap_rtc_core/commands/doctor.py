"""``sleap-rtc doctor``: check this machine, the server and the credentials.

::

    sleap-rtc doctor [--server ws://HOST:PORT] [--room ROOM]
                     [--token T | --api-key K | --account-key K]
                     [--config worker.toml] [--worker] [--mount PATH]... [--gpu N]
                     [--zmq-port PORT]... [--skip NAME]... [--timeout S] [--json]

Settings come the way the worker takes them (file, then ``SLEAP_RTC_*``
variables, then flags; :mod:`sleap_rtc_core.worker.config`), so a lab admin can
point the doctor at the worker's own config file. Without a credential flag or
source, the JWT saved by ``sleap-rtc login`` for that server is tried. One line
per check (``--json``: a list of objects); exit status 1 when any check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from ..client.credentials import load_credentials, normalize_server
from ..doctor import (
    CHECK_GROUPS,
    Check,
    DoctorOptions,
    any_failed,
    format_report,
    run_checks,
)
from ..worker.config import (
    ConfigError,
    WorkerConfig,
    apply_env,
    load_worker_config,
    merge_flags,
)
from ._connect import room_secret
from ._env_help import CONNECTION_ENV, add_env_help
from ._progress import ProgressDisplay

__all__ = ["DEFAULT_SERVER", "register", "run"]

DEFAULT_SERVER = "ws://127.0.0.1:8080"
"""The server checked when none is configured (``sleap-rtc server``'s default)."""


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 1-65535, not {port}")
    return port


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, not {value:g}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``doctor`` to the CLI."""
    parser = sub.add_parser(
        "doctor",
        help="check the set-up: packages, GPU, server, credentials, mounts, ports",
        description="Check this machine, the signaling server and the credentials; "
        "one line per check with what to do. Exit status 1 when a check fails.",
    )
    parser.add_argument(
        "--server",
        default=None,
        help=f"signaling server URL (default: the config, $SLEAP_RTC_SERVER, "
        f"or {DEFAULT_SERVER})",
    )
    add_env_help(parser, *CONNECTION_ENV)
    parser.add_argument(
        "--room", default=None, help="room id or name (a name with spaces in quotes)"
    )
    creds = parser.add_mutually_exclusive_group()
    creds.add_argument("--token", default=None, help="room token (with --room)")
    creds.add_argument("--api-key", default=None, help="worker key slp_…")
    creds.add_argument(
        "--account-key", default=None, help="account key slp_acct_… (with --room)"
    )
    parser.add_argument(
        "--room-secret",
        default=None,
        help="the room secret to try against a worker of the room (default: "
        "$SLEAP_ROOM_SECRET or ~/.sleap-rtc/room-secrets/ROOM)",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="a worker config file to check and take settings from (implies --worker)",
    )
    parser.add_argument(
        "--worker",
        action="store_true",
        help="this machine runs a worker: torch, sleap-nn and mounts are required "
        "(implied by --mount and --config)",
    )
    parser.add_argument(
        "--mount",
        action="append",
        default=[],
        metavar="PATH[:LABEL]",
        help="a worker folder to check (repeatable)",
    )
    parser.add_argument(
        "--gpu", default=None, metavar="N[,N…]|all", help="the worker's CUDA device(s)"
    )
    parser.add_argument(
        "--zmq-port",
        action="append",
        type=_port,
        default=[],
        metavar="PORT",
        help="also check that this port is free on 127.0.0.1 (repeatable)",
    )
    parser.add_argument(
        "--skip",
        action="append",
        choices=CHECK_GROUPS,
        default=[],
        help="do not run this check (repeatable)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=10.0,
        metavar="SECONDS",
        help="seconds for each network check (default 10)",
    )
    parser.add_argument(
        "--import-timeout",
        type=_positive,
        default=120.0,
        metavar="SECONDS",
        help="seconds for importing sleap-nn (default 120)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print a JSON list of checks"
    )
    parser.set_defaults(handler=run)


def _settings(args: argparse.Namespace) -> tuple[WorkerConfig, list[Check]]:
    """The merged worker settings and the config/flag checks (if any)."""
    extra: list[Check] = []
    config = WorkerConfig()
    if args.config:
        try:
            config = load_worker_config(args.config)
        except ConfigError as exc:
            extra.append(Check("config", False, exc.message, "fix the config file"))
        else:
            extra.append(Check("config", True, f"{args.config}: {_summary(config)}"))
    try:
        config = apply_env(config)
    except ConfigError as exc:
        extra.append(Check("config", False, exc.message, "fix the variable"))
    try:
        config = merge_flags(config, args)
    except ConfigError as exc:
        extra.append(Check("config", False, exc.message, "fix the flag"))
    return config, extra


def _summary(config: WorkerConfig) -> str:
    parts = [
        f"server {config.server}" if config.server else "no server",
        f"room {config.room}" if config.room else "no room",
        config.credential.describe() if config.credential else "no credential source",
        f"{len(config.mounts)} mount(s)",
    ]
    return ", ".join(parts)


def _credentials(
    config: WorkerConfig, server: str
) -> tuple[dict[str, Any] | Check | None, str]:
    """The ``register`` fields to try (or why there are none), and how they
    were found."""
    try:
        source = config.credential_source()
        fields = config.register_credentials()
    except ConfigError as exc:
        return Check("credentials", False, exc.message, "fix the credential"), ""
    if fields is not None and source is not None:
        return fields, source.describe()
    saved = load_credentials()
    servers = saved.get("servers")
    try:
        key = normalize_server(server)
    except ValueError:
        return None, ""
    entry = servers.get(key) if isinstance(servers, dict) else None
    jwt = entry.get("jwt") if isinstance(entry, dict) else None
    if not isinstance(jwt, str) or not jwt:
        return None, ""
    if not config.room:
        return (
            Check(
                "credentials",
                False,
                "a saved login (JWT) was found but no room was given",
                "pass --room ROOM",
            ),
            "",
        )
    return {"jwt": jwt, "room_id": config.room}, "saved login (JWT)"


async def _checked(options: DoctorOptions) -> list[Check]:
    """The checks, with the wait for them on stderr (they take seconds: torch
    is imported, the server is asked)."""
    display = ProgressDisplay()
    async with display:
        display.wait("running the checks (packages, torch, the server, the room)")
        return await run_checks(options)


def run(args: argparse.Namespace) -> int:
    """Run the checks and print them; 0 when none failed, else 1."""
    config, extra = _settings(args)
    server = config.server or DEFAULT_SERVER
    credentials, described = _credentials(config, server)
    options = DoctorOptions(
        server=server,
        credentials=credentials,
        credentials_described=described or "credentials",
        room_secret=room_secret(args),
        mounts=[m.path for m in config.mounts],
        worker=bool(args.worker or args.config or config.mounts),
        gpu=config.gpu,
        zmq_ports=tuple(args.zmq_port),
        timeout=args.timeout,
        import_timeout=args.import_timeout,
        skip=frozenset(args.skip),
        extra=extra,
    )
    checks = asyncio.run(_checked(options))
    if args.json:
        sys.stdout.write(json.dumps([c.to_dict() for c in checks], indent=2) + "\n")
    else:
        sys.stdout.write(format_report(checks))
    sys.stdout.flush()
    return 1 if any_failed(checks) else 0
