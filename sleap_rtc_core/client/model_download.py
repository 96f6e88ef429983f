"""Bring a finished training job's models home, next to the labels.

SLEAP's own local training writes each model into ``models/<run name>/`` beside
the labels file, and SLEAP's inference dialog looks for models there.
:func:`download_models` makes a remote job end the same way: each run folder
the job's ``JOB_COMPLETE`` names is copied into ``dest_root`` (usually
:func:`models_dir_for` the labels) under its own name, over the data channel,
with the worker's :class:`~sleap_rtc_core.worker.files.models.ModelFileServer`
on the other end (the ``FILE_DOWNLOAD_REQUEST`` extension described there).

* **Nothing is copied** when the worker's folder can already be read here:
  the same path exists, or the job's ``path_mappings`` (client path → worker
  path) read backwards lead to it. The model's local path is returned instead.
  ``download=True`` always copies, ``download=False`` never does.
* **Verified.** Each file's size and SHA-256 are checked against the worker's
  manifest and announcement before it takes its name.
* **Never half there.** A folder is assembled as ``<name>.partial`` and renamed
  to ``<name>`` only when every file is in and verified; a file being received
  is ``<file>.part`` until verified.
* **Resumable.** When the channel drops mid-copy, the ``.partial`` folder keeps
  every verified file and the bytes received of the current one. Call
  :func:`download_models` again with a new channel to the same worker (the same
  peer id: only the job's owner may download) and it asks for the rest of that
  file from the byte it holds (the worker checks the file is unchanged, else
  sends it whole) and skips the files it has. A file whose checksum fails is
  started over once.

:func:`download_predictions` does the same for an inference job's one
predictions file (``predictions_path`` in its ``JOB_COMPLETE``): not copied
when visible here, else fetched as ``<dest>.part``, verified, and renamed to
``dest`` (replacing a file there). It is not resumed: a dropped copy is
fetched whole on the next call.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from ..errors import RemoteProtocolError, TransferError
from ..protocol.channel import ChannelMessage
from ..protocol.channel_fs import FsErrorMsg
from ..protocol.channel_transfer import (
    MAX_MANIFEST_BYTES,
    MODEL_MANIFEST_KIND,
    PREDICTIONS_KIND,
    EndOfFileMsg,
    FileDownloadMetaMsg,
    FileDownloadRequestMsg,
    ModelManifest,
    ModelManifestEntry,
    model_run_dirs,
    predictions_path_of,
)
from ..transport.channel import Channel
from .job_secrets import load_job_secret

__all__ = [
    "ORIGIN_FILE",
    "PARTIAL_SUFFIX",
    "DownloadProgress",
    "download_models",
    "download_predictions",
    "local_model_path",
    "models_dir_for",
    "worker_model_path",
]

logger = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"
"""A run folder being assembled is ``<name>.partial`` until it is complete."""

REPLY_TIMEOUT = 30.0
"""Seconds to wait for an answer, or between two frames of a file."""

ORIGIN_FILE = ".sleap-rtc-origin"
"""Written into each downloaded model folder: the worker's run folder it came
from. No ``.json``/``.yaml`` suffix, so SLEAP's config scan passes it by."""

DownloadProgress = Callable[[int, int], None]
"""Called with (bytes held, bytes in all) for the folders being copied."""

_BLOCK = 1 << 20


def models_dir_for(labels_path: str | os.PathLike[str]) -> Path:
    """``models/`` beside a labels file: where SLEAP puts and finds models."""
    return Path(labels_path).absolute().parent / "models"


def _is_below(path: str, prefix: str) -> str | None:
    """The part of ``path`` after the folder ``prefix`` (``""`` for equal)."""
    path, prefix = path.replace("\\", "/"), prefix.replace("\\", "/").rstrip("/")
    if not prefix:
        return None
    if path == prefix:
        return ""
    if path.startswith(prefix + "/"):
        return path[len(prefix) + 1 :]
    return None


def local_model_path(
    worker_path: str, path_mappings: Mapping[str, str] | None = None
) -> list[Path]:
    """Where a worker's folder might be seen from here: the same path, then
    each ``path_mappings`` entry (client → worker) read backwards, the
    longest worker prefix first."""
    candidates = [Path(worker_path)]
    mappings = sorted(
        (path_mappings or {}).items(), key=lambda kv: len(kv[1]), reverse=True
    )
    for client, worker in mappings:
        rest = _is_below(worker_path, worker)
        if rest is not None:
            local = Path(client)
            candidates.append(local / rest if rest else local)
    return candidates


