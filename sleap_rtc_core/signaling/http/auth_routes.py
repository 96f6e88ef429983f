"""User credentials: login (local passwords, GitHub, the CLI hand-off), the login
page, the server's JWT public key, account keys and peer-to-peer public keys.

``sleap-rtc login`` opens ``/login?cli_state=<random>`` in a browser and polls
``/api/auth/cli/poll?state=<random>``; the page logs in (``/api/auth/login`` or
GitHub) and deposits the JWT under that state with ``/api/auth/cli/deposit``. The
deposit must carry a JWT that verifies, the first deposit for a state wins, and
the poll hands it out once.

Account keys (``slp_acct_…``) are shown in clear once, by the request that makes
them; afterwards they are named by their public id (``ak_…``). Revoking one
disconnects the peers registered with it at once.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from importlib import resources
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from ...errors import AuthError
from ..auth.github import AUTHORIZE_URL
from ..auth.jwt_keys import AUDIENCE, ISSUER
from ..auth.passwords import (
    MAX_PASSWORD_LENGTH,
    dummy_verify,
    hash_password,
    in_password_pool,
    needs_rehash,
    verify_password,
)
from ..store.auth_store import AlreadyExists
from ..store.records import AccountKey, User, iso_time
from .base import (
    ApiContext,
    HttpError,
    RouteTable,
    body_str,
    client_host,
    json_response,
)
from .wire import HttpRequest, HttpResponse

__all__ = ["routes"]

routes = RouteTable()

_MIN_STATE = 16
_MAX_STATE = 256


def _login_reply(ctx: ApiContext, user: User) -> HttpResponse:
    if not ctx.keys.can_issue:
        raise HttpError(503, "This server has no JWT private key; it cannot log in")
    token = ctx.keys.issue(user.user_id, user.username)
    # The reference dashboard reads ``jwt``, its CLI ``token``: send both.
    return json_response(200, {"token": token, "jwt": token, "user": user.public()})


@routes("POST", "/api/auth/login")
async def login(
    ctx: ApiContext, request: HttpRequest, _: dict[str, str]
) -> HttpResponse:
    """Username and password → ``{token, jwt, user}``."""
    body = ctx.body(request)
    username = body_str(body, "username", max_len=100) or ""
    password = (
        body_str(body, "password", max_len=MAX_PASSWORD_LENGTH, strip=False) or ""
    )
    address = f"login|{client_host(request)}"
    key = f"{address}|{username.lower()}"
    too_many = "Too many failed logins; try again later"
    ctx.check_limit(key, too_many)
    ctx.check_limit(address, too_many, ctx.config.login_failures_per_address)
    user = await ctx.db(ctx.store.get_user_by_name, username)
    if user is None or user.password_hash is None:
        await in_password_pool(dummy_verify, password)
        ok = False
    else:
        ok = await in_password_pool(verify_password, user.password_hash, password)
    if not ok or user is None:
        ctx.limiter.fail(key)
        ctx.limiter.fail(address)
        raise HttpError(401, "Invalid username or password")
    if user.password_hash is not None and needs_rehash(user.password_hash):
        new_hash = await in_password_pool(hash_password, password)
        await ctx.db(ctx.store.set_password, user.user_id, new_hash)
    return _login_reply(ctx, user)


@routes("GET", "/api/auth/me")
async def me(ctx: ApiContext, request: HttpRequest, _: dict[str, str]) -> HttpResponse:
    """Who the Bearer credential belongs to (checks a stored JWT)."""
    caller = await ctx.caller(request)
    user = caller.user
    if user is None:  # pragma: no cover - ctx.caller refuses worker keys here
        raise HttpError(403, "A worker key has no user")
    return json_response(200, {**user.public(), "via": caller.via})


@routes("POST", "/api/auth/github/callback")
async def github_callback(
    ctx: ApiContext, request: HttpRequest, _: dict[str, str]
) -> HttpResponse:
    """GitHub ``code`` → ``{token, jwt, user}`` (only when GitHub is configured)."""
    if ctx.github is None:
        raise HttpError(404, "GitHub login is not configured")
    body = ctx.body(request)
    code = body_str(body, "code", max_len=512) or ""
    redirect_uri = body_str(body, "redirect_uri", required=False, max_len=2048)
    key = f"github|{client_host(request)}"
    ctx.check_limit(key, "Too many failed logins; try again later")
    try:
        account = await ctx.github.exchange(code, redirect_uri)
    except AuthError as exc:
        ctx.limiter.fail(key)
        raise HttpError(401, exc.message) from None
    try:
        user = await ctx.db(
            ctx.store.upsert_github_user,
            account.github_id,
            account.login,
            account.avatar_url,
        )
    except AlreadyExists as exc:
        raise HttpError(409, str(exc)) from None
    return _login_reply(ctx, user)


@routes("POST", "/api/auth/cli/deposit")
async def cli_deposit(
    ctx: ApiContext, request: HttpRequest, _: dict[str, str]
) -> HttpResponse:
    """Leave a (verified) JWT for the CLI polling with ``state``."""
    body = ctx.body(request)
    state = _state(body_str(body, "state", max_len=_MAX_STATE))
    token = body_str(body, "jwt", max_len=16_384) or ""
    try:
        claims = ctx.keys.verify(token)
    except AuthError as exc:
        raise HttpError(401, exc.message) from None
    user = await ctx.db(ctx.store.get_user, claims["sub"])
    if user is None:
        raise HttpError(401, "User not found")
    try:
        await ctx.db(
            ctx.store.put_cli_deposit,
            state,
            token,
            user.public(),
            ttl=ctx.config.cli_deposit_ttl,
        )
    except AlreadyExists as exc:
        raise HttpError(409, str(exc)) from None
    return json_response(200, {"status": "ok"})


@routes("GET", "/api/auth/cli/poll")
async def cli_poll(
    ctx: ApiContext, request: HttpRequest, _: dict[str, str]
) -> HttpResponse:
    """202 ``{"status":"pending"}`` until a deposit exists, then 200 once."""
    state = _state(request.query.get("state"))
    found = await ctx.db(ctx.store.take_cli_deposit, state)
    if found is None:
        return json_response(202, {"status": "pending"})
    token, user = found
    return json_response(200, {"jwt": token, "token": token, "user": user})


def _state(value: str | None) -> str:
    if not value or not _MIN_STATE <= len(value) <= _MAX_STATE:
        raise HttpError(
            400, f"'state' must have {_MIN_STATE} to {_MAX_STATE} characters"
        )
    return value


@routes("GET", "/login")
async def login_page(
    ctx: ApiContext, request: HttpRequest, _: dict[str, str]
) -> HttpResponse:
    """The self-contained login page (no external assets, strict CSP)."""
    nonce = secrets.token_urlsafe(16)
    config = {
        "github_client_id": ctx.github.client_id if ctx.github else None,
        "github_redirect_uri": ctx.github.redirect_uri if ctx.github else None,
        "github_authorize_url": AUTHORIZE_URL,
    }
    # ``<`` escaped so that no value can close the <script> element.
    config_json = json.dumps(config).replace("<", "\\u003c")
    page = (
        _page_template()
        .replace("{{NONCE}}", nonce)
        .replace("{{CONFIG_JSON}}", config_json)
    )
    csp = (
        "default-src 'none'; "
        f"script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "connect-src 'self'; form-action 'self'; img-src 'self' data:; "
        "base-uri 'none'; frame-ancestors 'none'"
    )
    headers = {
        "Content-Security-Policy": csp,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    return HttpResponse(200, page.encode(), "text/html; charset=utf-8", headers)


_TEMPLATE: list[str] = []


def _page_template() -> str:
    if not _TEMPLATE:
        ref = resources.files(__package__ or "").joinpath("login_page.html")
        _TEMPLATE.append(ref.read_text(encoding="utf-8"))
    return _TEMPLATE[0]


# --- the server's JWT public key (for other verifiers)


@routes("GET", "/api/auth/public-key")
async def jwt_public_key(
    ctx: ApiContext, request: HttpRequest, _: dict[str, str]
) -> HttpResponse:
    """The PEM public key that verifies this server's JWTs (public)."""
    return json_response(
        200,
        {
            "public_key": ctx.keys.public_pem.decode(),
            "kid": ctx.keys.kid,
            "algorithm": "RS256",
            "issuer": ISSUER,
            "audience": AUDIENCE,
        },
    )


