"""The vocabulary and base classes of data-channel text messages.

Every message class names its wire ``TYPE`` (PROTOCOL.md B §4, §5) and lists its
arguments in wire order in ``ARGS`` (field name, :class:`~._channel_args.Arg`).
A message travels as ``TYPE`` or ``TYPE::arg1::arg2…``:

* **Maximum split.** A type takes at most ``max_args()`` arguments, so the text
  after ``TYPE::`` is split at most ``max_args() - 1`` times and one argument,
  the *greedy* one (the last unless ``GREEDY`` names another), takes the rest of
  the text: JSON, paths and log lines may contain ``::``. Arguments before the
  greedy one are split off from the left, those after it from the right. The
  others may not contain ``::`` nor have a ``:`` next to a separator (``a:`` +
  ``::`` + ``b`` would read back as ``a`` and ``:b``).
* **Optional arguments.** Where ``MIN_ARGS`` is below the maximum, missing
  trailing arguments take their defaults; the encoder leaves out trailing
  ``None`` arguments and writes an inner ``None`` as the empty string.
* **JSON payloads.** A type whose one argument is a JSON object is also a
  :class:`WireObject`: its fields are the object's keys, and unknown keys land
  in ``extra`` and are sent back unchanged (reference workers add fields).
  Numbers must be finite (JSON has no ``inf``; our encoder would write ``null``)
  and the fields named in ``NON_NEGATIVE`` must be ``>= 0``.
* **Validation.** ``__post_init__`` checks every field, so a message that
  exists can be sent. It raises :class:`LocalProtocolError`; the decoder turns
  that into :class:`RemoteProtocolError`.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any, ClassVar, Self, cast

from ..errors import RemoteProtocolError
from . import json_text
from ._channel_args import Arg, clip, invalid, local
from ._schema import WireObject

__all__ = [
    "CHANNEL_SEP",
    "TRACK_LOG_PREFIX",
    "ChannelMessage",
    "ChannelMessageType",
    "IdPrefixed",
    "JsonMessage",
    "is_token",
]

CHANNEL_SEP = "::"
"""The argument separator of text frames."""

TRACK_LOG_PREFIX = "TRACK_LOG:"
"""``TRACK_LOG`` is the one type framed with a single colon."""


class ChannelMessageType(StrEnum):
    """Every ``TYPE`` of a framed data-channel text message."""

    # P2P authentication (B §4.2)
    AUTH_CHALLENGE = "AUTH_CHALLENGE"
    AUTH_RESPONSE = "AUTH_RESPONSE"
    AUTH_SUCCESS = "AUTH_SUCCESS"
    AUTH_FAILURE = "AUTH_FAILURE"
    AUTH_PROOF = "AUTH_PROOF"
    # Structured jobs, client → worker (B §4.3, §4.5, §5)
    JOB_SUBMIT = "JOB_SUBMIT"
    JOB_STOP = "JOB_STOP"
    JOB_CANCEL = "JOB_CANCEL"
    JOB_ATTACH = "JOB_ATTACH"
    CONTROL_COMMAND = "CONTROL_COMMAND"
    ZMQ_CTRL = "ZMQ_CTRL"
    # Structured jobs, worker → client
    JOB_ACCEPTED = "JOB_ACCEPTED"
    JOB_REJECTED = "JOB_REJECTED"
    JOB_PROGRESS = "JOB_PROGRESS"
    JOB_COMPLETE = "JOB_COMPLETE"
    JOB_FAILED = "JOB_FAILED"
    JOB_LOG = "JOB_LOG"
    JOB_STATE = "JOB_STATE"
    PROGRESS_REPORT = "PROGRESS_REPORT"
    MODEL_TYPE = "MODEL_TYPE"
    CR = "CR"
    # Post-training inference (B §4.5)
    INFERENCE_SKIPPED = "INFERENCE_SKIPPED"
    INFERENCE_BEGIN = "INFERENCE_BEGIN"
    INFERENCE_PROGRESS = "INFERENCE_PROGRESS"
    INFERENCE_LOG = "INFERENCE_LOG"
    INFERENCE_COMPLETE = "INFERENCE_COMPLETE"
    INFERENCE_FAILED = "INFERENCE_FAILED"
    # File browser and worker paths (B §4.3)
    FS_GET_INFO = "FS_GET_INFO"
    FS_INFO_RESPONSE = "FS_INFO_RESPONSE"
    FS_GET_MOUNTS = "FS_GET_MOUNTS"
    FS_MOUNTS_RESPONSE = "FS_MOUNTS_RESPONSE"
    FS_RESOLVE = "FS_RESOLVE"
    FS_RESOLVE_RESPONSE = "FS_RESOLVE_RESPONSE"
    FS_LIST_DIR = "FS_LIST_DIR"
    FS_LIST_RESPONSE = "FS_LIST_RESPONSE"
    FS_SCAN_DIR = "FS_SCAN_DIR"
    FS_SCAN_DIR_RESPONSE = "FS_SCAN_DIR_RESPONSE"
    FS_WRITE_SLP = "FS_WRITE_SLP"
    FS_WRITE_SLP_OK = "FS_WRITE_SLP_OK"
    FS_WRITE_SLP_ERROR = "FS_WRITE_SLP_ERROR"
    FS_RESOLVE_WITH_PREFIX = "FS_RESOLVE_WITH_PREFIX"
    FS_PREFIX_PROPOSAL = "FS_PREFIX_PROPOSAL"
    FS_APPLY_PREFIX = "FS_APPLY_PREFIX"
    FS_PREFIX_APPLIED = "FS_PREFIX_APPLIED"
    FS_CHECK_VIDEOS_RESPONSE = "FS_CHECK_VIDEOS_RESPONSE"
    FS_ERROR = "FS_ERROR"
    USE_WORKER_PATH = "USE_WORKER_PATH"
    WORKER_PATH_OK = "WORKER_PATH_OK"
    WORKER_PATH_ERROR = "WORKER_PATH_ERROR"
    # Uploads (B §4.3, §4.4)
    FILE_UPLOAD_CHECK = "FILE_UPLOAD_CHECK"
    FILE_UPLOAD_CACHE_HIT = "FILE_UPLOAD_CACHE_HIT"
    FILE_UPLOAD_READY = "FILE_UPLOAD_READY"
    FILE_UPLOAD_START = "FILE_UPLOAD_START"
    FILE_UPLOAD_END = "FILE_UPLOAD_END"
    FILE_UPLOAD_PROGRESS = "FILE_UPLOAD_PROGRESS"
    FILE_UPLOAD_COMPLETE = "FILE_UPLOAD_COMPLETE"
    FILE_UPLOAD_ERROR = "FILE_UPLOAD_ERROR"
    # Resumable uploads (ours)
    FILE_UPLOAD_BEGIN = "FILE_UPLOAD_BEGIN"
    FILE_UPLOAD_OFFSET = "FILE_UPLOAD_OFFSET"
    FILE_UPLOAD_SEGMENT = "FILE_UPLOAD_SEGMENT"
    # Downloads, worker → client (ours)
    FILE_DOWNLOAD_REQUEST = "FILE_DOWNLOAD_REQUEST"
    FILE_DOWNLOAD_META = "FILE_DOWNLOAD_META"
    # Legacy package flow, file stream and markers
    PACKAGE_TYPE = "PACKAGE_TYPE"
    OUTPUT_DIR = "OUTPUT_DIR"
    FILE_META = "FILE_META"
    END_OF_FILE = "END_OF_FILE"
    TRAIN_JOB_START = "TRAIN_JOB_START"
    TRAIN_JOB_END = "TRAIN_JOB_END"
    TRAIN_JOB_ERROR = "TRAIN_JOB_ERROR"
    TRAINING_JOBS_DONE = "TRAINING_JOBS_DONE"
    INFERENCE_START = "INFERENCE_START"
    INFERENCE_JOB_START = "INFERENCE_JOB_START"
    INFERENCE_JOB_END = "INFERENCE_JOB_END"
    INFERENCE_JOB_ERROR = "INFERENCE_JOB_ERROR"
    INFERENCE_JOBS_DONE = "INFERENCE_JOBS_DONE"
    INFERENCE_ERROR = "INFERENCE_ERROR"
    TRACK_LOG = "TRACK_LOG"
    READY = "READY"
    TRAINING_COMPLETE = "TRAINING_COMPLETE"
    ERROR = "ERROR"
    TRANSFER_PROGRESS = "TRANSFER_PROGRESS"
    CHUNK = "CHUNK"


def is_token(value: object) -> bool:
    """Whether ``value`` may sit left of a separator: non-empty text without
    ``::`` and without a final ``:``."""
    return (
        isinstance(value, str)
        and value != ""
        and CHANNEL_SEP not in value
        and not value.endswith(":")
    )


class ChannelMessage:
    """Base of every data-channel text message (see the module docstring).

    Attributes:
        TYPE: The wire type; ``None`` only for the unframed ``LogLine``.
        ARGS: ``(field name, kind)`` per argument, in wire order.
        MIN_ARGS: The fewest arguments accepted (``None``: all of them).
        GREEDY: Index of the argument that takes the rest of the text.
    """

    __slots__ = ()

    TYPE: ClassVar[ChannelMessageType | None] = None
    ARGS: ClassVar[tuple[tuple[str, Arg], ...]] = ()
    MIN_ARGS: ClassVar[int | None] = None
    GREEDY: ClassVar[int] = -1

    def __post_init__(self) -> None:
        self._check_args()
        self._check()

    def _check(self) -> None:
        """Checks of one type beyond its argument kinds.

        Raises:
            LocalProtocolError: when a field is unacceptable.
        """

    @classmethod
    def max_args(cls) -> int:
        """The most ``::``-separated arguments this type takes."""
        return len(cls.ARGS)

    @classmethod
    def min_args(cls) -> int:
        """The fewest arguments this type takes."""
        return len(cls.ARGS) if cls.MIN_ARGS is None else cls.MIN_ARGS

    def _check_args(self) -> None:
        n = len(self.ARGS)
        greedy = self.GREEDY % n if n else 0
        for i, (name, arg) in enumerate(self.ARGS):
            value = getattr(self, name)
            if not arg.check(value):
                raise local(f"{self.TYPE} {name} must be {arg.kind}, not {clip(value)}")
            if not arg.text or i == greedy or value is None:
                continue
            if CHANNEL_SEP in value:
                raise local(f"{self.TYPE} {name} may not contain '::'")
            if (i < greedy and value.endswith(":")) or (
                i > greedy and value.startswith(":")
            ):
                raise local(f"{self.TYPE} {name} may not have ':' at a separator")

    @classmethod
    def _split(cls, rest: str) -> list[str]:
        n = len(cls.ARGS)
        greedy = cls.GREEDY % n
        head = rest.split(CHANNEL_SEP, greedy)
        if len(head) <= greedy or greedy == n - 1:
            return head
        return head[:greedy] + head[greedy].rsplit(CHANNEL_SEP, n - 1 - greedy)

    @classmethod
    def _arg_count_error(cls, got: int) -> RemoteProtocolError:
        lo, hi = cls.min_args(), cls.max_args()
        wanted = str(hi) if lo == hi else f"{lo} to {hi}"
        return invalid(f"{cls.TYPE} takes {wanted} argument(s), got {got}")

    @classmethod
    def decode_args(cls, rest: str | None) -> Self:
        """Build the message from the text after ``TYPE::`` (``None``: bare).

        Raises:
            RemoteProtocolError: wrong argument count or kind (a
                :class:`LocalProtocolError` from validation is left for the
                caller to convert).
        """
        if not cls.ARGS:
            if rest is not None:
                raise cls._arg_count_error(1)
            return cls()
        parts = [] if rest is None else cls._split(rest)
        if not cls.min_args() <= len(parts) <= cls.max_args():
            raise cls._arg_count_error(len(parts))
        kwargs: dict[str, Any] = {}
        for (name, arg), part in zip(cls.ARGS, parts, strict=False):
            try:
                kwargs[name] = arg.decode(part)
            except RemoteProtocolError as exc:
                raise RemoteProtocolError(
                    f"{cls.TYPE} {name}: {exc.message}", code=exc.code
                ) from None
        return cast(Any, cls)(**kwargs)

    def encode_args(self) -> str | None:
        """The text after ``TYPE::``, or ``None`` for a bare ``TYPE``.

        Raises:
            LocalProtocolError: when a JSON field holds something JSON cannot.
        """
        if not self.ARGS:
            return None
        args = list(self.ARGS)
        while len(args) > self.min_args() and getattr(self, args[-1][0]) is None:
            args.pop()
        if not args:
            return None
        return CHANNEL_SEP.join(arg.encode(getattr(self, n)) for n, arg in args)

    def to_text(self) -> str:
        """The text frame of this message.

        Raises:
            LocalProtocolError: when a JSON field holds something JSON cannot.
        """
        if self.TYPE is None:
            raise local(f"{type(self).__name__} has no wire TYPE")
        rest = self.encode_args()
        return str(self.TYPE) if rest is None else f"{self.TYPE}{CHANNEL_SEP}{rest}"


class JsonMessage(ChannelMessage, WireObject):
    """A message whose one argument is a JSON object mapped onto its fields.

    Attributes:
        PAYLOAD_OPTIONAL: A bare ``TYPE`` (or ``TYPE::``) is accepted and means
            an empty object.
        BARE_WHEN_EMPTY: Sent as a bare ``TYPE`` when the object would be empty.
        NON_NEGATIVE: Number fields that must be ``>= 0`` when set.
    """

    __slots__ = ()

    PAYLOAD_OPTIONAL: ClassVar[bool] = False
    BARE_WHEN_EMPTY: ClassVar[bool] = False
    NON_NEGATIVE: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        _check_wire_fields(self)
        self._check()

    @classmethod
    def max_args(cls) -> int:
        return 1

    @classmethod
    def min_args(cls) -> int:
        return 0 if cls.PAYLOAD_OPTIONAL else 1

    @classmethod
    def decode_args(cls, rest: str | None) -> Self:
        if rest is None or (cls.PAYLOAD_OPTIONAL and not rest.strip()):
            if cls.PAYLOAD_OPTIONAL:
                return cls()
            raise invalid(f"{cls.TYPE} needs a JSON object")
        return cls._from_json(rest)

    @classmethod
    def _from_json(cls, body: str, **defaults: Any) -> Self:
        obj = json_text.loads_object(body)
        for key, value in defaults.items():
            if obj.get(key) is None:
                obj[key] = value
        return cls.from_dict(obj, what=str(cls.TYPE))

    def encode_args(self) -> str | None:
        data = self.to_dict()
        if self.BARE_WHEN_EMPTY and not data:
            return None
        return json_text.dumps(data)


def _check_wire_fields(msg: JsonMessage) -> None:
    """Check a payload built locally the way ``from_dict`` checks peer input,
    plus finite numbers and ``NON_NEGATIVE``."""
    cls = type(msg)
    label = cls.TYPE or cls.__name__
    for spec in cls._schema():
        value = getattr(msg, spec.name)
        if value is None:
            if not spec.allows_none:
                raise local(f"{label} {spec.name} must be {spec.type_name}, not None")
            continue
        if not spec.check(value):
            raise local(f"{label} {spec.name} must be {spec.type_name}: {clip(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise local(f"{label} {spec.name} must be finite, not {value}")
        if spec.name in cls.NON_NEGATIVE and value < 0:
            raise local(f"{label} {spec.name} must be >= 0, not {value}")
    if cls._extra_name is not None:
        extra = getattr(msg, cls._extra_name)
        if not isinstance(extra, dict):
            raise local(f"{label} {cls._extra_name} must be a dict")
        bad = [k for k in extra if not isinstance(k, str) or k in cls._known]
        if bad:
            raise local(f"{label} extra keys must not shadow fields: {clip(bad)}")


class IdPrefixed(JsonMessage):
    """``TYPE::{json}`` or ``TYPE::{id}::{json}`` (B §4.5, last paragraph).

    The JSON form is told apart by its first non-blank character, ``{``. In the
    id form the id fills ``ID_FIELD`` where the JSON lacks it (or holds
    ``null``); a value in the JSON wins. We send the JSON form, or the id form
    where ``ID_AS_PREFIX`` is set (``JOB_REJECTED``, whose reference sender puts
    the client's job id first) and the id can travel there: an id that contains
    ``::``, ends with ``:`` or starts with ``{`` stays inside the JSON.
    """

    __slots__ = ()
    ID_FIELD: ClassVar[str] = "job_id"
    ID_AS_PREFIX: ClassVar[bool] = False

    @classmethod
    def max_args(cls) -> int:
        return 2

    @classmethod
    def decode_args(cls, rest: str | None) -> Self:
        if rest is None:
            raise invalid(f"{cls.TYPE} needs a JSON object")
        if rest.lstrip().startswith("{"):
            return cls._from_json(rest)
        prefix, sep, body = rest.partition(CHANNEL_SEP)
        if not sep:
            raise invalid(f"{cls.TYPE} needs a JSON object")
        if not prefix:
            return cls._from_json(body)
        return cls._from_json(body, **{cls.ID_FIELD: prefix})

    def encode_args(self) -> str:
        data = self.to_dict()
        ident = data.get(self.ID_FIELD)
        if not (self.ID_AS_PREFIX and _is_prefix_id(ident)):
            return json_text.dumps(data)
        del data[self.ID_FIELD]
        return f"{ident}{CHANNEL_SEP}{json_text.dumps(data)}"


def _is_prefix_id(ident: object) -> bool:
    return is_token(ident) and not cast(str, ident).lstrip().startswith("{")
