"""Data-channel messages of file transfer: uploads, downloads and the legacy
``FILE_META`` stream (PROTOCOL.md B §4.3, §4.4).

Binary frames carry the bytes; these text frames announce, acknowledge and end
them. Keep-alives share the binary stream: see :mod:`.channel` for why a chunk
is never mistaken for one.

``FILE_META::{name}:{size}:{hint}`` separates its fields with single colons and
names may contain colons (macOS, Linux), and so may hints (a Windows output
folder such as ``C:\\runs``). The rule: **the size is the last ``:``-separated
field that is 1–20 ASCII digits and is followed by ``:`` or the end**; the name
is everything before it and the hint everything after its ``:`` (no hint when
nothing follows). So any name reads back whole, and a hint may hold colons but
no ``:``-separated field made only of digits (which we refuse to send).

Resumable uploads (ours; reference peers never send them). After
``FILE_UPLOAD_CHECK`` answered ``FILE_UPLOAD_READY``, a current client sends
``FILE_UPLOAD_BEGIN::{"name","size","sha256","restart"?}`` instead of
``FILE_UPLOAD_START``; the worker answers ``FILE_UPLOAD_OFFSET::{"offset",
"segment_size"}`` (``offset`` = verified bytes it already holds of that
content from this uploader, 0 for a new upload) or ``FILE_UPLOAD_ERROR``.
The client sends the bytes ``[offset, size)``; after each ``segment_size``
bytes (and after the last byte) ``FILE_UPLOAD_SEGMENT::{end}::{sha256}`` with
the SHA-256 of the bytes since the previous segment end, which the worker
checks and makes durable before it counts them as held (so a resume never
continues from bytes nobody verified); then ``FILE_UPLOAD_END`` as usual.

``FILE_UPLOAD_ERROR::{reason}`` from our worker reads ``CODE: message`` with
a :class:`UploadErrorCode` (reference workers send prose; see
:func:`parse_upload_error`).

Downloads (ours; the reference streams with ``FILE_META`` and never checks
sizes). The client asks with ``FILE_DOWNLOAD_REQUEST::{json}``, or the worker
offers a file of its own accord (predictions); either way the worker announces
``FILE_DOWNLOAD_META::{json}``, then sends exactly ``size - offset`` bytes in
binary frames, then ``END_OF_FILE``. The client checks the size and the SHA-256
of the whole file. To resume after a broken channel, the client asks again with
``offset`` = bytes it holds and ``sha256`` from the first announcement; the
worker resumes at that offset if the file is unchanged, else announces
``offset`` 0 with the new hash and the client starts over. A request the worker
refuses is answered ``FS_ERROR::{code}::{message}``.

Model folders (our extension on top of downloads; reference peers never send
it). A request that carries ``"job_id"`` asks for a finished training job's
models and is answered only to the peer that submitted that job, only for
files inside the job's run folders. With ``"manifest": true`` and ``path`` a
run folder it is answered with a :class:`ModelManifest` streamed as a file
(``kind`` :data:`MODEL_MANIFEST_KIND`, name :data:`MODEL_MANIFEST_NAME`), so it
is size- and SHA-256-checked like one; each listed file is then requested by
``path`` = run folder + ``/`` + its relative path (``kind``
:data:`MODEL_FILE_KIND`), resumable with ``offset`` and ``sha256`` as above.
:func:`model_run_dirs` reads the run folders out of a ``JOB_COMPLETE`` object.

Predictions (the same extension, for a finished inference job): a request with
``"job_id"``, ``"predictions": true`` and ``path`` the exact predictions file
the job's ``JOB_COMPLETE`` names (:func:`predictions_path_of`) is answered with
that one file (``kind`` :data:`PREDICTIONS_KIND`), resumable like a model file,
only to the job's owner; any other path is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any, Self

from ..errors import LocalProtocolError, RemoteProtocolError
from . import json_text
from ._channel_args import (
    FLAG,
    FLOAT,
    NAME,
    TEXT,
    UINT,
    invalid,
    is_sha256_hex,
    is_uint,
    local,
)
from ._channel_base import ChannelMessage, ChannelMessageType, JsonMessage
from ._schema import JSONObject, extra_field

__all__ = [
    "MAX_MANIFEST_BYTES",
    "MODEL_FILE_KIND",
    "MODEL_MANIFEST_KIND",
    "MODEL_MANIFEST_NAME",
    "PREDICTIONS_KIND",
    "ChunkMsg",
    "EndOfFileMsg",
    "FileDownloadMetaMsg",
    "FileDownloadRequestMsg",
    "FileMetaMsg",
    "FileUploadBeginMsg",
    "FileUploadCacheHitMsg",
    "FileUploadCheckMsg",
    "FileUploadCompleteMsg",
    "FileUploadEndMsg",
    "FileUploadErrorMsg",
    "FileUploadOffsetMsg",
    "FileUploadProgressMsg",
    "FileUploadReadyMsg",
    "FileUploadSegmentMsg",
    "FileUploadStartMsg",
    "ModelManifest",
    "ModelManifestEntry",
    "TransferProgressMsg",
    "UploadErrorCode",
    "model_run_dirs",
    "parse_upload_error",
    "predictions_path_of",
    "upload_error_reason",
]

_META_RE = re.compile(r"(.+):([0-9]{1,20})(?::(.*))?\Z", re.DOTALL)
_DIGITS_RE = re.compile(r"[0-9]+")


def _check_sha256(label: str, value: str | None) -> None:
    if value is not None and not is_sha256_hex(value):
        raise local(f"{label} must be 64 hex digits")


def _check_basename(label: str, name: str) -> None:
    if not name or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise local(f"{label} must be a bare file name, not {name[:80]!r}")


# --------------------------------------------------------------------------
# Uploads, client → worker


@dataclass(frozen=True, slots=True)
class FileUploadCheckMsg(ChannelMessage):
    """``FILE_UPLOAD_CHECK::{sha256hex}::{filename}``: does the worker already
    hold this content? Answered ``FILE_UPLOAD_CACHE_HIT`` or ``_READY``."""

    TYPE = ChannelMessageType.FILE_UPLOAD_CHECK
    ARGS = (("sha256", NAME), ("filename", NAME))

    sha256: str
    filename: str

    def _check(self) -> None:
        _check_sha256("FILE_UPLOAD_CHECK sha256", self.sha256)


@dataclass(frozen=True, slots=True)
class FileUploadCacheHitMsg(ChannelMessage):
    """``FILE_UPLOAD_CACHE_HIT::{abs_path}``: no need to send the bytes."""

    TYPE = ChannelMessageType.FILE_UPLOAD_CACHE_HIT
    ARGS = (("path", NAME),)

    path: str


@dataclass(frozen=True, slots=True)
class FileUploadReadyMsg(ChannelMessage):
    """``FILE_UPLOAD_READY``: send ``FILE_UPLOAD_START`` / the chunks."""

    TYPE = ChannelMessageType.FILE_UPLOAD_READY


@dataclass(frozen=True, slots=True)
class FileUploadStartMsg(ChannelMessage):
    """``FILE_UPLOAD_START::{filename}::{total_bytes}::{dest_dir}::{1|0}``.

    ``dest_dir`` is the greedy argument (a path may contain ``::``); the file
    name may not contain ``::``.

    Attributes:
        create_subdir: Write into ``<dest_dir>/sleap_rtc_downloads/``.
    """

    TYPE = ChannelMessageType.FILE_UPLOAD_START
    ARGS = (
        ("filename", NAME),
        ("total_bytes", UINT),
        ("dest_dir", TEXT),
        ("create_subdir", FLAG),
    )
    GREEDY = 2

    filename: str
    total_bytes: int
    dest_dir: str
    create_subdir: bool = False


@dataclass(frozen=True, slots=True)
class FileUploadEndMsg(ChannelMessage):
    """``FILE_UPLOAD_END``: all chunks sent."""

    TYPE = ChannelMessageType.FILE_UPLOAD_END


@dataclass(frozen=True, slots=True)
class FileUploadProgressMsg(ChannelMessage):
    """``FILE_UPLOAD_PROGRESS::{received}::{total}`` (at most every 500 ms)."""

    TYPE = ChannelMessageType.FILE_UPLOAD_PROGRESS
    ARGS = (("received", UINT), ("total", UINT))

    received: int
    total: int


@dataclass(frozen=True, slots=True)
class FileUploadCompleteMsg(ChannelMessage):
    """``FILE_UPLOAD_COMPLETE::{abs_path}``: stored (size checked)."""

    TYPE = ChannelMessageType.FILE_UPLOAD_COMPLETE
    ARGS = (("path", NAME),)

    path: str


@dataclass(frozen=True, slots=True)
class FileUploadErrorMsg(ChannelMessage):
    """``FILE_UPLOAD_ERROR::{reason}``."""

    TYPE = ChannelMessageType.FILE_UPLOAD_ERROR
    ARGS = (("reason", TEXT),)

    reason: str


class UploadErrorCode(StrEnum):
    """Why an upload was refused (the ``CODE`` of ``FILE_UPLOAD_ERROR``)."""

    NO_UPLOAD_AREA = "NO_UPLOAD_AREA"
    """The worker has no upload area configured."""
    ACCESS_DENIED = "ACCESS_DENIED"
    """A destination outside the upload area, or a link inside it."""
    INVALID_REQUEST = "INVALID_REQUEST"
    """A bad name, size or order of messages."""
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    """The uploader's, or the whole area's, quota would be exceeded."""
    CHECKSUM_MISMATCH = "CHECKSUM_MISMATCH"
    """A segment or the whole file hashed differently from what was announced."""
    SIZE_MISMATCH = "SIZE_MISMATCH"
    """More or fewer bytes than announced."""
    BUSY = "BUSY"
    """The same content is being uploaded on another channel right now."""
    TIMEOUT = "TIMEOUT"
    """The sender went quiet."""
    INTERNAL_ERROR = "INTERNAL_ERROR"
    """The worker failed (a disk error): try again later."""


def upload_error_reason(code: UploadErrorCode | str, message: str) -> str:
    """The ``reason`` text of ``FILE_UPLOAD_ERROR``: ``CODE: message``."""
    return f"{UploadErrorCode(code).value}: {message}"[:500]


def parse_upload_error(reason: str) -> tuple[UploadErrorCode | None, str]:
    """``(code, message)`` of a ``FILE_UPLOAD_ERROR`` reason; the code is
    ``None`` for a reference worker's prose."""
    head, sep, rest = reason.partition(": ")
    if sep and head in UploadErrorCode.__members__:
        return UploadErrorCode(head), rest
    return None, reason


