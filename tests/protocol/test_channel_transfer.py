"""File-transfer messages: FILE_META's single-colon fields, upload framing with
``::`` in folders, and the checked download announcement."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sleap_rtc_core.errors import LocalProtocolError, RemoteProtocolError
from sleap_rtc_core.protocol import channel_transfer as t
from sleap_rtc_core.protocol.channel import ChannelMessage, decode_text, encode_text

SHA = "0f" * 32
colon_text = st.text(alphabet=st.sampled_from("ab:9/\\ \n{}"), max_size=12)


def _round_trips_or_is_refused(build: object, *args: object) -> None:
    try:
        msg = build(*args)  # type: ignore[operator]
    except LocalProtocolError:
        assume(False)
        return
    assert isinstance(msg, ChannelMessage)
    assert decode_text(encode_text(msg)) == msg


# ------------------------------------------------------------------ FILE_META


@pytest.mark.parametrize(
    ("text", "name", "size", "hint"),
    [
        ("FILE_META::a.zip:10:true", "a.zip", 10, "true"),
        ("FILE_META::a.zip:10", "a.zip", 10, None),
        ("FILE_META::a.zip:10:", "a.zip", 10, ""),
        ("FILE_META::12:34:00:5:C:\\runs", "12:34:00", 5, "C:\\runs"),
        ("FILE_META::a:1:b:2:x", "a:1:b", 2, "x"),
        ("FILE_META::x::y:0:false", "x::y", 0, "false"),
    ],
)
def test_file_meta_colons(text: str, name: str, size: int, hint: str | None) -> None:
    msg = decode_text(text)
    assert msg == t.FileMetaMsg(name, size, hint)
    assert encode_text(msg) == text


def test_file_meta_refuses_what_would_read_back_differently() -> None:
    with pytest.raises(LocalProtocolError):
        t.FileMetaMsg("a", 1, "x:12:y")  # a hint field of digits
    with pytest.raises(LocalProtocolError):
        t.FileMetaMsg("a", -1)
    with pytest.raises(LocalProtocolError):
        t.FileMetaMsg("a", 10**20)  # 21 digits do not travel
    with pytest.raises(LocalProtocolError):
        t.FileMetaMsg("", 1)
    with pytest.raises(LocalProtocolError):
        t.FileMetaMsg("a", True)


@settings(max_examples=200, deadline=None)
@given(colon_text, st.integers(min_value=0, max_value=10**19), st.none() | colon_text)
def test_file_meta_round_trips(name: str, size: int, hint: str | None) -> None:
    _round_trips_or_is_refused(t.FileMetaMsg, name, size, hint)


# ------------------------------------------------------------------ uploads


def test_upload_start_folder_may_hold_separators() -> None:
    msg = t.FileUploadStartMsg("l.slp", 5, "/m/a::b:", True)
    assert encode_text(msg) == "FILE_UPLOAD_START::l.slp::5::/m/a::b:::1"
    assert decode_text(encode_text(msg)) == msg


@pytest.mark.parametrize("name", ["a::b", "a:", ""])
def test_upload_start_file_name_may_not(name: str) -> None:
    with pytest.raises(LocalProtocolError):
        t.FileUploadStartMsg(name, 5, "/m", False)


def test_upload_start_checks_kinds() -> None:
    with pytest.raises(LocalProtocolError):
        t.FileUploadStartMsg("a", -1, "/m", False)
    with pytest.raises(LocalProtocolError):
        t.FileUploadStartMsg("a", 1, "/m", 1)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(
    colon_text, st.integers(min_value=0, max_value=10**19), colon_text, st.booleans()
)
def test_upload_start_round_trips(name: str, size: int, dest: str, sub: bool) -> None:
    _round_trips_or_is_refused(t.FileUploadStartMsg, name, size, dest, sub)


@settings(max_examples=200, deadline=None)
@given(colon_text)
def test_upload_check_round_trips(name: str) -> None:
    _round_trips_or_is_refused(t.FileUploadCheckMsg, SHA, name)


def test_upload_check_needs_a_sha256() -> None:
    with pytest.raises(LocalProtocolError):
        t.FileUploadCheckMsg("abc", "f")
    assert t.FileUploadCheckMsg(SHA.upper(), "f").sha256 == SHA.upper()


# ------------------------------------------------------------------ downloads


def test_download_meta() -> None:
    meta = t.FileDownloadMetaMsg("p.slp", 100, SHA, 40, extra={"new": [1]})
    assert meta.remaining == 60
    assert decode_text(encode_text(meta)) == meta
    for bad in (
        {"name": "a/b"},
        {"name": ".."},
        {"name": "a\\b"},
        {"sha256": "x"},
        {"offset": 101},
        {"size": -1, "offset": 0},
        {"chunk_size": 0},
    ):
        kwargs = {"name": "p.slp", "size": 100, "sha256": SHA, "offset": 40} | bad
        with pytest.raises(LocalProtocolError):
            t.FileDownloadMetaMsg(**kwargs)  # type: ignore[arg-type]


def test_download_request() -> None:
    req = t.FileDownloadRequestMsg("/m/a::b.slp")
    assert decode_text(encode_text(req)) == req
    with pytest.raises(LocalProtocolError):
        t.FileDownloadRequestMsg("")
    with pytest.raises(LocalProtocolError):
        t.FileDownloadRequestMsg("/m", offset=-1)
    with pytest.raises(LocalProtocolError):
        t.FileDownloadRequestMsg("/m", extra={"path": "shadow"})


def test_progress_and_chunk() -> None:
    assert decode_text("TRANSFER_PROGRESS::1e2") == t.TransferProgressMsg(100.0)
    with pytest.raises(LocalProtocolError):
        t.TransferProgressMsg(float("inf"))
    assert decode_text("CHUNK::0::a::b") == t.ChunkMsg(0, "a::b")


# --------------------------------------------------------------- model folders


def test_model_manifest_round_trips() -> None:
    manifest = t.ModelManifest(
        job_id="job_1",
        run_dir="/w/models/240506_070809.centroid.n=20",
        name="240506_070809.centroid.n=20",
        files=(
            t.ModelManifestEntry("best.ckpt", 10, SHA),
            t.ModelManifestEntry("viz/a ü=1.png", 0, SHA),
        ),
    )
    assert t.ModelManifest.from_bytes(manifest.to_bytes()) == manifest
    assert manifest.total_bytes == 10


@pytest.mark.parametrize(
    "bad",
    [
        b"not json",
        b"\xff",
        b"[]",
        b'{"name": "r", "run_dir": "/w/r", "files": {}}',
        b'{"name": "a/b", "run_dir": "/w/r", "files": []}',
        b'{"name": "..", "run_dir": "/w/r", "files": []}',
        b'{"name": "r", "files": []}',
        b'{"name": "r", "run_dir": "/w/r", "files": [1]}',
        b'{"name": "r", "run_dir": "/w/r", "files": [{"path": "../x", "size": 1,'
        b' "sha256": "' + SHA.encode() + b'"}]}',
        b'{"name": "r", "run_dir": "/w/r", "files": [{"path": "/etc/x", "size": 1,'
        b' "sha256": "' + SHA.encode() + b'"}]}',
        b'{"name": "r", "run_dir": "/w/r", "files": [{"path": "a\\\\b", "size": 1,'
        b' "sha256": "' + SHA.encode() + b'"}]}',
        b'{"name": "r", "run_dir": "/w/r", "files": [{"path": "a", "size": -1,'
        b' "sha256": "' + SHA.encode() + b'"}]}',
        b'{"name": "r", "run_dir": "/w/r", "files": [{"path": "a", "size": 1,'
        b' "sha256": "xyz"}]}',
        b'{"name": "r", "run_dir": "/w/r", "files": [{"path": "a", "size": 1,'
        b' "sha256": "' + SHA.encode() + b'"}, {"path": "A", "size": 1,'
        b' "sha256": "' + SHA.encode() + b'"}]}',
    ],
)
def test_a_bad_manifest_is_a_remote_protocol_error(bad: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        t.ModelManifest.from_bytes(bad)


def test_model_run_dirs_reads_every_shape_of_result() -> None:
    assert t.model_run_dirs(
        {"models": [{"run_dir": "/a"}, {"run_dir": "/b"}], "model_paths": ["/x"]}
    ) == ["/a", "/b"]
    assert t.model_run_dirs({"model_paths": ["/a", "/b"], "output_path": "/b"}) == [
        "/a",
        "/b",
    ]
    assert t.model_run_dirs({"extra": {"model_paths": ["/a"]}}) == ["/a"]
    assert t.model_run_dirs({"output_path": "/a"}) == ["/a"]
    assert t.model_run_dirs({}) == []


def test_a_model_download_request_carries_its_job() -> None:
    msg = t.FileDownloadRequestMsg(
        path="/w/r", transfer_id="t", extra={"job_id": "job_1", "manifest": True}
    )
    back = decode_text(encode_text(msg))
    assert back == msg
    assert isinstance(back, t.FileDownloadRequestMsg)
    assert back.extra == {"job_id": "job_1", "manifest": True}


def test_upload_errors_carry_a_code_that_reads_back() -> None:
    code = t.UploadErrorCode.QUOTA_EXCEEDED
    reason = t.upload_error_reason(code, "full: 3 > 2")
    assert t.parse_upload_error(reason) == (code, "full: 3 > 2")
    # A reference worker's prose has no code.
    assert t.parse_upload_error("Size mismatch") == (None, "Size mismatch")


def test_resumable_upload_messages_refuse_bad_names_and_hashes() -> None:
    sha = "a" * 64
    with pytest.raises(RemoteProtocolError):
        decode_text(f'FILE_UPLOAD_BEGIN::{{"name":"../x","size":1,"sha256":"{sha}"}}')
    with pytest.raises(RemoteProtocolError):
        decode_text('FILE_UPLOAD_BEGIN::{"name":"x","size":1,"sha256":"zz"}')
    with pytest.raises(RemoteProtocolError):
        decode_text(f'FILE_UPLOAD_BEGIN::{{"name":"x","size":-1,"sha256":"{sha}"}}')
    with pytest.raises(RemoteProtocolError):
        decode_text("FILE_UPLOAD_SEGMENT::10::nothex")