@routes("GET", "/api/auth/jwks")
@routes("GET", "/.well-known/jwks.json")
async def jwks(
    ctx: ApiContext, request: HttpRequest, _: dict[str, str]
) -> HttpResponse:
    """The same key as a JSON Web Key Set (public)."""
    public = serialization.load_pem_public_key(ctx.keys.public_pem)
    if not isinstance(public, rsa.RSAPublicKey):  # pragma: no cover - always RSA
        raise HttpError(500, "The JWT key is not an RSA key")
    jwk: dict[str, Any] = dict(RSAAlgorithm.to_jwk(public, as_dict=True))
    jwk.update({"kid": ctx.keys.kid, "alg": "RS256", "use": "sig"})
    return json_response(200, {"keys": [jwk]})


# --- account keys


def _account_key_item(key: AccountKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "name": key.name,
        "created_at": iso_time(key.created_at),
        "revoked_at": iso_time(key.revoked_at),
        "is_active": key.revoked_at is None,
    }


@routes("POST", "/api/auth/account-keys")
async def create_account_key(
    ctx: ApiContext, request: HttpRequest, _: dict[str, str]
) -> HttpResponse:
    """``{name}`` → a new account key, in clear this once (``key_id``)."""
    caller = await ctx.caller(request)
    name = body_str(ctx.body(request), "name", max_len=100) or ""
    active = [
        k
        for k in await ctx.db(ctx.store.list_account_keys, caller.user_id)
        if k.revoked_at is None
    ]
    if len(active) >= ctx.config.max_account_keys:
        raise HttpError(
            400, f"At most {ctx.config.max_account_keys} active account keys"
        )
    try:
        key, secret = await ctx.db(ctx.store.create_account_key, caller.user_id, name)
    except KeyError:
        raise HttpError(401, "User not found") from None
    # ``key_id`` is the key itself here, as reference clients expect; ``id``
    # is the public id that names it from now on.
    return json_response(
        200, {**_account_key_item(key), "key_id": secret, "id": key.key_id}
    )