@dataclass(frozen=True, slots=True)
class FileUploadBeginMsg(JsonMessage):
    """``FILE_UPLOAD_BEGIN::{"name","size","sha256","restart"?}``: start or
    resume an upload of this content (ours; see the module docstring).

    Attributes:
        name: A bare file name to store under.
        size: Bytes of the whole file.
        sha256: SHA-256 of the whole file, hex.
        restart: Drop what the worker holds of it and start at 0.
    """

    TYPE = ChannelMessageType.FILE_UPLOAD_BEGIN
    NON_NEGATIVE = ("size",)
    name: str
    size: int
    sha256: str
    restart: bool = False
    extra: JSONObject = extra_field()

    def _check(self) -> None:
        _check_basename("FILE_UPLOAD_BEGIN name", self.name)
        _check_sha256("FILE_UPLOAD_BEGIN sha256", self.sha256)


@dataclass(frozen=True, slots=True)
class FileUploadOffsetMsg(JsonMessage):
    """``FILE_UPLOAD_OFFSET::{"offset","segment_size"}``: send from ``offset``,
    with a ``FILE_UPLOAD_SEGMENT`` after every ``segment_size`` bytes.

    Attributes:
        offset: Verified bytes the worker holds already.
        segment_size: Bytes per verified segment.
    """

    TYPE = ChannelMessageType.FILE_UPLOAD_OFFSET
    NON_NEGATIVE = ("offset",)
    offset: int
    segment_size: int
    extra: JSONObject = extra_field()

    def _check(self) -> None:
        if self.segment_size <= 0:
            raise local("FILE_UPLOAD_OFFSET segment_size must be positive")