def _visible(path: Path) -> bool:
    """A run folder that is readable here and holds a model."""
    try:
        return path.is_dir() and any(
            (path / name).is_file()
            for name in ("best.ckpt", "training_config.yaml", "training_config.json")
        )
    except OSError:
        return False


def _first_visible(
    candidates: list[Path], visible: Callable[[Path], bool]
) -> Path | None:
    return next((p for p in candidates if visible(p)), None)


def _check_name(manifest: ModelManifest) -> ModelManifest:
    if manifest.name.endswith(PARTIAL_SUFFIX) or manifest.name.endswith(".part"):
        raise TransferError(f"the worker named a run folder {manifest.name!r}")
    if any(f.path.endswith(".part") for f in manifest.files):
        raise TransferError("the worker listed a file named like a partial one")
    return manifest


class _ChecksumMismatch(TransferError):
    """A file arrived whole but not as announced: worth fetching once more."""


class _Progress:
    def __init__(self, total: int, callback: DownloadProgress | None) -> None:
        self.total = total
        self.done = 0
        self.callback = callback

    def add(self, n: int) -> None:
        self.done += n
        if self.callback is not None and n:
            self.callback(self.done, self.total)


# -------------------------------------------------------------------- files


def _sha256_of(path: Path, limit: int | None = None) -> Any:
    """A running SHA-256 of the first ``limit`` bytes (all when ``None``)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        left = limit
        while left is None or left > 0:
            block = f.read(_BLOCK if left is None else min(_BLOCK, left))
            if not block:
                break
            digest.update(block)
            if left is not None:
                left -= len(block)
    return digest


def _verified(path: Path, entry: ModelManifestEntry) -> bool:
    try:
        return (
            path.is_file()
            and not path.is_symlink()
            and path.stat().st_size == entry.size
            and _sha256_of(path).hexdigest() == entry.sha256
        )
    except OSError:
        return False


def _inside(base: Path, rel: str) -> Path:
    target = base.joinpath(*rel.split("/"))
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    if not parent.resolve().is_relative_to(base.resolve()) or target.is_symlink():
        raise TransferError(f"{rel!r} would leave {base}")
    return target


class _Receiver:
    """One download session on a channel (one request at a time)."""

    def __init__(
        self,
        channel: Channel,
        job_id: str,
        progress: _Progress,
        on_other: Callable[[ChannelMessage], None] | None,
        timeout: float,
    ) -> None:
        self.channel = channel
        self.job_id = job_id
        self.progress = progress
        self.on_other = on_other
        self.timeout = timeout
        self._secret: str | None = None
        self._secret_looked_up = False

    async def _job_secret(self) -> str | None:
        """The job's secret as :mod:`.job_secrets` kept it: a channel that is
        not the job's (a new one after a drop) needs it to be served."""
        if not self._secret_looked_up:
            self._secret_looked_up = True
            self._secret = await asyncio.to_thread(
                load_job_secret, self.channel.peer_id, self.job_id
            )
        return self._secret

    async def _announce(
        self, path: str, *, offset: int = 0, sha256: str | None = None, **extra: Any
    ) -> FileDownloadMetaMsg:
        transfer_id = secrets.token_hex(8)
        job_secret = await self._job_secret()
        if job_secret is not None:
            extra["job_secret"] = job_secret
        request = FileDownloadRequestMsg(
            path=path,
            offset=offset,
            sha256=sha256 if offset else None,
            transfer_id=transfer_id,
            extra={"job_id": self.job_id, **extra},
        )
        try:
            reply = await self.channel.request(
                request, (FileDownloadMetaMsg, FsErrorMsg), self.timeout
            )
        except TimeoutError:
            raise TransferError(
                f"the worker did not answer a download request in {self.timeout:.0f} s"
            ) from None
        if isinstance(reply, FsErrorMsg):
            raise TransferError(
                f"the worker refused {path}: {reply.message}", code=reply.code.value
            )
        assert isinstance(reply, FileDownloadMetaMsg)
        if reply.transfer_id != transfer_id:
            raise TransferError("the worker announced another transfer")
        return reply

    async def _next(self) -> bytes | None:
        """The next file bytes, or ``None`` at ``END_OF_FILE``."""
        while True:
            try:
                item = await self.channel.recv(timeout=self.timeout)
            except TimeoutError:
                raise TransferError(
                    f"the worker went quiet for {self.timeout:.0f} s"
                ) from None
            if isinstance(item, bytes):
                return item
            if isinstance(item, EndOfFileMsg):
                return None
            if isinstance(item, FsErrorMsg):
                raise TransferError(f"the worker gave up: {item.message}")
            if self.on_other is not None:
                self.on_other(item)
            else:
                logger.debug("< %s during a download; dropped", type(item).__name__)

    async def manifest(self, run_dir: str) -> ModelManifest:
        meta = await self._announce(run_dir, manifest=True)
        if meta.kind != MODEL_MANIFEST_KIND or meta.size > MAX_MANIFEST_BYTES:
            raise TransferError(f"the worker sent no manifest for {run_dir}")
        data = bytearray()
        while (chunk := await self._next()) is not None:
            data += chunk
            if len(data) > meta.size:
                raise TransferError("the manifest is longer than announced")
        if len(data) != meta.size or hashlib.sha256(data).hexdigest() != meta.sha256:
            raise TransferError("the manifest failed its checksum")
        try:
            manifest = ModelManifest.from_bytes(bytes(data))
        except RemoteProtocolError as exc:
            raise TransferError(f"the worker sent a bad manifest: {exc}") from None
        return _check_name(manifest)

    async def file(self, run_dir: str, entry: ModelManifestEntry, target: Path) -> None:
        """Fetch one file into ``target`` (via ``target.part``), resuming from
        what ``target.part`` holds; verified, or :class:`TransferError`."""
        part = target.with_name(target.name + ".part")
        held = await asyncio.to_thread(_held_bytes, part, entry.size)
        digest = await asyncio.to_thread(_sha256_of, part, held) if held else None
        worker_path = f"{run_dir.rstrip('/')}/{entry.path}"
        meta = await self._announce(worker_path, offset=held, sha256=entry.sha256)
        await self._receive(meta, entry.path, part, target, held, digest)

    async def predictions(self, worker_path: str, target: Path) -> None:
        """Fetch the job's predictions file whole into ``target`` (via
        ``target.part``); verified, or :class:`TransferError`."""
        part = target.with_name(target.name + ".part")
        await asyncio.to_thread(_unlink, part)
        meta = await self._announce(worker_path, predictions=True)
        if meta.kind != PREDICTIONS_KIND:
            raise TransferError(f"the worker sent no predictions for {worker_path}")
        self.progress.total = meta.size
        await self._receive(meta, target.name, part, target, 0, None)

    async def _receive(
        self,
        meta: FileDownloadMetaMsg,
        label: str,
        part: Path,
        target: Path,
        held: int,
        digest: Any,
    ) -> None:
        """The bytes ``meta`` announced into ``part``, then renamed ``target``."""
        if meta.offset not in (0, held) or meta.size < meta.offset:
            raise TransferError(f"the worker resumed {label} at a wrong offset")
        if meta.offset == 0:
            if held:
                self.progress.add(-held)
            held, digest = 0, hashlib.sha256()
        assert digest is not None
        f: IO[bytes] = await asyncio.to_thread(_open_at, part, held)
        received = held
        buffer = bytearray()
        try:
            while (chunk := await self._next()) is not None:
                received += len(chunk)
                if received > meta.size:
                    raise TransferError(f"more bytes than announced for {label}")
                buffer += chunk
                self.progress.add(len(chunk))
                if len(buffer) >= _BLOCK:
                    await asyncio.to_thread(_write, f, digest, bytes(buffer))
                    buffer.clear()
        finally:
            # What arrived is a correct prefix (an ordered, reliable channel):
            # keep it on disk so that a later attempt resumes after it.
            await asyncio.shield(asyncio.to_thread(_close, f, digest, bytes(buffer)))
        if received != meta.size or digest.hexdigest() != meta.sha256.lower():
            await asyncio.to_thread(_unlink, part)
            self.progress.add(-received)
            raise _ChecksumMismatch(f"{label}: the checksum or size did not match")
        await asyncio.to_thread(os.replace, part, target)


