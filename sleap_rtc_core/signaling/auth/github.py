"""GitHub OAuth: turn the ``code`` GitHub hands the login page into a user.

Optional: only when a client id and secret are configured. The two HTTP calls to
GitHub go through an injectable async ``fetch`` (the default runs ``urllib`` in a
thread, so the event loop never blocks), which tests replace with a fake since
GitHub is not reachable from them. Access tokens are never logged, and never
leave this module.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import AuthError

__all__ = [
    "AUTHORIZE_URL",
    "TOKEN_URL",
    "USER_URL",
    "Fetch",
    "GitHubOAuth",
    "GitHubUser",
    "urllib_fetch",
]

logger = logging.getLogger(__name__)

AUTHORIZE_URL = "https://github.com/login/oauth/authorize"
TOKEN_URL = "https://github.com/login/oauth/access_token"
USER_URL = "https://api.github.com/user"
_MAX_REPLY = 1 << 20

Fetch = Callable[
    [str, str, Mapping[str, str], bytes | None], Awaitable[tuple[int, bytes]]
]
"""``fetch(method, url, headers, body) -> (status, body)``."""


async def urllib_fetch(
    method: str, url: str, headers: Mapping[str, str], body: bytes | None
) -> tuple[int, bytes]:
    """One HTTPS request with the standard library, in a worker thread."""

    def run() -> tuple[int, bytes]:
        req = urllib.request.Request(
            url, data=body, headers=dict(headers), method=method
        )
        try:
            with urllib.request.urlopen(req, timeout=15) as resp:  # noqa: S310
                return int(resp.status), resp.read(_MAX_REPLY)
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read(_MAX_REPLY)

    return await asyncio.to_thread(run)


@dataclass(frozen=True, slots=True)
class GitHubUser:
    """The GitHub account that logged in."""

    github_id: str
    login: str
    avatar_url: str | None


@dataclass(frozen=True, slots=True)
class GitHubOAuth:
    """A GitHub OAuth app.

    Attributes:
        client_id: The OAuth app's client id (public).
        client_secret: Its secret.
        redirect_uri: The callback URL registered with GitHub (the server's
            ``/login`` page), or ``None`` to let GitHub use the app's default.
        fetch: How to make HTTP requests (injectable).
    """

    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str | None = None
    fetch: Fetch = field(default=urllib_fetch, repr=False)

    async def exchange(self, code: str, redirect_uri: str | None = None) -> GitHubUser:
        """Exchange an authorization ``code`` for the GitHub user.

        Raises:
            AuthError: GitHub refused the code or answered something unexpected.
        """
        form: dict[str, str] = {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "code": code,
        }
        uri = self.redirect_uri or redirect_uri
        if uri:
            form["redirect_uri"] = uri
        status, body = await self.fetch(
            "POST",
            TOKEN_URL,
            {
                "Accept": "application/json",
                "Content-Type": "application/x-www-form-urlencoded",
            },
            urllib.parse.urlencode(form).encode(),
        )
        reply = _json_object(body)
        access = reply.get("access_token")
        if status != 200 or not isinstance(access, str) or not access:
            # GitHub's error names (bad_verification_code, ...) are not secret.
            logger.info("! GitHub code exchange failed: %s", reply.get("error", status))
            raise AuthError("GitHub authentication failed")
        status, body = await self.fetch(
            "GET",
            USER_URL,
            {
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {access}",
                "User-Agent": "sleap-rtc",
            },
            None,
        )
        user = _json_object(body)
        gid, login = user.get("id"), user.get("login")
        if status != 200 or not isinstance(gid, int) or not isinstance(login, str):
            logger.info("! GitHub user lookup failed with status %s", status)
            raise AuthError("GitHub authentication failed")
        avatar = user.get("avatar_url")
        return GitHubUser(str(gid), login, avatar if isinstance(avatar, str) else None)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(body)
    except ValueError:
        return {}
    return obj if isinstance(obj, dict) else {}
