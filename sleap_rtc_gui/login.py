"""The labeler's login for the GUI: the stored JWT and the browser login.

:class:`StoredLogin` implements :class:`~sleap_rtc_gui.session.AuthProvider`
over ``sleap-rtc login``'s credentials file: ``check`` reads the token saved for
the server and its expiry (``exp`` of the JWT payload; the signature is the
server's business), ``login`` runs the same deposit/poll flow as the CLI
(:func:`sleap_rtc_core.client.credentials.login`, which blocks, so it runs in a
worker thread) and saves the token. Cancelling tells the thread to stop and
waits for it (one poll at most), so no thread is left behind.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
import threading
import time
from typing import Any

from sleap_rtc_core.client.credentials import (
    load_credentials,
    login,
    normalize_server,
    save_credentials,
)
from sleap_rtc_core.errors import AuthError

__all__ = ["GivenOrStoredLogin", "StoredLogin", "jwt_expiry"]

logger = logging.getLogger(__name__)


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT (seconds since the epoch), unverified."""
    try:
        payload = token.split(".")[1]
        data: Any = json.loads(
            base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        )
    except (IndexError, ValueError):
        return None
    exp = data.get("exp") if isinstance(data, dict) else None
    return float(exp) if isinstance(exp, int | float) else None


class StoredLogin:
    """The login saved for one signaling server.

    Args:
        server: The server's URL (``ws://`` or ``http://``).
        timeout: Seconds the browser login may take.
    """

    def __init__(self, server: str, *, timeout: float = 300.0) -> None:
        self.server = normalize_server(server)
        self.timeout = timeout

    def token(self) -> str | None:
        """The saved JWT for this server, if any."""
        servers = load_credentials().get("servers")
        entry = servers.get(self.server) if isinstance(servers, dict) else None
        jwt = entry.get("jwt") if isinstance(entry, dict) else None
        return jwt if isinstance(jwt, str) and jwt else None

    def check(self) -> tuple[bool, bool]:
        """``(ok, expired)``: a token is saved and has not expired."""
        token = self.token()
        if token is None:
            return False, False
        exp = jwt_expiry(token)
        expired = exp is not None and exp <= time.time()
        return not expired, expired

    async def login(self) -> bool:
        """Open the browser login and wait for the token; True once saved."""
        out = io.StringIO()
        cancelled = threading.Event()
        waiting = asyncio.ensure_future(
            asyncio.to_thread(
                login, self.server, timeout=self.timeout, out=out, cancelled=cancelled
            )
        )
        try:
            result = await asyncio.shield(waiting)
        except asyncio.CancelledError:
            # Cancel: the thread ends after its current poll, and we wait for it,
            # so no login thread outlives the dialog.
            cancelled.set()
            with contextlib.suppress(Exception):
                await waiting
            raise
        except (AuthError, ConnectionError, ValueError) as exc:
            logger.info("! login failed: %s", exc)
            return False
        save_credentials(self.server, result["jwt"], result.get("user") or {})
        return True


class GivenOrStoredLogin:
    """Credentials in the order the CLI takes them: flags, environment, saved
    login; the browser login only when none of them is there.

    A room token or a worker/account key given on the command line (or in
    ``SLEAP_RTC_TOKEN`` / ``SLEAP_RTC_API_KEY`` / ``SLEAP_RTC_ACCOUNT_KEY``)
    is a valid login: no browser window is asked for.

    Args:
        given: Whether the flags or the environment give a credential.
        stored: The saved login, checked otherwise.
    """

    def __init__(self, given: bool, stored: StoredLogin) -> None:
        self.given = given
        self.stored = stored

    def check(self) -> tuple[bool, bool]:
        """``(ok, expired)``: given credentials are always ok."""
        if self.given:
            return True, False
        return self.stored.check()

    async def login(self) -> bool:
        """The browser login (only asked for without given credentials)."""
        return await self.stored.login()
