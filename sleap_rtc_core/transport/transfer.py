"""File transfer over a :class:`~.channel.Channel` (PROTOCOL.md B §4.4, A.3).

Two directions, one set of rules: the bytes travel in binary frames of
``chunk_size`` (64 KiB), the receiver checks the announced size and the SHA-256
of the whole file, writes into a hidden temporary name beside the destination
and renames it into place only when both match; on any failure, cancellation
or a closed channel the temporary file is removed. File I/O and hashing run in
worker threads, in blocks of 1 MiB, never on the event loop.

* **Upload, client → worker** (:func:`send_file` with ``dest_dir``):
  ``FILE_UPLOAD_CHECK::{sha256}::{name}`` → ``FILE_UPLOAD_CACHE_HIT::{path}``
  (done, nothing sent) or ``FILE_UPLOAD_READY``; then
  ``FILE_UPLOAD_START::{name}::{size}::{dest_dir}::{0|1}`` → ``READY`` or
  ``FILE_UPLOAD_ERROR::{reason}``; the chunks; ``FILE_UPLOAD_END`` →
  ``FILE_UPLOAD_COMPLETE::{path}`` or ``FILE_UPLOAD_ERROR``. The worker answers
  with :func:`serve_upload` (or :func:`answer_upload_check` +
  :func:`receive_file`): the SHA-256 of the ``CHECK`` is the one it verifies,
  its :class:`UploadCache` remembers what it stored, and the destination must
  pass the worker's ``allowed`` policy (none given: nothing is allowed).
  ``create_subdir`` writes into ``<dest_dir>/sleap_rtc_downloads/``.
* **Download, worker → client** (:func:`send_file` without ``dest_dir``):
  ``FILE_DOWNLOAD_META::{json}`` with name, size and SHA-256, the chunks, then
  ``END_OF_FILE``; the client calls :func:`receive_file` with that meta and a
  folder of its choosing.

A file name from the peer must be a bare name (no folder part, no ``..``), and
the written file never leaves its destination folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..aio import wait_for
from ..errors import ChannelClosed, PathNotAllowed, TransferError
from ..protocol.channel import ChannelMessage
from ..protocol.channel_transfer import (
    EndOfFileMsg,
    FileDownloadMetaMsg,
    FileUploadCacheHitMsg,
    FileUploadCheckMsg,
    FileUploadCompleteMsg,
    FileUploadEndMsg,
    FileUploadErrorMsg,
    FileUploadProgressMsg,
    FileUploadReadyMsg,
    FileUploadStartMsg,
)
from .channel import Channel

__all__ = [
    "CHUNK_SIZE",
    "DOWNLOAD_SUBDIR",
    "PathPolicy",
    "ProgressCallback",
    "SentFile",
    "UploadCache",
    "answer_upload_check",
    "file_sha256",
    "receive_file",
    "send_file",
    "serve_upload",
]

logger = logging.getLogger(__name__)

CHUNK_SIZE = 64 << 10
"""Bytes per binary frame (the reference's upload size)."""

DOWNLOAD_SUBDIR = "sleap_rtc_downloads"
"""The folder ``create_subdir=1`` writes into (underscore, as the reference)."""

REPLY_TIMEOUT = 30.0
"""Seconds to wait for each reply, or between frames of a transfer."""

_BLOCK = 1 << 20
_PROGRESS_INTERVAL = 0.5

ProgressCallback = Callable[[int, int], None]
"""Called with (bytes done, bytes in all) at most every 0.5 s and at the end."""

PathPolicy = Callable[[Path], bool]
"""Whether a resolved destination path may be written."""


@dataclass(frozen=True, slots=True)
class SentFile:
    """What :func:`send_file` sent.

    Attributes:
        sha256: SHA-256 of the file, hex.
        size: Its size in bytes.
        path: Where the worker stored an upload (``None`` for a download).
        cached: The worker already held it; no bytes were sent.
    """

    sha256: str
    size: int
    path: str | None = None
    cached: bool = False


class UploadCache:
    """The worker's ``sha256 → path`` memory of stored uploads (its lifetime).

    An entry is served only while the file still exists with the size and
    modification time it had when stored.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[Path, int, int]] = {}

    def put(self, sha256: str, path: Path) -> None:
        """Remember that ``path`` holds content ``sha256``."""
        st = path.stat()
        self._entries[sha256.lower()] = (path, st.st_size, st.st_mtime_ns)

    def get(self, sha256: str) -> Path | None:
        """The stored path of ``sha256``, if it is still there unchanged."""
        entry = self._entries.get(sha256.lower())
        if entry is None:
            return None
        path, size, mtime = entry
        try:
            st = path.stat()
        except OSError:
            st = None
        if st is None or (st.st_size, st.st_mtime_ns) != (size, mtime):
            del self._entries[sha256.lower()]
            return None
        return path

    def __len__(self) -> int:
        return len(self._entries)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, hex (blocking: run it in a thread)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


class _Progress:
    """Rate-limits a progress callback."""

    def __init__(self, total: int, callback: ProgressCallback | None) -> None:
        self.total = total
        self.callback = callback
        self.last = 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if now - self.last < _PROGRESS_INTERVAL:
            return False
        self.last = now
        return True

    def report(self, done: int, *, final: bool = False) -> None:
        if self.callback is not None and (final or self.due()):
            self.callback(done, self.total)


# ---------------------------------------------------------------- sending


async def send_file(
    channel: Channel,
    path: str | os.PathLike[str],
    *,
    dest_dir: str | None = None,
    create_subdir: bool = False,
    name: str | None = None,
    kind: str | None = None,
    transfer_id: str | None = None,
    use_cache: bool = True,
    chunk_size: int = CHUNK_SIZE,
    on_progress: ProgressCallback | None = None,
    timeout: float = REPLY_TIMEOUT,
) -> SentFile:
    """Send one file: an upload to ``dest_dir`` on the worker when given, else
    a download stream (``FILE_DOWNLOAD_META`` + bytes + ``END_OF_FILE``).

    Args:
        channel: An authenticated channel.
        path: The local file.
        dest_dir: Upload: the worker folder to store into.
        create_subdir: Upload: store into ``<dest_dir>/sleap_rtc_downloads/``.
        name: The name to store under (default: the file's own name).
        kind: Download: what the file is (e.g. ``predictions``).
        transfer_id: Download: the request's id, echoed in the meta.
        use_cache: Upload: ask ``FILE_UPLOAD_CHECK`` first.
        chunk_size: Bytes per binary frame.
        on_progress: Called with (bytes sent, size).
        timeout: Seconds to wait for each reply.

    Raises:
        TransferError: the worker refused or failed the upload, or a reply did
            not come in time.
        ChannelClosed: the channel closed during the transfer.
        OSError: the local file cannot be read.
    """
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    source = Path(path)
    name = name or source.name
    size = (await asyncio.to_thread(source.stat)).st_size
    sha256 = await asyncio.to_thread(file_sha256, source)
    progress = _Progress(size, on_progress)
    if dest_dir is None:
        meta = FileDownloadMetaMsg(
            name=name,
            size=size,
            sha256=sha256,
            path=str(await asyncio.to_thread(source.resolve)),
            transfer_id=transfer_id,
            chunk_size=chunk_size,
            kind=kind,
        )
        await channel.send(meta)
        await _send_bytes(channel, source, chunk_size, progress, None)
        await channel.send(EndOfFileMsg())
        return SentFile(sha256, size)
    return await _upload(
        channel,
        source,
        name=name,
        size=size,
        sha256=sha256,
        dest_dir=dest_dir,
        create_subdir=create_subdir,
        use_cache=use_cache,
        chunk_size=chunk_size,
        progress=progress,
        timeout=timeout,
    )


async def _upload(
    channel: Channel,
    source: Path,
    *,
    name: str,
    size: int,
    sha256: str,
    dest_dir: str,
    create_subdir: bool,
    use_cache: bool,
    chunk_size: int,
    progress: _Progress,
    timeout: float,
) -> SentFile:
    with channel.subscribe(FileUploadProgressMsg):  # drained, not queued
        if use_cache:
            reply = await _request(
                channel,
                FileUploadCheckMsg(sha256, name),
                (FileUploadCacheHitMsg, FileUploadReadyMsg, FileUploadErrorMsg),
                timeout,
            )
            if isinstance(reply, FileUploadCacheHitMsg):
                progress.report(size, final=True)
                return SentFile(sha256, size, reply.path, cached=True)
            _raise_if_error(reply)
        start = FileUploadStartMsg(name, size, dest_dir, create_subdir)
        _raise_if_error(
            await _request(
                channel, start, (FileUploadReadyMsg, FileUploadErrorMsg), timeout
            )
        )
        final_types = (FileUploadCompleteMsg, FileUploadErrorMsg)
        with channel.expecting(final_types) as final:
            await _send_bytes(channel, source, chunk_size, progress, final)
            await channel.send(FileUploadEndMsg())
            try:
                reply = await wait_for(asyncio.shield(final), timeout)
            except TimeoutError:
                raise TransferError(
                    f"no FILE_UPLOAD_COMPLETE in {timeout:.0f} s"
                ) from None
        _raise_if_error(reply)
        assert isinstance(reply, FileUploadCompleteMsg)
        return SentFile(sha256, size, reply.path)


async def _request(
    channel: Channel,
    message: ChannelMessage,
    reply_types: tuple[type[ChannelMessage], ...],
    timeout: float,
) -> ChannelMessage:
    try:
        return await channel.request(message, reply_types, timeout)
    except TimeoutError:
        label = getattr(message.TYPE, "value", "request")
        raise TransferError(f"no answer to {label} in {timeout:.0f} s") from None


def _raise_if_error(reply: ChannelMessage) -> None:
    if isinstance(reply, FileUploadErrorMsg):
        raise TransferError(f"the worker refused the upload: {reply.reason}")


async def _send_bytes(
    channel: Channel,
    source: Path,
    chunk_size: int,
    progress: _Progress,
    abort: asyncio.Future[ChannelMessage] | None,
) -> None:
    """Stream the file in ``chunk_size`` frames; stop early when the receiver
    answered ``abort`` (an error) before the end."""
    sent = 0
    f: IO[bytes] = await asyncio.to_thread(source.open, "rb")
    try:
        while True:
            block = await asyncio.to_thread(f.read, max(_BLOCK, chunk_size))
            if not block:
                break
            view = memoryview(block)
            for pos in range(0, len(block), chunk_size):
                if abort is not None and abort.done():
                    return
                await channel.send_bytes(bytes(view[pos : pos + chunk_size]))
                sent += min(chunk_size, len(block) - pos)
                progress.report(sent)
    finally:
        await asyncio.shield(asyncio.to_thread(f.close))
    progress.report(sent, final=True)


# ---------------------------------------------------------------- receiving


async def answer_upload_check(
    channel: Channel, msg: FileUploadCheckMsg, cache: UploadCache
) -> Path | None:
    """Answer ``FILE_UPLOAD_CHECK``: ``CACHE_HIT`` with the stored path (and
    return it) or ``READY`` (and return ``None``)."""
    hit = cache.get(msg.sha256)
    if hit is not None:
        await channel.send(FileUploadCacheHitMsg(str(hit)))
        return hit
    await channel.send(FileUploadReadyMsg())
    return None


async def serve_upload(
    channel: Channel,
    first: FileUploadCheckMsg | FileUploadStartMsg,
    *,
    allowed: PathPolicy | None,
    cache: UploadCache,
    on_progress: ProgressCallback | None = None,
    timeout: float = REPLY_TIMEOUT,
) -> Path:
    """The worker's side of one upload, from its first message on.

    Args:
        channel: An authenticated channel.
        first: The ``FILE_UPLOAD_CHECK`` or ``FILE_UPLOAD_START`` received.
        allowed: The worker's mount policy for the destination.
        cache: The worker's upload cache.
        on_progress: Called with (bytes received, size).
        timeout: Seconds to wait for each frame.

    Returns:
        Where the file is (a cache hit's stored path, or the new file).

    Raises:
        TransferError, PathNotAllowed, ChannelClosed: see :func:`receive_file`.
    """
    sha256: str | None = None
    start: ChannelMessage = first
    if isinstance(first, FileUploadCheckMsg):
        hit = await answer_upload_check(channel, first, cache)
        if hit is not None:
            return hit
        sha256 = first.sha256
        try:
            start = await channel.expect((FileUploadStartMsg,), timeout)
        except TimeoutError:
            raise TransferError(f"no FILE_UPLOAD_START in {timeout:.0f} s") from None
    assert isinstance(start, FileUploadStartMsg)
    return await receive_file(
        channel,
        start,
        allowed=allowed,
        sha256=sha256,
        cache=cache,
        on_progress=on_progress,
        timeout=timeout,
    )


async def receive_file(
    channel: Channel,
    meta: FileDownloadMetaMsg | FileUploadStartMsg,
    dest_dir: str | os.PathLike[str] | None = None,
    *,
    allowed: PathPolicy | None = None,
    on_progress: ProgressCallback | None = None,
    sha256: str | None = None,
    cache: UploadCache | None = None,
    on_other: Callable[[ChannelMessage], None] | None = None,
    timeout: float = REPLY_TIMEOUT,
) -> Path:
    """Receive the file announced by ``meta`` into a folder.

    Args:
        channel: An authenticated channel.
        meta: ``FILE_DOWNLOAD_META`` (client) or ``FILE_UPLOAD_START`` (worker;
            this answers ``READY``, then ``COMPLETE`` or ``ERROR``).
        dest_dir: The folder; for an upload it replaces the peer's
            ``dest_dir`` when given.
        allowed: Whether a resolved destination may be written. Downloads
            without it go anywhere in ``dest_dir``; uploads without it are
            refused (a peer-named folder needs a policy).
        on_progress: Called with (bytes received, size).
        sha256: Upload: the hash its ``FILE_UPLOAD_CHECK`` announced (without
            one only the size is checked).
        cache: Upload: remembers the stored file for later checks.
        on_other: Receives text messages that arrive during the transfer and
            are not part of it (logged and dropped without it).
        timeout: Seconds to wait for each frame.

    Returns:
        The path of the stored file.

    Raises:
        TransferError: size or SHA-256 mismatch, a bad name, a write error, or
            the sender went quiet.
        PathNotAllowed: the destination is outside what ``allowed`` accepts.
        ChannelClosed: the channel closed during the transfer.
    """
    upload = isinstance(meta, FileUploadStartMsg)
    try:
        final = await asyncio.to_thread(_destination, meta, dest_dir, allowed)
        if upload:
            await asyncio.to_thread(final.parent.mkdir, exist_ok=True)
    except (TransferError, PathNotAllowed, OSError) as exc:
        if upload:
            await _send_error(channel, _reason(exc))
        if isinstance(exc, OSError):
            raise TransferError(f"cannot write there: {exc}") from exc
        raise
    end_type: type[ChannelMessage]
    expected_sha: str | None
    if isinstance(meta, FileDownloadMetaMsg):
        if meta.offset:
            raise TransferError("resuming a download is not supported here")
        size, expected_sha, end_type = meta.size, meta.sha256, EndOfFileMsg
    else:
        size, expected_sha, end_type = meta.total_bytes, sha256, FileUploadEndMsg
        await channel.send(FileUploadReadyMsg())
    try:
        digest = await _receive_into(
            channel,
            final,
            size,
            expected_sha,
            end_type,
            on_progress,
            on_other,
            upload,
            timeout,
        )
    except TransferError as exc:
        if upload:
            await _send_error(channel, exc.message)
        raise
    if upload:
        if cache is not None:
            cache.put(digest, final)
        await channel.send(FileUploadCompleteMsg(str(final)))
    logger.info("= received %s (%d bytes) from %s", final, size, channel.peer_id)
    return final


def _destination(
    meta: FileDownloadMetaMsg | FileUploadStartMsg,
    dest_dir: str | os.PathLike[str] | None,
    allowed: PathPolicy | None,
) -> Path:
    """The resolved path to write, confined to its folder and the policy."""
    if isinstance(meta, FileUploadStartMsg):
        if allowed is None:
            raise PathNotAllowed("uploads are not allowed here (no mounts)")
        folder = Path(dest_dir) if dest_dir is not None else Path(meta.dest_dir)
        if not folder.is_absolute():
            raise PathNotAllowed(f"the destination must be absolute: {folder}")
        name = meta.filename
    else:
        if dest_dir is None:
            raise TransferError("a download needs a destination folder")
        folder = Path(dest_dir)
        name = meta.name
    if not name or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise TransferError(f"not a bare file name: {name[:80]!r}")
    base = folder.resolve()
    if not base.is_dir():
        raise TransferError(f"no such folder: {folder}")
    if allowed is not None and not allowed(base):
        raise PathNotAllowed(f"{folder} is outside the allowed mounts")
    if isinstance(meta, FileUploadStartMsg) and meta.create_subdir:
        base = base / DOWNLOAD_SUBDIR
    final = base / name
    if final.is_symlink() or final.resolve().parent != base.resolve():
        raise PathNotAllowed(f"{name!r} would leave {folder}")
    if allowed is not None and not allowed(final.resolve()):
        raise PathNotAllowed(f"{final} is outside the allowed mounts")
    return final


def _reason(exc: BaseException) -> str:
    return getattr(exc, "message", None) or str(exc) or type(exc).__name__


async def _send_error(channel: Channel, reason: str) -> None:
    if channel.is_open:
        with contextlib.suppress(ChannelClosed):
            await channel.send(FileUploadErrorMsg(reason[:500]))


async def _receive_into(
    channel: Channel,
    final: Path,
    size: int,
    expected_sha: str | None,
    end_type: type[ChannelMessage],
    on_progress: ProgressCallback | None,
    on_other: Callable[[ChannelMessage], None] | None,
    upload: bool,
    timeout: float,
) -> str:
    """Write the announced bytes to a temporary file beside ``final``, check
    the size and the SHA-256, move it into place; return the SHA-256 (hex)."""
    temp = final.with_name(f".{final.name}.{secrets.token_hex(4)}.part")
    digest = hashlib.sha256()
    progress = _Progress(size, on_progress)
    received = 0
    buffer = bytearray()
    f: IO[bytes] | None = None
    try:
        try:
            f = await asyncio.to_thread(temp.open, "xb")
            while True:
                try:
                    item: Any = await channel.recv(timeout=timeout)
                except TimeoutError:
                    raise TransferError(
                        f"the sender went quiet for {timeout:.0f} s"
                    ) from None
                if isinstance(item, bytes):
                    received += len(item)
                    if received > size:
                        raise TransferError(
                            f"more bytes than the {size} announced for {final.name}"
                        )
                    buffer += item
                    if len(buffer) >= _BLOCK:
                        await asyncio.to_thread(_write, f, digest, bytes(buffer))
                        buffer.clear()
                    if progress.due():
                        progress.report(received, final=True)
                        if upload:
                            await channel.send(FileUploadProgressMsg(received, size))
                elif isinstance(item, end_type):
                    break
                elif isinstance(item, FileUploadErrorMsg):
                    raise TransferError(f"the sender gave up: {item.reason}")
                elif on_other is not None:
                    on_other(item)
                else:
                    logger.warning(
                        "! %s: %s during a transfer; dropped",
                        channel.peer_id,
                        type(item).__name__,
                    )
            if buffer:
                await asyncio.to_thread(_write, f, digest, bytes(buffer))
            await asyncio.to_thread(_close, f)
        except OSError as exc:
            raise TransferError(f"cannot write {final.name}: {exc}") from exc
        if received != size:
            raise TransferError(
                f"{final.name}: {received} bytes received, {size} announced"
            )
        if expected_sha is not None and digest.hexdigest() != expected_sha.lower():
            raise TransferError(f"SHA-256 mismatch for {final.name}")
        await asyncio.to_thread(os.replace, temp, final)
    except BaseException:
        await asyncio.shield(asyncio.to_thread(_discard, f, temp))
        raise
    progress.report(received, final=True)
    return digest.hexdigest()


def _write(f: IO[bytes], digest: Any, data: bytes) -> None:
    digest.update(data)
    f.write(data)


def _close(f: IO[bytes]) -> None:
    f.flush()
    os.fsync(f.fileno())
    f.close()


def _discard(f: IO[bytes] | None, temp: Path) -> None:
    if f is not None:
        with contextlib.suppress(OSError):
            f.close()
    with contextlib.suppress(OSError):
        temp.unlink()
