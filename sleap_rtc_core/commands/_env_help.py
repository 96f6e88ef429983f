"""The environment variables the commands read, listed at the end of ``--help``.

Each command names the variables it reads with :func:`add_env_help`; they are
shown as one ``environment:`` paragraph, each with what it stands for (usually
the flag it is the default of). :data:`ENV_VARS` is the one list of them.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

__all__ = [
    "CONNECTION_ENV",
    "DATA_DIR_ENV",
    "ENV_VARS",
    "JWT_KEY_ENV",
    "WORKER_ENV",
    "add_env_help",
    "env_names",
]

ENV_VARS: Mapping[str, str] = {
    "SLEAP_RTC_SERVER": "the signaling server URL(s), as --server",
    "SLEAP_RTC_TOKEN": "the room token, as --token",
    "SLEAP_RTC_API_KEY": "a worker key, as --api-key",
    "SLEAP_RTC_ACCOUNT_KEY": "an account key, as --account-key",
    "SLEAP_ROOM_SECRET": "the room secret, as --room-secret",
    "SLEAP_RTC_REFUSE_LEGACY_WORKERS": "1 = --refuse-legacy-workers",
    "SLEAP_RTC_WORKER_PEER_ID": "the worker to use when the server cannot "
    "discover workers, e.g. an old one",
    "SLEAP_RTC_ICE_LOOPBACK": "1 = WebRTC on 127.0.0.1 only",
    "SLEAP_RTC_SIGNALING_HTTP": "the server's HTTP address when SLEAP_RTC_SERVER "
    "is not set",
    "SLEAP_RTC_DATA_DIR": "the server's data folder, as --data-dir",
    "SLEAP_RTC_REDIS_URL": "Redis for several server processes, as --redis",
    "SLEAP_JWT_PRIVATE_KEY": "the JWT signing key (PEM) instead of the data folder's",
    "SLEAP_JWT_PRIVATE_KEY_FILE": "a file holding it",
    "SLEAP_JWT_PUBLIC_KEY": "the JWT verification key (PEM) only",
    "SLEAP_JWT_PUBLIC_KEY_FILE": "a file holding it",
    "SLEAP_RTC_ROOM": "the room, as --room",
    "SLEAP_RTC_WORKER_NAME": "the worker's name, as --name",
    "SLEAP_RTC_GPU": "the worker's CUDA device(s), as --gpu",
    "SLEAP_RTC_MAX_CONCURRENT_JOBS": "as --max-concurrent-jobs",
    "SLEAP_RTC_ACCEPT_LEGACY_CLIENTS": "0 = refuse sleap-rtc 0.0.7 clients",
}
"""Every variable a command reads, with what it stands for."""

CONNECTION_ENV = (
    "SLEAP_RTC_SERVER",
    "SLEAP_RTC_TOKEN",
    "SLEAP_RTC_API_KEY",
    "SLEAP_RTC_ACCOUNT_KEY",
    "SLEAP_ROOM_SECRET",
)
"""What :func:`._connect.add_connection_args`'s flags default to."""

DATA_DIR_ENV = ("SLEAP_RTC_DATA_DIR",)
"""What ``--data-dir`` defaults to."""

JWT_KEY_ENV = (
    "SLEAP_JWT_PRIVATE_KEY",
    "SLEAP_JWT_PRIVATE_KEY_FILE",
    "SLEAP_JWT_PUBLIC_KEY",
    "SLEAP_JWT_PUBLIC_KEY_FILE",
)
"""Where the server's JWT keys may come from instead of the data folder."""

WORKER_ENV = (
    "SLEAP_RTC_ROOM",
    "SLEAP_RTC_WORKER_NAME",
    "SLEAP_RTC_GPU",
    "SLEAP_RTC_MAX_CONCURRENT_JOBS",
    "SLEAP_RTC_ACCEPT_LEGACY_CLIENTS",
    "SLEAP_RTC_ICE_LOOPBACK",
)
"""A worker's settings from the environment (``worker/config.py``'s
``ENV_OVERRIDES``), besides the connection's."""

_NAMES = "_sleap_rtc_env"


def env_names(parser: argparse.ArgumentParser) -> tuple[str, ...]:
    """The variables :func:`add_env_help` listed for ``parser``, in order."""
    names: tuple[str, ...] = getattr(parser, _NAMES, ())
    return names


def add_env_help(parser: argparse.ArgumentParser, *names: str) -> None:
    """List ``names`` (with what each stands for) in ``parser``'s ``--help``
    epilog; called again, it adds to the list.

    Raises:
        KeyError: a name that :data:`ENV_VARS` does not describe.
    """
    listed = list(env_names(parser))
    for name in names:
        ENV_VARS[name]  # noqa: B018 (raises for an undescribed name)
        if name not in listed:
            listed.append(name)
    setattr(parser, _NAMES, tuple(listed))
    parser.epilog = "environment: " + "; ".join(
        f"{name} ({ENV_VARS[name]})" for name in listed
    )
