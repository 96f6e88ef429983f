"""Send a finished job's model folders back to the client that trained them.

A trained model is a run folder on the worker (``best.ckpt``, the training
config, ``training_log.csv``, metrics, the run's labels split). The client gets
it with ``FILE_DOWNLOAD_REQUEST`` (PROTOCOL.md B §4.4; our extension), which
:class:`ModelFileServer` answers for requests that name a job::

    FILE_DOWNLOAD_REQUEST::{"path": RUN_DIR, "job_id": J, "manifest": true,
                            "transfer_id": T}
      → FILE_DOWNLOAD_META::{"name": "manifest.json", "kind": "model_manifest",
                             "size", "sha256", "transfer_id": T, "path": RUN_DIR}
        + the manifest's JSON bytes + END_OF_FILE
    FILE_DOWNLOAD_REQUEST::{"path": RUN_DIR/REL, "job_id": J, "offset"?,
                            "sha256"?, "transfer_id": T}
      → FILE_DOWNLOAD_META::{"name", "kind": "model_file", "size", "sha256",
                             "offset", "transfer_id": T}
        + bytes [offset, size) + END_OF_FILE

The manifest is a :class:`~..protocol.channel_transfer.ModelManifest` (``{"job_id",
"run_dir", "name", "files": [{"path", "size", "sha256"}]}``, ``path`` relative
to the run folder); it travels as a file so that it is size- and
SHA-256-checked like one. A file
request with ``offset`` > 0 and the ``sha256`` the client was given resumes at
that offset if the file is unchanged; otherwise the whole file is sent again
(``offset`` 0 in the meta) and the client starts that file over.

Only the job's owner may download: the channel that submitted it, one attached
to it with its secret (``JOB_ATTACH``), or a request that carries the secret as
``"job_secret"``. Any other channel, whatever its peer id, an unknown job or
one that did not succeed gets ``FS_ERROR::ACCESS_DENIED`` /
``PATH_NOT_FOUND``), and only what lies inside one of the job's run folders,
symlinks resolved, and inside the worker's mounts. Requests without a
``job_id`` are refused (``INVALID_REQUEST``): the worker serves no other files.
Finished jobs are remembered as long as :class:`~..jobs.service.JobService` keeps them
(its ``keep_finished`` last ones, for the worker's lifetime).

An inference job's predictions come home the same way, as one file::

    FILE_DOWNLOAD_REQUEST::{"path": PREDICTIONS, "job_id": J,
                            "predictions": true, "offset"?, "sha256"?,
                            "transfer_id": T}
      → FILE_DOWNLOAD_META::{"name", "kind": "predictions", "size", "sha256",
                             "offset", "transfer_id": T, "path"}
        + bytes [offset, size) + END_OF_FILE

``PREDICTIONS`` must be exactly the file the job's result names
(``predictions_path``, symlinks resolved, inside the mounts); the same owner and
``succeeded`` checks apply, and any other path is ``ACCESS_DENIED``.

No path is checked and then opened by name. The file asked for is opened
beneath its mount (:func:`~.beneath.open_beneath`); the run folder too, and
the file counts as inside it only if the folder's descriptor leads to the same
file (device and inode) along the file's real path without following any
link (:func:`~.beneath.open_relative`). Its size, SHA-256 and bytes are then
read from that one descriptor (``pread``), so a symlink swapped meanwhile can
at most make the request fail: it cannot serve another file's bytes. The
manifest lists a run folder through descriptors in the same way.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import os
import stat as stat_module
from collections.abc import Callable, Iterator, Sequence

from ...errors import ChannelClosed, PathNotAllowed, SleapRTCError, TransferError
from ...protocol.channel_fs import FsErrorCode, FsErrorMsg
from ...protocol.channel_transfer import (
    MODEL_FILE_KIND,
    MODEL_MANIFEST_KIND,
    MODEL_MANIFEST_NAME,
    PREDICTIONS_KIND,
    EndOfFileMsg,
    FileDownloadMetaMsg,
    FileDownloadRequestMsg,
    ModelManifest,
    ModelManifestEntry,
    model_run_dirs,
    predictions_path_of,
)
from ...protocol.states import JobState
from ...transport.channel import Channel
from ...transport.transfer import CHUNK_SIZE
from ..jobs.results import JobInfo
from .beneath import Opened, open_beneath, open_relative, same_file
from .mounts import MountPolicy

__all__ = ["JobAuthority", "ModelFileServer"]

logger = logging.getLogger(__name__)

JobAuthority = Callable[[str, Channel, object], JobInfo | None]
"""The job of this id if this channel may have its files: it is attached to
the job, or the request shows the job's secret (``JobService.authorized_job``);
``None`` otherwise (unknown or not its)."""

_BLOCK = 1 << 20
_MAX_MANIFEST_DEPTH = 64
"""Folder levels a manifest descends (each level holds a descriptor)."""


class _Refusal(SleapRTCError):
    """A request refused, with the ``FS_ERROR`` code and message to answer."""

    def __init__(self, code: FsErrorCode, message: str) -> None:
        super().__init__(message, code=code)


def _below(real: str, root: str) -> list[str] | None:
    """The components of ``real`` below ``root`` (both real paths), or
    ``None`` when it does not lie there."""
    if real == root:
        return []
    prefix = root.rstrip("/") + "/"
    return real[len(prefix) :].split("/") if real.startswith(prefix) else None


def _close_if_opened(future: asyncio.Future[Opened]) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().close()


async def _opened_in_thread(fn: Callable[..., Opened], *args: object) -> Opened:
    """``fn(*args)`` in a thread; if we are cancelled meanwhile, what it opens
    is closed when it returns instead of being lost."""
    future = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        future.add_done_callback(_close_if_opened)
        raise


class ModelFileServer:
    """Answers model downloads on a worker (see the module docstring).

    Args:
        authority: The job a channel may download, by id (see
            :data:`JobAuthority`).
        policy: The worker's mounts: every file served is opened beneath
            them, whatever the job's result names.
    """

    def __init__(self, authority: JobAuthority, policy: MountPolicy) -> None:
        self._authority = authority
        self._policy = policy
        self._hashes: dict[tuple[int, int, int, int], str] = {}

    @staticmethod
    def handles(msg: object) -> bool:
        """Whether ``msg`` is a request this server answers."""
        return isinstance(msg, FileDownloadRequestMsg)

    async def handle(self, msg: FileDownloadRequestMsg, channel: Channel) -> None:
        """Answer one download request on ``channel`` (never raises for a bad
        request, nor when the channel closes mid-transfer: that is logged)."""
        try:
            info = self._owned_job(msg, channel)
            if msg.extra.get("predictions") is True:
                await self._send_predictions(msg, channel, info)
                return
            job_id, run_dirs = self._run_dirs_of(info)
            if msg.extra.get("manifest") is True:
                await self._send_manifest(msg, channel, job_id, run_dirs)
            else:
                await self._send_model_file(msg, channel, run_dirs)
        except _Refusal as refusal:
            logger.info(
                "! %s download of %s refused: %s",
                channel.peer_id,
                msg.path[:200],
                refusal.message,
            )
            try:
                await channel.send(
                    FsErrorMsg(FsErrorCode(refusal.code), refusal.message[:500])
                )
            except ChannelClosed:
                pass
        except (ChannelClosed, TransferError) as exc:
            logger.info(
                "! %s download of %s stopped: %s", channel.peer_id, msg.path, exc
            )
        except OSError as exc:
            logger.warning("! download of %s failed: %s", msg.path, exc)
            # strerror, not str(exc): the latter may name a resolved path.
            reason = exc.strerror or type(exc).__name__
            try:
                await channel.send(
                    FsErrorMsg(FsErrorCode.PATH_NOT_FOUND, f"cannot read it: {reason}")
                )
            except ChannelClosed:
                pass

    # --------------------------------------------------------------- checks

    def _owned_job(self, msg: FileDownloadRequestMsg, channel: Channel) -> JobInfo:
        """The succeeded job the request names, if this channel owns it."""
        job_id = msg.extra.get("job_id")
        if not isinstance(job_id, str) or not job_id:
            raise _Refusal(
                FsErrorCode.INVALID_REQUEST,
                "this worker serves only the models of a job: give job_id",
            )
        info = self._authority(job_id, channel, msg.extra.get("job_secret"))
        if info is None:
            # The same answer for "unknown" and "not yours": ids are not probed.
            raise _Refusal(FsErrorCode.ACCESS_DENIED, f"no job {job_id} of yours")
        if info.state is not JobState.SUCCEEDED or info.result is None:
            raise _Refusal(
                FsErrorCode.PATH_NOT_FOUND,
                f"job {job_id} has no results ({info.state.value})",
            )
        return info

    @staticmethod
    def _run_dirs_of(info: JobInfo) -> tuple[str, list[str]]:
        job_id = info.job_id
        dirs = list(model_run_dirs(info.result or {}))
        if not dirs:
            raise _Refusal(FsErrorCode.PATH_NOT_FOUND, f"job {job_id} has no models")
        return job_id, dirs

    def _open(self, path: str) -> Opened:
        """``path`` opened for reading beneath its mount; blocking (thread)."""
        if not os.path.isabs(path):
            raise _Refusal(FsErrorCode.INVALID_REQUEST, "the path must be absolute")
        try:
            return open_beneath(self._policy, path, read=True)
        except PathNotAllowed:
            raise _Refusal(
                FsErrorCode.ACCESS_DENIED, f"{path} is outside the worker's mounts"
            ) from None
        except FileNotFoundError:
            raise _Refusal(
                FsErrorCode.PATH_NOT_FOUND, f"no such file: {path}"
            ) from None

    def _lies_in(self, opened: Opened, run_dir: str, *, folder: bool) -> bool:
        """Whether ``opened`` is ``run_dir`` (``folder``) or a file below it:
        the run folder's own descriptor leads to the same file along
        ``opened``'s real path, through no symlink; blocking (thread)."""
        try:
            root = open_beneath(self._policy, run_dir)
        except (PathNotAllowed, OSError):
            return False
        with root:
            names = _below(opened.real, root.real)
            if not root.is_dir or names is None or (folder and names):
                return False
            try:
                with open_relative(root, names) as again:
                    return same_file(again.stat, opened.stat)
            except (OSError, ValueError):
                return False

    def _open_in_run_dirs(
        self, path: str, run_dirs: Sequence[str], *, folder: bool
    ) -> Opened:
        """``path`` opened, if it is one of ``run_dirs`` (``folder``) or a
        file inside one; blocking (thread)."""
        opened = self._open(path)
        try:
            if opened.is_dir if folder else opened.is_file:
                for run_dir in run_dirs:
                    if self._lies_in(opened, run_dir, folder=folder):
                        return opened
        except BaseException:
            opened.close()
            raise
        opened.close()
        raise _Refusal(
            FsErrorCode.ACCESS_DENIED,
            f"{path} is not {'a run folder' if folder else 'a file in a run folder'}"
            " of this job",
        )

    def _open_model_file(self, path: str, run_dirs: Sequence[str]) -> Opened:
        """``path`` opened, if it is a file in a run folder; blocking."""
        return self._open_in_run_dirs(path, run_dirs, folder=False)

    # ------------------------------------------------------------- manifest

    def _size_and_sha256(self, opened: Opened) -> tuple[int, str]:
        """Size and SHA-256 of an open file, read through its descriptor and
        remembered by (device, inode, size, mtime); blocking (thread).

        Raises:
            OSError: it shrank while being read.
        """
        st = os.fstat(opened.fd)
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        digest = self._hashes.get(key)
        if digest is None:
            h = hashlib.sha256()
            pos = 0
            while pos < st.st_size:
                block = os.pread(opened.fd, min(_BLOCK, st.st_size - pos), pos)
                if not block:
                    raise OSError(errno.EIO, "it shrank while being read")
                h.update(block)
                pos += len(block)
            digest = self._hashes[key] = h.hexdigest()
        return st.st_size, digest

    def _entries_below(
        self, folder: Opened, prefix: tuple[str, ...]
    ) -> Iterator[ModelManifestEntry]:
        """The regular files below an open folder, as ``os.walk`` orders them
        (files by name, then each subfolder by name); symlinks skipped."""
        with os.scandir(folder.fd) as it:
            items = sorted(it, key=lambda e: e.name)
        files, dirs = [], []
        for item in items:
            try:
                mode = item.stat(follow_symlinks=False).st_mode
            except OSError:
                continue
            if stat_module.S_ISREG(mode):
                files.append(item.name)
            elif stat_module.S_ISDIR(mode):
                dirs.append(item.name)
        for name in files:
            try:
                with open_relative(folder, [name], read=True) as file:
                    if not file.is_file:
                        continue
                    size, digest = self._size_and_sha256(file)
            except (OSError, ValueError):
                continue  # gone, or swapped for a link, meanwhile
            yield ModelManifestEntry("/".join((*prefix, name)), size, digest)
        if len(prefix) >= _MAX_MANIFEST_DEPTH:
            return
        for name in dirs:
            try:
                sub = open_relative(folder, [name], read=True)
            except (OSError, ValueError):
                continue
            with sub:
                if sub.is_dir:
                    yield from self._entries_below(sub, (*prefix, name))

    def _manifest(
        self, path: str, run_dirs: Sequence[str], job_id: str
    ) -> tuple[str, bytes]:
        """The run folder's real path and its manifest; blocking (thread)."""
        with self._open_in_run_dirs(path, run_dirs, folder=True) as root:
            files = tuple(self._entries_below(root, ()))
            real = root.real
        manifest = ModelManifest(job_id, real, os.path.basename(real), files)
        return real, manifest.to_bytes()

    async def _send_manifest(
        self,
        msg: FileDownloadRequestMsg,
        channel: Channel,
        job_id: str,
        run_dirs: list[str],
    ) -> None:
        real, data = await asyncio.to_thread(self._manifest, msg.path, run_dirs, job_id)
        await channel.send(
            FileDownloadMetaMsg(
                name=MODEL_MANIFEST_NAME,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                path=real,
                transfer_id=msg.transfer_id,
                chunk_size=CHUNK_SIZE,
                kind=MODEL_MANIFEST_KIND,
                extra={"job_id": job_id},
            )
        )
        for pos in range(0, len(data), CHUNK_SIZE):
            await channel.send_bytes(data[pos : pos + CHUNK_SIZE])
        await channel.send(EndOfFileMsg())
        logger.info("> %s manifest of %s", channel.peer_id, real)

    # ----------------------------------------------------------- predictions

    def _the_predictions(self, path: str, expected: str) -> Opened:
        """``path`` opened, if it is the job's predictions file; blocking."""
        opened = self._open(path)
        try:
            try:
                wanted = open_beneath(self._policy, expected)
            except (PathNotAllowed, OSError):
                wanted = None
            if wanted is not None:
                with wanted:
                    if (
                        opened.is_file
                        and opened.real == wanted.real
                        and same_file(opened.stat, wanted.stat)
                    ):
                        return opened
        except BaseException:
            opened.close()
            raise
        opened.close()
        raise _Refusal(
            FsErrorCode.ACCESS_DENIED,
            f"{path} is not the predictions file of this job",
        )

    async def _send_predictions(
        self, msg: FileDownloadRequestMsg, channel: Channel, info: JobInfo
    ) -> None:
        expected = predictions_path_of(info.result or {})
        if expected is None:
            raise _Refusal(
                FsErrorCode.PATH_NOT_FOUND, f"job {info.job_id} has no predictions"
            )
        opened = await _opened_in_thread(self._the_predictions, msg.path, expected)
        await self._send_and_close(msg, channel, opened, PREDICTIONS_KIND)

    # ----------------------------------------------------------------- files

    async def _send_model_file(
        self, msg: FileDownloadRequestMsg, channel: Channel, run_dirs: list[str]
    ) -> None:
        opened = await _opened_in_thread(self._open_model_file, msg.path, run_dirs)
        await self._send_and_close(msg, channel, opened, MODEL_FILE_KIND)

    async def _send_and_close(
        self, msg: FileDownloadRequestMsg, channel: Channel, opened: Opened, kind: str
    ) -> None:
        try:
            await self._send_opened(msg, channel, opened, kind)
        finally:
            await asyncio.shield(asyncio.to_thread(opened.close))

    async def _send_opened(
        self, msg: FileDownloadRequestMsg, channel: Channel, opened: Opened, kind: str
    ) -> None:
        """The meta, the bytes ``[offset, size)`` and the end, all read from
        ``opened``'s descriptor: whole, or from ``msg.offset`` when the file
        is unchanged since the client was given ``msg.sha256``."""
        size, sha256 = await asyncio.to_thread(self._size_and_sha256, opened)
        offset = 0
        if msg.offset and msg.sha256:
            if sha256 == msg.sha256.lower() and msg.offset <= size:
                offset = msg.offset
            else:
                logger.info("= %s changed since it was listed: sent whole", opened.real)
        name = os.path.basename(opened.real)
        await channel.send(
            FileDownloadMetaMsg(
                name=name,
                size=size,
                sha256=sha256,
                offset=offset,
                path=opened.real,
                transfer_id=msg.transfer_id,
                chunk_size=CHUNK_SIZE,
                kind=kind,
            )
        )
        pos = offset
        while pos < size:
            block = await asyncio.to_thread(
                os.pread, opened.fd, min(_BLOCK, size - pos), pos
            )
            if not block:
                raise TransferError(f"{name} shrank while being sent")
            pos += len(block)
            for i in range(0, len(block), CHUNK_SIZE):
                await channel.send_bytes(block[i : i + CHUNK_SIZE])
        await channel.send(EndOfFileMsg())
        logger.info("> %s %s from byte %d", channel.peer_id, opened.real, offset)
