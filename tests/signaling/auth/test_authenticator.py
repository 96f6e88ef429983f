"""Who may register: every credential path against a real store and real keys."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sleap_rtc_core.errors import AuthError, ErrorCode
from sleap_rtc_core.protocol.signaling import Register
from sleap_rtc_core.signaling.auth.authenticator import (
    NO_AUTH,
    Authenticator,
    CredentialKind,
    Identity,
)
from sleap_rtc_core.signaling.auth.jwt_keys import JwtKeys
from sleap_rtc_core.signaling.server.router import Router
from sleap_rtc_core.signaling.server.session import CLOSE_REVOKED, IdentityLike
from sleap_rtc_core.signaling.store.auth_store import RevocationWatcher, Store
from sleap_rtc_core.signaling.store.records import (
    Room,
    User,
    member_credential,
    room_credential,
    user_credential,
)
from tests.fixtures.router import FakeConn

DAY = 24 * 3600.0


class Clock:
    """A settable clock (epoch seconds)."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[JwtKeys, JwtKeys]:
    """The server's key pair and a forger's (real 2048-bit RSA)."""
    return JwtKeys.generate(), JwtKeys.generate()


class World:
    """A store on disk with one room, its owner, a member and an outsider."""

    def __init__(self, path: Path, keys: JwtKeys, forger: JwtKeys) -> None:
        self.clock = Clock()
        self.store = Store(path, clock=self.clock)
        self.keys = JwtKeys.from_pem(
            None, keys.public_pem, clock=self.clock
        )  # verify-only twin with our clock
        self._signer = keys
        self.forger = forger
        self.auth = Authenticator(self.store, self.keys, clock=self.clock)
        self.alice: User = self.store.add_user("alice")
        self.bob: User = self.store.add_user("bob")
        self.room: Room = self.store.create_room(
            "lab", owner_id=self.alice.user_id, expires_at=self.clock() + 30 * DAY
        )
        self.other: Room = self.store.create_room("other")

    def jwt(self, user: User, **kw: float) -> str:
        return self._signer.issue(user.user_id, user.username, now=self.clock(), **kw)

    def register(self, **fields: object) -> Identity:
        return self.auth.authenticate(Register(peer_id="p1", **fields))  # type: ignore[arg-type]


@pytest.fixture
def w(tmp_path: Path, rsa_keys: tuple[JwtKeys, JwtKeys]) -> Iterator[World]:
    world = World(tmp_path / "auth.db", *rsa_keys)
    yield world
    world.store.close()


def _refused(
    w: World, match: str, code: str = ErrorCode.AUTH_FAILED, **fields: object
) -> None:
    with pytest.raises(AuthError, match=match) as info:
        w.register(**fields)
    assert info.value.code == code


# --- room token


def test_room_token(w: World) -> None:
    ident = w.register(room_id=w.room.room_id, token=w.room.token)
    assert ident.kind is CredentialKind.ROOM_TOKEN
    assert ident.room_id == w.room.room_id
    assert ident.credential_id == room_credential(w.room.room_id)
    assert ident.revocation_ids == {room_credential(w.room.room_id)}
    assert w.room.token not in repr(ident)


def test_room_token_refusals(w: World) -> None:
    _refused(w, "Invalid token", room_id=w.room.room_id, token=w.other.token)
    _refused(w, "Invalid token", room_id=w.room.room_id, token="x")
    _refused(w, "Room not found", ErrorCode.ROOM_NOT_FOUND, room_id="nope", token="x")
    w.clock.now += 31 * DAY
    _refused(
        w,
        "Room expired",
        ErrorCode.ROOM_EXPIRED,
        room_id=w.room.room_id,
        token=w.room.token,
    )


def test_a_room_is_named_by_id_or_by_its_one_name(w: World) -> None:
    """``--room "lab"`` works as the admin commands do; the identity carries the
    room's id; a name two rooms share is refused with what to do."""
    ident = w.register(room_id="lab", token=w.room.token)
    assert ident.room_id == w.room.room_id
    member = w.register(room_id="lab", jwt=w.jwt(w.alice))
    assert member.room_id == w.room.room_id
    _refused(w, "Invalid token", room_id="lab", token=w.other.token)
    w.store.create_room("lab")
    _refused(w, "several rooms", ErrorCode.ROOM_NOT_FOUND, room_id="lab", token="x")


def test_no_credentials(w: World) -> None:
    _refused(w, NO_AUTH)
    _refused(w, NO_AUTH, room_id=w.room.room_id)
    _refused(w, "Cognito", id_token="eyJ...", room_id=w.room.room_id, token="x")
    # An api_key without the slp_ prefix is not a credential (reference).
    _refused(w, NO_AUTH, api_key="abc")


