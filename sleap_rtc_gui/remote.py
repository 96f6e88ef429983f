"""The real :class:`~sleap_rtc_gui.session.RemoteSession`: one WebRTC data channel.

:class:`ChannelSession` implements the GUI's session Protocol over the core
client API, and :class:`ChannelSessionFactory` opens one per **Run Remotely**:

* **connect**: a signaling client of the room (owned by the session), then
  :func:`~sleap_rtc_core.transport.open_channel` with a
  :class:`~sleap_rtc_core.transport.ChannelAuth` (the room secret of PROTOCOL.md
  B §2.1 item 7, or an Ed25519 key). A worker that refuses the credentials is
  reported as a :class:`~sleap_rtc_core.errors.TransportError`, so the labeler
  sees "Could not connect to worker" (with the reason in the details), not a
  browser login: the refusal is about the room secret, not the server login.
* **check_paths**: :func:`~sleap_rtc_core.client.path_check.check_paths` over
  :meth:`Channel.request`; its report is the presubmission machine's. A labels
  file the worker cannot see gets ``FS_RESOLVE`` suggestions for its name.
* **list_dir**: ``FS_GET_MOUNTS`` for ``""``, else ``FS_LIST_DIR`` page by page.
* **submit**: a :class:`~sleap_rtc_core.protocol.jobspec.TrainJobSpec` through
  :class:`~sleap_rtc_core.client.remote_job.RemoteJob`; **updates** relays
  :meth:`RemoteJob.follow` (progress events, then completion or failure; the
  worker's log lines go to ``on_log`` and :attr:`ChannelSession.log_tail`);
  **stop** is ``CONTROL_COMMAND`` stop (the model so far is kept), **cancel**
  is ``JOB_CANCEL``.

Why here and not in the core: the Protocol's types (``PathReport``,
``DirEntry``, ``SessionUpdate``) belong to the GUI's presubmission model, and
the core may not import ``sleap_rtc_gui``. The module stays Qt-free all the same
(it imports neither PySide6 nor qasync) and runs under plain asyncio; the core
already has the CLI's counterpart,
:func:`~sleap_rtc_core.client.session.run_remote_job`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import posixpath
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from sleap_rtc_core.client import path_check
from sleap_rtc_core.client.legacy_job import LegacyJob, is_legacy_worker
from sleap_rtc_core.client.model_download import (
    download_models,
    download_predictions,
)
from sleap_rtc_core.client.remote_job import JobCallbacks, RemoteJob
from sleap_rtc_core.client.upload import (
    labels_to_send,
    upload_file,
    upload_with_videos,
)
from sleap_rtc_core.errors import (
    ChannelClosed,
    InvalidState,
    JobRejected,
    PathNotAllowed,
    RemoteProtocolError,
    SleapRTCError,
    TrainingFailed,
    TransportError,
)
from sleap_rtc_core.protocol.channel import ChannelMessage
from sleap_rtc_core.protocol.channel_fs import (
    FsErrorCode,
    FsErrorMsg,
    FsGetMountsMsg,
    FsListDirMsg,
    FsListResponseMsg,
    FsMountsResponseMsg,
)
from sleap_rtc_core.protocol.dialect import LEGACY_WORKER_LIMITS
from sleap_rtc_core.protocol.jobspec import TrackJobSpec, spec_from_dict
from sleap_rtc_core.signaling.client.session_io import SignalingClient
from sleap_rtc_core.transport import Channel, ChannelAuth, ChannelAuthFailed
from sleap_rtc_core.transport import open_channel as open_data_channel
from sleap_rtc_gui.presubmit import PathReport
from sleap_rtc_gui.session import DirEntry, SessionUpdate, UpdateKind

__all__ = [
    "AuthSource",
    "ChannelSession",
    "ChannelSessionFactory",
    "SignalingSource",
    "open_session",
]

logger = logging.getLogger(__name__)

SignalingSource = Callable[[str | None], Awaitable[SignalingClient]]
"""Returns a *started* client-role signaling client registered in ``room``; the
session owns it and closes it with the channel."""

AuthSource = Callable[[str | None], ChannelAuth]
"""The channel credentials for ``room`` (room secret and/or Ed25519 key)."""

MAX_LIST_PAGES = 50
"""``FS_LIST_DIR`` pages read for one folder (20 entries each: 1,000 entries)."""

LOG_TAIL = 200
"""Worker log lines kept in :attr:`ChannelSession.log_tail`."""

R = TypeVar("R", bound=ChannelMessage)

_FAILED_LOG_LINES = 20
"""Log lines added to a ``JOB_FAILED`` payload that brings no log of its own."""


class ChannelSession:
    """A :class:`~sleap_rtc_gui.session.RemoteSession` over one data channel.

    Args:
        channel: An authenticated channel to the worker.
        signaling: The signaling client the channel was opened over, closed with
            the session (``None``: the caller owns it).
        request_timeout: Seconds each FS answer may take.
        submit_timeout: Seconds ``JOB_SUBMIT`` may wait for its verdict.
        on_log: Called with each line of the worker's job output.
        legacy: The worker runs sleap-rtc 0.0.7 (its jobs run as
            :class:`~sleap_rtc_core.client.legacy_job.LegacyJob`).

    Attributes:
        channel: The data channel.
        job: The submitted job, once accepted.
        log_tail: The last :data:`LOG_TAIL` lines of the job's output.
    """

    def __init__(
        self,
        channel: Channel,
        *,
        signaling: SignalingClient | None = None,
        request_timeout: float = path_check.DEFAULT_CHECK_TIMEOUT,
        submit_timeout: float = 120.0,
        on_log: Callable[[str], None] | None = None,
        legacy: bool = False,
    ) -> None:
        self.channel = channel
        self.legacy = legacy
        self.signaling = signaling
        self.request_timeout = request_timeout
        self.submit_timeout = submit_timeout
        self.on_log = on_log
        self.job: RemoteJob | None = None
        self.uploaded = False  # the labels went up: models come home always
        self.log_tail: deque[str] = deque(maxlen=LOG_TAIL)
        self._follow: asyncio.Task[dict[str, Any]] | None = None
        self._closed = False

    @property
    def worker_id(self) -> str:
        """The worker at the other end."""
        return self.channel.peer_id

    # ------------------------------------------------------------ presubmission

    async def check_paths(self, labels_path: str) -> PathReport:
        """What the worker sees of ``labels_path`` and its videos.

        Raises:
            TimeoutError: The worker did not answer in time.
            ChannelClosed: The channel closed.
        """
        report = await path_check.check_paths(
            self.channel.request,
            labels_path,
            timeout=self.request_timeout,
            suggest_labels=True,
        )
        if report.error:
            logger.info("! %s: %s", labels_path, report.error)
        return report

    async def list_dir(self, path: str) -> list[DirEntry]:
        """The entries of a worker folder; ``""`` lists the worker's mounts.

        Raises:
            PathNotAllowed: The folder is outside the worker's mounts.
            SleapRTCError: The worker could not list it (``code`` says why).
            TimeoutError: The worker did not answer in time.
            ChannelClosed: The channel closed.
        """
        if not path:
            reply = await self._fs(FsGetMountsMsg(), FsMountsResponseMsg)
            return [
                DirEntry(str(m["path"]), True)
                for m in reply.mounts
                if isinstance(m.get("path"), str) and m["path"]
            ]
        entries: list[DirEntry] = []
        for _page in range(MAX_LIST_PAGES):
            page = await self._fs(FsListDirMsg(path, len(entries)), FsListResponseMsg)
            for item in page.entries:
                name = item.get("name")
                if isinstance(name, str) and name:
                    entries.append(
                        DirEntry(_join(path, name), item.get("type") == "directory")
                    )
            if not page.has_more or not page.entries:
                break
        return entries

    async def _fs(self, message: ChannelMessage, reply_type: type[R]) -> R:
        """Send an FS request; its reply, or the ``FS_ERROR`` raised."""
        reply = await self.channel.request(
            message, (reply_type, FsErrorMsg), self.request_timeout
        )
        if isinstance(reply, reply_type):
            return reply
        if isinstance(reply, FsErrorMsg) and reply.code is FsErrorCode.ACCESS_DENIED:
            raise PathNotAllowed(reply.message, code=reply.code)
        message_text = getattr(reply, "message", str(reply))
        raise SleapRTCError(message_text, code=getattr(reply, "code", None))

    # ------------------------------------------------------------ the job

    async def upload_labels(
        self, labels_path: str, on_progress: Callable[[int, int], None]
    ) -> tuple[str, bool]:
        """Send ``labels_path`` to the worker's upload area (see
        :class:`~sleap_rtc_gui.session.UploadingSession`); a package is
        made (in a thread) and kept, so the next run asks by the same hash
        and sends nothing."""
        local = await asyncio.to_thread(labels_to_send, labels_path)
        sent = await upload_file(self.channel, local, on_progress=on_progress)
        self.uploaded = True
        return sent.path, sent.cached

    async def upload_labels_with_videos(
        self, labels_path: str, on_progress: Callable[[int, int], None]
    ) -> tuple[str, bool, dict[str, str]]:
        """Send ``labels_path`` as it is and each video it names (see
        :class:`~sleap_rtc_gui.session.VideoUploadingSession`)."""
        sent, mappings = await upload_with_videos(
            self.channel, labels_path, on_progress=on_progress
        )
        self.uploaded = True
        videos = {k: v for k, v in mappings.items() if k != labels_path}
        return sent.path, sent.cached, videos

    async def submit(self, spec: Mapping[str, Any]) -> str:
        """Send ``JOB_SUBMIT`` with a train (or track) spec; the worker's job id.

        Raises:
            JobRejected: The worker refused the spec (``errors`` says why), or
                the spec was not a valid ``TrainJobSpec``.
            InvalidState: A job was already submitted on this session.
            TimeoutError: No verdict within ``submit_timeout``.
            ChannelClosed: The channel closed.
        """
        if self.job is not None:
            raise InvalidState("this session already submitted a job")
        try:
            decoded = spec_from_dict(dict(spec))
        except RemoteProtocolError as exc:
            raise JobRejected(
                f"invalid job spec: {exc.message}",
                errors=[{"field": "spec", "message": exc.message}],
            ) from exc
        job_type = LegacyJob if self.legacy else RemoteJob
        job = job_type(self.channel, decoded)
        job_id = await job.submit(self.submit_timeout)
        self.job = job
        logger.info("= job %s accepted by %s", job_id, self.worker_id)
        return job_id

    async def updates(self) -> AsyncIterator[SessionUpdate]:
        """Progress of the accepted job, ending with completion or failure.

        Raises:
            InvalidState: No job was accepted yet, or it is already followed.
            ChannelClosed: The connection was lost before the job ended.
        """
        job = self.job
        if job is None or self._follow is not None:
            raise InvalidState("no accepted job to follow (or followed already)")
        queue: asyncio.Queue[SessionUpdate] = asyncio.Queue()
        callbacks = JobCallbacks(
            # The text as sleap-nn published it: LossViewer gets it unchanged.
            on_progress_text=lambda text: queue.put_nowait(
                SessionUpdate(UpdateKind.PROGRESS, text)
            ),
            on_log=self._log,
        )
        follow = asyncio.ensure_future(job.follow(callbacks))
        self._follow = follow
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                try:
                    await asyncio.wait(
                        {getter, follow}, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    getter.cancel()
                if getter.done() and not getter.cancelled():
                    yield getter.result()
                    continue
                while not queue.empty():  # progress sent before the end comes first
                    yield queue.get_nowait()
                yield self._outcome(follow)
                return
        finally:
            if not follow.done():
                follow.cancel()
                with contextlib.suppress(BaseException):
                    await follow

    def _outcome(self, follow: asyncio.Task[dict[str, Any]]) -> SessionUpdate:
        """The last update, from how :meth:`RemoteJob.follow` ended.

        Raises:
            ChannelClosed: The connection was lost before the job ended.
        """
        exc = follow.exception()
        if exc is None:
            return SessionUpdate(UpdateKind.COMPLETE, follow.result())
        if isinstance(exc, TrainingFailed) and exc.code != "CONNECTION_LOST":
            details = dict(exc.details) or {"message": exc.message}
            if self.log_tail and not details.get("log"):
                details["log"] = "\n".join(list(self.log_tail)[-_FAILED_LOG_LINES:])
            return SessionUpdate(UpdateKind.FAILED, details)
        raise ChannelClosed(str(exc) or "the connection to the worker was lost")

    def _log(self, line: Any) -> None:
        text = str(line)
        self.log_tail.append(text)
        logger.debug("< %s: %s", self.worker_id, text)
        if self.on_log is not None:
            self.on_log(text)

    async def stop(self) -> None:
        """Stop training early (``CONTROL_COMMAND`` stop); the model is kept.

        Raises:
            ChannelClosed: The channel closed.
        """
        if self.job is not None:
            await self.job.stop()

    async def cancel(self) -> None:
        """Cancel the job (``JOB_CANCEL``); nothing is kept.

        Raises:
            ChannelClosed: The channel closed.
        """
        if self.job is not None:
            await self.job.cancel()

    async def download_models(
        self,
        result: Mapping[str, Any],
        dest_root: str | os.PathLike[str],
        path_mappings: Mapping[str, str] | None = None,
    ) -> list[Path]:
        """Bring the finished job's models into ``dest_root`` (SLEAP's
        ``models/``), unless the worker's folders are visible here already;
        always after an upload (they lie in the worker's upload area, hidden
        and swept).

        Raises:
            TransferError: The worker refused or a checksum failed twice.
            ChannelClosed: The channel closed.
        """
        return await download_models(
            self.channel,
            result,
            dest_root,
            path_mappings=path_mappings,
            download=True if self.uploaded else None,
        )

    async def predict(self, spec: TrackJobSpec, dest: str | os.PathLike[str]) -> Path:
        """Run a track job on this channel and bring its predictions to ``dest``
        (unless the worker's file is visible here); the local file.

        Raises:
            JobRejected: The worker refused the spec.
            TrainingFailed: The inference failed (``details`` says why).
            TransferError: The predictions could not be copied.
            ChannelClosed: The channel closed.
        """
        job = (LegacyJob if self.legacy else RemoteJob)(self.channel, spec)
        await job.submit(self.submit_timeout)  # a LegacyJob refuses a track spec
        result = await job.follow(JobCallbacks(on_log=self._log))
        return await self.fetch_predictions(result, dest, spec.path_mappings)

    async def fetch_predictions(
        self,
        result: Mapping[str, Any],
        dest: str | os.PathLike[str],
        path_mappings: Mapping[str, str] | None = None,
    ) -> Path:
        """The predictions of a finished track job here (copied to ``dest``
        unless the worker's file is visible as it is).

        Raises:
            TransferError: The result names no predictions, or the copy failed.
            ChannelClosed: The channel closed.
        """
        return await download_predictions(
            self.channel, result, dest, path_mappings=path_mappings
        )

    async def close(self) -> None:
        """Close the channel and the signaling client it owns (idempotent).

        A job still running on the worker is not cancelled: the worker decides
        what happens to a job whose owner went away.
        """
        if self._closed:
            return
        self._closed = True
        follow, self._follow = self._follow, None
        if follow is not None and not follow.done():
            follow.cancel()
            with contextlib.suppress(BaseException):
                await follow
        await self.channel.close()
        if self.signaling is not None:
            await self.signaling.close()


async def open_session(
    signaling: SignalingClient,
    worker_id: str,
    auth: ChannelAuth,
    *,
    timeout: float = 15.0,
    own_signaling: bool = False,
    **options: Any,
) -> ChannelSession:
    """Open an authenticated channel to ``worker_id`` as a session.

    Args:
        signaling: A started client-role signaling client.
        worker_id: The worker to connect to.
        auth: Our channel credentials.
        timeout: Seconds for the answer and the ICE/DTLS set-up.
        own_signaling: Close ``signaling`` with the session (and on failure).
        **options: Passed to :class:`ChannelSession`.

    Raises:
        TransportError: No room secret or key, the worker refused our
            credentials, or the worker refused the connection.
        IceFailed: No connection within ``timeout``.
        PeerNotFound: The server does not know ``worker_id``.
    """
    try:
        _require_credentials(auth)
        legacy = await is_legacy_worker(signaling, worker_id)
        if legacy:
            logger.warning("! worker %s: %s", worker_id, LEGACY_WORKER_LIMITS)
        try:
            channel = await open_data_channel(
                signaling,
                worker_id,
                auth=auth,
                timeout=timeout,
                legacy_worker=legacy,
            )
        except ChannelAuthFailed as exc:
            # Not AuthError: the server login is fine, the room secret is not.
            raise TransportError(
                f"{worker_id} refused our room credentials, or we refused its "
                f"proof ({exc.message}); check the room secret",
                code=exc.code,
            ) from exc
    except BaseException:
        if own_signaling:
            await signaling.close()
        raise
    logger.debug("= channel to %s open", worker_id)
    return ChannelSession(
        channel,
        signaling=signaling if own_signaling else None,
        legacy=legacy,
        **options,
    )


class ChannelSessionFactory:
    """The :data:`~sleap_rtc_gui.session.SessionFactory` of the real app.

    Each call connects a signaling client of the room (``signaling``), opens an
    authenticated channel to the worker with the room's credentials (``auth``)
    and returns a :class:`ChannelSession` that owns both.

    Args:
        signaling: Returns a started signaling client registered in a room.
        auth: The channel credentials for a room.
        open_timeout: Seconds for the answer and the ICE/DTLS set-up.
        **options: Passed to each :class:`ChannelSession`.
    """

    def __init__(
        self,
        signaling: SignalingSource,
        auth: AuthSource,
        *,
        open_timeout: float = 15.0,
        **options: Any,
    ) -> None:
        self.signaling = signaling
        self.auth = auth
        self.open_timeout = open_timeout
        self.options = options

    async def __call__(self, worker_id: str, room: str | None) -> ChannelSession:
        """Open a session to ``worker_id`` in ``room``.

        Raises:
            TransportError: See :func:`open_session`.
            SleapRTCError: The signaling client could not connect.
        """
        auth = self.auth(room)
        _require_credentials(auth)  # before anything connects
        client = await self.signaling(room)
        return await open_session(
            client,
            worker_id,
            auth,
            timeout=self.open_timeout,
            own_signaling=True,
            **self.options,
        )


def _require_credentials(auth: ChannelAuth) -> None:
    """Fail early without a secret or key: every worker would refuse us.

    Raises:
        TransportError: ``NO_ROOM_SECRET``.
    """
    if auth.secret is None and auth.signing_key is None:
        raise TransportError(
            "no room secret: pass --room-secret, set SLEAP_ROOM_SECRET or write "
            "~/.sleap-rtc/room-secrets/ROOM",
            code="NO_ROOM_SECRET",
        )


def _posix(path: str) -> str:
    return path.replace("\\", "/")


def _join(folder: str, name: str) -> str:
    """``folder/name`` in the worker's separator style."""
    if "\\" in folder and "/" not in folder:
        return folder.rstrip("\\") + "\\" + name
    return posixpath.join(folder, name)
