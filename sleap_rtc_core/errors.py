"""One exception tree for all of sleap-rtc.

Every error we raise derives from :class:`SleapRTCError` and carries a ``code`` that
names the wire error it maps to (the ``code`` of a signaling ``error`` message, an
``FS_ERROR`` code, a job-spec field error code), so that an adapter can answer a
peer without a lookup table of its own::

    SleapRTCError
    ├── ProtocolError
    │   ├── LocalProtocolError        we were about to send something invalid
    │   └── RemoteProtocolError       a peer sent something invalid
    ├── SignalingError
    │   ├── AuthError                 credentials refused (AUTH_FAILED, ROOM_*)
    │   ├── PeerNotFound              target peer unknown (PEER_NOT_FOUND)
    │   ├── ConnectionLost            the server stayed unreachable past give-up
    │   ├── ServerError               the server answered a request with an error
    │   ├── HttpError                 an HTTP request answered with a status
    │   └── RedisUnavailable          Redis unreachable when the server starts
    ├── TransportError
    │   ├── IceFailed                 ICE / DTLS did not connect in time
    │   ├── ChannelClosed             the data channel closed under us
    │   ├── ChannelAuthFailed         the channel's AUTH failed (also AuthError)
    │   └── TransferError             a file transfer failed (size, hash, I/O)
    │       └── UploadRefused         the worker refused an upload (typed reason)
    ├── JobError
    │   ├── JobRejected               the worker refused the spec (field errors)
    │   ├── TrainingFailed            the job ran and failed (JobFailedError)
    │   ├── NoWorkersAvailableError   discovery found nobody
    │   └── NoWorkersAcceptedError    everybody asked said no
    ├── PathNotAllowed                a path outside the worker's mounts
    ├── QuotaExceeded                 a peer wrote all that FS_WRITE_SLP allows
    ├── UploadConflict                the same upload runs on another channel
    ├── LabelsUnreadable              sleap-io cannot read a labels file
    ├── PatternTooBroad               a file search too vague to run
    ├── GpuNotFound                   no such GPU on this machine
    ├── ConfigError                   a worker configuration is unusable
    ├── CredentialsError              the flags name no usable credential
    ├── AdminError                    an admin command cannot do what it was asked
    ├── AlreadyExists                 a unique name is taken (also ValueError)
    ├── InvalidState                  an illegal transition (also AssertionError)
    └── ConcurrencyError              two readers on one socket (also RuntimeError)

Raise :class:`LocalProtocolError` inside our code; decoders convert malformed peer
input into :class:`RemoteProtocolError` at the receive boundary, so that logs and
UIs can tell "we did wrong" from "they did wrong".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

__all__ = [
    "AdminError",
    "AlreadyExists",
    "AuthError",
    "ChannelAuthFailed",
    "ChannelClosed",
    "ConfigError",
    "CredentialsError",
    "GpuNotFound",
    "HttpError",
    "LabelsUnreadable",
    "PatternTooBroad",
    "RedisUnavailable",
    "ConcurrencyError",
    "ConnectionLost",
    "ErrorCode",
    "IceFailed",
    "InvalidState",
    "JobError",
    "JobFailedError",
    "JobRejected",
    "LocalProtocolError",
    "NoWorkersAcceptedError",
    "NoWorkersAvailableError",
    "PathNotAllowed",
    "PeerNotFound",
    "QuotaExceeded",
    "ProtocolError",
    "RemoteProtocolError",
    "ServerError",
    "SignalingError",
    "SleapRTCError",
    "TrainingFailed",
    "TransferError",
    "TransportError",
    "UploadConflict",
    "UploadRefused",
]


class ErrorCode(StrEnum):
    """Wire error codes of signaling ``error`` messages (PROTOCOL.md A.1)."""

    INVALID_JSON = "INVALID_JSON"
    INVALID_MESSAGE = "INVALID_MESSAGE"
    UNKNOWN_MESSAGE_TYPE = "UNKNOWN_MESSAGE_TYPE"
    AUTH_FAILED = "AUTH_FAILED"
    ROOM_NOT_FOUND = "ROOM_NOT_FOUND"
    ROOM_EXPIRED = "ROOM_EXPIRED"
    NOT_IN_ROOM = "NOT_IN_ROOM"
    PEER_NOT_FOUND = "PEER_NOT_FOUND"
    PEER_NOT_IN_ROOM = "PEER_NOT_IN_ROOM"
    IDENTITY_MISMATCH = "IDENTITY_MISMATCH"
    DELIVERY_FAILED = "DELIVERY_FAILED"
    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"
    RATE_LIMITED = "RATE_LIMITED"
    # Our additions (limits of A.1 "Limits"): a room or the server is full.
    ROOM_FULL = "ROOM_FULL"
    SERVER_FULL = "SERVER_FULL"
    # Not sent by the server; used by our own layers.
    CONNECTION_LOST = "CONNECTION_LOST"
    INTERNAL_ERROR = "INTERNAL_ERROR"


class SleapRTCError(Exception):
    """Root of every error sleap-rtc raises.

    Attributes:
        code: The wire error code this error maps to.
        message: A sentence a person can act on.
    """

    default_code: str = ErrorCode.INTERNAL_ERROR.value

    def __init__(self, message: str = "", *, code: str | Enum | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is None:
            code = self.default_code
        self.code: str = code.value if isinstance(code, Enum) else str(code)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r})"


class ProtocolError(SleapRTCError):
    """A message broke the protocol."""

    default_code = ErrorCode.INVALID_MESSAGE.value


class LocalProtocolError(ProtocolError):
    """We were about to send or do something the protocol forbids."""


class RemoteProtocolError(ProtocolError):
    """A peer sent something the protocol forbids (malformed, unknown, wrong type)."""


class SignalingError(SleapRTCError):
    """A signaling-level failure."""


class AuthError(SignalingError):
    """Credentials were refused."""

    default_code = ErrorCode.AUTH_FAILED.value


class PeerNotFound(SignalingError):
    """The target peer is not registered (in this room)."""

    default_code = ErrorCode.PEER_NOT_FOUND.value


class ConnectionLost(SignalingError):
    """The signaling server stayed unreachable past the give-up time."""

    default_code = ErrorCode.CONNECTION_LOST.value


class ServerError(SignalingError):
    """The server answered a request with an ``error`` message.

    Attributes:
        reply: The error message as received.
    """

    def __init__(
        self,
        message: str = "",
        *,
        code: str | Enum | None = None,
        reply: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.reply: Mapping[str, Any] = dict(reply or {})


class HttpError(SignalingError):
    """An HTTP request is answered with ``{"detail": detail}`` and ``status``
    (the server's routes raise it; the client helpers see it).

    Attributes:
        status: The HTTP status.
        detail: What went wrong, for a person.
        headers: Extra response headers (``Retry-After`` …).
    """

    default_code = "HTTP_ERROR"

    def __init__(
        self, status: int, detail: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})


class RedisUnavailable(SignalingError):
    """Redis could not be reached when the server started."""

    default_code = "REDIS_UNAVAILABLE"


class TransportError(SleapRTCError):
    """A WebRTC transport failure."""

    default_code = "TRANSPORT_ERROR"


class IceFailed(TransportError):
    """ICE or DTLS did not connect within the time allowed."""

    default_code = "ICE_FAILED"


class ChannelClosed(TransportError):
    """The data channel closed while we still needed it."""

    default_code = "CHANNEL_CLOSED"


class TransferError(TransportError):
    """A file transfer failed: size or checksum mismatch, or an I/O error."""

    default_code = "TRANSFER_FAILED"


class UploadRefused(TransferError):
    """The worker refused or failed an upload with a typed reason.

    ``code`` is one of :class:`~.protocol.channel_transfer.UploadErrorCode`
    (``QUOTA_EXCEEDED``, ``ACCESS_DENIED``, ``CHECKSUM_MISMATCH`` …), read from
    the ``CODE: message`` text of ``FILE_UPLOAD_ERROR``, so a client can tell a
    full disk from a bad path without parsing prose.
    """

    default_code = "UPLOAD_REFUSED"


class ChannelAuthFailed(TransportError, AuthError):
    """The data-channel AUTH handshake failed (either side's view).

    Both a :class:`TransportError` and an :class:`AuthError`, so callers that
    catch either see it.

    Attributes:
        reason: ``invalid``, ``missing`` or ``timeout``.
    """

    default_code = "AUTH_FAILED"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class JobError(SleapRTCError):
    """A job could not be placed or did not succeed."""

    default_code = "JOB_ERROR"


class JobRejected(JobError):
    """The worker rejected the job spec.

    Attributes:
        errors: Field-level errors as sent by the worker, each a mapping with
            ``field``, ``message`` and optionally ``code`` and ``path``.
    """

    default_code = "JOB_REJECTED"

    def __init__(
        self,
        message: str = "",
        *,
        errors: Sequence[Mapping[str, Any]] = (),
        code: str | Enum | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.errors: list[dict[str, Any]] = [dict(e) for e in errors]


class TrainingFailed(JobError):
    """The job started and then failed on the worker.

    Attributes:
        details: What the worker reported (exit code, stderr tail, ...).
    """

    default_code = "TRAINING_FAILED"

    def __init__(
        self,
        message: str = "",
        *,
        code: str | Enum | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.details: dict[str, Any] = dict(details or {})


JobFailedError = TrainingFailed
"""The name the client API documents for a failed job."""


class NoWorkersAvailableError(JobError):
    """Discovery found no worker that matches the job's requirements."""

    default_code = "NO_WORKERS_AVAILABLE"


class NoWorkersAcceptedError(JobError):
    """Every worker asked declined the job.

    Attributes:
        reasons: Worker peer id → the reason it gave (or ``"timeout"``).
    """

    default_code = "NO_WORKERS_ACCEPTED"

    def __init__(
        self,
        message: str = "",
        *,
        reasons: Mapping[str, str] | None = None,
        code: str | Enum | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.reasons: dict[str, str] = dict(reasons or {})


class PathNotAllowed(SleapRTCError):
    """A path resolves outside every allowed mount (or there are no mounts)."""

    default_code = "ACCESS_DENIED"


class QuotaExceeded(SleapRTCError):
    """A peer (or all peers together) wrote as many labels copies, or as many
    bytes, as the worker allows ``FS_WRITE_SLP`` in one process lifetime."""

    default_code = "QUOTA_EXCEEDED"


class UploadConflict(SleapRTCError):
    """The same content is being uploaded by the same uploader on another
    channel right now (the worker answers ``BUSY``)."""

    default_code = "BUSY"


class LabelsUnreadable(SleapRTCError):
    """sleap-io could not read (or write) a labels file."""

    default_code = "INVALID_REQUEST"


class PatternTooBroad(SleapRTCError):
    """A wildcard pattern with too few literal characters."""

    default_code = "PATTERN_TOO_BROAD"


class GpuNotFound(SleapRTCError):
    """The GPU index asked for does not exist on this machine."""

    default_code = "GPU_NOT_FOUND"


class ConfigError(SleapRTCError):
    """The worker configuration (file, environment or flags) is unusable.

    Attributes:
        path: The file at fault, when a file is.
        key: The setting at fault (``mounts[1].path``), when one is.
    """

    default_code = "INVALID_CONFIG"

    def __init__(
        self, message: str, *, path: Path | None = None, key: str | None = None
    ) -> None:
        where = ": ".join(str(p) for p in (path, key) if p is not None)
        super().__init__(f"{where}: {message}" if where else message)
        self.path = path
        self.key = key


class CredentialsError(SleapRTCError, ValueError):
    """The flags do not name one usable credential."""

    default_code = "INVALID_ARGUMENT"


class AdminError(SleapRTCError):
    """A command cannot do what it was asked (unknown room, duplicate user …)."""

    default_code = "INVALID_ARGUMENT"


class AlreadyExists(SleapRTCError, ValueError):
    """A unique name (username, invite code, CLI state) is taken."""

    default_code = "ALREADY_EXISTS"


class InvalidState(SleapRTCError, AssertionError):
    """An operation is illegal in the current state; the state is unchanged."""

    default_code = "INVALID_STATE"


class ConcurrencyError(SleapRTCError, RuntimeError):
    """Two tasks tried to read one socket, or similar misuse."""

    default_code = "CONCURRENCY_ERROR"
