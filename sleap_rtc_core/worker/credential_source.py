"""Where a worker's secret lives: a file, an environment variable or a flag.

The config file only says *where* the secret is (see :mod:`.config`);
:meth:`CredentialSource.read` reads it when the worker registers, and
:meth:`CredentialSource.describe` says where without ever showing it.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from ..errors import ConfigError

__all__ = ["CredentialKind", "CredentialOrigin", "CredentialSource"]

logger = logging.getLogger(__name__)


class CredentialKind(StrEnum):
    """Which ``register`` field the secret goes in."""

    TOKEN = "token"
    """A room token (``room_id`` + ``token``)."""

    API_KEY = "api_key"
    """A worker key ``slp_…`` or an account key ``slp_acct_…``."""


class CredentialOrigin(StrEnum):
    """Where the secret is read from."""

    FILE = "file"
    ENV = "env"
    VALUE = "value"
    """Given directly on the command line (never from the config file)."""


@dataclass(frozen=True, slots=True)
class CredentialSource:
    """Where a worker's secret lives, without the secret (unless from a flag).

    Attributes:
        kind: Room token or key.
        origin: File, environment variable, or a value from the command line.
        where: The file path or the variable name (``"command line"`` for a value).
        value: The secret, only for :attr:`CredentialOrigin.VALUE`; never shown
            by ``repr``.
    """

    kind: CredentialKind
    origin: CredentialOrigin
    where: str
    value: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        """A line for logs and ``doctor``: what and where, never the secret."""
        what = "room token" if self.kind is CredentialKind.TOKEN else "API key"
        if self.origin is CredentialOrigin.FILE:
            return f"{what} from file {self.where}"
        if self.origin is CredentialOrigin.ENV:
            return f"{what} from ${self.where}"
        return f"{what} from the command line"

    def read(self, environ: Mapping[str, str] | None = None) -> str:
        """The secret, stripped of surrounding whitespace.

        Args:
            environ: The environment to read ``*_env`` sources from
                (default ``os.environ``).

        Raises:
            ConfigError: the file is missing or unreadable, the variable is
                unset, or the secret is empty.
        """
        if self.origin is CredentialOrigin.VALUE:
            secret = self.value or ""
        elif self.origin is CredentialOrigin.ENV:
            env = os.environ if environ is None else environ
            if self.where not in env:
                raise ConfigError(
                    f"the environment variable {self.where} is not set "
                    "(for systemd, put it in the unit's EnvironmentFile)",
                    key=f"{self.kind.value}_env",
                )
            secret = env[self.where]
        else:
            path = Path(self.where)
            try:
                secret = path.read_text(encoding="utf-8")
                mode = path.stat().st_mode
            except OSError as exc:
                raise ConfigError(
                    f"cannot read the credential file {path}: {exc.strerror}",
                    key=f"{self.kind.value}_file",
                ) from None
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                logger.warning(
                    "! credential file %s is readable by others; chmod 600 it", path
                )
        secret = secret.strip()
        if not secret:
            raise ConfigError(f"the {self.describe()} is empty")
        return secret