@dataclass(frozen=True, slots=True)
class FileUploadSegmentMsg(ChannelMessage):
    """``FILE_UPLOAD_SEGMENT::{end}::{sha256}``: the bytes since the previous
    segment's end, up to ``end``, hash to ``sha256``."""

    TYPE = ChannelMessageType.FILE_UPLOAD_SEGMENT
    ARGS = (("end", UINT), ("sha256", NAME))

    end: int
    sha256: str

    def _check(self) -> None:
        _check_sha256("FILE_UPLOAD_SEGMENT sha256", self.sha256)


# --------------------------------------------------------------------------
# Downloads, worker → client (see the module docstring)


@dataclass(frozen=True, slots=True)
class FileDownloadRequestMsg(JsonMessage):
    """``FILE_DOWNLOAD_REQUEST::{"path","offset"?,"sha256"?,"transfer_id"?}``.

    Attributes:
        path: The file on the worker (must lie inside a mount).
        offset: Bytes the client already holds; the worker starts there.
        sha256: When resuming, the hash the first ``FILE_DOWNLOAD_META`` gave, so
            that a changed file is sent again from the start.
        transfer_id: The client's id for this transfer, echoed in the meta.
    """

    TYPE = ChannelMessageType.FILE_DOWNLOAD_REQUEST
    NON_NEGATIVE = ("offset",)
    path: str
    offset: int = 0
    sha256: str | None = None
    transfer_id: str | None = None
    extra: JSONObject = extra_field()

    def _check(self) -> None:
        if not self.path:
            raise local("FILE_DOWNLOAD_REQUEST needs a path")
        _check_sha256("FILE_DOWNLOAD_REQUEST sha256", self.sha256)


