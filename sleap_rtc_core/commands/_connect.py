"""What the commands that connect to a signaling server share: flags, credentials.

Credentials come from exactly one flag (``--token`` with ``--room``, a worker key
``--api-key``, an account key ``--account-key`` with ``--room``), else from the JWT
``sleap-rtc login`` saved for that server. Secrets may also come from the
environment (``SLEAP_RTC_TOKEN``, ``SLEAP_RTC_API_KEY``, ``SLEAP_RTC_ACCOUNT_KEY``)
so that they never appear in a process list.

``--server`` (and ``$SLEAP_RTC_SERVER``) may name several processes of one
deployment, comma-separated or with the flag repeated; the connection moves to
the next when one is lost (:class:`~sleap_rtc_core.signaling.client.session_io.
SignalingClient`).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from ..client.credentials import load_credentials, normalize_server
from ..client.selection import worker_named
from ..errors import CredentialsError, NoWorkersAvailableError
from ..protocol import signaling as sig
from ..signaling.client.session_io import SignalingClient, split_urls
from ..transport.auth import ChannelAuth
from ._env_help import CONNECTION_ENV, add_env_help
from ._output import is_quiet

__all__ = [
    "CONNECT_GIVE_UP",
    "DEFAULT_SERVER",
    "CredentialsError",
    "add_connection_args",
    "channel_auth",
    "client_register",
    "client_signaling",
    "connected",
    "credentials_from_args",
    "find_worker",
    "room_secret",
    "server_url",
    "server_urls",
]

DEFAULT_SERVER = "ws://127.0.0.1:8080"


class _ServerList(argparse.Action):
    """``--server`` given again adds URLs to the list (kept comma-separated,
    so ``args.server`` stays one string); the first one replaces the default."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        given = getattr(namespace, "_servers_given", False)
        current = getattr(namespace, self.dest, None) if given else None
        value = str(values)
        setattr(namespace, self.dest, f"{current},{value}" if current else value)
        namespace._servers_given = True


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    """``--server``, ``--room`` and the credential flags (and the variables
    they default to, in the ``--help`` epilog)."""
    add_env_help(parser, *CONNECTION_ENV)
    parser.add_argument(
        "--server",
        action=_ServerList,
        default=os.environ.get("SLEAP_RTC_SERVER", DEFAULT_SERVER),
        help="signaling server URL; several processes of one deployment "
        "comma-separated or with the flag repeated, tried in turn "
        "(default: $SLEAP_RTC_SERVER or %(default)s)",
    )
    parser.add_argument(
        "--room", help='room id or name (a name with spaces in quotes: "Lab A")'
    )
    creds = parser.add_mutually_exclusive_group()
    creds.add_argument(
        "--token", help="room token (with --room; default: $SLEAP_RTC_TOKEN)"
    )
    creds.add_argument(
        "--api-key", help="worker key slp_… (default: $SLEAP_RTC_API_KEY)"
    )
    creds.add_argument(
        "--account-key",
        help="account key slp_acct_… (with --room; default: $SLEAP_RTC_ACCOUNT_KEY)",
    )
    parser.add_argument(
        "--room-secret",
        help="the room's shared secret for data-channel authentication (default: "
        "$SLEAP_ROOM_SECRET or ~/.sleap-rtc/room-secrets/ROOM)",
    )


def room_secret(args: argparse.Namespace) -> str | None:
    """The room secret from ``--room-secret``, ``$SLEAP_ROOM_SECRET`` or the
    room's secret file (PROTOCOL.md B §2.1, item 7), if any."""
    secret = getattr(args, "room_secret", None) or os.environ.get("SLEAP_ROOM_SECRET")
    if secret:
        return str(secret).strip()
    room = getattr(args, "room", None)
    if not room:
        return None
    path = Path.home() / ".sleap-rtc" / "room-secrets" / room
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _ws_url(url: str) -> str:
    if url.startswith("http://"):
        return "ws://" + url.removeprefix("http://")
    if url.startswith("https://"):
        return "wss://" + url.removeprefix("https://")
    return url


def server_urls(args: argparse.Namespace) -> list[str]:
    """Every ``ws://``/``wss://`` URL ``--server`` names (``http`` becomes
    ``ws``), in order.

    Raises:
        ValueError: ``--server`` names none.
    """
    return [_ws_url(url) for url in split_urls(args.server)]


def server_url(args: argparse.Namespace) -> str:
    """The first URL of ``--server`` (the one saved logins are keyed by).

    Raises:
        ValueError: ``--server`` names none.
    """
    return server_urls(args)[0]


