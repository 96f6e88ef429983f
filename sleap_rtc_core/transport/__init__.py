"""WebRTC transport: peer connection, data channel, file transfer.

The client opens an authenticated :class:`Channel` to a worker with
:func:`open_channel`; the worker answers offers with a
:class:`ChannelAcceptor`. Both run the AUTH handshake of PROTOCOL.md B §4.2
(:mod:`.auth`) before a channel carries a command. Files travel with
:func:`send_file` / :func:`receive_file` (B §4.4), sizes and SHA-256 checked.
"""

from __future__ import annotations

from .auth import (
    AUTH_REQUIRED,
    AuthorizedKeys,
    ChannelAuth,
    ChannelAuthFailed,
    KeyCache,
    authenticate,
    verify_peer,
)
from .channel import (
    DEFAULT_HIGH_WATER,
    DEFAULT_LOW_WATER,
    DEFAULT_MAX_QUEUE,
    KEEPALIVE_INTERVAL,
    Channel,
    ChannelSubscription,
    Received,
)
from .peer import (
    DEFAULT_LABEL,
    ChannelAcceptor,
    ChannelHandler,
    ice_configuration,
    open_channel,
)
from .transfer import (
    CHUNK_SIZE,
    DOWNLOAD_SUBDIR,
    PathPolicy,
    ProgressCallback,
    SentFile,
    UploadCache,
    answer_upload_check,
    file_sha256,
    receive_file,
    send_file,
    serve_upload,
)

__all__ = [
    "AUTH_REQUIRED",
    "CHUNK_SIZE",
    "DOWNLOAD_SUBDIR",
    "DEFAULT_HIGH_WATER",
    "DEFAULT_LABEL",
    "DEFAULT_LOW_WATER",
    "DEFAULT_MAX_QUEUE",
    "KEEPALIVE_INTERVAL",
    "AuthorizedKeys",
    "Channel",
    "ChannelAcceptor",
    "ChannelAuth",
    "ChannelAuthFailed",
    "ChannelHandler",
    "ChannelSubscription",
    "KeyCache",
    "PathPolicy",
    "ProgressCallback",
    "Received",
    "SentFile",
    "UploadCache",
    "answer_upload_check",
    "authenticate",
    "file_sha256",
    "ice_configuration",
    "open_channel",
    "receive_file",
    "send_file",
    "serve_upload",
    "verify_peer",
]
