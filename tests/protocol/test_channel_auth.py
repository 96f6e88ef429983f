"""P2P authentication: AUTH_* messages and the PSK / Ed25519 helpers, with real
keys, wrong keys, tampered challenges and replayed answers."""

from __future__ import annotations

import secrets

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from sleap_rtc_core.errors import LocalProtocolError, RemoteProtocolError
from sleap_rtc_core.protocol import channel_auth as a
from sleap_rtc_core.protocol.channel import decode_text, encode_text

SECRET = a.b64url_encode(b"room secret bytes, 32 of them!!!")
OTHER_SECRET = a.b64url_encode(b"another secret")


@pytest.fixture
def nonce() -> str:
    """A fresh challenge, as the worker makes one per channel."""
    return a.make_nonce(secrets.token_bytes(a.NONCE_BYTES))


@pytest.fixture
def key() -> Ed25519PrivateKey:
    """A client's Ed25519 key."""
    return Ed25519PrivateKey.generate()


def _flip(text: str, i: int = 0) -> str:
    """``text`` with one base64url character changed."""
    c = "B" if text[i] == "A" else "A"
    return text[:i] + c + text[i + 1 :]


# ------------------------------------------------------------------ base64url


def test_nonce_shape(nonce: str) -> None:
    assert len(nonce) == 43
    assert len(a.b64url_decode(nonce)) == 32
    assert "=" not in nonce


@pytest.mark.parametrize("n", [1, 2, 3, 31, 32, 33, 64])
def test_b64url_round_trip(n: int) -> None:
    data = bytes(range(n))
    assert a.b64url_decode(a.b64url_encode(data)) == data


@pytest.mark.parametrize("text", ["", "a", "ab=", "a+b/", "abc!", "AB", "AAB", 5])
def test_b64url_decode_is_strict(text: object) -> None:
    # "AB" and "AAB" set unused bits: a second spelling of other bytes.
    with pytest.raises(ValueError, match="base64url"):
        a.b64url_decode(text)  # type: ignore[arg-type]


def test_make_nonce_needs_enough_randomness() -> None:
    with pytest.raises(LocalProtocolError):
        a.make_nonce(b"short")
    assert a.make_nonce(bytes(16))


# ------------------------------------------------------------------ PSK


def test_psk_answer_verifies(nonce: str) -> None:
    value = a.answer_challenge(nonce, secret_b64url=SECRET)
    assert value == a.psk_response(SECRET, nonce)
    assert a.verify_psk(SECRET, nonce, value)
    assert a.check_auth_response(nonce, value, secret_b64url=SECRET) is None


def test_psk_matches_the_reference_construction(nonce: str) -> None:
    import hashlib
    import hmac

    expected = hmac.new(
        a.b64url_decode(SECRET), a.b64url_decode(nonce), hashlib.sha256
    ).digest()
    assert a.b64url_decode(a.psk_response(SECRET, nonce)) == expected


def test_psk_wrong_secret_fails(nonce: str) -> None:
    value = a.psk_response(OTHER_SECRET, nonce)
    assert not a.verify_psk(SECRET, nonce, value)
    assert (
        a.check_auth_response(nonce, value, secret_b64url=SECRET)
        is a.AuthFailureReason.INVALID
    )


def test_psk_tampered_challenge_or_answer_fails(nonce: str) -> None:
    value = a.psk_response(SECRET, nonce)
    assert not a.verify_psk(SECRET, _flip(nonce), value)
    assert not a.verify_psk(SECRET, nonce, _flip(value, 5))
    assert not a.verify_psk(SECRET, nonce, value[:-1])
    assert not a.verify_psk(SECRET, nonce, value + "A")
    assert not a.verify_psk(SECRET, nonce, "")
    assert not a.verify_psk(SECRET, nonce, "\udcff")
    assert not a.verify_psk(SECRET, nonce, None)  # type: ignore[arg-type]


def test_psk_replayed_answer_fails_on_a_fresh_challenge(nonce: str) -> None:
    recorded = a.psk_response(SECRET, nonce)
    fresh = a.make_nonce(secrets.token_bytes(32))
    assert fresh != nonce
    assert (
        a.check_auth_response(fresh, recorded, secret_b64url=SECRET)
        is a.AuthFailureReason.INVALID
    )


