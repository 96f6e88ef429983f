"""GitHub OAuth code exchange.

GitHub itself is not reachable from tests, so its two HTTPS calls go through a
fake ``fetch`` (:class:`FakeFetch`) that records what was sent. The default
``urllib_fetch`` is tested for real against a local server on 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import Mapping

import pytest

from sleap_rtc_core.errors import AuthError
from sleap_rtc_core.signaling.auth.github import (
    TOKEN_URL,
    USER_URL,
    GitHubOAuth,
    GitHubUser,
    urllib_fetch,
)
from sleap_rtc_core.signaling.auth.jwt_keys import JwtKeys
from sleap_rtc_core.signaling.http.api import http_api_factory
from sleap_rtc_core.signaling.server.router_io import ServerConfig
from sleap_rtc_core.signaling.service import build_service
from sleap_rtc_core.signaling.store.auth_store import Store

ACCESS = "gho_very_secret_token"
TOKEN_OK = json.dumps({"access_token": ACCESS}).encode()
USER_OK = json.dumps(
    {"id": 7, "login": "octo", "avatar_url": "https://a/o.png"}
).encode()


class FakeFetch:
    """Scripted replies for the token exchange and the user lookup."""

    def __init__(
        self,
        token_reply: tuple[int, bytes] = (
            200,
            json.dumps({"access_token": ACCESS}).encode(),
        ),
        user_reply: tuple[int, bytes] = (
            200,
            json.dumps(
                {"id": 7, "login": "octo", "avatar_url": "https://a/o.png"}
            ).encode(),
        ),
    ) -> None:
        self.replies = {TOKEN_URL: token_reply, USER_URL: user_reply}
        self.requests: list[tuple[str, str, dict[str, str], bytes | None]] = []

    async def __call__(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> tuple[int, bytes]:
        self.requests.append((method, url, dict(headers), body))
        return self.replies[url]


async def test_exchange_returns_the_github_user() -> None:
    fetch = FakeFetch()
    app = GitHubOAuth("cid", "csecret", "http://127.0.0.1:8080/login", fetch=fetch)
    user = await app.exchange("the-code", "http://ignored/")
    assert user == GitHubUser("7", "octo", "https://a/o.png")
    (m1, u1, h1, b1), (m2, u2, h2, b2) = fetch.requests
    assert (m1, u1, m2, u2) == ("POST", TOKEN_URL, "GET", USER_URL)
    assert b1 is not None
    form = dict(urllib.parse.parse_qsl(b1.decode()))
    assert form == {
        "client_id": "cid",
        "client_secret": "csecret",
        "code": "the-code",
        "redirect_uri": "http://127.0.0.1:8080/login",  # the configured one wins
    }
    assert h1["Accept"] == "application/json"
    assert h2["Authorization"] == f"Bearer {ACCESS}"
    assert b2 is None
    assert "csecret" not in repr(app)


@pytest.mark.parametrize(
    ("token_reply", "user_reply"),
    [
        ((200, b'{"error": "bad_verification_code"}'), (200, b"{}")),
        ((500, b"<html>"), (200, b"{}")),
        ((200, TOKEN_OK), (401, b"{}")),
        ((200, TOKEN_OK), (200, b'{"id": "7"}')),
        ((200, TOKEN_OK), (200, b"[1]")),
    ],
)
async def test_exchange_failures_are_auth_errors_without_secrets(
    token_reply: tuple[int, bytes],
    user_reply: tuple[int, bytes],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    app = GitHubOAuth("cid", "csecret", fetch=FakeFetch(token_reply, user_reply))
    with pytest.raises(AuthError, match="GitHub authentication failed"):
        await app.exchange("code")
    assert ACCESS not in caplog.text
    assert "csecret" not in caplog.text


async def test_urllib_fetch_against_a_local_server() -> None:
    store = Store(":memory:")
    server = build_service(
        ServerConfig(port=0), store, JwtKeys.generate(), http=http_api_factory()
    ).server
    async with server:
        base = f"http://127.0.0.1:{server.port}"
        status, body = await urllib_fetch("GET", base + "/health", {}, None)
        assert status == 200
        assert json.loads(body)["status"] == "healthy"
        status, body = await urllib_fetch(
            "POST",
            base + "/api/auth/login",
            {"Content-Type": "application/json"},
            b"{}",
        )
        assert status == 400  # an HTTP error status is returned, not raised
        assert json.loads(body) == {"detail": "'username' is required"}
    store.close()
