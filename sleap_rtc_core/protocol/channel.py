"""The data-channel codec: text frames ↔ typed messages, and keep-alives.

Pure functions over the vocabulary of PROTOCOL.md B §4 and §5 (A.3); no I/O.
The message classes live in :mod:`.channel_auth` (the AUTH handshake and its
helpers), :mod:`.channel_messages` (jobs, inference), :mod:`.channel_fs` (file
browser), :mod:`.channel_transfer` (files) and :mod:`.channel_legacy` (the
reference's package flow); their shared framing rules in :mod:`._channel_base`.

**Text frames.** ``TYPE`` or ``TYPE::arg1::arg2…``, split at most
``CHANNEL_MAX_ARGS[TYPE] - 1`` times so that one argument (the last, except
where a class says otherwise) takes the rest of the text: JSON and paths may
contain ``::``. ``TRACK_LOG:{line}`` is the one type with a single colon, and
``FILE_META::{name}:{size}:{hint}`` splits its own argument on single colons.

**Framed or log line.** Workers also send unframed output (raw subprocess lines
ending in ``\\n``, ``[stderr] …``, ``Training model i/N: …``,
``[log-stream error] …``). A text is *framed* when it starts with
``TRACK_LOG:`` or with an upper-case ASCII word ``[A-Z][A-Z0-9_]*`` followed by
``::`` or by the end of the text; everything else is a :class:`LogLine`. So
``WARNING: x``, ``Epoch 1/2``, ``READY\\n`` (a printed line) and ``[stderr] E``
are log lines, while ``READY`` is a message and ``FOO`` or ``FOO::x`` an
unknown type.

**Errors.** :func:`decode_text` raises only :class:`RemoteProtocolError`, with
``code`` ``UNKNOWN_MESSAGE_TYPE`` (framed, unknown ``TYPE``),
``INVALID_JSON`` (an argument that must be JSON does not parse) or
``INVALID_MESSAGE`` (wrong argument count, a non-integer where one is needed,
JSON of the wrong shape, a value out of range).

**Messages of ours** (reference peers never send them and ignore them):

* ``JOB_ATTACH::{job_id}`` (client → worker): after a reconnect, resume a job
  by the id ``JOB_ACCEPTED`` gave. The worker answers
  ``JOB_STATE::{json}`` with ``job_id``, ``state`` (a ``JobState`` value, or
  ``unknown``: then nothing else), ``job_type``, ``model_index`` /
  ``model_count`` / ``model_type`` (pipelines), ``last_progress`` (the latest
  ``JOB_PROGRESS`` object), ``progress`` (buffered ``PROGRESS_REPORT`` texts,
  oldest first, verbatim), ``dropped`` (texts that fell off the full buffer) and
  ``result`` (the ``JOB_COMPLETE``/``JOB_FAILED`` object once final), then goes
  on sending the job's messages on this channel.
* ``FILE_DOWNLOAD_REQUEST::{"path","offset"?,"sha256"?,"transfer_id"?}`` (client
  → worker) and ``FILE_DOWNLOAD_META::{"name","size","sha256","offset","path"?,
  "transfer_id"?,"chunk_size"?,"kind"?}`` (worker → client): a download with a
  size and SHA-256 of the whole file, resumable at ``offset``; the bytes
  ``[offset, size)`` follow in binary frames, then ``END_OF_FILE``. Details in
  :mod:`.channel_transfer`.

**Binary frames.** File bytes, and the 10-byte :data:`KEEP_ALIVE` that the
worker and the CLI send every 15 s. A receiver drops every binary frame equal to
:data:`KEEP_ALIVE` before treating bytes as file data. That is safe because our
senders never send a chunk equal to it: :func:`chunk_frames` sends such a chunk
as two frames (the receiver only concatenates, so the file is unchanged), and no
chunk is empty. A reference sender whose last chunk happened to be those bytes
would lose them; the declared size and SHA-256 catch that instead of keeping a
short file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ..errors import ErrorCode, LocalProtocolError, RemoteProtocolError, SleapRTCError
from . import (
    channel_auth,
    channel_fs,
    channel_legacy,
    channel_messages,
    channel_transfer,
)
from ._channel_args import clip, local
from ._channel_base import (
    CHANNEL_SEP,
    TRACK_LOG_PREFIX,
    ChannelMessage,
    ChannelMessageType,
)
from .channel_legacy import TrackLogMsg

__all__ = [
    "CHANNEL_MAX_ARGS",
    "CHANNEL_MESSAGE_CLASSES",
    "CHANNEL_SEP",
    "KEEP_ALIVE",
    "ChannelMessage",
    "ChannelMessageType",
    "LogLine",
    "chunk_frames",
    "decode_text",
    "encode_text",
    "is_keepalive",
    "looks_framed",
    "split_frame",
]

KEEP_ALIVE = b"KEEP_ALIVE"
"""The binary keep-alive frame (10 bytes), never file data (see above)."""

_FRAME_RE = re.compile(r"([A-Z][A-Z0-9_]*)(?:::|\Z)")


def split_frame(text: str) -> tuple[str, str | None] | None:
    """``(TYPE, text after "TYPE::")`` of a framed text, ``None`` for a log line.

    Framed means: it starts with an upper-case ASCII word (``[A-Z][A-Z0-9_]*``)
    that is followed by ``::`` or ends the text. The rest is ``None`` for a bare
    ``TYPE`` and ``""`` for ``TYPE::``. ``TRACK_LOG:`` is handled by the caller.
    """
    match = _FRAME_RE.match(text)
    if match is None:
        return None
    type_name = match.group(1)
    return type_name, (None if match.end() == len(type_name) else text[match.end() :])


def looks_framed(text: str) -> bool:
    """Whether ``text`` is read as a framed message rather than a log line: it
    starts with ``TRACK_LOG:`` or :func:`split_frame` finds a ``TYPE``."""
    return text.startswith(TRACK_LOG_PREFIX) or _FRAME_RE.match(text) is not None


@dataclass(frozen=True, slots=True)
class LogLine(ChannelMessage):
    """Unframed worker output: a raw subprocess line (ends with ``\\n``),
    ``[stderr] …``, ``Training model i/N: …``, ``[log-stream error] …``.

    Attributes:
        text: The frame exactly as received.
    """

    text: str

    def _check(self) -> None:
        if not isinstance(self.text, str):
            raise local(f"LogLine text must be str, not {type(self.text).__name__}")
        if looks_framed(self.text):
            raise local(f"{clip(self.text)} would read as a frame; use JOB_LOG")

    def to_text(self) -> str:
        return self.text


def _collect() -> dict[str, type[ChannelMessage]]:
    classes: dict[str, type[ChannelMessage]] = {}
    modules = (
        channel_auth,
        channel_messages,
        channel_fs,
        channel_transfer,
        channel_legacy,
    )
    for module in modules:
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, type) and issubclass(obj, ChannelMessage) and obj.TYPE:
                if obj.TYPE.value in classes:
                    raise TypeError(f"two classes for {obj.TYPE.value}")
                classes[obj.TYPE.value] = obj
    return classes


CHANNEL_MESSAGE_CLASSES: Mapping[str, type[ChannelMessage]] = MappingProxyType(
    _collect()
)
"""``TYPE`` → message class, for every :class:`ChannelMessageType` (a
``ChannelMessageType`` member works as a key too: it is a ``str``)."""

CHANNEL_MAX_ARGS: Mapping[str, int] = MappingProxyType(
    {t: cls.max_args() for t, cls in CHANNEL_MESSAGE_CLASSES.items()}
)
"""``TYPE`` → the most ``::``-separated arguments it takes (0: always bare).

