"""File-browser messages: maximum splits for paths, optional FS_RESOLVE
arguments, and checked JSON answers."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sleap_rtc_core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from sleap_rtc_core.protocol import channel_fs as f
from sleap_rtc_core.protocol.channel import decode_text, encode_text

colon_text = st.text(alphabet=st.sampled_from("ab:9/ {}N"), max_size=12)
opt_uint = st.none() | st.integers(min_value=0, max_value=10**19)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("FS_RESOLVE::a.mp4", f.FsResolveMsg("a.mp4")),
        ("FS_RESOLVE::a.mp4::100", f.FsResolveMsg("a.mp4", 100)),
        ("FS_RESOLVE::a.mp4::None::None::None", f.FsResolveMsg("a.mp4")),
        ("FS_RESOLVE::a.mp4::null::3::", f.FsResolveMsg("a.mp4", None, 3)),
        ("FS_RESOLVE::a.mp4::::::lab", f.FsResolveMsg("a.mp4", None, None, "lab")),
    ],
)
def test_resolve_optional_arguments(text: str, expected: f.FsResolveMsg) -> None:
    assert decode_text(text) == expected


def test_resolve_encodes_only_what_is_set() -> None:
    assert encode_text(f.FsResolveMsg("a")) == "FS_RESOLVE::a"
    assert encode_text(f.FsResolveMsg("a", None, 2)) == "FS_RESOLVE::a::::2"
    with pytest.raises(LocalProtocolError):
        f.FsResolveMsg("a", mount_label="None")  # would read back as no label
    with pytest.raises(LocalProtocolError):
        f.FsResolveMsg("a::b")


@settings(max_examples=200, deadline=None)
@given(colon_text, opt_uint, opt_uint, st.none() | colon_text)
def test_resolve_round_trips(
    pattern: str, size: int | None, depth: int | None, label: str | None
) -> None:
    try:
        msg = f.FsResolveMsg(pattern, size, depth, label)
    except LocalProtocolError:
        assume(False)
        return
    assert decode_text(encode_text(msg)) == msg


@settings(max_examples=200, deadline=None)
@given(colon_text, st.integers(min_value=0, max_value=10**19))
def test_list_dir_round_trips(path: str, offset: int) -> None:
    try:
        msg = f.FsListDirMsg(path, offset)
    except LocalProtocolError:
        assume(False)
        return
    assert decode_text(encode_text(msg)) == msg


def test_list_dir_without_offset_is_the_first_page() -> None:
    assert decode_text("FS_LIST_DIR::/m/a::b") == f.FsListDirMsg("/m/a::b", 0)
    assert decode_text("FS_LIST_DIR::/m::") == f.FsListDirMsg("/m::", 0)
    with pytest.raises(RemoteProtocolError):
        decode_text("FS_LIST_DIR::::4")  # empty path


def test_fs_error() -> None:
    msg = decode_text("FS_ERROR::MOUNT_NOT_FOUND::no mount 'x'")
    assert msg == f.FsErrorMsg(f.FsErrorCode.MOUNT_NOT_FOUND, "no mount 'x'")
    err = pytest.raises(RemoteProtocolError, decode_text, "FS_ERROR::NOPE::x").value
    assert err.code == ErrorCode.INVALID_MESSAGE


def test_json_answers_keep_unknown_fields() -> None:
    text = (
        'FS_LIST_RESPONSE::{"path":"/m","entries":[],"total_count":0,'
        '"has_more":false,"v":2}'
    )
    msg = decode_text(text)
    assert isinstance(msg, f.FsListResponseMsg)
    assert msg.extra == {"v": 2}
    assert decode_text(encode_text(msg)) == msg


def test_local_checks() -> None:
    with pytest.raises(LocalProtocolError):
        f.FsWriteSlpMsg("/m/a.slp", "/m", {"a": 1})
    with pytest.raises(LocalProtocolError):
        f.FsScanDirResponseMsg("/m", {"a": 1})
    with pytest.raises(LocalProtocolError):
        f.FsCheckVideosResponseMsg("/m/a.slp", total_videos=-1)
    with pytest.raises(LocalProtocolError):
        f.FsScanDirMsg("/m", ["a", 1])  # type: ignore[list-item]
    with pytest.raises(LocalProtocolError):
        f.FsMountsResponseMsg([1])  # type: ignore[list-item]
    with pytest.raises(LocalProtocolError):
        f.UseWorkerPathMsg("")