@dataclass(frozen=True, slots=True)
class FileDownloadMetaMsg(JsonMessage):
    """``FILE_DOWNLOAD_META::{"name","size","sha256","offset",…}``: the bytes
    ``[offset, size)`` follow in binary frames, then ``END_OF_FILE``.

    Attributes:
        name: A bare file name to save under (no folders).
        size: Size of the whole file in bytes.
        sha256: SHA-256 of the whole file, hex.
        offset: The first byte the following frames carry.
        path: Where the file lies on the worker.
        transfer_id: The request's id, or the worker's own for offered files.
        chunk_size: The size of the binary frames that follow (last one less).
        kind: What the file is, e.g. ``predictions``.
    """

    TYPE = ChannelMessageType.FILE_DOWNLOAD_META
    NON_NEGATIVE = ("size", "offset")
    name: str
    size: int
    sha256: str
    offset: int = 0
    path: str | None = None
    transfer_id: str | None = None
    chunk_size: int | None = None
    kind: str | None = None
    extra: JSONObject = extra_field()

    def _check(self) -> None:
        _check_basename("FILE_DOWNLOAD_META name", self.name)
        _check_sha256("FILE_DOWNLOAD_META sha256", self.sha256)
        if self.offset > self.size:
            raise local("FILE_DOWNLOAD_META needs offset <= size")
        if self.chunk_size is not None and self.chunk_size <= 0:
            raise local("FILE_DOWNLOAD_META chunk_size must be positive")

    @property
    def remaining(self) -> int:
        """Bytes that follow this announcement."""
        return self.size - self.offset