@routes("GET", "/api/auth/account-keys")
async def list_account_keys(
    ctx: ApiContext, request: HttpRequest, _: dict[str, str]
) -> HttpResponse:
    """The caller's account keys (public ids only)."""
    caller = await ctx.caller(request)
    keys = await ctx.db(ctx.store.list_account_keys, caller.user_id)
    return json_response(200, {"keys": [_account_key_item(k) for k in keys]})


@routes("DELETE", "/api/auth/account-keys/{key_id}")
async def revoke_account_key(
    ctx: ApiContext, request: HttpRequest, params: dict[str, str]
) -> HttpResponse:
    """Revoke one of the caller's account keys; its peers are disconnected."""
    caller = await ctx.caller(request)
    key = await ctx.db(ctx.store.get_account_key, params["key_id"])
    if key is None or key.user_id != caller.user_id:
        raise HttpError(404, "Account key not found")
    await ctx.db(ctx.store.revoke_account_key, key.key_id)
    n = ctx.revoke(key.key_id, "account key revoked")
    return json_response(
        200, {"revoked": True, "key_id": key.key_id, "disconnected": n}
    )


# --- peer-to-peer public keys (PROTOCOL.md B §2.1.7)

_ED25519_BYTES = 32


def _public_key(value: str | None) -> str:
    """A raw Ed25519 public key, base64url (padding optional), normalised."""
    text = (value or "").strip().rstrip("=")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != _ED25519_BYTES or any(c in text for c in "+/"):
        raise HttpError(
            400, "'public_key' must be a raw Ed25519 key (32 bytes, base64url)"
        )
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@routes("POST", "/api/auth/public-keys")
async def add_public_key(
    ctx: ApiContext, request: HttpRequest, _: dict[str, str]
) -> HttpResponse:
    """``{public_key, device_name?}``: a key workers of the caller's rooms trust."""
    caller = await ctx.caller(request)
    body = ctx.body(request)
    key = _public_key(body_str(body, "public_key", max_len=64))
    device = body_str(body, "device_name", required=False, max_len=100) or ""
    record = await ctx.db(ctx.store.add_public_key, caller.user_id, key, device)
    return json_response(
        200,
        {
            "status": "ok",
            "public_key": record.public_key,
            "device_name": record.device_name,
        },
    )


@routes("GET", "/api/auth/public-keys")
async def list_public_keys(
    ctx: ApiContext, request: HttpRequest, _: dict[str, str]
) -> HttpResponse:
    """The caller's public keys."""
    caller = await ctx.caller(request)
    keys = await ctx.db(ctx.store.list_public_keys, caller.user_id)
    items = [
        {
            "public_key": k.public_key,
            "device_name": k.device_name,
            "created_at": iso_time(k.created_at),
        }
        for k in keys
    ]
    return json_response(200, {"public_keys": items})


@routes("DELETE", "/api/auth/public-keys/{public_key}")
async def delete_public_key(
    ctx: ApiContext, request: HttpRequest, params: dict[str, str]
) -> HttpResponse:
    """Remove one of the caller's public keys."""
    caller = await ctx.caller(request)
    key = _public_key(params["public_key"])
    if not await ctx.db(ctx.store.delete_public_key, caller.user_id, key):
        raise HttpError(404, "Public key not found")
    return json_response(200, {"deleted": True, "public_key": key})


@routes("GET", "/api/rooms/{room_id}/authorized-keys")
async def authorized_keys(
    ctx: ApiContext, request: HttpRequest, params: dict[str, str]
) -> HttpResponse:
    """The public keys of a room's members (a worker key of the room may ask)."""
    caller = await ctx.caller(request, allow_worker_key=True)
    room, _ = await ctx.room_for(params["room_id"], caller)
    rows = await ctx.db(ctx.store.room_public_keys, room.room_id)
    items = [
        {"public_key": k.public_key, "username": name, "device_name": k.device_name}
        for k, name in rows
    ]
    return json_response(200, {"authorized_keys": items})
