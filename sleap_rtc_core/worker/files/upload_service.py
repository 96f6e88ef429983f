"""The worker's side of uploads over a data channel (PROTOCOL.md B §4.3, ours).

:class:`UploadService` answers, on the channel they arrive on:

==========================  ===================================================
request                     replies
==========================  ===================================================
``FILE_UPLOAD_CHECK``       ``FILE_UPLOAD_CACHE_HIT::{path}`` (stored already;
                            the channel may now use it) or ``FILE_UPLOAD_READY``
``FILE_UPLOAD_BEGIN`` (ours) ``FILE_UPLOAD_OFFSET`` (resume point), then the
                            bytes with ``FILE_UPLOAD_SEGMENT`` checks
``FILE_UPLOAD_START``       ``FILE_UPLOAD_READY`` (0.0.7 clients: after a
                            ``CHECK``; ``dest_dir`` must lie in the upload area)
binary chunks, ``..._END``  ``FILE_UPLOAD_PROGRESS`` (≤ every 0.5 s), then
                            ``FILE_UPLOAD_COMPLETE::{path}``
==========================  ===================================================

Every refusal is ``FILE_UPLOAD_ERROR::CODE: message`` with an
:class:`~...protocol.channel_transfer.UploadErrorCode`. Where the bytes go and
who may use them is :mod:`.uploads`' business: a 0.0.7 client's ``dest_dir``
only has to name the upload area (or a folder in it); the file is stored by
content there whatever it says, and ``FILE_UPLOAD_COMPLETE`` says where.

A transfer cut off (channel closed, sender quiet, task cancelled) keeps its
verified bytes for a resume (ours) or removes them (0.0.7 uploads, which cannot
resume); a file that fails its checksum is removed. Nothing incomplete is ever
found under ``sha256/``.

Each verified step of an upload (its start, every segment, its end) calls
``on_activity`` with the uploader's peer id: the worker keeps that peer's
assigned job slots while the data for them arrives
(:meth:`~...ledger.JobLedger.keep_assignments`).

File I/O runs in threads, in blocks of about 1 MiB; :meth:`UploadService.start`
opens the area and sweeps expired files at start and every
``sweep_interval`` seconds in a task it owns (:meth:`UploadService.close`
cancels it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import (
    ChannelClosed,
    PathNotAllowed,
    QuotaExceeded,
    SleapRTCError,
    UploadConflict,
)
from ...protocol.channel import ChannelMessage
from ...protocol.channel_transfer import (
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
    FileUploadStartMsg,
    UploadErrorCode,
    parse_upload_error,
    upload_error_reason,
)
from ...transport.channel import Channel
from .upload_policy import UploadGrants
from .uploads import SEGMENT_SIZE, Partial, UploadArea

__all__ = ["UPLOAD_REQUEST_TYPES", "ChannelUploads", "UploadService"]

logger = logging.getLogger(__name__)

UPLOAD_REQUEST_TYPES: tuple[type[ChannelMessage], ...] = (
    FileUploadCheckMsg,
    FileUploadBeginMsg,
    FileUploadStartMsg,
    FileUploadEndMsg,
    FileUploadSegmentMsg,
)
"""What :meth:`UploadService.handle` answers (an END or SEGMENT outside a
transfer gets ``INVALID_REQUEST``)."""

FRAME_TIMEOUT = 30.0
"""Seconds the sender may stay quiet during a transfer (the reference's)."""

SWEEP_INTERVAL = 3600.0
"""Seconds between two expiry sweeps of the upload area."""

_FLUSH = 1 << 20
_PROGRESS_INTERVAL = 0.5


@dataclass(slots=True)
class ChannelUploads:
    """What one channel did with uploads.

    Attributes:
        grants: The stored files it may use (see :class:`.uploads.UploadGrants`).
        announced: The SHA-256 of its last ``FILE_UPLOAD_CHECK`` that missed,
            which a 0.0.7 ``FILE_UPLOAD_START`` uploads.
        models: Run folders (real paths) of finished jobs this channel showed
            the secret of (``JOB_ATTACH``): its jobs may name them.
    """

    grants: UploadGrants = field(default_factory=UploadGrants)
    announced: str | None = None
    models: set[str] = field(default_factory=set)


class _Refused(SleapRTCError):
    """An upload request refused with an :class:`UploadErrorCode`."""


def _refusal(exc: BaseException) -> tuple[UploadErrorCode, str]:
    if isinstance(exc, PathNotAllowed):
        return UploadErrorCode.ACCESS_DENIED, exc.message
    if isinstance(exc, QuotaExceeded):
        return UploadErrorCode.QUOTA_EXCEEDED, exc.message
    if isinstance(exc, UploadConflict):
        return UploadErrorCode.BUSY, exc.message
    if isinstance(exc, SleapRTCError) and exc.code in UploadErrorCode.__members__:
        return UploadErrorCode(exc.code), exc.message
    if isinstance(exc, TimeoutError):
        return UploadErrorCode.TIMEOUT, "the sender went quiet"
    if isinstance(exc, OSError):
        return UploadErrorCode.INTERNAL_ERROR, exc.strerror or type(exc).__name__
    return UploadErrorCode.INTERNAL_ERROR, type(exc).__name__


class UploadService:
    """Serves uploads into one :class:`.uploads.UploadArea` (module docstring).

    Args:
        area: The upload area; ``None``: every upload is refused with
            ``NO_UPLOAD_AREA``.
        in_use: The hashes the expiry sweep must keep (live channels' grants).
        sweep_interval: Seconds between sweeps.
        frame_timeout: Seconds the sender may stay quiet during a transfer.
        on_activity: Called with the uploader's peer id at each verified step
            of an upload (start, segment, end).
    """

    def __init__(
        self,
        area: UploadArea | None,
        *,
        in_use: Callable[[], Iterable[str]] = tuple,
        sweep_interval: float = SWEEP_INTERVAL,
        frame_timeout: float = FRAME_TIMEOUT,
        on_activity: Callable[[str], object] = lambda _peer_id: None,
    ) -> None:
        if sweep_interval <= 0 or frame_timeout <= 0:
            raise ValueError("intervals must be positive")
        self.area = area
        self._in_use = in_use
        self._sweep_interval = sweep_interval
        self._timeout = frame_timeout
        self._on_activity = on_activity
        self._sweeper: asyncio.Task[None] | None = None

    @staticmethod
    def handles(msg: object) -> bool:
        """Whether ``msg`` is an upload request."""
        return isinstance(msg, UPLOAD_REQUEST_TYPES)

    async def start(self) -> None:
        """Open the area, sweep it once, and keep sweeping (an owned task).

        Raises:
            PathNotAllowed, OSError: the area cannot be opened.
        """
        if self.area is None or self._sweeper is not None:
            return
        await asyncio.to_thread(self.area.open)
        await self.sweep()
        self._sweeper = asyncio.get_running_loop().create_task(
            self._sweep_forever(), name="upload sweep"
        )

    async def close(self) -> None:
        """Stop the sweeping task."""
        task, self._sweeper = self._sweeper, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def sweep(self) -> int:
        """Remove expired files now; how many were removed."""
        if self.area is None:
            return 0
        keep = list(self._in_use())
        return await asyncio.to_thread(self.area.sweep, in_use=keep)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval)
            try:
                await self.sweep()
            except Exception:  # a sweep that fails must not stop the next one
                logger.exception("! upload sweep failed")

    # ------------------------------------------------------------ requests

    async def handle(
        self, msg: ChannelMessage, channel: Channel, state: ChannelUploads
    ) -> None:
        """Answer one upload request on ``channel`` (and receive the bytes
        that follow it). Never raises for a bad request or a failed upload;
        raises :class:`ChannelClosed` only when the channel is gone."""
        try:
            if isinstance(msg, FileUploadCheckMsg):
                await self._check(msg, channel, state)
            elif isinstance(msg, FileUploadBeginMsg):
                await self._begin(msg, channel, state)
            elif isinstance(msg, FileUploadStartMsg):
                await self._start_legacy(msg, channel, state)
            else:
                raise _Refused(
                    f"{msg.TYPE} outside an upload",
                    code=UploadErrorCode.INVALID_REQUEST,
                )
        except (ChannelClosed, asyncio.CancelledError):
            raise
        except Exception as exc:
            code, message = _refusal(exc)
            if code is UploadErrorCode.INTERNAL_ERROR and not isinstance(exc, OSError):
                logger.exception("! upload from %s failed", channel.peer_id)
            else:
                logger.info("! upload from %s: %s %s", channel.peer_id, code, message)
            await _send_error(channel, code, message)

    def _area(self) -> UploadArea:
        if self.area is None:
            raise _Refused(
                "this worker has no upload area (its owner can set one: "
                "[uploads] path in worker.toml or --upload-dir)",
                code=UploadErrorCode.NO_UPLOAD_AREA,
            )
        return self.area

    async def _check(
        self, msg: FileUploadCheckMsg, channel: Channel, state: ChannelUploads
    ) -> None:
        area = self._area()
        hit = await asyncio.to_thread(area.lookup, msg.sha256)
        if hit is None:
            state.announced = msg.sha256.lower()
            await channel.send(FileUploadReadyMsg())
            return
        state.grants.add(msg.sha256)
        logger.info("= upload cache hit for %s: %s", channel.peer_id, hit)
        await channel.send(FileUploadCacheHitMsg(str(hit)))

    async def _begin(
        self, msg: FileUploadBeginMsg, channel: Channel, state: ChannelUploads
    ) -> None:
        area = self._area()
        hit = await asyncio.to_thread(area.lookup, msg.sha256)
        if hit is not None:  # stored meanwhile: nothing to send
            state.grants.add(msg.sha256)
            await channel.send(FileUploadCacheHitMsg(str(hit)))
            return
        partial = await asyncio.to_thread(
            area.begin,
            channel.peer_id,
            msg.sha256,
            msg.name,
            msg.size,
            restart=msg.restart,
        )
        if partial.verified:
            logger.info(
                "= resuming upload of %s from %s at %d/%d",
                msg.name,
                channel.peer_id,
                partial.verified,
                partial.size,
            )
        await self._receive(
            channel,
            partial,
            state,
            FileUploadOffsetMsg(partial.verified, SEGMENT_SIZE),
            resumable=True,
        )

    async def _start_legacy(
        self, msg: FileUploadStartMsg, channel: Channel, state: ChannelUploads
    ) -> None:
        area = self._area()
        dest = msg.dest_dir
        real = await asyncio.to_thread(_real, dest)
        if not real or not area.contains(real):
            raise PathNotAllowed(
                f"uploads go into the worker's upload area {area.root}, "
                f"not {dest[:200]}"
            )
        if state.announced is None:
            raise _Refused(
                "send FILE_UPLOAD_CHECK with the file's SHA-256 first",
                code=UploadErrorCode.INVALID_REQUEST,
            )
        sha256, state.announced = state.announced, None
        partial = await asyncio.to_thread(
            area.begin,
            channel.peer_id,
            sha256,
            msg.filename,
            msg.total_bytes,
            restart=True,
        )
        await self._receive(
            channel, partial, state, FileUploadReadyMsg(), resumable=False
        )

    async def _receive(
        self,
        channel: Channel,
        partial: Partial,
        state: ChannelUploads,
        go: ChannelMessage,
        *,
        resumable: bool,
    ) -> None:
        """Send ``go``, then take the bytes into ``partial`` until END."""
        done = False
        try:
            self._on_activity(channel.peer_id)
            await channel.send(go)
            path = await self._receive_bytes(channel, partial)
            done = True
        except BaseException:
            if not done:
                keep = resumable and not partial.closed
                await asyncio.shield(
                    asyncio.to_thread(partial.keep if keep else partial.discard)
                )
            raise
        state.grants.add(partial.sha256)
        self._on_activity(channel.peer_id)
        await channel.send(FileUploadCompleteMsg(str(path)))

    async def _receive_bytes(self, channel: Channel, partial: Partial) -> Path:
        buffer = bytearray()
        last_progress = time.monotonic()

        async def flush() -> None:
            if buffer:
                data = bytes(buffer)
                buffer.clear()
                await asyncio.to_thread(partial.write, data)

        while True:
            try:
                item = await channel.recv(timeout=self._timeout)
            except TimeoutError:
                raise _Refused(
                    f"the sender went quiet for {self._timeout:.0f} s",
                    code=UploadErrorCode.TIMEOUT,
                ) from None
            if isinstance(item, bytes | bytearray):
                if partial.received + len(buffer) + len(item) > partial.size:
                    raise _Refused(
                        f"more bytes than the {partial.size} announced",
                        code=UploadErrorCode.SIZE_MISMATCH,
                    )
                buffer += item
                if len(buffer) >= _FLUSH:
                    await flush()
                now = time.monotonic()
                if now - last_progress >= _PROGRESS_INTERVAL:
                    last_progress = now
                    done = partial.received + len(buffer)
                    await channel.send(FileUploadProgressMsg(done, partial.size))
            elif isinstance(item, FileUploadSegmentMsg):
                await flush()
                await asyncio.to_thread(partial.segment, item.end, item.sha256)
                self._on_activity(channel.peer_id)
            elif isinstance(item, FileUploadEndMsg):
                await flush()
                return await asyncio.to_thread(partial.finish)
            elif isinstance(item, FileUploadErrorMsg):
                _, reason = parse_upload_error(item.reason)
                raise _Refused(
                    f"the sender gave up: {reason}",
                    code=UploadErrorCode.INVALID_REQUEST,
                )
            else:
                logger.warning(
                    "! %s: %s during an upload; dropped",
                    channel.peer_id,
                    type(item).__name__,
                )


def _real(path: str) -> str:
    """The real path of an absolute ``path`` (reads symlinks), else ``""``."""
    return os.path.realpath(path) if os.path.isabs(path) and "\0" not in path else ""


async def _send_error(channel: Channel, code: UploadErrorCode, message: str) -> None:
    if channel.is_open:
        with contextlib.suppress(ChannelClosed):
            await channel.send(FileUploadErrorMsg(upload_error_reason(code, message)))