def _held_bytes(part: Path, size: int) -> int:
    try:
        held = part.stat().st_size
    except OSError:
        return 0
    if held > size:
        part.unlink()
        return 0
    return held


def _open_at(part: Path, offset: int) -> IO[bytes]:
    f = part.open("r+b" if part.exists() else "wb")
    f.truncate(offset)
    f.seek(offset)
    return f


def _write(f: IO[bytes], digest: Any, data: bytes) -> None:
    digest.update(data)
    f.write(data)


def _close(f: IO[bytes], digest: Any, data: bytes) -> None:
    try:
        if data:
            _write(f, digest, data)
        f.flush()
        os.fsync(f.fileno())
    finally:
        f.close()


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _complete(folder: Path, manifest: ModelManifest) -> bool:
    """Whether an existing folder already holds exactly these files."""
    return all(
        _verified(folder.joinpath(*e.path.split("/")), e) for e in manifest.files
    )


# ---------------------------------------------------------------- the entry


async def download_models(
    channel: Channel,
    result: Mapping[str, Any],
    dest_root: str | os.PathLike[str],
    *,
    path_mappings: Mapping[str, str] | None = None,
    download: bool | None = None,
    is_visible: Callable[[Path], bool] | None = None,
    on_progress: DownloadProgress | None = None,
    on_other: Callable[[ChannelMessage], None] | None = None,
    timeout: float = REPLY_TIMEOUT,
) -> list[Path]:
    """Make each model of a finished job available here; their local folders.

    Args:
        channel: An authenticated channel to the worker that ran the job: the
            one that submitted it, or a new one after a drop (it shows the
            job's secret kept when the job was accepted).
        result: The job's ``JOB_COMPLETE`` data (:meth:`RemoteJob.follow`'s
            return value): ``job_id`` and the run folders (``models`` /
            ``model_paths`` / ``output_path``).
        dest_root: The folder that gets ``<run name>/`` folders, normally
            :func:`models_dir_for` the labels file (made if missing).
        path_mappings: The job's mappings (client path → worker path), read
            backwards to find a worker folder that is visible here.
        download: ``None`` copies only folders not visible here; ``True``
            always copies; ``False`` never copies (the worker's path, or its
            local counterpart when visible, is returned). A result that says
            ``models_stay_on_worker`` (a 0.0.7 worker) is never copied.
        is_visible: Whether a candidate local folder is the model (default: a
            folder here holding ``best.ckpt`` or ``training_config.*``).
        on_progress: Called with (bytes held, bytes in all) as bytes arrive.
        on_other: Receives other messages that arrive during the copy (logged
            and dropped without it).
        timeout: Seconds to wait for an answer or between frames.

    Returns:
        One local folder per model, in pipeline order.

    Raises:
        TransferError: The worker refused (not the owner, unknown job), went
            quiet, sent something malformed, a checksum failed twice, or a
            different folder of that name is already in ``dest_root``.
        ChannelClosed: The channel dropped; call again on a new channel to go
            on where it stopped.
        OSError: ``dest_root`` cannot be written.
    """
    job_id = result.get("job_id")
    if not isinstance(job_id, str) or not job_id:
        raise TransferError("the job result names no job_id")
    run_dirs = model_run_dirs(result)
    if not run_dirs:
        raise TransferError(f"job {job_id} names no model folder")
    if result.get("models_stay_on_worker") is True:  # a 0.0.7 worker sends none
        if download is True:
            raise TransferError(
                f"the worker of job {job_id} (sleap-rtc 0.0.7) cannot send models; "
                f"they are on the worker at {', '.join(run_dirs)}"
            )
        download = False
    visible = is_visible or _visible
    root = await asyncio.to_thread(Path(dest_root).absolute)
    out: list[Path | None] = []
    wanted: list[tuple[int, str]] = []
    for i, run_dir in enumerate(run_dirs):
        candidates = local_model_path(run_dir, path_mappings)
        seen = None
        if download is not True:
            seen = await asyncio.to_thread(_first_visible, candidates, visible)
        if seen is not None:
            logger.info("= model %s is visible here as %s: not copied", run_dir, seen)
            out.append(seen)
        elif download is False:
            out.append(candidates[0])  # stays on the worker
        else:
            out.append(None)
            wanted.append((i, run_dir))
    if not wanted:
        return [p for p in out if p is not None]

    progress = _Progress(0, on_progress)
    receiver = _Receiver(channel, job_id, progress, on_other, timeout)
    manifests = [(i, await receiver.manifest(run_dir)) for i, run_dir in wanted]
    progress.total = sum(m.total_bytes for _, m in manifests)
    await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
    for i, manifest in manifests:
        out[i] = await _download_one(receiver, manifest, root)
    return [p for p in out if p is not None]


