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
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

from ...errors import ChannelClosed, SleapRTCError, TransferError
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
from ...transport.transfer import CHUNK_SIZE, send_file
from ..jobs.results import JobInfo

__all__ = ["JobAuthority", "ModelFileServer"]

logger = logging.getLogger(__name__)

JobAuthority = Callable[[str, Channel, object], JobInfo | None]
"""The job of this id if this channel may have its files: it is attached to
the job, or the request shows the job's secret (``JobService.authorized_job``);
``None`` otherwise (unknown or not its)."""

_BLOCK = 1 << 20


class _Refusal(SleapRTCError):
    """A request refused, with the ``FS_ERROR`` code and message to answer."""

    def __init__(self, code: FsErrorCode, message: str) -> None:
        super().__init__(message, code=code)


class ModelFileServer:
    """Answers model downloads on a worker (see the module docstring).

    Args:
        authority: The job a channel may download, by id (see
            :data:`JobAuthority`).
        allows: Whether a resolved path lies inside the worker's mounts
            (``MountPolicy.allows``); ``None`` trusts the run folders alone.
    """

    def __init__(
        self, authority: JobAuthority, allows: Callable[[Path], bool] | None = None
    ) -> None:
        self._authority = authority
        self._allows = allows
        self._hashes: dict[tuple[str, int, int], str] = {}

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
            try:
                await channel.send(
                    FsErrorMsg(FsErrorCode.PATH_NOT_FOUND, f"cannot read it: {exc}")
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
    def _run_dirs_of(info: JobInfo) -> tuple[str, list[Path]]:
        job_id = info.job_id
        dirs = [Path(d) for d in model_run_dirs(info.result or {})]
        if not dirs:
            raise _Refusal(FsErrorCode.PATH_NOT_FOUND, f"job {job_id} has no models")
        return job_id, dirs

    def _inside_run_dirs(
        self, path: str, run_dirs: Iterable[Path], *, folder: bool
    ) -> tuple[Path, Path]:
        """``(resolved path, resolved run folder)``; blocking (thread)."""
        requested = Path(path)
        if not requested.is_absolute():
            raise _Refusal(FsErrorCode.INVALID_REQUEST, "the path must be absolute")
        try:
            real = requested.resolve(strict=True)
        except (OSError, RuntimeError):
            raise _Refusal(
                FsErrorCode.PATH_NOT_FOUND, f"no such file: {path}"
            ) from None
        for run_dir in run_dirs:
            try:
                root = run_dir.resolve(strict=True)
            except (OSError, RuntimeError):
                continue
            inside = real == root if folder else real.is_relative_to(root)
            if inside and (self._allows is None or self._allows(real)):
                if folder and not real.is_dir():
                    break
                if not folder and not real.is_file():
                    break
                return real, root
        raise _Refusal(
            FsErrorCode.ACCESS_DENIED,
            f"{path} is not {'a run folder' if folder else 'a file in a run folder'}"
            " of this job",
        )

    # ------------------------------------------------------------- manifest

    def _sha256(self, path: Path) -> str:
        """SHA-256 of a file, remembered by (path, size, mtime); blocking."""
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        digest = self._hashes.get(key)
        if digest is None:
            h = hashlib.sha256()
            with path.open("rb") as f:
                while block := f.read(_BLOCK):
                    h.update(block)
            digest = self._hashes[key] = h.hexdigest()
        return digest

    def _manifest(self, job_id: str, root: Path) -> bytes:
        files = []
        for folder, dirs, names in os.walk(root):
            dirs.sort()
            for name in sorted(names):
                path = Path(folder) / name
                if path.is_symlink() or not path.is_file():
                    continue
                files.append(
                    ModelManifestEntry(
                        path.relative_to(root).as_posix(),
                        path.stat().st_size,
                        self._sha256(path),
                    )
                )
        manifest = ModelManifest(job_id, root.as_posix(), root.name, tuple(files))
        return manifest.to_bytes()

    async def _send_manifest(
        self,
        msg: FileDownloadRequestMsg,
        channel: Channel,
        job_id: str,
        run_dirs: list[Path],
    ) -> None:
        _, root = await asyncio.to_thread(
            self._inside_run_dirs, msg.path, run_dirs, folder=True
        )
        data = await asyncio.to_thread(self._manifest, job_id, root)
        await channel.send(
            FileDownloadMetaMsg(
                name=MODEL_MANIFEST_NAME,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                path=root.as_posix(),
                transfer_id=msg.transfer_id,
                chunk_size=CHUNK_SIZE,
                kind=MODEL_MANIFEST_KIND,
                extra={"job_id": job_id},
            )
        )
        for pos in range(0, len(data), CHUNK_SIZE):
            await channel.send_bytes(data[pos : pos + CHUNK_SIZE])
        await channel.send(EndOfFileMsg())
        logger.info("> %s manifest of %s", channel.peer_id, root)

    # ----------------------------------------------------------- predictions

    def _the_predictions(self, path: str, expected: str) -> Path:
        """``path`` resolved, if it is the job's predictions file; blocking."""
        requested = Path(path)
        if not requested.is_absolute():
            raise _Refusal(FsErrorCode.INVALID_REQUEST, "the path must be absolute")
        try:
            real = requested.resolve(strict=True)
            wanted = Path(expected).resolve(strict=True)
        except (OSError, RuntimeError):
            raise _Refusal(
                FsErrorCode.PATH_NOT_FOUND, f"no such file: {path}"
            ) from None
        if (
            real != wanted
            or not real.is_file()
            or (self._allows is not None and not self._allows(real))
        ):
            raise _Refusal(
                FsErrorCode.ACCESS_DENIED,
                f"{path} is not the predictions file of this job",
            )
        return real

    async def _send_predictions(
        self, msg: FileDownloadRequestMsg, channel: Channel, info: JobInfo
    ) -> None:
        expected = predictions_path_of(info.result or {})
        if expected is None:
            raise _Refusal(
                FsErrorCode.PATH_NOT_FOUND, f"job {info.job_id} has no predictions"
            )
        path = await asyncio.to_thread(self._the_predictions, msg.path, expected)
        await self._send_file(msg, channel, path, PREDICTIONS_KIND)

    # ----------------------------------------------------------------- files

    async def _send_model_file(
        self, msg: FileDownloadRequestMsg, channel: Channel, run_dirs: list[Path]
    ) -> None:
        path, _ = await asyncio.to_thread(
            self._inside_run_dirs, msg.path, run_dirs, folder=False
        )
        await self._send_file(msg, channel, path, MODEL_FILE_KIND)

    async def _send_file(
        self, msg: FileDownloadRequestMsg, channel: Channel, path: Path, kind: str
    ) -> None:
        """``path`` whole, or from ``msg.offset`` when it is unchanged."""
        name = path.name
        if msg.offset and msg.sha256:
            size = (await asyncio.to_thread(path.stat)).st_size
            sha256 = await asyncio.to_thread(self._sha256, path)
            if sha256 == msg.sha256.lower() and msg.offset <= size:
                await self._send_from(channel, msg, path, size, sha256, kind)
                return
            logger.info("= %s changed since it was listed: sent whole", path)
        await send_file(
            channel, path, name=name, kind=kind, transfer_id=msg.transfer_id
        )
        logger.info("> %s %s", channel.peer_id, path)

    async def _send_from(
        self,
        channel: Channel,
        msg: FileDownloadRequestMsg,
        path: Path,
        size: int,
        sha256: str,
        kind: str,
    ) -> None:
        """Resume: the meta with ``offset``, the bytes after it, the end."""
        offset = msg.offset
        await channel.send(
            FileDownloadMetaMsg(
                name=path.name,
                size=size,
                sha256=sha256,
                offset=offset,
                path=path.as_posix(),
                transfer_id=msg.transfer_id,
                chunk_size=CHUNK_SIZE,
                kind=kind,
            )
        )
        f: IO[bytes] = await asyncio.to_thread(path.open, "rb")
        try:
            await asyncio.to_thread(f.seek, offset)
            left = size - offset
            while left > 0:
                block = await asyncio.to_thread(f.read, min(_BLOCK, left))
                if not block:
                    raise TransferError(f"{path.name} shrank while being sent")
                left -= len(block)
                for pos in range(0, len(block), CHUNK_SIZE):
                    await channel.send_bytes(block[pos : pos + CHUNK_SIZE])
        finally:
            await asyncio.shield(asyncio.to_thread(f.close))
        await channel.send(EndOfFileMsg())
        logger.info("> %s %s from byte %d", channel.peer_id, path, offset)
