"""Signaling messages: every type round-trips; bad input is always a typed error."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sleap_rtc_core.errors import ErrorCode, RemoteProtocolError, SleapRTCError
from sleap_rtc_core.protocol import codec
from sleap_rtc_core.protocol import signaling as s
from sleap_rtc_core.protocol.json_text import peer_message_ends
from sleap_rtc_core.protocol.signaling import MessageType

SAMPLES: dict[MessageType, s.Message] = {
    MessageType.REGISTER: s.Register(
        peer_id="worker-1",
        role="worker",
        metadata={"tags": ["sleap-rtc"], "properties": {"gpu_memory_mb": 8000}},
        room_id="room",
        token="secret",
    ),
    MessageType.DISCOVER_PEERS: s.DiscoverPeers(
        from_peer_id="c", filters={"role": "worker", "tags": ["sleap-rtc"]}
    ),
    MessageType.UPDATE_METADATA: s.UpdateMetadata(
        peer_id="w", metadata={"properties": {"status": "busy"}}
    ),
    MessageType.PEER_MESSAGE: s.PeerMessage(
        from_peer_id="a", to_peer_id="b", payload={"app_message_type": "job_request"}
    ),
    MessageType.OFFER: s.Offer(
        sender="c", target="w", sdp="v=0\r\n", extra={"role": "client"}
    ),
    MessageType.ANSWER: s.Answer(sender="w", target="c", sdp="v=0\r\n"),
    MessageType.CANDIDATE: s.Candidate(
        sender="c",
        target="w",
        candidate={"candidate": "candidate:1", "sdpMid": "0", "sdpMLineIndex": 0},
    ),
    MessageType.MESH_CONNECT: s.MeshConnect(
        from_peer_id="w1", target_peer_id="w2", offer={"sdp": "x", "type": "offer"}
    ),
    MessageType.MESH_ANSWER: s.MeshAnswer(
        from_peer_id="w2", target_peer_id="w1", answer={"sdp": "y", "type": "answer"}
    ),
    MessageType.ICE_CANDIDATE: s.IceCandidate(
        from_peer_id="w1", target_peer_id="w2", candidate={"candidate": "c"}
    ),
    MessageType.PONG: s.Pong(),
    MessageType.SUBSCRIBE: s.Subscribe(roles=["worker"], request_id="r1"),
    MessageType.SUBSCRIBED: s.Subscribed(
        roles=["worker"], peer_list=["w"], peer_metadata={"w": {}}, request_id="r1"
    ),
    MessageType.REGISTERED_AUTH: s.RegisteredAuth(
        room_id="room",
        peer_id="w",
        peer_list=["c"],
        peer_metadata={"c": {"tags": []}},
        ice_servers=[{"urls": "stun:127.0.0.1:3478"}],
    ),
    MessageType.ADMIN_CONFLICT: s.AdminConflict(room_id="room", current_admin="w0"),
    MessageType.PEER_LIST: s.PeerList(
        to_peer_id="c",
        peers=[{"peer_id": "w", "role": "worker", "metadata": {}, "connected_at": 1.5}],
        count=1,
    ),
    MessageType.METADATA_UPDATED: s.MetadataUpdated(
        peer_id="w", metadata={"tags": ["a"], "properties": {}}
    ),
    MessageType.MESH_OFFER: s.MeshOffer(from_peer_id="w1", offer={"sdp": "x"}),
    MessageType.ERROR: s.ErrorMessage(
        code="PEER_NOT_FOUND", message="no such peer", extra={"target_peer_id": "x"}
    ),
    MessageType.PING: s.Ping(),
    MessageType.PEER_JOINED: s.PeerJoined(peer_id="w", role="worker"),
    MessageType.PEER_LEFT: s.PeerLeft(peer_id="w"),
    MessageType.PEER_UPDATED: s.PeerUpdated(peer_id="w", metadata={"tags": []}),
    MessageType.WORKER_JOINED: s.WorkerJoined(peer_id="w2"),
    MessageType.QUIT: s.Quit(),
    MessageType.KEY_EXCHANGE: s.KeyExchange(session_id="s", public_key="pk"),
    MessageType.ENCRYPTED_RELAY: s.EncryptedRelay(
        session_id="s", nonce="bm9uY2U=", ciphertext="Y2lwaGVy"
    ),
    MessageType.FS_LIST_REQ: s.FsListReq(path="/data", req_id="r1", offset=20),
    MessageType.USE_WORKER_PATH: s.UseWorkerPath(path="/data/a.slp"),
    MessageType.FS_CHECK_VIDEOS: s.FsCheckVideos(extra={"slp_path": "/d/a.slp"}),
    MessageType.JOB_ASSIGNED: s.JobAssigned(
        job_id="j", config={"type": "train"}, submitted_by="u"
    ),
    MessageType.JOB_CANCEL: s.JobCancelRelay(job_id="j", mode="stop"),
    MessageType.KEY_EXCHANGE_RESPONSE: s.KeyExchangeResponse(
        session_id="s", public_key="pk2"
    ),
    MessageType.FS_LIST_RES: s.FsListRes(
        req_id="r1", path="/data", entries=[], total_count=0, has_more=False
    ),
    MessageType.WORKER_PATH_OK: s.WorkerPathOk(path="/data/a.slp"),
    MessageType.WORKER_PATH_ERROR: s.WorkerPathError(error="not found"),
    MessageType.FS_CHECK_VIDEOS_RESPONSE: s.FsCheckVideosResponse(
        extra={"slp_path": "/d/a.slp", "total_videos": 1, "missing": []}
    ),
    MessageType.JOB_STATUS: s.JobStatusRelay(job_id="j", status="running"),
    MessageType.JOB_PROGRESS: s.JobProgressRelay(
        job_id="j", event="epoch_end", extra={"epoch": 1}
    ),
}


@pytest.mark.parametrize("kind", list(MessageType))
def test_every_type_round_trips(kind: MessageType) -> None:
    message = SAMPLES[kind]
    text = codec.encode(message)
    assert json.loads(text)["type"] == kind.value
    assert codec.decode(text) == message
    assert codec.decode(text.encode()) == message


def test_classes_cover_every_type() -> None:
    assert set(codec.MESSAGE_CLASSES) == {k.value for k in MessageType}


def test_relay_messages_keep_extra_fields_verbatim() -> None:
    raw = {"type": "offer", "sender": "c", "target": "w", "sdp": "s", "role": "client"}
    message = codec.decode(json.dumps(raw))
    assert isinstance(message, s.Offer)
    assert message.extra == {"role": "client"}
    assert json.loads(codec.encode(message)) == raw


def test_registered_auth_sends_nulls_the_reference_sends() -> None:
    out = json.loads(codec.encode(s.RegisteredAuth(room_id="r", peer_id="p")))
    assert out["token"] is None
    assert out["admin_peer_id"] is None


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", ErrorCode.INVALID_JSON),
        ("{", ErrorCode.INVALID_JSON),
        (b"\xff\xfe", ErrorCode.INVALID_JSON),
        ("[1, 2]", ErrorCode.INVALID_MESSAGE),
        ('"register"', ErrorCode.INVALID_MESSAGE),
        ("{}", ErrorCode.INVALID_MESSAGE),
        ('{"type": 3}', ErrorCode.INVALID_MESSAGE),
        ('{"type": "bogus"}', ErrorCode.UNKNOWN_MESSAGE_TYPE),
        ('{"type": "register", "role": 1}', ErrorCode.INVALID_MESSAGE),
        ('{"type": "register", "metadata": []}', ErrorCode.INVALID_MESSAGE),
        ('{"type": "register", "is_admin": "yes"}', ErrorCode.INVALID_MESSAGE),
        ('{"type": "register", "surprise": 1}', ErrorCode.INVALID_MESSAGE),
        ('{"type": "peer_message", "from_peer_id": "a"}', ErrorCode.INVALID_MESSAGE),
        (
            '{"type":"peer_message","from_peer_id":"a","to_peer_id":"b","payload":{}}',
            ErrorCode.INVALID_MESSAGE,
        ),
        ('{"type": "update_metadata", "metadata": {}}', ErrorCode.INVALID_MESSAGE),
        ('{"type": "offer", "sdp": "x"}', ErrorCode.INVALID_MESSAGE),
        (
            '{"type": "peer_list", "to_peer_id": "c", "count": true}',
            ErrorCode.INVALID_MESSAGE,
        ),
        ("[" * 100_000, ErrorCode.INVALID_JSON),
    ],
)
def test_bad_frames_give_typed_errors(text: str | bytes, code: ErrorCode) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        codec.decode(text)
    assert info.value.code == code.value


def test_error_for_fills_reason_only_when_asked() -> None:
    exc = SleapRTCError("Room not found", code=ErrorCode.ROOM_NOT_FOUND)
    plain = codec.error_for(exc).to_dict()
    assert plain == {
        "type": "error",
        "code": "ROOM_NOT_FOUND",
        "message": "Room not found",
    }
    assert codec.error_for(exc, reason=True).to_dict()["reason"] == "Room not found"


def _decode_or_typed_error(data: Any) -> None:
    try:
        codec.decode(data)
    except RemoteProtocolError as exc:
        assert exc.code in {c.value for c in ErrorCode}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_crash(data: bytes) -> None:
    _decode_or_typed_error(data)


@settings(max_examples=100, deadline=None)
@given(json_values)
def test_random_json_never_crashes(value: Any) -> None:
    _decode_or_typed_error(json.dumps(value))


@settings(max_examples=250, deadline=None)
@given(
    st.sampled_from(list(MessageType)),
    st.sampled_from(["drop", "retype", "add", "null"]),
    st.data(),
)
def test_mutated_valid_messages_never_crash(
    kind: MessageType, mutation: str, data: st.DataObject
) -> None:
    obj = SAMPLES[kind].to_dict()
    keys = sorted(obj)
    key = data.draw(st.sampled_from(keys))
    if mutation == "drop":
        obj.pop(key)
    elif mutation == "retype":
        obj[key] = data.draw(json_values)
    elif mutation == "add":
        obj[data.draw(st.text(max_size=8))] = data.draw(json_values)
    else:
        obj[key] = None
    _decode_or_typed_error(json.dumps(obj))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(
    payload=JSON_VALUES,
    sender=st.sampled_from(["a", "", 1, None]),
    extra=st.dictionaries(
        st.sampled_from(["x", "request_id"]), st.integers(), max_size=1
    ),
    spaces=st.booleans(),
)
def test_the_relay_fast_path_accepts_only_what_the_decoder_accepts(
    payload: Any, sender: Any, extra: dict[str, int], spaces: bool
) -> None:
    obj = {"type": "peer_message", "from_peer_id": sender, "to_peer_id": "b"}
    obj |= {"payload": payload, **extra}
    text = json.dumps(obj, separators=(", ", ": ") if spaces else (",", ":"))
    fast = peer_message_ends(text)
    try:
        msg = codec.decode(text)
    except RemoteProtocolError:
        assert fast is None
        return
    if fast is not None:  # else the full path answers: never a different result
        assert isinstance(msg, s.PeerMessage)
        assert fast == (msg.from_peer_id, msg.to_peer_id)


@pytest.mark.parametrize("payload", ["{ }", "[ ]", '""', "0", "null", "false"])
def test_the_relay_fast_path_leaves_empty_payloads_to_the_decoder(
    payload: str,
) -> None:
    text = '{"type":"peer_message","from_peer_id":"a","to_peer_id":"b","payload":'
    assert peer_message_ends(text + payload + "}") is None
    assert peer_message_ends(text + '{"k":1}}') == ("a", "b")
