"""``sleap-rtc login``: log in to a signaling server through the browser.

The command makes a random ``state``, opens ``<server>/login?cli_state=<state>``
in a browser (or prints it with ``--no-browser``), and polls
``<server>/api/auth/cli/poll?state=<state>`` until the login page deposits a JWT
for that state, or until ``--timeout``. The JWT is saved in the user's config
folder (``$XDG_CONFIG_HOME/sleap-rtc/credentials.json`` on Linux), mode 0600.

The credentials file is a JSON object::

    {"server": URL, "jwt": TOKEN, "user": {...},          # the latest login
     "servers": {URL: {"jwt": TOKEN, "user": {...}}}}     # one entry per server

The store and the login itself live in :mod:`..client.credentials`; this module
is the command line around them.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..client.credentials import login, save_credentials
from ..errors import AuthError
from ..http_json import normalize_server
from ._env_help import add_env_help

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``login`` to the CLI."""
    parser = sub.add_parser(
        "login",
        help="log in to a signaling server through the browser",
        description="Open the server's login page in a browser (or print its "
        "address) and wait for the login; the token is saved for later commands "
        "(mode 0600 in your config folder).",
    )
    parser.add_argument(
        "--server",
        default=os.environ.get("SLEAP_RTC_SERVER")
        or os.environ.get("SLEAP_RTC_SIGNALING_HTTP"),
        help="the server's URL as the other commands take it, ws://HOST:PORT or "
        "http://HOST:PORT (default: $SLEAP_RTC_SERVER, or the older "
        "$SLEAP_RTC_SIGNALING_HTTP)",
    )
    add_env_help(parser, "SLEAP_RTC_SERVER", "SLEAP_RTC_SIGNALING_HTTP")
    parser.add_argument(
        "--no-browser",
        action="store_true",
        help="print the login URL instead of opening a browser",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds to wait for the login (default 120)",
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=2.0,
        help="seconds between checks (default 2)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Log in and save the JWT; 0 on success, 1 on failure, 2 on bad usage."""
    if not args.server:
        sys.stderr.write("sleap-rtc login: --server http://HOST:PORT is required\n")
        return 2
    if args.timeout <= 0 or args.poll_interval <= 0:
        sys.stderr.write("sleap-rtc login: --timeout and --poll-interval must be > 0\n")
        return 2
    try:
        result = login(
            args.server,
            open_browser=not args.no_browser,
            timeout=args.timeout,
            interval=args.poll_interval,
        )
    except ValueError as exc:
        sys.stderr.write(f"sleap-rtc login: {exc}\n")
        return 2
    except (ConnectionError, AuthError) as exc:
        sys.stderr.write(f"sleap-rtc login: {exc}\n")
        return 1
    server = normalize_server(args.server)
    path = save_credentials(server, result["jwt"], result["user"])
    name = result["user"].get("username", "?")
    sys.stdout.write(f"Logged in to {server} as {name}; credentials saved to {path}\n")
    return 0