def test_any_passphrase_is_a_room_secret(nonce: str) -> None:
    """``s3cret`` (not canonical base64url) and ``correct horse`` (not base64url
    at all) work; a base64url secret keeps 0.0.7's key, decoded as it does."""
    import base64
    import hashlib

    for phrase in ("s3cret", "correct horse battery", "Ünïcode ✓", "abcde"):
        value = a.psk_response(phrase, nonce)
        assert a.verify_psk(phrase, nonce, value)
        assert not a.verify_psk(phrase + "x", nonce, value)
    assert a.room_key(SECRET) == a.b64url_decode(SECRET)
    assert a.room_key("s3cret") == base64.urlsafe_b64decode("s3cret==")
    assert a.room_key("abcde") == hashlib.sha256(b"abcde").digest()  # 5 mod 4 == 1
    assert a.room_key("with space") == hashlib.sha256(b"with space").digest()


def test_psk_bad_material(nonce: str) -> None:
    with pytest.raises(LocalProtocolError):
        a.psk_response("", nonce)
    with pytest.raises(LocalProtocolError):
        a.psk_response("   ", nonce)
    with pytest.raises(RemoteProtocolError):  # the worker's nonce is bad
        a.psk_response(SECRET, "bad nonce")
    with pytest.raises(LocalProtocolError):  # our own nonce is bad
        a.verify_psk(SECRET, "bad nonce", "x")
    with pytest.raises(LocalProtocolError):
        a.check_auth_response("bad nonce", "x", secret_b64url=SECRET)


# ------------------------------------------------------------------ Ed25519


def test_signature_verifies(nonce: str, key: Ed25519PrivateKey) -> None:
    value = a.answer_challenge(nonce, private_key=key, secret_b64url=SECRET)
    assert value == a.ed25519_sign(key, nonce)  # a key wins over the secret
    public = a.ed25519_public_key_b64url(key)
    assert a.ed25519_verify(public, nonce, value)
    assert a.ed25519_verify(key.public_key(), nonce, value)
    assert a.check_auth_response(nonce, value, public_keys=[public]) is None


def test_signature_by_an_unlisted_key_fails(nonce: str, key: Ed25519PrivateKey) -> None:
    value = a.ed25519_sign(Ed25519PrivateKey.generate(), nonce)
    keys = [a.ed25519_public_key_b64url(key)]
    assert not a.ed25519_verify(keys, nonce, value)
    assert (
        a.check_auth_response(nonce, value, public_keys=keys)
        is a.AuthFailureReason.INVALID
    )


def test_signature_tampered_or_replayed_fails(
    nonce: str, key: Ed25519PrivateKey
) -> None:
    public = key.public_key()
    value = a.ed25519_sign(key, nonce)
    assert not a.ed25519_verify(public, _flip(nonce, 10), value)
    assert not a.ed25519_verify(public, nonce, _flip(value, 10))
    assert not a.ed25519_verify(public, nonce, value[:-2])
    fresh = a.make_nonce(secrets.token_bytes(32))
    assert not a.ed25519_verify(public, fresh, value)


def test_a_second_spelling_of_a_signature_is_refused(
    nonce: str, key: Ed25519PrivateKey
) -> None:
    value = a.ed25519_sign(key, nonce)  # 64 bytes: 86 chars, 4 unused bits
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = value[:-1] + last[last.index(value[-1]) + 1]
    assert not a.ed25519_verify(key.public_key(), nonce, twin)


def test_one_bad_authorized_key_does_not_lock_out_the_rest(
    nonce: str, key: Ed25519PrivateKey
) -> None:
    value = a.ed25519_sign(key, nonce)
    keys = ["garbage", "", a.b64url_encode(b"short"), 42, key.public_key()]
    assert a.ed25519_verify(keys, nonce, value)  # type: ignore[arg-type]
    assert not a.ed25519_verify([], nonce, value)
    assert not a.ed25519_verify(keys, nonce, "not base64!")  # type: ignore[arg-type]
    assert not a.ed25519_verify(keys, None, value)  # type: ignore[arg-type]


def test_hmac_is_not_a_signature_and_back(nonce: str, key: Ed25519PrivateKey) -> None:
    sig = a.ed25519_sign(key, nonce)
    mac = a.psk_response(SECRET, nonce)
    public = [a.ed25519_public_key_b64url(key)]
    assert not a.ed25519_verify(public, nonce, mac)
    assert not a.verify_psk(SECRET, nonce, sig)
    # A worker with both accepts either.
    for value in (sig, mac):
        assert (
            a.check_auth_response(
                nonce, value, secret_b64url=SECRET, public_keys=public
            )
            is None
        )


