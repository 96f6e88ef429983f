"""Presubmission path checks: can the chosen worker see the labels and videos?

Before a job is submitted the client asks the worker about the labels file
(``USE_WORKER_PATH``) and reads back which of its videos the worker can open
(``FS_CHECK_VIDEOS_RESPONSE``), with the worker's suggestions for those it
cannot (PROTOCOL.md B §4.5, "Presubmission"). This module is that exchange as
an async, Qt-free API that the CLI (``sleap-rtc check``) and the GUI's
presubmission machine share:

* :func:`check_paths` asks and returns a :class:`PathReport`;
  :func:`check_mapped_videos` asks again about the missing videos a mapping
  (``--map``, the user's picks) sends elsewhere;
* :func:`propose_mappings` turns a report and the user's picks into the
  ``path_mappings`` of the job spec (pure);
* :meth:`PathReport.to_json` is the ``--json`` output.

The transport is injected as a :data:`Requester`: send one request, return the
first reply whose type is one of those named (ignoring others), or raise on
timeout. For ``USE_WORKER_PATH`` on a labels file the worker sends
``WORKER_PATH_OK`` and then ``FS_CHECK_VIDEOS_RESPONSE``; we wait for the latter
(or for an error), which is why the requester must skip replies it was not asked
for rather than fail on them.

Reference workers list only the missing videos (without suggestions) and count
the others; against them the report lists the missing videos, asks
``FS_RESOLVE`` for suggestions, and cannot name the videos that were found.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..errors import ProtocolError
from ..protocol.channel import ChannelMessage
from ..protocol.channel_fs import (
    FsCheckVideosResponseMsg,
    FsErrorMsg,
    FsResolveMsg,
    FsResolveResponseMsg,
    UseWorkerPathMsg,
    WorkerPathErrorMsg,
    WorkerPathOkMsg,
)
from ..protocol.paths import map_path, prefix_swap, replace_prefix

__all__ = [
    "DEFAULT_CHECK_TIMEOUT",
    "PathReport",
    "Requester",
    "VideoCheck",
    "VideoStatus",
    "check_paths",
    "check_mapped_videos",
    "propose_mappings",
    "unmapped",
]

logger = logging.getLogger(__name__)

Requester = Callable[
    [ChannelMessage, tuple[type, ...], float], Awaitable[ChannelMessage]
]
"""``await request(message, reply_types, timeout)``: send ``message`` and return
the first reply that is an instance of one of ``reply_types``; raise (e.g.
``TimeoutError``, ``ChannelClosed``) when none comes within ``timeout`` seconds."""

DEFAULT_CHECK_TIMEOUT = 30.0
"""Seconds to wait for each answer (the worker may search its mounts)."""

_SPLIT = re.compile(r"[\\/]+")


class VideoStatus(StrEnum):
    """Whether the worker can read one video."""

    FOUND = "found"
    MISSING = "missing"
    EMBEDDED = "embedded"


@dataclass(frozen=True, slots=True)
class VideoCheck:
    """One video of the labels file, as the worker sees it.

    Attributes:
        path: The path stored in the labels file.
        status: Found, missing or embedded.
        suggestions: Worker paths that may be this video, best first (only
            for missing videos).
        worker_path: Where the worker found it, when a mapping moved it.
    """

    path: str
    status: VideoStatus
    suggestions: tuple[str, ...] = ()
    worker_path: str | None = None

    def to_json(self) -> dict[str, Any]:
        """``{"path", "status", "suggestions"}`` (and ``worker_path`` when a
        mapping moved it)."""
        out: dict[str, Any] = {
            "path": self.path,
            "status": self.status.value,
            "suggestions": list(self.suggestions),
        }
        if self.worker_path is not None:
            out["worker_path"] = self.worker_path
        return out


@dataclass(frozen=True, slots=True)
class PathReport:
    """What a worker can see of a labels file and its videos.

    Attributes:
        labels_path: The labels path asked about (a worker path).
        labels_found: Whether the worker accepted it (exists, inside a mount).
        videos: Every video the worker reported, in the labels' order.
        error: Why the labels were refused or could not be read, if so.
        accessible: Videos the worker can read (a reference worker only
            counts them).
        embedded: Videos stored inside the labels file.
        labels_suggestions: Worker paths that may be the labels file, best
            first, when it was refused (asked for with ``suggest_labels``).
    """

    labels_path: str
    labels_found: bool
    videos: tuple[VideoCheck, ...] = ()
    error: str | None = None
    accessible: int = 0
    embedded: int = 0
    labels_suggestions: tuple[str, ...] = ()

    @property
    def missing(self) -> tuple[VideoCheck, ...]:
        """The videos the worker cannot read."""
        return tuple(v for v in self.videos if v.status is VideoStatus.MISSING)

    @property
    def labels_unreadable(self) -> bool:
        """Whether the worker has the labels file but could not read it (so
        it listed no videos): neither a mapping nor a video pick helps."""
        return self.labels_found and self.error is not None

    @property
    def ok(self) -> bool:
        """Whether the job can run as is: labels found, nothing missing, and
        the labels readable."""
        return self.labels_found and self.error is None and not self.missing

    def to_json(self) -> dict[str, Any]:
        """``{"labels": {"path", "found"}, "videos": [{"path", "status",
        "suggestions"}]}``, the ``sleap-rtc check --json`` output."""
        return {
            "labels": {"path": self.labels_path, "found": self.labels_found},
            "videos": [v.to_json() for v in self.videos],
        }


def _basename(path: str) -> str:
    parts = [p for p in _SPLIT.split(path) if p]
    return parts[-1] if parts else path


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(s for s in value if isinstance(s, str) and s)


def _videos_of(msg: FsCheckVideosResponseMsg) -> tuple[list[VideoCheck], bool]:
    """The videos of a response, and whether missing ones still need
    suggestions (a reference worker sends none)."""
    listed = msg.extra.get("videos")
    if isinstance(listed, list) and all(isinstance(v, dict) for v in listed):
        out = []
        for item in listed:
            try:
                status = VideoStatus(item.get("status"))
            except ValueError:
                status = VideoStatus.MISSING
            out.append(
                VideoCheck(
                    str(item.get("path", "")),
                    status,
                    _strings(item.get("suggestions")),
                )
            )
        return out, False
    out, need = [], False
    for item in msg.missing:
        path = item.get("original_path") or item.get("filename") or ""
        if "candidates" not in item:
            need = True
        out.append(
            VideoCheck(str(path), VideoStatus.MISSING, _strings(item.get("candidates")))
        )
    return out, need


async def _resolve(request: Requester, path: str, timeout: float) -> tuple[str, ...]:
    """Worker paths of files named as ``path`` is (``FS_RESOLVE``), best first;
    none when the worker refuses the search."""
    name = _basename(path)
    if not name:
        return ()
    try:
        reply = await request(
            FsResolveMsg(name), (FsResolveResponseMsg, FsErrorMsg), timeout
        )
    except ProtocolError as exc:
        logger.debug("! no suggestions for %s: %s", name, exc)
        return ()
    if not isinstance(reply, FsResolveResponseMsg):
        return ()
    paths = (c.get("path") for c in reply.candidates)
    return tuple(p for p in paths if isinstance(p, str) and p)


async def _suggest(request: Requester, video: VideoCheck, timeout: float) -> VideoCheck:
    suggestions = await _resolve(request, video.path, timeout)
    return VideoCheck(video.path, video.status, suggestions) if suggestions else video


async def _labels_refused(
    request: Requester, labels_path: str, error: str, timeout: float, suggest: bool
) -> PathReport:
    suggestions: tuple[str, ...] = ()
    if suggest:
        try:
            suggestions = await _resolve(request, labels_path, timeout)
        except TimeoutError:
            logger.debug("! no suggestions for %s: timed out", labels_path)
    return PathReport(labels_path, False, error=error, labels_suggestions=suggestions)


async def check_paths(
    request: Requester,
    labels_path: str,
    *,
    timeout: float = DEFAULT_CHECK_TIMEOUT,
    resolve_missing: bool = True,
    suggest_labels: bool = False,
) -> PathReport:
    """Ask the worker whether it can use ``labels_path`` and its videos.

    Args:
        request: The transport's request/response function.
        labels_path: The labels file as a path on the worker.
        timeout: Seconds to wait for each answer.
        resolve_missing: Ask ``FS_RESOLVE`` for suggestions when the worker
            did not send any (reference workers).
        suggest_labels: When the labels path is refused, ask ``FS_RESOLVE``
            for files of its name (``labels_suggestions``), for a user to pick.

    Returns:
        The report; a refused labels path gives ``labels_found=False`` and no
        videos, an unreadable labels file ``labels_found=True`` and ``error``.

    Raises:
        Whatever ``request`` raises on timeout or a closed channel.
    """
    is_labels = labels_path.lower().endswith(".slp")
    wanted: tuple[type, ...] = (
        (FsCheckVideosResponseMsg, WorkerPathErrorMsg, FsErrorMsg)
        if is_labels
        else (WorkerPathOkMsg, WorkerPathErrorMsg, FsErrorMsg)
    )
    reply = await request(UseWorkerPathMsg(labels_path), wanted, timeout)
    if isinstance(reply, WorkerPathErrorMsg | FsErrorMsg):
        error = (
            reply.message
            if isinstance(reply, WorkerPathErrorMsg)
            else f"{reply.code}: {reply.message}"
        )
        return await _labels_refused(
            request, labels_path, error, timeout, suggest_labels
        )
    if not isinstance(reply, FsCheckVideosResponseMsg):
        return PathReport(labels_path, True)
    if reply.error is not None:
        return PathReport(labels_path, True, error=reply.error)
    videos, need = _videos_of(reply)
    if need and resolve_missing:
        videos = [
            await _suggest(request, v, timeout)
            if v.status is VideoStatus.MISSING and not v.suggestions
            else v
            for v in videos
        ]
    return PathReport(
        labels_path,
        True,
        tuple(videos),
        accessible=reply.accessible,
        embedded=reply.embedded,
    )


async def check_mapped_videos(
    request: Requester,
    report: PathReport,
    mappings: Mapping[str, str],
    *,
    timeout: float = DEFAULT_CHECK_TIMEOUT,
) -> PathReport:
    """``report`` with each missing video that ``mappings`` moves (by the rule
    of :func:`~..protocol.paths.map_path`) asked about again at its new path:
    a video the worker can read there counts as found, with ``worker_path``.

    Raises:
        Whatever ``request`` raises on timeout or a closed channel.
    """
    videos = []
    for video in report.videos:
        moved = map_path(video.path, mappings)
        if video.status is VideoStatus.MISSING and moved != video.path:
            reply = await request(
                UseWorkerPathMsg(moved),
                (WorkerPathOkMsg, WorkerPathErrorMsg, FsErrorMsg),
                timeout,
            )
            if isinstance(reply, WorkerPathOkMsg):
                video = VideoCheck(video.path, VideoStatus.FOUND, worker_path=moved)
        videos.append(video)
    return dataclasses.replace(report, videos=tuple(videos))


def propose_mappings(
    report: PathReport,
    user_choices: Mapping[str, str],
    *,
    take_suggestions: bool = False,
) -> dict[str, str]:
    """The ``path_mappings`` (client path → worker path) for a job spec. Pure.

    1. Every choice the user made is kept (identity mappings dropped).
    2. A missing video without a choice takes the folder swap that one of the
       user's choices implies (``/home/me/v/a.mp4`` → ``/data/v/a.mp4`` makes
       ``/home/me/v/b.mp4`` → ``/data/v/b.mp4``), but only when the worker
       suggested exactly that path.
    3. Else, only with ``take_suggestions`` (the user said so, e.g.
       ``--accept-suggestions``), it takes the worker's best suggestion: a file
       of the same name is not necessarily the same video, so a suggestion is
       never taken silently.

    Missing videos with neither stay out: the job would fail on them, so a
    caller should check :func:`unmapped` (or ``report.missing``) first.

    Args:
        report: What :func:`check_paths` returned.
        user_choices: Original path → worker path the user picked.
        take_suggestions: Fill the rest with the worker's best suggestions.

    Returns:
        A fresh dict.
    """
    mappings = {k: v for k, v in user_choices.items() if k != v and v}
    rules = [
        prefix_swap(original, chosen)
        for original, chosen in mappings.items()
        if _basename(original) == _basename(chosen)
    ]
    for video in report.missing:
        if video.path in mappings:
            continue
        choice = next(
            (
                target
                for old, new in rules
                if (target := replace_prefix(video.path, old, new)) in video.suggestions
            ),
            None,
        )
        if choice is None and take_suggestions and video.suggestions:
            choice = video.suggestions[0]
        if choice is not None:
            mappings[video.path] = choice
    return mappings


def unmapped(report: PathReport, mappings: Mapping[str, str]) -> Sequence[str]:
    """The missing videos that ``mappings`` leaves without a worker path."""
    return [v.path for v in report.missing if not mappings.get(v.path)]