# --------------------------------------------------------------------------
# The legacy stream (both directions)


@dataclass(frozen=True, slots=True)
class FileMetaMsg(ChannelMessage):
    """``FILE_META::{name}:{size}:{hint}`` (single colons; see the module
    docstring for how colons in names are read).

    Attributes:
        name: The file name.
        size: Its size in bytes (the reference never checks it; we do).
        hint: Client → worker: ``true``/``false`` (sent by the GUI); worker →
            client: the output folder. ``None`` when the sender gave none.
    """

    TYPE = ChannelMessageType.FILE_META
    ARGS = (("name", NAME),)

    name: str
    size: int
    hint: str | None = None

    def _check(self) -> None:
        if not is_uint(self.size):
            raise local("FILE_META size must be an integer, 0 to 20 digits")
        if self.hint is not None and (
            not isinstance(self.hint, str)
            or any(_DIGITS_RE.fullmatch(f) for f in self.hint.split(":"))
        ):
            raise local("FILE_META hint may not have a field of only digits")

    @classmethod
    def decode_args(cls, rest: str | None) -> Self:
        match = _META_RE.match(rest or "")
        if match is None:
            raise invalid("FILE_META needs {name}:{size}[:{hint}]")
        name, size, hint = match.groups()
        return cls(name, int(size), hint)

    def encode_args(self) -> str:
        hint = "" if self.hint is None else f":{self.hint}"
        return f"{self.name}:{self.size}{hint}"


@dataclass(frozen=True, slots=True)
class EndOfFileMsg(ChannelMessage):
    """``END_OF_FILE``: the stream announced by ``FILE_META`` or
    ``FILE_DOWNLOAD_META`` is complete."""

    TYPE = ChannelMessageType.END_OF_FILE


@dataclass(frozen=True, slots=True)
class TransferProgressMsg(ChannelMessage):
    """``TRANSFER_PROGRESS::{percent}`` (defined by the reference, unused)."""

    TYPE = ChannelMessageType.TRANSFER_PROGRESS
    ARGS = (("percent", FLOAT),)

    percent: float


@dataclass(frozen=True, slots=True)
class ChunkMsg(ChannelMessage):
    """``CHUNK::{index}::{base64 data}`` (defined by the reference, unused)."""

    TYPE = ChannelMessageType.CHUNK
    ARGS = (("index", UINT), ("data", TEXT))

    index: int
    data: str


# --------------------------------------------------------------------------
# Model folders (ours; see the module docstring)

MODEL_MANIFEST_KIND = "model_manifest"
"""``kind`` of the ``FILE_DOWNLOAD_META`` that carries a :class:`ModelManifest`."""

MODEL_MANIFEST_NAME = "manifest.json"
"""``name`` of that announcement (never written to the worker's disk)."""

MODEL_FILE_KIND = "model_file"
"""``kind`` of the ``FILE_DOWNLOAD_META`` of one file of a run folder."""

PREDICTIONS_KIND = "predictions"
"""``kind`` of the ``FILE_DOWNLOAD_META`` of an inference job's predictions."""

MAX_MANIFEST_BYTES = 16 << 20
"""A manifest larger than this is refused before it is read."""


def _relative_path(path: object) -> str:
    if not isinstance(path, str) or not path or "\\" in path or "\0" in path:
        raise local(f"not a relative file path: {str(path)[:80]!r}")
    pure = PurePosixPath(path)
    if pure.is_absolute() or any(p in ("", ".", "..") for p in path.split("/")):
        raise local(f"not a relative file path inside the folder: {path[:80]!r}")
    return path


@dataclass(frozen=True, slots=True)
class ModelManifestEntry:
    """One file of a run folder.

    Attributes:
        path: Relative to the run folder, ``/``-separated, no ``.``/``..``.
        size: Bytes.
        sha256: SHA-256, hex.
    """

    path: str
    size: int
    sha256: str

    def __post_init__(self) -> None:
        _relative_path(self.path)
        if not is_uint(self.size):
            raise local(f"bad size for {self.path!r}")
        _check_sha256(f"sha256 of {self.path!r}", self.sha256)