async def _download_one(
    receiver: _Receiver, manifest: ModelManifest, root: Path
) -> Path:
    final = root / manifest.name
    partial = root / f"{manifest.name}{PARTIAL_SUFFIX}"
    if await asyncio.to_thread(final.exists):
        if await asyncio.to_thread(_complete, final, manifest):
            receiver.progress.add(manifest.total_bytes)
            logger.info("= %s is already here", final)
            return final
        raise TransferError(f"{final} exists and holds another model; move it away")
    await asyncio.to_thread(partial.mkdir, exist_ok=True)
    for entry in manifest.files:
        target = await asyncio.to_thread(_inside, partial, entry.path)
        if await asyncio.to_thread(_verified, target, entry):
            receiver.progress.add(entry.size)
            continue
        part = target.with_name(target.name + ".part")
        held = await asyncio.to_thread(_held_bytes, part, entry.size)
        receiver.progress.add(held)
        try:
            await receiver.file(manifest.run_dir, entry, target)
        except _ChecksumMismatch as exc:
            logger.info("! %s; fetching it again from the start", exc)
            await receiver.file(manifest.run_dir, entry, target)
    await asyncio.to_thread(_drop_extras, partial, manifest)
    await asyncio.to_thread(os.rename, partial, final)
    await asyncio.to_thread(_write_origin, final, manifest.run_dir)
    logger.info("= model folder %s complete (%d files)", final, len(manifest.files))
    return final