def test_we_only_sign_nonces(key: Ed25519PrivateKey) -> None:
    with pytest.raises(RemoteProtocolError):
        a.ed25519_sign(key, "transfer 100 coins")


def test_key_loading(key: Ed25519PrivateKey) -> None:
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    loaded = a.load_ed25519_private_key(a.b64url_encode(raw))
    assert a.ed25519_public_key_b64url(loaded) == a.ed25519_public_key_b64url(key)
    public = a.load_ed25519_public_key(a.ed25519_public_key_b64url(key))
    assert a.ed25519_public_key_b64url(public) == a.ed25519_public_key_b64url(key)
    for bad in ("", "abc!", a.b64url_encode(b"x" * 31)):
        with pytest.raises(LocalProtocolError):
            a.load_ed25519_private_key(bad)
        with pytest.raises(LocalProtocolError):
            a.load_ed25519_public_key(bad)


# ------------------------------------------------------------------ verdicts


def test_missing_and_no_credentials(nonce: str) -> None:
    assert a.answer_challenge(nonce) == a.AUTH_MISSING
    assert (
        a.check_auth_response(nonce, a.AUTH_MISSING, secret_b64url=SECRET)
        is a.AuthFailureReason.MISSING
    )
    # A worker with neither secret nor keys authenticates nobody.
    value = a.psk_response(SECRET, nonce)
    assert a.check_auth_response(nonce, value) is a.AuthFailureReason.INVALID


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=100))
def test_random_answers_never_verify_and_never_crash(value: str) -> None:
    nonce = a.make_nonce(bytes(32))
    key = Ed25519PrivateKey.from_private_bytes(bytes(32))
    verdict = a.check_auth_response(
        nonce, value, secret_b64url=SECRET, public_keys=[key.public_key()]
    )
    assert verdict in (a.AuthFailureReason.INVALID, a.AuthFailureReason.MISSING)


# ------------------------------------------------------------------ messages


def test_handshake_over_the_codec(nonce: str, key: Ed25519PrivateKey) -> None:
    challenge = decode_text(encode_text(a.AuthChallengeMsg(nonce)))
    assert isinstance(challenge, a.AuthChallengeMsg)
    answer = a.AuthResponseMsg(a.answer_challenge(challenge.nonce, private_key=key))
    received = decode_text(encode_text(answer))
    assert isinstance(received, a.AuthResponseMsg)
    assert not received.is_missing
    verdict = a.check_auth_response(
        nonce, received.value, public_keys=[a.ed25519_public_key_b64url(key)]
    )
    assert verdict is None
    assert encode_text(a.AuthSuccessMsg()) == "AUTH_SUCCESS"
    assert a.AuthResponseMsg(a.AUTH_MISSING).is_missing


@pytest.mark.parametrize("reason", list(a.AuthFailureReason))
def test_failure_reasons(reason: a.AuthFailureReason) -> None:
    text = f"AUTH_FAILURE::{reason.value}"
    assert encode_text(a.AuthFailureMsg(reason)) == text
    assert decode_text(text) == a.AuthFailureMsg(reason)


def test_bad_messages_are_refused_locally() -> None:
    with pytest.raises(LocalProtocolError):
        a.AuthChallengeMsg("has space")
    with pytest.raises(LocalProtocolError):
        a.AuthChallengeMsg("")
    with pytest.raises(LocalProtocolError):
        a.AuthResponseMsg("")
    with pytest.raises(LocalProtocolError):
        a.AuthFailureMsg("invalid")  # type: ignore[arg-type]


# ------------------------------------------------------------------ bound proofs

BINDING = a.ChannelBinding(
    client_id="client-1",
    worker_id="worker-1",
    client_fingerprints=("sha-256 AA:BB",),
    worker_fingerprints=("sha-256 CC:DD",),
)


def _other_bindings() -> list[a.ChannelBinding]:
    """Bindings that differ from ``BINDING`` in one field each: a relayed
    connection differs in at least one."""
    b = BINDING
    return [
        a.ChannelBinding("client-2", b.worker_id, *_fps(b)),
        a.ChannelBinding(b.client_id, "worker-2", *_fps(b)),
        a.ChannelBinding(
            b.client_id, b.worker_id, ("sha-256 EE:FF",), b.worker_fingerprints
        ),
        a.ChannelBinding(
            b.client_id, b.worker_id, b.client_fingerprints, ("sha-256 EE:FF",)
        ),
        a.ChannelBinding(b.worker_id, b.client_id, *_fps(b)[::-1]),
    ]


