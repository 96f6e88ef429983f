"""The worker's file-system service: answers the FS_* data-channel requests.

The transport hands each decoded request to :meth:`FsService.handle` and sends
back, in order, the messages it returns (PROTOCOL.md B §4.3):

=========================  ==================================================
request                    replies
=========================  ==================================================
``FS_GET_INFO``            ``FS_INFO_RESPONSE``
``FS_GET_MOUNTS``          ``FS_MOUNTS_RESPONSE``
``FS_LIST_DIR``            ``FS_LIST_RESPONSE`` (pages of :attr:`page_size`)
``FS_RESOLVE``             ``FS_RESOLVE_RESPONSE``
``FS_SCAN_DIR``            ``FS_SCAN_DIR_RESPONSE``
``FS_RESOLVE_WITH_PREFIX`` ``FS_PREFIX_PROPOSAL``
``FS_APPLY_PREFIX``        ``FS_PREFIX_APPLIED``
``FS_WRITE_SLP``           ``FS_WRITE_SLP_OK`` or ``FS_WRITE_SLP_ERROR``
``USE_WORKER_PATH``        ``WORKER_PATH_OK`` (+ ``FS_CHECK_VIDEOS_RESPONSE``
                           for a labels file) or ``WORKER_PATH_ERROR``
=========================  ==================================================

Errors of the first six are ``FS_ERROR::{code}::{message}`` with the
:class:`FsErrorCode` that fits (``ACCESS_DENIED`` for anything outside the
mounts, whatever the trick: ``..``, an absolute path elsewhere, a symlink
pointing out). The last two answer with their own error types, which reference
clients wait for; the code then starts the text (``WORKER_PATH_ERROR::
ACCESS_DENIED: …``) and ``FS_WRITE_SLP_ERROR`` also carries a ``code`` field.
Messages never name a real path the client did not send, so a refusal does not
tell what exists outside the mounts.

A path a client names is never checked as a string and then opened by name:
folders are listed, files stat'ed and labels read through descriptors that
:mod:`.beneath` opens component by component from the mount root, so a symlink
swapped between check and use cannot show or touch anything outside.
``FS_WRITE_SLP`` writes as :mod:`.slp_write` says (a per-peer folder, never
replacing, within a quota keyed by the ``peer`` given to :meth:`FsService.handle`).

Every file-system call and every sleap-io load runs in ``asyncio.to_thread``;
``handle`` never raises for a bad request.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import stat as stat_module
from collections.abc import Callable
from typing import Any

from ...errors import PathNotAllowed, QuotaExceeded, SleapRTCError
from ...protocol.channel import ChannelMessage, ChannelMessageType
from ...protocol.channel_fs import (
    FsApplyPrefixMsg,
    FsCheckVideosResponseMsg,
    FsErrorCode,
    FsErrorMsg,
    FsGetInfoMsg,
    FsGetMountsMsg,
    FsInfoResponseMsg,
    FsListDirMsg,
    FsListResponseMsg,
    FsMountsResponseMsg,
    FsPrefixAppliedMsg,
    FsPrefixProposalMsg,
    FsResolveMsg,
    FsResolveResponseMsg,
    FsResolveWithPrefixMsg,
    FsScanDirMsg,
    FsScanDirResponseMsg,
    FsWriteSlpErrorMsg,
    FsWriteSlpMsg,
    FsWriteSlpOkMsg,
    UseWorkerPathMsg,
    WorkerPathErrorMsg,
    WorkerPathOkMsg,
)
from ...protocol.paths import prefix_swap, replace_prefix
from .beneath import is_file_beneath, list_dir_beneath, open_beneath, stat_beneath
from .mounts import MountPolicy
from .search import PatternTooBroad, find_files
from .slp_write import SlpWriteLedger, SlpWriteQuota, write_remapped_labels
from .videos import LabelsUnreadable, check_videos, is_labels_path

__all__ = ["FS_REQUEST_TYPES", "FsService"]

logger = logging.getLogger(__name__)

FS_REQUEST_TYPES: frozenset[ChannelMessageType] = frozenset(
    {
        ChannelMessageType.FS_GET_INFO,
        ChannelMessageType.FS_GET_MOUNTS,
        ChannelMessageType.FS_LIST_DIR,
        ChannelMessageType.FS_RESOLVE,
        ChannelMessageType.FS_SCAN_DIR,
        ChannelMessageType.FS_WRITE_SLP,
        ChannelMessageType.FS_RESOLVE_WITH_PREFIX,
        ChannelMessageType.FS_APPLY_PREFIX,
        ChannelMessageType.USE_WORKER_PATH,
    }
)
"""The request types :meth:`FsService.handle` answers."""

_SPLIT = re.compile(r"[\\/]+")


class _FsFailure(SleapRTCError):
    """A request failed with an :class:`FsErrorCode`."""


def _fail(code: FsErrorCode, message: str) -> _FsFailure:
    return _FsFailure(message, code=code)


def _code_of(exc: BaseException) -> FsErrorCode:
    if isinstance(exc, PathNotAllowed | PermissionError):
        return FsErrorCode.ACCESS_DENIED
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        return FsErrorCode.PATH_NOT_FOUND
    if isinstance(exc, OSError) and exc.errno == errno.ELOOP:
        return FsErrorCode.PATH_NOT_FOUND
    if isinstance(exc, PatternTooBroad):
        return FsErrorCode.PATTERN_TOO_BROAD
    if isinstance(exc, SleapRTCError) and exc.code in FsErrorCode.__members__:
        return FsErrorCode(exc.code)
    return FsErrorCode.INVALID_REQUEST


def _message_of(exc: BaseException) -> str:
    if isinstance(exc, SleapRTCError):
        return exc.message
    if isinstance(exc, OSError):
        # strerror, not str(exc): the latter names the real (resolved) path.
        return exc.strerror or str(exc) or type(exc).__name__
    return str(exc) or type(exc).__name__


class FsService:
    """Answers the file-system requests of one worker (see the module docstring).

    Attributes:
        policy: The mounts every path must lie in.
        resolve_timeout: Seconds an ``FS_RESOLVE`` search (and the suggestion
            search of a video check) may take.
        max_depth: Deepest folder level searched (a request may ask for less).
        page_size: Entries per ``FS_LIST_DIR`` page.
        max_results: Most ``FS_RESOLVE`` candidates.
        max_suggestions: Most suggestions per missing video.
        worker_id: Reported by ``FS_GET_INFO``.
        working_dir: Reported by ``FS_GET_INFO``.
        show_hidden: Whether listings include names starting with ``.``.
        slp_writes: What ``FS_WRITE_SLP`` has written, per peer, against
            its quota.
    """

    def __init__(
        self,
        policy: MountPolicy,
        *,
        resolve_timeout: float = 5.0,
        max_depth: int = 5,
        page_size: int = 20,
        max_results: int = 20,
        max_suggestions: int = 5,
        worker_id: str | None = None,
        working_dir: str | None = None,
        show_hidden: bool = False,
        slp_write_quota: SlpWriteQuota | None = None,
    ) -> None:
        """Raises:
        ValueError: a non-positive limit.
        """
        if resolve_timeout <= 0 or max_depth < 0 or page_size < 1 or max_results < 1:
            raise ValueError("timeouts, depths and page sizes must be positive")
        self.policy = policy
        self.resolve_timeout = resolve_timeout
        self.max_depth = max_depth
        self.page_size = page_size
        self.max_results = max_results
        self.max_suggestions = max_suggestions
        self.worker_id = worker_id
        self.working_dir = working_dir
        self.show_hidden = show_hidden
        self.slp_writes = SlpWriteLedger(slp_write_quota)
        self._handlers: dict[type[ChannelMessage], Callable[[Any, str], Any]] = {
            FsGetInfoMsg: self._get_info,
            FsGetMountsMsg: self._get_mounts,
            FsListDirMsg: self._list_dir,
            FsResolveMsg: self._resolve,
            FsScanDirMsg: self._scan_dir,
            FsResolveWithPrefixMsg: self._resolve_with_prefix,
            FsApplyPrefixMsg: self._apply_prefix,
            FsWriteSlpMsg: self._write_slp,
            UseWorkerPathMsg: self._use_worker_path,
        }

    @staticmethod
    def handles(msg: ChannelMessage) -> bool:
        """Whether ``msg`` is a request this service answers."""
        return msg.TYPE in FS_REQUEST_TYPES

    async def handle(
        self, msg: ChannelMessage, peer: str = "anonymous"
    ) -> list[ChannelMessage]:
        """The replies to one request, in the order to send them.

        Never raises for a bad request: failures become ``FS_ERROR`` (or the
        request's own error type, see the module docstring). A message that is
        not an FS request gets ``FS_ERROR::INVALID_REQUEST``.

        Args:
            msg: The request.
            peer: Who sent it (the key of the ``FS_WRITE_SLP`` quota).
        """
        handler = self._handlers.get(type(msg))
        if handler is None:
            return [
                FsErrorMsg(
                    FsErrorCode.INVALID_REQUEST,
                    f"not a file-system request: {msg.TYPE}",
                )
            ]
        try:
            replies: list[ChannelMessage] = await handler(msg, peer)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not isinstance(exc, SleapRTCError | OSError | ValueError):
                logger.exception("! %s failed", msg.TYPE)
            else:
                logger.debug("! %s: %s", msg.TYPE, exc)
            return [FsErrorMsg(_code_of(exc), _message_of(exc))]
        return replies

    # ------------------------------------------------------------------
    # Individual requests

    async def _get_info(self, msg: FsGetInfoMsg, peer: str) -> list[ChannelMessage]:
        return [
            FsInfoResponseMsg(
                worker_id=self.worker_id,
                working_dir=self.working_dir,
                mounts=self.policy.entries(),
            )
        ]

    async def _get_mounts(self, msg: FsGetMountsMsg, peer: str) -> list[ChannelMessage]:
        return [FsMountsResponseMsg(self.policy.entries())]

    async def _list_dir(self, msg: FsListDirMsg, peer: str) -> list[ChannelMessage]:
        entries = await asyncio.to_thread(self._read_dir, msg.path)
        page = entries[msg.offset : msg.offset + self.page_size]
        return [
            FsListResponseMsg(
                path=msg.path,
                entries=page,
                total_count=len(entries),
                has_more=msg.offset + len(page) < len(entries),
            )
        ]

    def _read_dir(self, path: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        with open_beneath(self.policy, path, read=True) as folder:
            if not folder.is_dir:
                raise _fail(FsErrorCode.INVALID_REQUEST, f"not a folder: {path}")
            for name, info in list_dir_beneath(self.policy, folder):
                if name.startswith(".") and not self.show_hidden:
                    continue
                is_dir = stat_module.S_ISDIR(info.st_mode)
                out.append(
                    {
                        "name": name,
                        "type": "directory" if is_dir else "file",
                        "size": None if is_dir else info.st_size,
                        "modified": info.st_mtime,
                    }
                )
        out.sort(key=lambda e: (e["type"] != "directory", e["name"].casefold()))
        return out

    async def _resolve(self, msg: FsResolveMsg, peer: str) -> list[ChannelMessage]:
        roots = None
        if msg.mount_label is not None:
            mount = self.policy.by_label(msg.mount_label)
            if mount is None:
                raise _fail(
                    FsErrorCode.MOUNT_NOT_FOUND, f"no mount labelled {msg.mount_label}"
                )
            roots = [mount.path]
        depth = self.max_depth if msg.max_depth is None else msg.max_depth
        result = await asyncio.to_thread(
            find_files,
            self.policy,
            msg.pattern,
            roots=roots,
            file_size=msg.file_size,
            max_depth=min(depth, self.max_depth),
            timeout=self.resolve_timeout,
            limit=self.max_results,
        )
        return [
            FsResolveResponseMsg(
                candidates=[c.to_dict() for c in result.candidates],
                truncated=result.truncated,
                timeout=result.timeout,
                search_time_ms=result.search_time_ms,
            )
        ]

    async def _scan_dir(self, msg: FsScanDirMsg, peer: str) -> list[ChannelMessage]:
        found = await asyncio.to_thread(self._scan, msg.directory, msg.filenames)
        return [FsScanDirResponseMsg(directory=msg.directory, found=found)]

    def _scan(self, directory: str, names: list[str]) -> dict[str, str | None]:
        with open_beneath(self.policy, directory) as folder:
            if not folder.is_dir:
                raise FileNotFoundError(errno.ENOTDIR, f"no such folder: {directory}")
            real = folder.real
        found: dict[str, str | None] = {}
        for name in names:
            found[name] = None
            if not isinstance(name, str) or not name or _SPLIT.search(name):
                continue
            if name in (".", ".."):
                continue
            if is_file_beneath(self.policy, os.path.join(real, name)):
                found[name] = os.path.join(directory, name)
        return found

    async def _resolve_with_prefix(
        self, msg: FsResolveWithPrefixMsg, peer: str
    ) -> list[ChannelMessage]:
        return [await asyncio.to_thread(self._prefix_proposal, msg)]

    def _prefix_proposal(self, msg: FsResolveWithPrefixMsg) -> FsPrefixProposalMsg:
        stat_beneath(self.policy, msg.new_path)  # refused, or not found
        old_prefix, new_prefix = prefix_swap(msg.original_path, msg.new_path)
        would, would_not = [], []
        for other in msg.other_missing:
            candidate = replace_prefix(other, old_prefix, new_prefix)
            if candidate is not None and is_file_beneath(self.policy, candidate):
                would.append({"original": other, "resolved": candidate})
            else:
                would_not.append(other)
        return FsPrefixProposalMsg(
            old_prefix=old_prefix,
            new_prefix=new_prefix,
            would_resolve=would,
            would_not_resolve=would_not,
        )

    async def _apply_prefix(
        self, msg: FsApplyPrefixMsg, peer: str
    ) -> list[ChannelMessage]:
        return [FsPrefixAppliedMsg(success=True)]

    async def _write_slp(self, msg: FsWriteSlpMsg, peer: str) -> list[ChannelMessage]:
        try:
            output, updated = await asyncio.to_thread(
                write_remapped_labels,
                self.policy,
                msg.slp_path,
                msg.output_dir,
                {str(k): str(v) for k, v in msg.filename_map.items()},
                msg.output_filename,
                peer=peer,
                ledger=self.slp_writes,
            )
        except asyncio.CancelledError:
            raise
        except QuotaExceeded as exc:
            logger.info("! FS_WRITE_SLP from %s: %s", peer, exc.message)
            return [
                FsWriteSlpErrorMsg(
                    error=f"{exc.code}: {exc.message}", extra={"code": exc.code}
                )
            ]
        except (SleapRTCError, OSError, ValueError) as exc:
            code = _code_of(exc)
            logger.debug("! FS_WRITE_SLP: %s", exc)
            return [
                FsWriteSlpErrorMsg(
                    error=f"{code}: {_message_of(exc)}", extra={"code": code.value}
                )
            ]
        return [FsWriteSlpOkMsg(output_path=output, videos_updated=updated)]

    async def _use_worker_path(
        self, msg: UseWorkerPathMsg, peer: str
    ) -> list[ChannelMessage]:
        try:
            is_file = await asyncio.to_thread(self._existing, msg.path)
        except (PathNotAllowed, OSError) as exc:
            return [WorkerPathErrorMsg(f"{_code_of(exc)}: {_message_of(exc)}")]
        replies: list[ChannelMessage] = [WorkerPathOkMsg(msg.path)]
        if is_labels_path(msg.path) and is_file:
            replies.append(await self._check_videos(msg.path))
        return replies

    def _existing(self, path: str) -> bool:
        """Whether the allowed, existing ``path`` is a file (else a folder)."""
        return stat_module.S_ISREG(stat_beneath(self.policy, path).st_mode)

    async def _check_videos(self, path: str) -> ChannelMessage:
        try:
            return await asyncio.to_thread(
                check_videos,
                self.policy,
                path,
                max_depth=self.max_depth,
                search_timeout=self.resolve_timeout,
                max_suggestions=self.max_suggestions,
            )
        except (LabelsUnreadable, PathNotAllowed, OSError) as exc:
            return FsCheckVideosResponseMsg(slp_path=path, error=_message_of(exc))