def _write_origin(folder: Path, run_dir: str) -> None:
    (folder / ORIGIN_FILE).write_text(
        json.dumps({"worker_run_dir": run_dir}), encoding="utf-8"
    )


def worker_model_path(folder: str | os.PathLike[str]) -> str | None:
    """The worker's run folder a downloaded model came from (``None`` for a
    model that was never downloaded), so that predicting with it remotely
    names the worker's copy rather than a path only this machine knows."""
    try:
        data = json.loads((Path(folder) / ORIGIN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    run_dir = data.get("worker_run_dir") if isinstance(data, dict) else None
    return run_dir if isinstance(run_dir, str) and run_dir else None


def _drop_extras(partial: Path, manifest: ModelManifest) -> None:
    """Remove what the manifest does not list (left by an earlier attempt)."""
    keep = {partial.joinpath(*e.path.split("/")) for e in manifest.files}
    for folder, dirs, names in os.walk(partial, topdown=False):
        for name in names:
            path = Path(folder) / name
            if path not in keep:
                path.unlink()
        for name in dirs:
            with contextlib.suppress(OSError):
                (Path(folder) / name).rmdir()


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


async def download_predictions(
    channel: Channel,
    result: Mapping[str, Any],
    dest: str | os.PathLike[str],
    *,
    download: bool | None = None,
    path_mappings: Mapping[str, str] | None = None,
    is_visible: Callable[[Path], bool] | None = None,
    on_progress: DownloadProgress | None = None,
    on_other: Callable[[ChannelMessage], None] | None = None,
    timeout: float = REPLY_TIMEOUT,
) -> Path:
    """Make a finished inference job's predictions file available here.

    Args:
        channel: An authenticated channel to the worker that ran the job, of the
            peer that submitted it.
        result: The job's ``JOB_COMPLETE`` data: ``job_id`` and
            ``predictions_path``.
        dest: The file to write, e.g. ``<stem>.predictions.slp`` beside the
            data (its folder is made if missing; a file there is replaced).
        download: ``None`` copies only when the worker's file is not visible
            here; ``True`` always copies; ``False`` never does (the worker's
            path, or its local counterpart when visible, is returned).
        path_mappings: The job's mappings (client path → worker path), read
            backwards to find the worker's file here.
        is_visible: Whether a candidate local path is the predictions file
            (default: a readable file).
        on_progress: Called with (bytes held, bytes in all) as bytes arrive.
        on_other: Receives other messages that arrive during the copy.
        timeout: Seconds to wait for an answer or between frames.

    Returns:
        The local predictions file (``dest`` when copied).

    Raises:
        TransferError: The result names no predictions, the worker refused
            (not the owner, unknown or unfinished job), went quiet, sent
            something malformed, or the checksum failed twice.
        ChannelClosed: The channel dropped; call again on a new channel.
        OSError: ``dest`` cannot be written.
    """
    job_id = result.get("job_id")
    if not isinstance(job_id, str) or not job_id:
        raise TransferError("the job result names no job_id")
    worker_path = predictions_path_of(result)
    if worker_path is None:
        raise TransferError(f"job {job_id} names no predictions file")
    candidates = local_model_path(worker_path, path_mappings)
    if download is not True:
        seen = await asyncio.to_thread(
            _first_visible, candidates, is_visible or _is_file
        )
        if seen is not None:
            logger.info("= predictions %s visible here as %s", worker_path, seen)
            return seen
        if download is False:
            return candidates[0]  # stays on the worker
    target = await asyncio.to_thread(Path(dest).absolute)
    await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
    receiver = _Receiver(channel, job_id, _Progress(0, on_progress), on_other, timeout)
    try:
        await receiver.predictions(worker_path, target)
    except _ChecksumMismatch as exc:
        logger.info("! %s; fetching it again", exc)
        await receiver.predictions(worker_path, target)
    logger.info("= predictions %s copied to %s", worker_path, target)
    return target