The text after ``TYPE::`` is split at most this many times minus one; the
greedy argument keeps every further ``::``. For ``JOB_PROGRESS``,
``JOB_COMPLETE``, ``JOB_FAILED`` and ``JOB_REJECTED`` the count is 2 (an
optional id before the JSON); ``FILE_META`` and ``TRACK_LOG`` take one argument
that has single-colon fields of its own.
"""


def decode_text(text: str) -> ChannelMessage:
    """Parse one text frame into its typed message (or a :class:`LogLine`).

    Raises:
        RemoteProtocolError: see the module docstring for the codes.
    """
    if not isinstance(text, str):
        raise RemoteProtocolError(
            f"a text frame must be str, not {type(text).__name__}",
            code=ErrorCode.INVALID_MESSAGE,
        )
    try:
        if text.startswith(TRACK_LOG_PREFIX):
            return TrackLogMsg(text[len(TRACK_LOG_PREFIX) :])
        framed = split_frame(text)
        if framed is None:
            return LogLine(text)
        type_name, rest = framed
        cls = CHANNEL_MESSAGE_CLASSES.get(type_name)
        if cls is None:
            raise RemoteProtocolError(
                f"unknown data-channel message type {clip(type_name, 64)}",
                code=ErrorCode.UNKNOWN_MESSAGE_TYPE,
            )
        return cls.decode_args(rest)
    except RemoteProtocolError:
        raise
    except (SleapRTCError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        # Validation of a decoded value: the peer sent it, so it is their error.
        message = getattr(exc, "message", None) or str(exc)
        raise RemoteProtocolError(message, code=ErrorCode.INVALID_MESSAGE) from None


def encode_text(message: ChannelMessage) -> str:
    """The text frame of a message.

    Raises:
        LocalProtocolError: when ``message`` is not a channel message or holds
            something JSON cannot carry.
    """
    if not isinstance(message, ChannelMessage) or (
        message.TYPE is None and not isinstance(message, LogLine)
    ):
        raise LocalProtocolError(f"not a channel message: {type(message).__name__}")
    return message.to_text()


def is_keepalive(data: bytes | bytearray | memoryview) -> bool:
    """Whether a binary frame is the keep-alive (drop it, it is not file data)."""
    return len(data) == len(KEEP_ALIVE) and bytes(data) == KEEP_ALIVE


def chunk_frames(chunk: bytes) -> tuple[bytes, ...]:
    """The binary frames that carry one file chunk: none for an empty chunk,
    two for a chunk equal to :data:`KEEP_ALIVE`, else the chunk itself."""
    if not chunk:
        return ()
    if chunk == KEEP_ALIVE:
        return (chunk[:5], chunk[5:])
    return (chunk,)