# --- worker keys


def test_worker_key(w: World) -> None:
    token, secret = w.store.create_worker_token(w.room.room_id, "gpu1")
    ident = w.register(api_key=secret)
    assert ident.kind is CredentialKind.WORKER_KEY
    assert ident.room_id == w.room.room_id
    assert ident.principal == ident.credential_id == token.token_id
    assert ident.display_name == "gpu1"
    assert ident.user_id is None
    assert ident.server_metadata == {
        "_worker_name": "gpu1",
        "_token_id": token.token_id,
    }
    assert secret not in repr(ident) + json.dumps(ident.server_metadata)
    assert room_credential(w.room.room_id) in ident.revocation_ids
    # Naming its own room is fine; another room is refused.
    assert w.register(api_key=secret, room_id=w.room.room_id) == ident
    _refused(w, "not valid for this room", api_key=secret, room_id=w.other.room_id)


def test_worker_key_refusals(w: World) -> None:
    token, secret = w.store.create_worker_token(
        w.room.room_id, "gpu1", expires_at=w.clock() + DAY
    )
    _refused(w, "Invalid API key", api_key=secret + "x")
    _refused(w, "Invalid API key", api_key="slp_")
    w.clock.now += 2 * DAY
    _refused(w, "Token expired", api_key=secret)
    _, fresh = w.store.create_worker_token(w.room.room_id, "gpu2")
    w.store.revoke_worker_token(token.token_id)
    _refused(w, "Token revoked", api_key=secret)
    w.clock.now += 30 * DAY
    _refused(w, "Room expired", ErrorCode.ROOM_EXPIRED, api_key=fresh)
    w.store.delete_room(w.room.room_id)
    _refused(w, "Invalid API key", api_key=fresh)


def test_api_key_takes_precedence_over_jwt(w: World) -> None:
    _, secret = w.store.create_worker_token(w.other.room_id, "gpu")
    ident = w.register(api_key=secret, jwt=w.jwt(w.alice), room_id=None)
    assert ident.kind is CredentialKind.WORKER_KEY


# --- account keys


def test_account_key(w: World) -> None:
    key, secret = w.store.create_account_key(w.alice.user_id, "laptop")
    ident = w.register(api_key=secret, room_id=w.room.room_id)
    assert ident.kind is CredentialKind.ACCOUNT_KEY
    assert ident.principal == user_credential(w.alice.user_id)
    assert ident.credential_id == key.key_id
    assert ident.user_id == w.alice.user_id
    assert ident.display_name == "alice"
    assert ident.revocation_ids == {
        key.key_id,
        user_credential(w.alice.user_id),
        member_credential(w.room.room_id, w.alice.user_id),
        room_credential(w.room.room_id),
    }
    assert secret not in repr(ident)


def test_account_key_refusals(w: World) -> None:
    key, secret = w.store.create_account_key(w.alice.user_id, "laptop")
    _, bobs = w.store.create_account_key(w.bob.user_id, "desk")
    _refused(w, "room_id required", api_key=secret)
    _refused(w, "No access to this room", api_key=bobs, room_id=w.room.room_id)
    _refused(w, "No access to this room", api_key=secret, room_id=w.other.room_id)
    _refused(w, "Room not found", ErrorCode.ROOM_NOT_FOUND, api_key=secret, room_id="x")
    _refused(w, "Invalid API key", api_key="slp_acct_nothing")
    w.store.revoke_account_key(key.key_id)
    _refused(w, "Token revoked", api_key=secret, room_id=w.room.room_id)


# --- JWT


def test_jwt_of_a_member(w: World) -> None:
    ident = w.register(jwt=w.jwt(w.alice), room_id=w.room.room_id)
    assert ident.kind is CredentialKind.JWT
    assert ident.principal == ident.credential_id == user_credential(w.alice.user_id)
    assert ident.server_metadata == {"_username": "alice", "_user_id": w.alice.user_id}
    assert member_credential(w.room.room_id, w.alice.user_id) in ident.revocation_ids
    w.store.add_member(w.room.room_id, w.bob.user_id)
    assert w.register(jwt=w.jwt(w.bob), room_id=w.room.room_id).display_name == "bob"


