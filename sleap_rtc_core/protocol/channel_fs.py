"""Data-channel messages of the worker file browser and path checks
(PROTOCOL.md B §4.3).

The reference worker splits these on every ``::``, which cuts paths and JSON that
contain one; here each has a maximum split like every other type. Paths are
greedy: ``USE_WORKER_PATH`` and friends take the whole rest of the frame, and
``FS_LIST_DIR::{path}::{offset}`` splits the offset off from the right (a last
field of digits is the offset, so a path may contain ``::``; we always send
the offset). In ``FS_RESOLVE::{pattern}::{file_size}::{max_depth}::{mount_label}``
only the label may contain ``::``; empty, ``None`` or ``null`` mean "not given"
for the two numbers and the label, as reference clients send them.

JSON answers keep fields we do not know in ``extra`` and send them back
unchanged; nested lists (directory entries, candidates, mounts) stay plain JSON
objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Self

from ._channel_args import (
    NAME,
    OBJECTS,
    OPT_NAME,
    OPT_UINT,
    TEXT,
    UINT,
    enum_arg,
    invalid,
    local,
    parse_uint,
)
from ._channel_base import CHANNEL_SEP, ChannelMessage, ChannelMessageType, JsonMessage
from ._schema import JSONObject, extra_field

__all__ = [
    "FsApplyPrefixMsg",
    "FsCheckVideosResponseMsg",
    "FsErrorCode",
    "FsErrorMsg",
    "FsGetInfoMsg",
    "FsGetMountsMsg",
    "FsInfoResponseMsg",
    "FsListDirMsg",
    "FsListResponseMsg",
    "FsMountsResponseMsg",
    "FsPrefixAppliedMsg",
    "FsPrefixProposalMsg",
    "FsResolveMsg",
    "FsResolveResponseMsg",
    "FsResolveWithPrefixMsg",
    "FsScanDirMsg",
    "FsScanDirResponseMsg",
    "FsWriteSlpErrorMsg",
    "FsWriteSlpMsg",
    "FsWriteSlpOkMsg",
    "UseWorkerPathMsg",
    "WorkerPathErrorMsg",
    "WorkerPathOkMsg",
]


class FsErrorCode(StrEnum):
    """The ``code`` of ``FS_ERROR::{code}::{message}``."""

    ACCESS_DENIED = "ACCESS_DENIED"
    """The path lies outside every mount (or there are none)."""
    PATH_NOT_FOUND = "PATH_NOT_FOUND"
    """Nothing at that path."""
    PATTERN_TOO_BROAD = "PATTERN_TOO_BROAD"
    """A wildcard pattern with fewer than 3 literal characters."""
    INVALID_REQUEST = "INVALID_REQUEST"
    """The request was malformed."""
    MOUNT_NOT_FOUND = "MOUNT_NOT_FOUND"
    """No mount has that label."""


def _check_str_map(label: str, mapping: dict[str, Any], *, nullable: bool) -> None:
    for value in mapping.values():
        if not (isinstance(value, str) or (nullable and value is None)):
            raise local(f"{label} values must be strings: {value!r}")


# --------------------------------------------------------------------------
# Client → worker


@dataclass(frozen=True, slots=True)
class FsGetInfoMsg(ChannelMessage):
    """``FS_GET_INFO`` → ``FS_INFO_RESPONSE``."""

    TYPE = ChannelMessageType.FS_GET_INFO


@dataclass(frozen=True, slots=True)
class FsGetMountsMsg(ChannelMessage):
    """``FS_GET_MOUNTS`` → ``FS_MOUNTS_RESPONSE``."""

    TYPE = ChannelMessageType.FS_GET_MOUNTS


@dataclass(frozen=True, slots=True)
class FsResolveMsg(ChannelMessage):
    """``FS_RESOLVE::{pattern}::{file_size}::{max_depth}::{mount_label}``: fuzzy
    find a file; all but the pattern optional.

    Attributes:
        pattern: File name or wildcard pattern.
        file_size: Expected size in bytes, to rank candidates.
        max_depth: Folder depth to search (worker default 5).
        mount_label: Search only this mount.
    """

    TYPE = ChannelMessageType.FS_RESOLVE
    ARGS = (
        ("pattern", NAME),
        ("file_size", OPT_UINT),
        ("max_depth", OPT_UINT),
        ("mount_label", OPT_NAME),
    )
    MIN_ARGS = 1

    pattern: str
    file_size: int | None = None
    max_depth: int | None = None
    mount_label: str | None = None


@dataclass(frozen=True, slots=True)
class FsListDirMsg(ChannelMessage):
    """``FS_LIST_DIR::{path}::{offset}``: one page (20 entries) of a folder."""

    TYPE = ChannelMessageType.FS_LIST_DIR
    ARGS = (("path", NAME), ("offset", UINT))
    MIN_ARGS = 1
    GREEDY = 0

    path: str
    offset: int = 0

    @classmethod
    def decode_args(cls, rest: str | None) -> Self:
        if rest is None:
            raise invalid("FS_LIST_DIR needs a path")
        path, sep, tail = rest.rpartition(CHANNEL_SEP)
        offset = parse_uint(tail) if sep else None
        return cls(rest) if offset is None else cls(path, offset)


@dataclass(frozen=True, slots=True)
class FsScanDirMsg(JsonMessage):
    """``FS_SCAN_DIR::{"directory","filenames":[…]}``: which of these names are
    in that folder?"""

    TYPE = ChannelMessageType.FS_SCAN_DIR
    directory: str
    filenames: list[str] = field(default_factory=list)
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class FsWriteSlpMsg(JsonMessage):
    """``FS_WRITE_SLP::{"slp_path","output_dir","filename_map","output_filename"?}``:
    write a copy of the labels with video paths replaced.

    Attributes:
        filename_map: Old video path → new video path.
    """

    TYPE = ChannelMessageType.FS_WRITE_SLP
    slp_path: str
    output_dir: str
    filename_map: dict[str, Any] = field(default_factory=dict)
    output_filename: str | None = None
    extra: JSONObject = extra_field()

    def _check(self) -> None:
        _check_str_map("FS_WRITE_SLP filename_map", self.filename_map, nullable=False)


@dataclass(frozen=True, slots=True)
class FsResolveWithPrefixMsg(JsonMessage):
    """``FS_RESOLVE_WITH_PREFIX::{"original_path","new_path","other_missing"}``:
    propose the prefix swap that maps one video to its found path."""

    TYPE = ChannelMessageType.FS_RESOLVE_WITH_PREFIX
    original_path: str
    new_path: str
    other_missing: list[str] = field(default_factory=list)
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class FsApplyPrefixMsg(JsonMessage):
    """``FS_APPLY_PREFIX::{"confirmed":true}`` (a stateless acknowledgement)."""

    TYPE = ChannelMessageType.FS_APPLY_PREFIX
    confirmed: bool = True
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class UseWorkerPathMsg(ChannelMessage):
    """``USE_WORKER_PATH::{path}``: use this worker file (must be in a mount)."""

    TYPE = ChannelMessageType.USE_WORKER_PATH
    ARGS = (("path", NAME),)

    path: str


# --------------------------------------------------------------------------
# Worker → client


@dataclass(frozen=True, slots=True)
class FsInfoResponseMsg(JsonMessage):
    """``FS_INFO_RESPONSE::{"worker_id","working_dir","mounts":[{path,label}]}``."""

    TYPE = ChannelMessageType.FS_INFO_RESPONSE
    worker_id: str | None = None
    working_dir: str | None = None
    mounts: list[dict[str, Any]] = field(default_factory=list)
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class FsMountsResponseMsg(ChannelMessage):
    """``FS_MOUNTS_RESPONSE::[{"path","label"}]`` (a JSON array)."""

    TYPE = ChannelMessageType.FS_MOUNTS_RESPONSE
    ARGS = (("mounts", OBJECTS),)

    mounts: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class FsResolveResponseMsg(JsonMessage):
    """``FS_RESOLVE_RESPONSE::{"candidates":[{path,name,size,modified,
    match_type,score}],"truncated","timeout","search_time_ms"}``."""

    TYPE = ChannelMessageType.FS_RESOLVE_RESPONSE
    NON_NEGATIVE = ("search_time_ms",)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False
    timeout: bool = False
    search_time_ms: float | None = None
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class FsListResponseMsg(JsonMessage):
    """``FS_LIST_RESPONSE::{"path","entries":[{name,type,size,modified}],
    "total_count","has_more"}`` (folders first, case-insensitive order)."""

    TYPE = ChannelMessageType.FS_LIST_RESPONSE
    NON_NEGATIVE = ("total_count",)
    path: str
    entries: list[dict[str, Any]] = field(default_factory=list)
    total_count: int = 0
    has_more: bool = False
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class FsScanDirResponseMsg(JsonMessage):
    """``FS_SCAN_DIR_RESPONSE::{"directory","found":{name: path|null}}``."""

    TYPE = ChannelMessageType.FS_SCAN_DIR_RESPONSE
    directory: str
    found: dict[str, Any] = field(default_factory=dict)
    extra: JSONObject = extra_field()

    def _check(self) -> None:
        _check_str_map("FS_SCAN_DIR_RESPONSE found", self.found, nullable=True)


@dataclass(frozen=True, slots=True)
class FsWriteSlpOkMsg(JsonMessage):
    """``FS_WRITE_SLP_OK::{"output_path","videos_updated"}``."""

    TYPE = ChannelMessageType.FS_WRITE_SLP_OK
    NON_NEGATIVE = ("videos_updated",)
    output_path: str
    videos_updated: int = 0
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class FsWriteSlpErrorMsg(JsonMessage):
    """``FS_WRITE_SLP_ERROR::{"error"}``."""

    TYPE = ChannelMessageType.FS_WRITE_SLP_ERROR
    error: str
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class FsPrefixProposalMsg(JsonMessage):
    """``FS_PREFIX_PROPOSAL::{"old_prefix","new_prefix","would_resolve":
    [{original,resolved}],"would_not_resolve":[…]}``."""

    TYPE = ChannelMessageType.FS_PREFIX_PROPOSAL
    old_prefix: str
    new_prefix: str
    would_resolve: list[dict[str, Any]] = field(default_factory=list)
    would_not_resolve: list[str] = field(default_factory=list)
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class FsPrefixAppliedMsg(JsonMessage):
    """``FS_PREFIX_APPLIED::{"success":true}``."""

    TYPE = ChannelMessageType.FS_PREFIX_APPLIED
    success: bool = True
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class FsCheckVideosResponseMsg(JsonMessage):
    """``FS_CHECK_VIDEOS_RESPONSE::{"slp_path","total_videos","missing":
    [{filename,original_path}],"accessible","embedded","error"?}``, sent after
    ``WORKER_PATH_OK`` for a labels file."""

    TYPE = ChannelMessageType.FS_CHECK_VIDEOS_RESPONSE
    NON_NEGATIVE = ("total_videos", "accessible", "embedded")
    slp_path: str
    total_videos: int = 0
    missing: list[dict[str, Any]] = field(default_factory=list)
    accessible: int = 0
    embedded: int = 0
    error: str | None = None
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class FsErrorMsg(ChannelMessage):
    """``FS_ERROR::{code}::{message}``: an FS_* (or download) request failed."""

    TYPE = ChannelMessageType.FS_ERROR
    ARGS = (("code", enum_arg(FsErrorCode)), ("message", TEXT))

    code: FsErrorCode
    message: str


@dataclass(frozen=True, slots=True)
class WorkerPathOkMsg(ChannelMessage):
    """``WORKER_PATH_OK::{path}``: the path exists inside a mount."""

    TYPE = ChannelMessageType.WORKER_PATH_OK
    ARGS = (("path", NAME),)

    path: str


@dataclass(frozen=True, slots=True)
class WorkerPathErrorMsg(ChannelMessage):
    """``WORKER_PATH_ERROR::{text}``."""

    TYPE = ChannelMessageType.WORKER_PATH_ERROR
    ARGS = (("message", TEXT),)

    message: str