def _fps(b: a.ChannelBinding) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return b.client_fingerprints, b.worker_fingerprints


def test_our_nonces_are_bound_and_random_ones_are_not(nonce: str) -> None:
    assert a.is_bound_nonce(nonce)
    assert a.is_bound_nonce(a.make_nonce(bytes(16)))
    random_nonce = a.b64url_encode(secrets.token_bytes(32))
    assert not a.is_bound_nonce(random_nonce)
    assert not a.is_bound_nonce(_flip(nonce, 30))
    assert not a.is_bound_nonce("not base64!")
    assert not a.is_bound_nonce(a.b64url_encode(bytes(16)))


@pytest.mark.parametrize("with_key", [False, True], ids=["psk", "ed25519"])
def test_a_client_proof_verifies_only_for_its_connection(
    nonce: str, key: Ed25519PrivateKey, with_key: bool
) -> None:
    client_nonce = a.make_nonce(secrets.token_bytes(32))
    proof = a.client_proof(
        nonce,
        client_nonce,
        BINDING,
        private_key=key if with_key else None,
        secret_b64url=SECRET,
    )
    assert proof is not None
    assert proof.method is (a.AuthMethod.ED25519 if with_key else a.AuthMethod.PSK)
    check = {"secret_b64url": SECRET, "public_keys": [key.public_key()]}
    assert a.check_client_proof(proof, nonce, BINDING, **check) is None  # type: ignore[arg-type]
    for other in _other_bindings():
        assert a.check_client_proof(proof, nonce, other, **check) is (  # type: ignore[arg-type]
            a.AuthFailureReason.INVALID
        )
    fresh = a.make_nonce(secrets.token_bytes(32))
    assert a.check_client_proof(proof, fresh, BINDING, **check) is not None  # type: ignore[arg-type]
    wrong = a.check_client_proof(
        proof, nonce, BINDING, secret_b64url=OTHER_SECRET, public_keys=[]
    )
    assert wrong is a.AuthFailureReason.INVALID


def test_a_worker_proof_is_not_a_client_proof(nonce: str) -> None:
    """The role is in the transcript: the worker's HMAC cannot be replayed as
    the client's and back."""
    client_nonce = a.make_nonce(secrets.token_bytes(32))
    mac = a.worker_proof(SECRET, nonce, client_nonce, BINDING)
    forged = a.AuthProofMsg(a.AuthMethod.PSK, client_nonce, mac)
    assert (
        a.check_client_proof(forged, nonce, BINDING, secret_b64url=SECRET) is not None
    )
    client = a.client_proof(nonce, client_nonce, BINDING, secret_b64url=SECRET)
    assert client is not None
    assert not a.verify_worker_proof(SECRET, client.proof, nonce, client_nonce, BINDING)
    assert a.verify_worker_proof(SECRET, mac, nonce, client_nonce, BINDING)
    for other in _other_bindings():
        assert not a.verify_worker_proof(SECRET, mac, nonce, client_nonce, other)


def test_a_worker_without_the_secret_offers_no_proof(nonce: str) -> None:
    client_nonce = a.make_nonce(secrets.token_bytes(32))
    assert a.worker_proof(None, nonce, client_nonce, BINDING) == a.NO_PROOF
    for given_proof in (a.NO_PROOF, None, "", "x" * 43):
        assert not a.verify_worker_proof(
            SECRET, given_proof, nonce, client_nonce, BINDING
        )
    assert a.client_proof(nonce, client_nonce, BINDING) is None


def test_transcript_fields_cannot_be_shifted(nonce: str) -> None:
    """Length prefixes: moving text from one id to the next changes it."""
    shifted = a.ChannelBinding("client-1w", "orker-1", *_fps(BINDING))
    client_nonce = a.make_nonce(bytes(32))
    assert a.transcript("client", nonce, client_nonce, BINDING) != a.transcript(
        "client", nonce, client_nonce, shifted
    )


@given(st.text(max_size=80))
@settings(max_examples=200, deadline=None)
def test_random_proofs_never_verify_and_never_crash(value: str) -> None:
    nonce = a.make_nonce(bytes(32))
    if not value or "::" in value or value.endswith(":"):
        return
    for method in a.AuthMethod:
        msg = a.AuthProofMsg(method, nonce, value)
        verdict = a.check_client_proof(
            msg, nonce, BINDING, secret_b64url=SECRET, public_keys=["junk"]
        )
        assert verdict is a.AuthFailureReason.INVALID