def test_jwt_refusals(w: World) -> None:
    good = w.jwt(w.alice)
    room = w.room.room_id
    _refused(w, "room_id required", jwt=good)
    _refused(w, "No access to this room", jwt=w.jwt(w.bob), room_id=room)
    _refused(w, "No access", jwt=good, room_id=w.other.room_id)
    _refused(w, "Room not found", ErrorCode.ROOM_NOT_FOUND, jwt=good, room_id="x")
    ghost = User("u-ghost", "ghost", None, None, None, 0.0)
    _refused(w, "Unknown user", jwt=w.jwt(ghost), room_id=room)


def test_forged_jwt(w: World) -> None:
    forged = w.forger.issue(w.alice.user_id, "alice")
    _refused(w, "Invalid token", jwt=forged, room_id=w.room.room_id)


def test_alg_none_jwt(w: World) -> None:
    def b64(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    claims = {
        "sub": w.alice.user_id,
        "username": "alice",
        "iat": int(w.clock()),
        "exp": int(w.clock() + DAY),
        "iss": "sleap-rtc",
        "aud": "sleap-rtc",
    }
    token = b64({"alg": "none", "typ": "JWT"}) + "." + b64(claims) + "."
    _refused(w, "alg", jwt=token, room_id=w.room.room_id)


def test_expired_jwt(w: World) -> None:
    token = w.jwt(w.alice, ttl=60)
    w.clock.now += 3600
    _refused(w, "expired", jwt=token, room_id=w.room.room_id)


def test_tampered_jwt(w: World) -> None:
    header, _, sig = w.jwt(w.bob).split(".")
    payload = base64.urlsafe_b64encode(
        json.dumps(
            {
                "sub": w.alice.user_id,
                "username": "alice",
                "iat": int(w.clock()),
                "exp": int(w.clock() + DAY),
                "iss": "sleap-rtc",
                "aud": "sleap-rtc",
            }
        ).encode()
    ).rstrip(b"=")
    _refused(
        w,
        "Invalid token",
        jwt=f"{header}.{payload.decode()}.{sig}",
        room_id=w.room.room_id,
    )


def test_membership_removed_or_user_deleted(w: World) -> None:
    w.store.add_member(w.room.room_id, w.bob.user_id)
    token = w.jwt(w.bob)
    assert w.register(jwt=token, room_id=w.room.room_id)
    w.store.remove_member(w.room.room_id, w.bob.user_id)
    _refused(w, "No access", jwt=token, room_id=w.room.room_id)
    w.store.delete_user(w.bob.user_id)
    _refused(w, "Unknown user", jwt=token, room_id=w.room.room_id)


async def test_authenticate_async(w: World) -> None:
    ident = await w.auth.authenticate_async(
        Register(peer_id="p", room_id=w.room.room_id, token=w.room.token)
    )
    assert ident.room_id == w.room.room_id


# --- with the router: the identity fits, and revocation disconnects


def _join(router: Router, auth: Authenticator, **fields: object) -> FakeConn:
    conn = FakeConn()
    conn.session = router.open(conn.send, conn.close, "test")
    request = router.receive(
        conn.session, json.dumps({"type": "register", "role": "worker", **fields})
    )
    assert request is not None
    try:
        result: IdentityLike | AuthError = auth.authenticate(request.message)
    except AuthError as exc:
        result = exc
    router.complete_register(request, result)
    return conn


def test_router_registers_our_identities_and_revocation_disconnects(w: World) -> None:
    router = Router()
    watcher = RevocationWatcher(w.store)
    token, secret = w.store.create_worker_token(w.room.room_id, "gpu1")
    worker = _join(router, w.auth, peer_id="w1", api_key=secret)
    reply = worker.last()
    assert reply["type"] == "registered_auth", reply
    assert reply["room_id"] == w.room.room_id
    client = _join(
        router, w.auth, peer_id="c1", jwt=w.jwt(w.alice), room_id=w.room.room_id
    )
    reply = client.last()
    assert reply["type"] == "registered_auth", reply
    # The worker's public metadata carries no key, not even its public id.
    seen = json.dumps(reply["peer_metadata"])
    assert secret not in seen
    assert token.token_id not in seen
    refused = _join(router, w.auth, peer_id="x", api_key="slp_wrong")
    assert refused.last()["type"] == "error"
    assert refused.last()["code"] == "AUTH_FAILED"
    # The admin CLI (another connection to the same file) revokes the key.
    admin = Store(w.store.path)
    admin.revoke_worker_token(token.token_id)
    admin.remove_member(w.room.room_id, w.alice.user_id)
    admin.close()
    for revoked in watcher(0.0):
        router.disconnect_credential(revoked, "credential revoked")
    assert worker.closes
    assert worker.closes[0][0] == CLOSE_REVOKED
    assert client.closes
    assert client.closes[0][0] == CLOSE_REVOKED
