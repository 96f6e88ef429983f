"""Send a labels file to a worker that cannot see it (no shared storage).

:func:`upload_file` is the client half of :mod:`~..protocol.channel_transfer`'s
uploads: it hashes the file, asks ``FILE_UPLOAD_CHECK`` first (a file the
worker holds already is never sent again), then ``FILE_UPLOAD_BEGIN`` and
sends the bytes from the offset the worker names (0, or where an upload cut
off earlier stopped being verified), each 4 MiB segment followed by its
SHA-256, then ``FILE_UPLOAD_END``. It returns the path on the worker that a
job's ``labels_path`` then names. A refusal raises
:class:`~..errors.UploadRefused` with the worker's code; a dropped channel
raises :class:`~..errors.ChannelClosed`, after which calling again on a new
channel resumes; cancelling tells the worker, which keeps only what it
verified (never a file that looks complete).

:func:`labels_to_send` picks what to send for a labels file: a ``.pkg.slp``
(or a ``.slp`` whose frames are all embedded) as it is, otherwise a package
with the labeled frames embedded, written by sleap-io and kept (by what it is
made of) so that the same labels make the same bytes: asked by hash, the
worker that has them is not sent them again. :class:`UploadProgressLine`
formats progress (bytes, rate, ETA).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import platformdirs

from ..aio import wait_for
from ..errors import ChannelClosed, LabelsUnreadable, TransferError, UploadRefused
from ..protocol.channel import ChannelMessage
from ..protocol.channel_transfer import (
    FileUploadBeginMsg,
    FileUploadCacheHitMsg,
    FileUploadCheckMsg,
    FileUploadCompleteMsg,
    FileUploadEndMsg,
    FileUploadErrorMsg,
    FileUploadOffsetMsg,
    FileUploadProgressMsg,
    FileUploadReadyMsg,
    FileUploadSegmentMsg,
    parse_upload_error,
)
from ..transport.channel import Channel

__all__ = [
    "UPLOAD_CHUNK",
    "UploadProgressLine",
    "UploadResult",
    "is_package",
    "labels_to_send",
    "package_cache_dir",
    "upload_file",
    "upload_with_videos",
    "videos_to_send",
]

logger = logging.getLogger(__name__)

UPLOAD_CHUNK = 64 << 10
"""Bytes per binary frame (the reference's upload chunk)."""

REPLY_TIMEOUT = 30.0
"""Seconds to wait for each answer (the worker may hash a resumed prefix)."""

_BLOCK = 1 << 20

Progress = Callable[[int, int], None]
"""Called with (bytes the worker holds, size) as bytes go out."""


@dataclass(frozen=True, slots=True)
class UploadResult:
    """What :func:`upload_file` did.

    Attributes:
        path: The file on the worker (give it as the job's labels path).
        sha256: Its SHA-256, hex.
        size: Its size in bytes.
        sent: Bytes sent this time (0 when the worker had it).
        cached: The worker held it already.
        resumed_at: The offset the upload resumed at (0: from the start).
    """

    path: str
    sha256: str
    size: int
    sent: int = 0
    cached: bool = False
    resumed_at: int = 0


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _refused(reply: ChannelMessage) -> UploadRefused:
    assert isinstance(reply, FileUploadErrorMsg)
    code, message = parse_upload_error(reply.reason)
    return UploadRefused(
        f"the worker refused the upload: {reply.reason}",
        code=code.value if code is not None else "UPLOAD_REFUSED",
    )


async def _ask(
    channel: Channel,
    msg: ChannelMessage,
    types: tuple[type[ChannelMessage], ...],
    timeout: float,
) -> ChannelMessage:
    try:
        reply = await channel.request(msg, (*types, FileUploadErrorMsg), timeout)
    except TimeoutError:
        raise TransferError(f"no answer to {msg.TYPE} in {timeout:.0f} s") from None
    if isinstance(reply, FileUploadErrorMsg):
        raise _refused(reply)
    return reply


async def upload_file(
    channel: Channel,
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    on_progress: Progress | None = None,
    timeout: float = REPLY_TIMEOUT,
    chunk_size: int = UPLOAD_CHUNK,
) -> UploadResult:
    """Make the worker hold ``path`` (see the module docstring).

    Args:
        channel: An authenticated channel to one of our workers.
        path: The local file.
        name: The name to store it under (default its own).
        on_progress: Called with (bytes held by the worker, size).
        timeout: Seconds to wait for each answer.
        chunk_size: Bytes per binary frame.

    Raises:
        UploadRefused: the worker refused it (``code`` says why).
        TransferError: an answer did not come in time.
        ChannelClosed: the channel closed (call again on a new one to resume).
        OSError: the file cannot be read.
    """
    source = Path(path)
    name = name or source.name
    size = (await asyncio.to_thread(source.stat)).st_size
    sha256 = await asyncio.to_thread(_sha256, source)
    report = on_progress or (lambda done, total: None)
    with channel.subscribe(FileUploadProgressMsg):  # drained, not queued
        reply = await _ask(
            channel,
            FileUploadCheckMsg(sha256, name),
            (FileUploadCacheHitMsg, FileUploadReadyMsg),
            timeout,
        )
        if isinstance(reply, FileUploadCacheHitMsg):
            report(size, size)
            return UploadResult(reply.path, sha256, size, cached=True)
        reply = await _begin(channel, FileUploadBeginMsg(name, size, sha256), timeout)
        if isinstance(reply, FileUploadCacheHitMsg):
            report(size, size)
            return UploadResult(reply.path, sha256, size, cached=True)
        assert isinstance(reply, FileUploadOffsetMsg)
        offset = min(reply.offset, size)
        final = (FileUploadCompleteMsg, FileUploadErrorMsg)
        with channel.expecting(final) as answer:
            try:
                await _send_from(
                    channel,
                    source,
                    offset,
                    size,
                    reply.segment_size,
                    chunk_size,
                    report,
                    answer,
                )
                if not answer.done():
                    await channel.send(FileUploadEndMsg())
                done = await _final(answer, timeout)
            except asyncio.CancelledError:
                await _give_up(channel, "cancelled by the user")
                raise
    if isinstance(done, FileUploadErrorMsg):
        raise _refused(done)
    assert isinstance(done, FileUploadCompleteMsg)
    return UploadResult(done.path, sha256, size, sent=size - offset, resumed_at=offset)


BUSY_RETRIES = 10
"""Times ``FILE_UPLOAD_BEGIN`` is asked again while the worker still finishes
the same upload of a channel that just dropped (``BUSY``), a second apart."""


async def _begin(
    channel: Channel, msg: FileUploadBeginMsg, timeout: float
) -> ChannelMessage:
    for attempt in range(BUSY_RETRIES + 1):
        try:
            return await _ask(
                channel, msg, (FileUploadOffsetMsg, FileUploadCacheHitMsg), timeout
            )
        except UploadRefused as exc:
            if exc.code != "BUSY" or attempt == BUSY_RETRIES:
                raise
        await asyncio.sleep(1.0)
    raise AssertionError("unreachable")  # the loop returns or raises


async def _final(
    answer: asyncio.Future[ChannelMessage], timeout: float
) -> ChannelMessage:
    try:
        return await wait_for(asyncio.shield(answer), timeout)
    except TimeoutError:
        raise TransferError(f"no FILE_UPLOAD_COMPLETE in {timeout:.0f} s") from None


async def _give_up(channel: Channel, why: str) -> None:
    """Tell the worker we stopped (it keeps only verified bytes)."""
    if channel.is_open:
        with contextlib.suppress(ChannelClosed, Exception):
            await asyncio.shield(channel.send(FileUploadErrorMsg(why)))


def _read_hashed(f: IO[bytes], n: int, digest: Any) -> bytes:
    """Up to ``n`` bytes of ``f``, fed to ``digest`` (blocking: a thread)."""
    block = f.read(n)
    digest.update(block)
    return block


async def _send_from(
    channel: Channel,
    source: Path,
    offset: int,
    size: int,
    segment_size: int,
    chunk_size: int,
    report: Progress,
    abort: asyncio.Future[ChannelMessage],
) -> None:
    """Bytes ``[offset, size)`` in frames, a ``FILE_UPLOAD_SEGMENT`` after each
    ``segment_size`` bytes (counted from 0) and after the last."""
    f: IO[bytes] = await asyncio.to_thread(source.open, "rb")
    try:
        await asyncio.to_thread(f.seek, offset)
        pos = offset
        segment = hashlib.sha256()
        report(pos, size)
        while pos < size:
            end = min(size, (pos // segment_size + 1) * segment_size)
            while pos < end:
                # Read and hash off the event loop (hashlib drops the GIL), so
                # the channel's own work goes on meanwhile.
                block = await asyncio.to_thread(
                    _read_hashed, f, min(_BLOCK, end - pos), segment
                )
                if not block:
                    raise TransferError(f"{source.name} shrank while being sent")
                view = memoryview(block)
                for i in range(0, len(block), chunk_size):
                    if abort.done():
                        return  # the worker answered early: an error
                    await channel.send_bytes(bytes(view[i : i + chunk_size]))
                pos += len(block)
                report(pos, size)
            await channel.send(FileUploadSegmentMsg(pos, segment.hexdigest()))
            segment = hashlib.sha256()
    finally:
        await asyncio.shield(asyncio.to_thread(f.close))


# ------------------------------------------------------------------ labels


def _all_embedded(labels: object) -> bool:
    for video in getattr(labels, "videos", []):
        meta = getattr(video, "backend_metadata", None) or {}
        if not meta.get("has_embedded_images"):
            return False
    return True


def is_package(path: str | os.PathLike[str]) -> bool:
    """Whether the labels file ``path`` carries its frames (a ``.pkg.slp``, or
    a ``.slp`` whose videos are all embedded); blocking (sleap-io).

    Raises:
        LabelsUnreadable: sleap-io cannot read it.
    """
    source = Path(path)
    if source.name.lower().endswith(".pkg.slp"):
        return True
    import sleap_io as sio

    try:
        labels = sio.load_slp(str(source), open_videos=False)
    except Exception as exc:  # sleap-io and h5py raise many kinds
        raise LabelsUnreadable(f"cannot read {source.name}: {exc}") from exc
    return _all_embedded(labels)


PACKAGES_KEPT = 8
"""Packages :func:`labels_to_send` keeps in its folder (the newest; a package
kept is what lets a second run be a cache hit instead of a second upload)."""


def package_cache_dir() -> Path:
    """Where packages of labels are kept between runs (the platform's cache
    folder for ``sleap-rtc``)."""
    return Path(platformdirs.user_cache_dir("sleap-rtc")) / "packages"


def _package_key(source: Path, labels: object) -> str:
    """What a package is made of: the labels' bytes and each video's path,
    size and modification time (the frames are read from the videos)."""
    digest = hashlib.sha256(_sha256(source).encode())
    for video in getattr(labels, "videos", []):
        filename = str(getattr(video, "filename", ""))
        try:
            info = os.stat(filename)
            digest.update(f"{filename}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{filename}\0missing\n".encode())
    return digest.hexdigest()[:32]


def _prune(folder: Path, keep: Path) -> None:
    """Keep the newest :data:`PACKAGES_KEPT` package folders (and ``keep``)."""
    with contextlib.suppress(OSError):
        entries = sorted(
            (p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        for old in entries[PACKAGES_KEPT:]:
            if old != keep:
                shutil.rmtree(old, ignore_errors=True)


def labels_to_send(
    path: str | os.PathLike[str], scratch: str | os.PathLike[str] | None = None
) -> Path:
    """The file to upload for the labels ``path``: itself when it is a
    package (every video embedded), else a ``<stem>.pkg.slp`` with the
    labeled frames embedded, written by sleap-io into
    ``<scratch>/<key>/`` (default :func:`package_cache_dir`) and kept.

    The same labels and videos give the same ``key``, so the package is not
    written again and its bytes (sleap-io records the path it was written to)
    are the same: the worker that holds it answers the hash, nothing is sent
    twice. Blocking: sleap-io.

    Raises:
        LabelsUnreadable: sleap-io cannot read or write it.
    """
    source = Path(path)
    if source.name.lower().endswith(".pkg.slp"):
        return source
    import sleap_io as sio

    try:
        header = sio.load_slp(str(source), open_videos=False)
    except Exception as exc:  # sleap-io and h5py raise many kinds
        raise LabelsUnreadable(f"cannot read {source.name}: {exc}") from exc
    if _all_embedded(header):
        return source
    stem = (
        source.name[: -len(".slp")] if source.suffix.lower() == ".slp" else source.stem
    )
    root = Path(scratch) if scratch is not None else package_cache_dir()
    folder = root / _package_key(source, header)
    target = folder / f"{stem}.pkg.slp"
    done = folder / ".complete"
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder / ".lock"):
        if done.is_file() and target.is_file():
            os.utime(folder)
            return target
        try:
            labels = sio.load_slp(str(source))  # the frames must be readable now
            sio.save_slp(labels, str(target), embed="user", verbose=False)
        except Exception as exc:
            raise LabelsUnreadable(
                f"cannot embed the labeled frames of {source.name}: {exc}"
            ) from exc
        done.touch()
    _prune(root, folder)
    return target


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (two runs building the same package
    wait for each other; no lock where ``fcntl`` is missing)."""
    with path.open("a+b") as f:
        try:
            import fcntl
        except ImportError:  # Windows: one run at a time is the user's affair
            yield
            return
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def videos_to_send(path: str | os.PathLike[str]) -> list[Path]:
    """The video files the labels ``path`` names outside itself, in order,
    each once (embedded videos travel in the file); blocking (sleap-io).

    Raises:
        LabelsUnreadable: sleap-io cannot read it, a video is an image
            sequence or is missing here (send the labels as a package).
    """
    import sleap_io as sio

    source = Path(path)
    try:
        labels = sio.load_slp(str(source), open_videos=False)
    except Exception as exc:  # sleap-io and h5py raise many kinds
        raise LabelsUnreadable(f"cannot read {source.name}: {exc}") from exc
    found: list[Path] = []
    for video in labels.videos:
        meta = getattr(video, "backend_metadata", None) or {}
        if meta.get("has_embedded_images"):
            continue
        if not isinstance(video.filename, str):
            raise LabelsUnreadable(
                f"{source.name} names an image sequence; send it as a package"
            )
        local = Path(video.filename)
        if not local.is_file():
            raise LabelsUnreadable(
                f"{source.name} names {video.filename}, which is not here; "
                "send it as a package"
            )
        if local not in found:
            found.append(local)
    return found


async def upload_with_videos(
    channel: Channel,
    path: str | os.PathLike[str],
    *,
    on_progress: Progress | None = None,
    timeout: float = REPLY_TIMEOUT,
) -> tuple[UploadResult, dict[str, str]]:
    """Make the worker hold the labels ``path`` as it is and every video it
    names (:func:`videos_to_send`), each by :func:`upload_file` (asked by
    hash first, verified, resumable). The videos go first.

    Returns:
        The labels' upload, and the job's ``path_mappings``: the labels and
        each video (their paths here) to where they are stored on the worker
        (the worker rewrites the videos of its copy of the labels by them).

    Raises:
        LabelsUnreadable: see :func:`videos_to_send`.
        UploadRefused, TransferError, ChannelClosed, OSError: as
            :func:`upload_file`.
    """
    source = Path(path)
    videos = await asyncio.to_thread(videos_to_send, source)
    files = [*videos, source]
    sizes = [(await asyncio.to_thread(f.stat)).st_size for f in files]
    total = sum(sizes)
    report = on_progress or (lambda done, size: None)
    mappings: dict[str, str] = {}
    before = 0
    result: UploadResult | None = None
    for local, size in zip(files, sizes, strict=True):

        def step(done: int, _size: int, held: int = before) -> None:
            report(held + done, total)

        result = await upload_file(channel, local, on_progress=step, timeout=timeout)
        mappings[str(local)] = result.path
        before += size
    assert result is not None
    logger.info("= %s and %d video(s) on the worker", source.name, len(videos))
    return result, mappings


# ---------------------------------------------------------------- progress


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f}"


class UploadProgressLine:
    """Formats upload progress: ``upload 12.0/40.0 MB  3.1 MB/s  ETA 9 s``.

    The rate counts only what went out since the start (a resumed upload's
    held bytes are not "sent fast"). Lines come at most every ``interval``
    seconds (and always at the end).
    """

    def __init__(
        self, interval: float = 0.5, clock: Callable[[], float] = time.monotonic
    ):
        self._interval = interval
        self._clock = clock
        self._start: tuple[float, int] | None = None
        self._last = -1e9

    def feed(self, done: int, total: int) -> str | None:
        """The line for this progress, or ``None`` when it is too soon."""
        now = self._clock()
        if self._start is None:
            self._start = (now, done)
        final = done >= total
        if not final and now - self._last < self._interval:
            return None
        self._last = now
        started, first = self._start
        elapsed = now - started
        rate = (done - first) / elapsed if elapsed > 0 else 0.0
        line = f"upload {_mb(done)}/{_mb(total)} MB"
        if rate > 0:
            line += f"  {_mb(rate)} MB/s"
            if not final:
                line += f"  ETA {max(0.0, (total - done) / rate):.0f} s"
        return line
