"""What the GUI needs from a connection to one worker, as small Protocols.

The data channel (``sleap_rtc_core.transport``) and the path checks
(``sleap_rtc_core.client.path_check``) are built beside the GUI; the GUI codes
against these Protocols so that any implementation fits, and tests drive the
dialogs with simple in-test implementations.

* :class:`RemoteSession`: one authenticated channel to the chosen worker:
  ``check_paths`` (labels file and videos, with suggestions), ``list_dir`` (browse
  the worker's mounts, ``FS_LIST_DIR``), ``submit`` (``JOB_SUBMIT``, returns the
  job id or raises :class:`~sleap_rtc_core.errors.JobRejected`), ``updates``
  (progress, then the end of the job), ``stop`` (ask the trainer to stop early),
  ``cancel`` (end the job, keep nothing) and ``close``.
* :data:`SessionFactory`: opens a session to ``(worker_id, room)``.
* :class:`AuthProvider`: the stored login and the browser login.

Errors a session raises are mapped onto presubmission events by
:func:`classify_error`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from sleap_rtc_core.errors import (
    AuthError,
    ChannelClosed,
    ConnectionLost,
    JobRejected,
    NoWorkersAvailableError,
    PeerNotFound,
    TransportError,
)
from sleap_rtc_gui.presubmit import (
    ChannelLost,
    ConnectFailed,
    Event,
    LoginExpired,
    NoWorkerAvailable,
    PathReport,
    TimedOut,
)
from sleap_rtc_gui.presubmit import JobRejected as JobRejectedEvent

__all__ = [
    "AuthProvider",
    "DirEntry",
    "RemoteSession",
    "SessionFactory",
    "SessionUpdate",
    "UpdateKind",
    "UploadingSession",
    "VideoUploadingSession",
    "classify_error",
    "no_data_channel",
]


class UpdateKind(StrEnum):
    """What a :class:`SessionUpdate` reports."""

    PROGRESS = "progress"
    """A trainer event (``payload`` is the event, text or mapping)."""
    COMPLETE = "complete"
    """``JOB_COMPLETE`` (``payload`` is the worker's result)."""
    FAILED = "failed"
    """``JOB_FAILED`` (``payload`` is the worker's details)."""


@dataclass(frozen=True, slots=True)
class SessionUpdate:
    """One thing the running job reported.

    Attributes:
        kind: Progress, completion or failure.
        payload: The event or the worker's payload.
    """

    kind: UpdateKind
    payload: Any = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DirEntry:
    """One entry of a worker folder (``FS_LIST_DIR``).

    Attributes:
        path: The worker path.
        is_dir: A folder (browse into it) rather than a file.
    """

    path: str
    is_dir: bool = False


@runtime_checkable
class RemoteSession(Protocol):
    """An open, authenticated channel to one worker."""

    async def check_paths(self, labels_path: str) -> PathReport:
        """What the worker sees of ``labels_path`` and its videos."""
        ...

    async def list_dir(self, path: str) -> list[DirEntry]:
        """The entries of a worker folder (``""``: the mounts)."""
        ...

    async def submit(self, spec: Mapping[str, Any]) -> str:
        """Send ``JOB_SUBMIT``; the job id once accepted.

        Raises:
            JobRejected: The worker refused the spec (``errors`` says why).
        """
        ...

    def updates(self) -> AsyncIterator[SessionUpdate]:
        """Progress of the accepted job, ending with completion or failure."""
        ...

    async def stop(self) -> None:
        """Ask the trainer to stop early (LossViewer's **Stop Early**)."""
        ...

    async def cancel(self) -> None:
        """Cancel the job (LossViewer's **Cancel Training**): nothing is kept."""
        ...

    async def close(self) -> None:
        """Close the channel."""
        ...


@runtime_checkable
class UploadingSession(Protocol):
    """A session that can send the labels file to a worker that cannot see it
    (its own Protocol: a session without it answers the upload with a
    refusal)."""

    async def upload_labels(
        self, labels_path: str, on_progress: Callable[[int, int], None]
    ) -> tuple[str, bool]:
        """Make the worker hold ``labels_path`` (a package of its labeled
        frames when its videos are outside it), reporting (bytes held, size).

        Returns:
            The stored file on the worker, and whether it was there already.

        Raises:
            UploadRefused: the worker refused (``code`` says why).
            LabelsUnreadable, OSError: the file cannot be read or packaged.
            ChannelClosed: the channel dropped.
        """
        ...


@runtime_checkable
class VideoUploadingSession(Protocol):
    """A session that can also send a ``.slp`` as it is with its videos."""

    async def upload_labels_with_videos(
        self, labels_path: str, on_progress: Callable[[int, int], None]
    ) -> tuple[str, bool, dict[str, str]]:
        """Make the worker hold ``labels_path`` and each video it names,
        reporting (bytes held, bytes in all).

        Returns:
            The stored labels, whether the worker had them already, and the
            job's mappings of each video here to where it is stored.

        Raises:
            UploadRefused: the worker refused (``code`` says why).
            LabelsUnreadable, OSError: a file cannot be read (a video missing
                here, an image sequence: send a package instead).
            ChannelClosed: the channel dropped.
        """
        ...


SessionFactory = Callable[[str, str | None], Awaitable[RemoteSession]]
"""Opens a :class:`RemoteSession` to ``(worker_id, room)``."""


class AuthProvider(Protocol):
    """The labeler's login to the signaling server."""

    def check(self) -> tuple[bool, bool]:
        """``(ok, expired)`` for the stored token (no I/O beyond a file read)."""
        ...

    async def login(self) -> bool:
        """Run the browser login; True once a token is stored."""
        ...


def classify_error(exc: BaseException, *, submitting: bool = False) -> Event:
    """The presubmission event that a session error stands for.

    Args:
        exc: What a session call raised.
        submitting: The error came from ``submit`` (a closed channel then means
            "connection lost", not "could not connect").
    """
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, JobRejected):
        errors = exc.errors or [{"field": "job", "message": exc.message}]
        return JobRejectedEvent(errors=errors)
    if isinstance(exc, TimeoutError):
        return TimedOut(step=reason)
    if isinstance(exc, AuthError):
        return LoginExpired()
    if isinstance(exc, PeerNotFound | NoWorkersAvailableError):
        return NoWorkerAvailable(reason=reason)
    if isinstance(exc, ChannelClosed | ConnectionLost) or submitting:
        return ChannelLost(reason=reason)
    return ConnectFailed(reason=reason)  # TransportError, OSError, anything else


async def no_data_channel(worker_id: str, room: str | None) -> RemoteSession:
    """The session factory used until a data-channel client is configured.

    Raises:
        TransportError: Always (shown as "Could not connect to worker").
    """
    raise TransportError(f"no data-channel client is configured to reach {worker_id}")
