"""The data-channel codec: every type round-trips, log lines stay log lines, and
no text whatever makes ``decode_text`` raise anything but RemoteProtocolError."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sleap_rtc_core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from sleap_rtc_core.protocol import channel_auth as a
from sleap_rtc_core.protocol import channel_fs as f
from sleap_rtc_core.protocol import channel_legacy as lg
from sleap_rtc_core.protocol import channel_messages as m
from sleap_rtc_core.protocol import channel_transfer as t
from sleap_rtc_core.protocol.channel import (
    CHANNEL_MAX_ARGS,
    CHANNEL_MESSAGE_CLASSES,
    KEEP_ALIVE,
    ChannelMessage,
    ChannelMessageType,
    LogLine,
    chunk_frames,
    decode_text,
    encode_text,
    is_keepalive,
    looks_framed,
    split_frame,
)

T = ChannelMessageType
SHA = "ab" * 32
NONCE = a.make_nonce(bytes(range(32)))

SAMPLES: dict[ChannelMessageType, ChannelMessage] = {
    T.AUTH_CHALLENGE: a.AuthChallengeMsg(NONCE),
    T.AUTH_RESPONSE: a.AuthResponseMsg("c2lnbmF0dXJl"),
    T.AUTH_SUCCESS: a.AuthSuccessMsg(),
    T.AUTH_FAILURE: a.AuthFailureMsg(a.AuthFailureReason.TIMEOUT),
    T.AUTH_PROOF: a.AuthProofMsg(a.AuthMethod.PSK, NONCE, "bWFj"),
    T.JOB_SUBMIT: m.JobSubmitMsg("ab12cd34", {"type": "train", "run_name": "a::b"}),
    T.JOB_STOP: m.JobStopMsg(),
    T.JOB_CANCEL: m.JobCancelMsg(),
    T.JOB_ATTACH: m.JobAttachMsg("job_0123abcd"),
    T.CONTROL_COMMAND: m.ControlCommandMsg('{"command":"stop"}'),
    T.ZMQ_CTRL: m.ZmqCtrlMsg('{"command":"cancel"}'),
    T.JOB_ACCEPTED: m.JobAcceptedMsg("job_0123abcd"),
    T.JOB_REJECTED: m.JobRejectedMsg(
        errors=[{"field": "labels_path", "message": "no", "code": "PATH_NOT_FOUND"}],
        client_job_id="ab12cd34",
    ),
    T.JOB_PROGRESS: m.JobProgressMsg(epoch=3, loss=0.5, val_loss=0.25),
    T.JOB_COMPLETE: m.JobCompleteMsg(
        job_id="job_1_0",
        job_type="train",
        duration_seconds=1.5,
        stopped_early=False,
        output_path="/m/models/a::b",
    ),
    T.JOB_FAILED: m.JobFailedMsg(
        message="Job cancelled by user", job_id="j", job_type="train", exit_code=-15
    ),
    T.JOB_LOG: m.JobLogMsg("CR::Epoch 1:: 50%"),
    T.JOB_STATE: m.JobStateMsg(
        job_id="job_1",
        state="running",
        job_type="train",
        model_index=0,
        model_count=2,
        model_type="centroid",
        last_progress={"epoch": 1},
        progress=['{"event":"epoch_end"}'],
        dropped=3,
    ),
    T.PROGRESS_REPORT: m.ProgressReportMsg('{"event":"train_begin","what":""}'),
    T.MODEL_TYPE: m.ModelTypeMsg("centered_instance"),
    T.CR: m.CrMsg("  3%|▍ | 1/30"),
    T.INFERENCE_SKIPPED: m.InferenceSkippedMsg("no_labels_path"),
    T.INFERENCE_BEGIN: m.InferenceBeginMsg(),
    T.INFERENCE_PROGRESS: m.InferenceProgressMsg('{"n_processed":5}'),
    T.INFERENCE_LOG: m.InferenceLogMsg("Predicting... :: done"),
    T.INFERENCE_COMPLETE: m.InferenceCompleteMsg("/m/a.predictions.slp"),
    T.INFERENCE_FAILED: m.InferenceFailedMsg("boom"),
    T.FS_GET_INFO: f.FsGetInfoMsg(),
    T.FS_INFO_RESPONSE: f.FsInfoResponseMsg(
        worker_id="w", working_dir="/w", mounts=[{"path": "/m", "label": "data"}]
    ),
    T.FS_GET_MOUNTS: f.FsGetMountsMsg(),
    T.FS_MOUNTS_RESPONSE: f.FsMountsResponseMsg([{"path": "/m", "label": "data"}]),
    T.FS_RESOLVE: f.FsResolveMsg("*.mp4", 1024, 3, "lab::share"),
    T.FS_RESOLVE_RESPONSE: f.FsResolveResponseMsg(
        candidates=[{"path": "/m/a.mp4", "score": 1.0}], search_time_ms=2.5
    ),
    T.FS_LIST_DIR: f.FsListDirMsg("/m/odd::name", 20),
    T.FS_LIST_RESPONSE: f.FsListResponseMsg(
        path="/m", entries=[{"name": "a", "type": "file"}], total_count=1
    ),
    T.FS_SCAN_DIR: f.FsScanDirMsg("/m", ["a.mp4", "b.mp4"]),
    T.FS_SCAN_DIR_RESPONSE: f.FsScanDirResponseMsg(
        "/m", {"a.mp4": "/m/a.mp4", "b.mp4": None}
    ),
    T.FS_WRITE_SLP: f.FsWriteSlpMsg("/m/l.slp", "/m", {"/old/a.mp4": "/m/a.mp4"}),
    T.FS_WRITE_SLP_OK: f.FsWriteSlpOkMsg("/m/resolved.slp", 2),
    T.FS_WRITE_SLP_ERROR: f.FsWriteSlpErrorMsg("cannot write"),
    T.FS_RESOLVE_WITH_PREFIX: f.FsResolveWithPrefixMsg(
        "/old/a.mp4", "/m/a.mp4", ["/old/b.mp4"]
    ),
    T.FS_PREFIX_PROPOSAL: f.FsPrefixProposalMsg(
        "/old", "/m", [{"original": "/old/b.mp4", "resolved": "/m/b.mp4"}], []
    ),
    T.FS_APPLY_PREFIX: f.FsApplyPrefixMsg(),
    T.FS_PREFIX_APPLIED: f.FsPrefixAppliedMsg(),
    T.FS_CHECK_VIDEOS_RESPONSE: f.FsCheckVideosResponseMsg(
        "/m/l.slp",
        total_videos=2,
        missing=[{"filename": "b.mp4", "original_path": "/old/b.mp4"}],
        accessible=1,
    ),
    T.FS_ERROR: f.FsErrorMsg(f.FsErrorCode.ACCESS_DENIED, "outside :: mounts"),
    T.USE_WORKER_PATH: f.UseWorkerPathMsg("/m/a::b.slp"),
    T.WORKER_PATH_OK: f.WorkerPathOkMsg("/m/a.slp"),
    T.WORKER_PATH_ERROR: f.WorkerPathErrorMsg("not found: /x::y"),
    T.FILE_UPLOAD_CHECK: t.FileUploadCheckMsg(SHA, "labels::v2.slp"),
    T.FILE_UPLOAD_CACHE_HIT: t.FileUploadCacheHitMsg("/m/up/labels.slp"),
    T.FILE_UPLOAD_READY: t.FileUploadReadyMsg(),
    T.FILE_UPLOAD_START: t.FileUploadStartMsg("labels.slp", 123, "/m/in::box", True),
    T.FILE_UPLOAD_END: t.FileUploadEndMsg(),
    T.FILE_UPLOAD_PROGRESS: t.FileUploadProgressMsg(64, 123),
    T.FILE_UPLOAD_COMPLETE: t.FileUploadCompleteMsg("/m/labels.slp"),
    T.FILE_UPLOAD_ERROR: t.FileUploadErrorMsg("size mismatch: 1 != 2"),
    T.FILE_UPLOAD_BEGIN: t.FileUploadBeginMsg("labels.pkg.slp", 123, SHA),
    T.FILE_UPLOAD_OFFSET: t.FileUploadOffsetMsg(64, 4 << 20),
    T.FILE_UPLOAD_SEGMENT: t.FileUploadSegmentMsg(123, SHA),
    T.FILE_DOWNLOAD_REQUEST: t.FileDownloadRequestMsg("/m/a.slp", 10, SHA, "x1"),
    T.FILE_DOWNLOAD_META: t.FileDownloadMetaMsg(
        "a.predictions.slp", 100, SHA, 10, kind="predictions", chunk_size=32768
    ),
    T.PACKAGE_TYPE: lg.PackageTypeMsg("train"),
    T.OUTPUT_DIR: lg.OutputDirMsg("C:\\runs::x"),
    T.FILE_META: t.FileMetaMsg("a:b.zip", 99, "C:\\runs"),
    T.END_OF_FILE: t.EndOfFileMsg(),
    T.TRAIN_JOB_START: lg.TrainJobStartMsg("centroid"),
    T.TRAIN_JOB_END: lg.TrainJobEndMsg("centroid"),
    T.TRAIN_JOB_ERROR: lg.TrainJobErrorMsg("odd::name", -9),
    T.TRAINING_JOBS_DONE: lg.TrainingJobsDoneMsg(),
    T.INFERENCE_START: lg.InferenceStartMsg(),
    T.INFERENCE_JOB_START: lg.InferenceJobStartMsg("track"),
    T.INFERENCE_JOB_END: lg.InferenceJobEndMsg("track"),
    T.INFERENCE_JOB_ERROR: lg.InferenceJobErrorMsg("track", 1),
    T.INFERENCE_JOBS_DONE: lg.InferenceJobsDoneMsg(),
    T.INFERENCE_ERROR: lg.InferenceErrorMsg("no model :: here"),
    T.TRACK_LOG: lg.TrackLogMsg("frame 3: ok"),
    T.READY: lg.ReadyMsg(),
    T.TRAINING_COMPLETE: lg.TrainingCompleteMsg(),
    T.ERROR: lg.ErrorMsg("x::y"),
    T.TRANSFER_PROGRESS: t.TransferProgressMsg(42.5),
    T.CHUNK: t.ChunkMsg(3, "aGVsbG8="),
}


# ------------------------------------------------------------------ registry


def test_every_type_has_exactly_one_class_and_a_sample() -> None:
    assert set(CHANNEL_MESSAGE_CLASSES) == {x.value for x in T}
    assert set(SAMPLES) == set(T)
    for type_, sample in SAMPLES.items():
        assert type(sample) is CHANNEL_MESSAGE_CLASSES[type_]
        assert sample.TYPE is type_


def test_max_args_table() -> None:
    assert CHANNEL_MAX_ARGS[T.JOB_SUBMIT] == 2
    assert CHANNEL_MAX_ARGS[T.FS_RESOLVE] == 4
    assert CHANNEL_MAX_ARGS[T.FILE_UPLOAD_START] == 4
    assert CHANNEL_MAX_ARGS[T.JOB_COMPLETE] == 2
    assert CHANNEL_MAX_ARGS[T.FILE_META] == 1
    assert CHANNEL_MAX_ARGS[T.READY] == 0
    assert CHANNEL_MAX_ARGS["FS_LIST_DIR"] == 2  # plain str keys work too


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("type_", list(T), ids=str)
def test_every_type_round_trips(type_: ChannelMessageType) -> None:
    sample = SAMPLES[type_]
    text = encode_text(sample)
    assert text == str(type_) or text.startswith(str(type_) + ":")
    assert decode_text(text) == sample
    assert encode_text(decode_text(text)) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("READY", lg.ReadyMsg()),
        ("AUTH_SUCCESS", a.AuthSuccessMsg()),
        ("AUTH_FAILURE::missing", a.AuthFailureMsg(a.AuthFailureReason.MISSING)),
        ("JOB_ACCEPTED::job_1a2b3c4d", m.JobAcceptedMsg("job_1a2b3c4d")),
        ("MODEL_TYPE::centroid", m.ModelTypeMsg("centroid")),
        ("TRACK_LOG:Loading model", lg.TrackLogMsg("Loading model")),
        ("TRACK_LOG:", lg.TrackLogMsg("")),
        ("CR::", m.CrMsg("")),
        ("INFERENCE_COMPLETE", m.InferenceCompleteMsg()),
        ("INFERENCE_BEGIN::{}", m.InferenceBeginMsg()),
        ("FILE_UPLOAD_PROGRESS::0::10", t.FileUploadProgressMsg(0, 10)),
        ("FS_LIST_DIR::/m::40", f.FsListDirMsg("/m", 40)),
        ("TRAIN_JOB_ERROR::centroid::2", lg.TrainJobErrorMsg("centroid", 2)),
    ],
)
def test_reference_frames_decode(text: str, expected: ChannelMessage) -> None:
    assert decode_text(text) == expected


# ------------------------------------------------------------------ `::` inside


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ('JOB_SUBMIT::cid::{"a":"x::y::z"}', "spec", {"a": "x::y::z"}),
        ('PROGRESS_REPORT::{"w":"a::b"}', "raw", '{"w":"a::b"}'),
        ("CONTROL_COMMAND::a::b::c", "raw", "a::b::c"),
        ("JOB_LOG::CR::x::y", "line", "CR::x::y"),
        ("USE_WORKER_PATH::/m/a::b::c.slp", "path", "/m/a::b::c.slp"),
        ("WORKER_PATH_ERROR::no :: such", "message", "no :: such"),
        ("FILE_UPLOAD_ERROR::a::b", "reason", "a::b"),
        ("FS_ERROR::PATH_NOT_FOUND::x::y", "message", "x::y"),
        ("FILE_UPLOAD_CACHE_HIT::/m/::/x", "path", "/m/::/x"),
        ("FS_RESOLVE::p::1::2::a::b", "mount_label", "a::b"),
        ("FILE_UPLOAD_START::f::1::/d::e::0", "dest_dir", "/d::e"),
        ("TRAIN_JOB_ERROR::a::b::3", "name", "a::b"),
        ("ERROR::a::b", "text", "a::b"),
        ('JOB_REJECTED::cid::{"errors":[],"x":"::"}', "extra", {"x": "::"}),
    ],
)
def test_separator_inside_the_greedy_argument(
    text: str, field: str, value: object
) -> None:
    msg = decode_text(text)
    assert getattr(msg, field) == value
    assert decode_text(encode_text(msg)) == msg


# ------------------------------------------------------------------ log lines


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Epoch 1/2\n",
        "READY\n",
        "READY ",
        "WARNING: disk almost full",
        "[stderr] Traceback (most recent call last):",
        "Training model 1/2: centroid\n",
        "[log-stream error] pipe closed",
        "ready",
        "Ready::x",
        "_X::y",
        "1ABC::x",
        " READY",
    ],
)
def test_unframed_text_is_a_log_line(text: str) -> None:
    assert not looks_framed(text)
    assert split_frame(text) is None
    msg = decode_text(text)
    assert msg == LogLine(text)
    assert encode_text(msg) == text


@pytest.mark.parametrize(
    ("text", "split"),
    [
        ("READY", ("READY", None)),
        ("READY::", ("READY", "")),
        ("FOO::a::b", ("FOO", "a::b")),
        ("A1_B", ("A1_B", None)),
        ("X:::y", ("X", ":y")),
    ],
)
def test_framed_text_splits_on_the_first_separator(
    text: str, split: tuple[str, str | None]
) -> None:
    assert looks_framed(text)
    assert split_frame(text) == split


def test_track_log_is_framed_with_one_colon() -> None:
    assert looks_framed("TRACK_LOG:x")
    assert decode_text("TRACK_LOG::x") == lg.TrackLogMsg(":x")
    assert encode_text(lg.TrackLogMsg(":x")) == "TRACK_LOG::x"


@pytest.mark.parametrize("text", ["READY", "FOO::x", "TRACK_LOG:x", "A"])
def test_a_log_line_that_would_read_as_a_frame_is_refused(text: str) -> None:
    with pytest.raises(LocalProtocolError):
        LogLine(text)


def test_log_line_text_must_be_str() -> None:
    with pytest.raises(LocalProtocolError):
        LogLine(5)  # type: ignore[arg-type]


# ------------------------------------------------------------------ errors


def _remote(text: object) -> RemoteProtocolError:
    with pytest.raises(RemoteProtocolError) as info:
        decode_text(text)  # type: ignore[arg-type]
    return info.value


@pytest.mark.parametrize("text", ["FOO", "FOO::bar", "JOB_SUBMITX::a::{}", "AUTH"])
def test_unknown_type(text: str) -> None:
    err = _remote(text)
    assert err.code == ErrorCode.UNKNOWN_MESSAGE_TYPE


def test_unknown_type_error_is_short_for_a_huge_type() -> None:
    err = _remote("X" * 100_000)
    assert err.code == ErrorCode.UNKNOWN_MESSAGE_TYPE
    assert len(err.message) < 200


@pytest.mark.parametrize(
    "text",
    [
        "READY::",  # bare type with an argument
        "AUTH_PROOF::psk::n",
        "JOB_STOP::job_1",
        "JOB_SUBMIT",
        "JOB_SUBMIT::cid",  # spec missing
        "FILE_UPLOAD_PROGRESS::1",
        "FILE_UPLOAD_PROGRESS::1::2::3",
        "FILE_UPLOAD_START::f::1::/d",
        "FILE_UPLOAD_CHECK",
        "TRAIN_JOB_ERROR::name",
        "MODEL_TYPE",
        "JOB_COMPLETE",
        "FS_SCAN_DIR",
        "FS_LIST_DIR",
        "FS_RESOLVE",
        "TRACK_LOG",
    ],
)
def test_wrong_argument_count(text: str) -> None:
    assert _remote(text).code == ErrorCode.INVALID_MESSAGE


@pytest.mark.parametrize(
    "text",
    [
        "JOB_SUBMIT::cid::{",
        "JOB_SUBMIT::cid::not json",
        "FS_SCAN_DIR::{'directory': 1}",
        "JOB_PROGRESS::{epoch:1}",
        "JOB_COMPLETE::id::{",
        "FS_MOUNTS_RESPONSE::[",
        "INFERENCE_FAILED::",
        "JOB_SUBMIT::cid::" + "[" * 100_000,
        'JOB_PROGRESS::{"loss":1e999}',
    ],
)
def test_bad_json(text: str) -> None:
    assert _remote(text).code == ErrorCode.INVALID_JSON


@pytest.mark.parametrize(
    "text",
    [
        "JOB_SUBMIT::cid::[1,2]",  # spec must be an object
        'JOB_SUBMIT::cid::"x"',
        "FS_SCAN_DIR::[]",
        'FS_SCAN_DIR::{"directory":1}',
        'FS_SCAN_DIR::{"filenames":[]}',  # directory missing
        'FS_SCAN_DIR::{"directory":"/m","filenames":[1]}',
        'FS_SCAN_DIR_RESPONSE::{"directory":"/m","found":{"a":1}}',
        'FS_WRITE_SLP::{"slp_path":"a","output_dir":"b","filename_map":{"a":null}}',
        "FS_MOUNTS_RESPONSE::{}",
        "FS_MOUNTS_RESPONSE::[1]",
        'JOB_PROGRESS::{"epoch":"1"}',
        'JOB_PROGRESS::{"epoch":true}',
        'JOB_PROGRESS::{"epoch":1.5}',
        'JOB_COMPLETE::{"success":true}',  # job_id missing
        'JOB_REJECTED::cid::{"errors":{}}',
        'JOB_REJECTED::cid::{"errors":[1]}',
        'JOB_STATE::{"job_id":"j","state":"sleeping"}',
        'JOB_STATE::{"job_id":"","state":"running"}',
        'FILE_DOWNLOAD_META::{"name":"../x","size":1,"sha256":"' + SHA + '"}',
        'FILE_DOWNLOAD_REQUEST::{"path":"/m","sha256":"zz"}',
        "INFERENCE_COMPLETE::[]",
        'INFERENCE_SKIPPED::{"reason":null}',
        "JOB_COMPLETE::noseparator",
    ],
)
def test_wrong_json_shape(text: str) -> None:
    assert _remote(text).code == ErrorCode.INVALID_MESSAGE


@pytest.mark.parametrize(
    "text",
    [
        "FILE_UPLOAD_PROGRESS::x::10",
        "FILE_UPLOAD_PROGRESS::1.0::10",
        "FILE_UPLOAD_PROGRESS:: 1::10",
        "FILE_UPLOAD_PROGRESS::1_0::10",
        "FILE_UPLOAD_PROGRESS::١::10",  # Arabic-Indic digit: int() would take it
        "FILE_UPLOAD_PROGRESS::::10",
        "FILE_UPLOAD_START::f::ten::/d::1",
        "FILE_UPLOAD_START::f::1::/d::yes",
        "TRAIN_JOB_ERROR::n::one",
        "TRAIN_JOB_ERROR::n::",
        "FS_RESOLVE::p::big",
        "CHUNK::-1::x",
        "TRANSFER_PROGRESS::nan",
        "TRANSFER_PROGRESS::inf",
        "TRANSFER_PROGRESS::1e99999",
        "TRANSFER_PROGRESS::0x10",
        "FILE_META::a.zip:ten:x",
        "FILE_META::a.zip",
    ],
)
def test_not_an_integer_or_number(text: str) -> None:
    assert _remote(text).code == ErrorCode.INVALID_MESSAGE


@pytest.mark.parametrize(
    "text",
    [
        "FILE_UPLOAD_PROGRESS::-1::10",
        "FILE_UPLOAD_PROGRESS::" + "9" * 21 + "::10",
        'JOB_PROGRESS::{"epoch":-1}',
        'JOB_STATE::{"job_id":"j","state":"running","dropped":-1}',
        'JOB_STATE::{"job_id":"j","state":"running","model_index":2,"model_count":2}',
        'FS_LIST_RESPONSE::{"path":"/m","total_count":-5}',
        'FILE_DOWNLOAD_REQUEST::{"path":"/m","offset":-1}',
        'FILE_DOWNLOAD_META::{"name":"a","size":5,"sha256":"' + SHA + '","offset":6}',
        'FILE_DOWNLOAD_META::{"name":"a","size":-1,"sha256":"' + SHA + '"}',
        'FILE_DOWNLOAD_META::{"name":"a","size":5,"sha256":"'
        + SHA
        + '","chunk_size":0}',
        "AUTH_FAILURE::nope",
        "FS_ERROR::NOPE::x",
        "AUTH_CHALLENGE::not base64!",
        "FILE_UPLOAD_CHECK::abc::f",
    ],
)
def test_out_of_range(text: str) -> None:
    assert _remote(text).code == ErrorCode.INVALID_MESSAGE


def test_a_last_field_that_is_no_offset_belongs_to_the_path() -> None:
    # Paths may contain '::', so "/m::-1" is a folder name at offset 0.
    assert decode_text("FS_LIST_DIR::/m::-1") == f.FsListDirMsg("/m::-1", 0)


def test_decode_needs_str() -> None:
    assert _remote(b"READY").code == ErrorCode.INVALID_MESSAGE
    assert _remote(None).code == ErrorCode.INVALID_MESSAGE


def test_decoded_errors_never_carry_megabytes() -> None:
    big = "x" * 1_000_000
    for text in (f"FILE_UPLOAD_PROGRESS::{big}::1", f"AUTH_CHALLENGE::{big}!"):
        assert len(_remote(text).message) < 300


# ------------------------------------------------------------------ encoding


def test_encode_refuses_what_is_not_a_channel_message() -> None:
    with pytest.raises(LocalProtocolError):
        encode_text("READY")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        encode_text(ChannelMessage())


def test_encode_refuses_unencodable_json() -> None:
    msg = m.JobSubmitMsg("cid", {"x": object()})
    with pytest.raises(LocalProtocolError):
        encode_text(msg)


# ------------------------------------------------------------------ binary frames


def test_keepalive_and_chunks() -> None:
    assert len(KEEP_ALIVE) == 10
    assert is_keepalive(KEEP_ALIVE)
    assert is_keepalive(bytearray(KEEP_ALIVE))
    assert is_keepalive(memoryview(KEEP_ALIVE))
    assert not is_keepalive(b"KEEP_ALIVE!")
    assert not is_keepalive(b"keep_alive")
    assert chunk_frames(b"") == ()
    assert chunk_frames(b"abc") == (b"abc",)
    frames = chunk_frames(KEEP_ALIVE)
    assert len(frames) == 2
    assert b"".join(frames) == KEEP_ALIVE
    assert not any(is_keepalive(x) for x in frames)


# ------------------------------------------------------------------ properties

_type_names = st.sampled_from([x.value for x in T] + ["FOO", "TRACK_LOG:"])
_pieces = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        ["::", ":", "{}", "[]", "null", "0", "-1", "1.5", "None", "1e999", '{"a":']
    ),
    st.builds(json.dumps, st.dictionaries(st.text(max_size=5), st.integers())),
    st.just(SHA),
)


@st.composite
def _framed_texts(draw: st.DrawFn) -> str:
    head = draw(_type_names)
    parts = draw(st.lists(_pieces, max_size=6))
    sep = "" if head.endswith(":") else "::"
    return head + (sep + "::".join(parts) if parts else "")


def _decode_is_typed(text: str) -> None:
    try:
        msg = decode_text(text)
    except RemoteProtocolError as exc:
        assert exc.code in {
            ErrorCode.INVALID_JSON,
            ErrorCode.INVALID_MESSAGE,
            ErrorCode.UNKNOWN_MESSAGE_TYPE,
        }
        return
    # Whatever decodes can be sent back, and reads back the same.
    assert decode_text(encode_text(msg)) == msg


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200))
def test_random_text_never_crashes(text: str) -> None:
    _decode_is_typed(text)


@settings(max_examples=300, deadline=None)
@given(_framed_texts())
def test_framed_garbage_never_crashes(text: str) -> None:
    _decode_is_typed(text)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(sorted(SAMPLES, key=str)),
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=0, max_value=4),
    st.text(max_size=6),
    st.sampled_from(["insert", "delete", "replace", "truncate", "double"]),
)
def test_mutated_valid_frames_never_crash(
    type_: ChannelMessageType, pos: int, n: int, junk: str, how: str
) -> None:
    text = encode_text(SAMPLES[type_])
    i = pos % (len(text) + 1)
    if how == "insert":
        text = text[:i] + junk + text[i:]
    elif how == "delete":
        text = text[:i] + text[i + n :]
    elif how == "replace":
        text = text[:i] + junk + text[i + len(junk) :]
    elif how == "truncate":
        text = text[:i]
    else:
        text = text[:i] + text[i - n : i] + text[i:]
    _decode_is_typed(text)