@dataclass(frozen=True, slots=True)
class ModelManifest:
    """The files of one run folder, as the worker lists them.

    Attributes:
        job_id: The job that trained it.
        run_dir: The folder on the worker.
        name: Its bare name (the run name), which the client's copy takes.
        files: Every regular file in it, sorted by path.
    """

    job_id: str
    run_dir: str
    name: str
    files: tuple[ModelManifestEntry, ...]

    def __post_init__(self) -> None:
        _check_basename("the run folder name", self.name)
        if not self.run_dir:
            raise local("a manifest needs run_dir")
        seen: set[str] = set()
        for entry in self.files:
            key = entry.path.casefold()
            if key in seen:
                raise local(f"{entry.path!r} is listed twice")
            seen.add(key)

    @property
    def total_bytes(self) -> int:
        """The size of all files together."""
        return sum(f.size for f in self.files)

    def to_bytes(self) -> bytes:
        """The JSON bytes that travel."""
        return json_text.dumps(
            {
                "job_id": self.job_id,
                "run_dir": self.run_dir,
                "name": self.name,
                "files": [
                    {"path": f.path, "size": f.size, "sha256": f.sha256}
                    for f in self.files
                ],
            }
        ).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> ModelManifest:
        """Decode and check a manifest received from a peer.

        Raises:
            RemoteProtocolError: not a well-formed manifest.
        """
        if len(data) > MAX_MANIFEST_BYTES:
            raise invalid("the manifest is too large")
        try:
            obj: Any = json_text.loads_object(data.decode("utf-8"))
            files, run_dir = obj.get("files"), obj.get("run_dir")
            if not isinstance(files, list) or not all(
                isinstance(f, Mapping) for f in files
            ):
                raise local("a manifest needs a list of files")
            return cls(
                job_id=str(obj.get("job_id") or ""),
                run_dir=run_dir if isinstance(run_dir, str) else "",
                name=obj.get("name"),
                files=tuple(
                    ModelManifestEntry(f.get("path"), f.get("size"), f.get("sha256"))
                    for f in files
                ),
            )
        except UnicodeDecodeError:
            raise invalid("the manifest is not UTF-8") from None
        except RemoteProtocolError:
            raise
        except (LocalProtocolError, TypeError) as exc:  # a field check failed
            raise invalid(f"bad manifest: {exc}") from None


def model_run_dirs(result: Mapping[str, Any]) -> list[str]:
    """The run folders a ``JOB_COMPLETE`` object names, in pipeline order.

    ``models[i].run_dir`` when present, else ``model_paths``, else
    ``output_path`` (a reference worker's single model); also looked up in a
    nested ``extra`` (the unknown fields of a decoded message).
    """
    extra = result.get("extra")
    sources: list[Mapping[str, Any]] = [result]
    if isinstance(extra, Mapping):
        sources.append(extra)
    for source in sources:
        models = source.get("models")
        if isinstance(models, list):
            dirs = [m.get("run_dir") for m in models if isinstance(m, Mapping)]
            found = [d for d in dirs if isinstance(d, str) and d]
            if found:
                return found
    for source in sources:
        paths = source.get("model_paths")
        if isinstance(paths, list) and paths:
            return [p for p in paths if isinstance(p, str) and p]
    output = result.get("output_path")
    return [output] if isinstance(output, str) and output else []


def predictions_path_of(result: Mapping[str, Any]) -> str | None:
    """The predictions file a ``JOB_COMPLETE`` object names, if any.

    ``predictions_path`` (inference jobs, and training with inference after
    it), also looked up in a nested ``extra``.
    """
    extra = result.get("extra")
    for source in (result, extra if isinstance(extra, Mapping) else {}):
        path = source.get("predictions_path")
        if isinstance(path, str) and path:
            return path
    return None