def credentials_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The ``register`` credential fields the flags (or environment, or the saved
    login) give.

    Raises:
        CredentialsError: a flag is missing its partner, or nothing is given.
    """
    room = args.room
    token = args.token or os.environ.get("SLEAP_RTC_TOKEN")
    api_key = args.api_key or os.environ.get("SLEAP_RTC_API_KEY")
    account_key = args.account_key or os.environ.get("SLEAP_RTC_ACCOUNT_KEY")
    if api_key:
        return {"api_key": api_key, **({"room_id": room} if room else {})}
    if not room:
        raise CredentialsError("--room is required (or use a worker key --api-key)")
    if account_key:
        return {"api_key": account_key, "room_id": room}
    if token:
        return {"room_id": room, "token": token}
    saved = load_credentials()
    servers = saved.get("servers")
    if not isinstance(servers, dict):
        servers = {}
    try:
        entry = servers.get(normalize_server(server_url(args))) or {}
    except ValueError:
        entry = {}
    jwt = entry.get("jwt") if isinstance(entry, dict) else None
    if isinstance(jwt, str) and jwt:
        return {"jwt": jwt, "room_id": room}
    raise CredentialsError(
        "no credentials: pass --token, --api-key or --account-key, "
        f"or run `sleap-rtc login --server {args.server}` first"
    )


# --- the client commands' connection (check, train, track, fetch)

CONNECT_GIVE_UP = 20.0
"""Seconds a client command keeps trying to reach the server before it says
so and exits (a lab user should not wait on a silent prompt)."""


def client_register(args: argparse.Namespace) -> sig.Register:
    """The ``register`` of a one-off client command (a fresh peer id).

    Raises:
        CredentialsError: no usable credentials in the flags or saved login.
    """
    return sig.Register(
        peer_id=f"cli-{uuid.uuid4().hex[:8]}",
        role="client",
        metadata={"tags": ["sleap-rtc", "client"], "properties": {}},
        subscribe={"roles": ["worker"]},  # presence of the workers it may use
        **credentials_from_args(args),
    )


def channel_auth(args: argparse.Namespace) -> ChannelAuth:
    """The data-channel credentials of the flags (the room secret)."""
    return ChannelAuth(secret=room_secret(args))


class _SayWaits(logging.Handler):
    """Says on stderr what a client command waits for (the server), in plain
    words and not only with ``-v``: every retry, and when it gives up."""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if is_quiet():
            return  # --quiet: the error at the end says it
        if record.levelno >= logging.INFO and message.startswith("! "):
            sys.stderr.write(
                f"{message.removeprefix('! ')} "
                f"(gives up {CONNECT_GIVE_UP:.0f} s after the last contact)\n"
            )


def _say_waits() -> None:
    """Route the signaling client's retry lines to :class:`_SayWaits`, unless
    ``-v`` already shows them (once per process)."""
    logger = logging.getLogger("sleap_rtc_core.signaling.client.session_io")
    if logger.getEffectiveLevel() <= logging.INFO:
        return  # -v: the log shows them
    if not any(isinstance(h, _SayWaits) for h in logger.handlers):
        logger.addHandler(_SayWaits())
        logger.setLevel(logging.INFO)
        logger.propagate = False  # not twice through the root's handler


def client_signaling(args: argparse.Namespace, register: Any) -> SignalingClient:
    """The command's signaling client, giving up after :data:`CONNECT_GIVE_UP`
    and saying each retry while it waits."""
    _say_waits()
    return SignalingClient(server_urls(args), register, give_up_after=CONNECT_GIVE_UP)


@contextlib.asynccontextmanager
async def connected(
    args: argparse.Namespace,
    register: Any,
    wait: Callable[[str | None], None],
) -> AsyncIterator[SignalingClient]:
    """:func:`client_signaling`, started; ``wait`` is told what it waits for
    (the server) until it is reached, so a display shows the time waited."""
    wait(f"connecting to the signaling server {server_url(args)}")
    async with client_signaling(args, register) as client:
        wait(None)
        yield client


async def find_worker(client: SignalingClient, wanted: str | None) -> str:
    """The peer id of ``--worker`` (an id or a name), or of the first worker.

    Raises:
        NoWorkersAvailableError: no worker in the room, or none of that name.
    """
    peers = await client.discover({"role": "worker"})
    if wanted is not None:
        return worker_named(peers, wanted)
    if not peers:
        raise NoWorkersAvailableError("no worker in this room")
    return str(peers[0]["peer_id"])
