"""The labels-file side of the worker's path checks: which videos a ``.slp``
references and whether the worker can read them (writing a remapped copy is
:mod:`.slp_write`; the folder swap of ``FS_RESOLVE_WITH_PREFIX`` is
:func:`~..protocol.paths.prefix_swap`).

Everything here is blocking (sleap-io reads HDF5; the search walks folders):
:class:`~.service.FsService` runs it with ``asyncio.to_thread``. sleap-io is
imported inside the functions so that importing the worker stays cheap.

A video is

* **embedded** when its frames live inside the labels file (``.pkg.slp``);
* **found** when its path (every file, for an image sequence) leads to a file
  beneath a mount, walked by :mod:`.beneath`: a file outside the mounts is
  reported missing, never found, so the answer does not reveal what exists
  elsewhere on the machine;
* **missing** otherwise, with suggestions: files under the mounts with the same
  name (case-insensitive), those in the labels' own folder first, then those
  whose trailing folders agree most with the original path.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ...errors import LabelsUnreadable
from ...protocol.channel_fs import FsCheckVideosResponseMsg
from .beneath import fd_path, is_file_beneath, open_beneath
from .mounts import MountPolicy
from .search import find_names

__all__ = [
    "LabelsUnreadable",
    "VideoRef",
    "VideoStatus",
    "check_videos",
    "is_labels_path",
    "labels_video_refs",
]

_SPLIT = re.compile(r"[\\/]+")


class VideoStatus(StrEnum):
    """Whether the worker can read one video of a labels file."""

    FOUND = "found"
    MISSING = "missing"
    EMBEDDED = "embedded"


@dataclass(slots=True)
class VideoRef:
    """One video a labels file references.

    Attributes:
        path: The path stored in the labels (the first file of an image
            sequence); for an embedded video, the labels file itself.
        files: Every file it needs (one, or an image sequence's frames).
        embedded: Whether its frames are inside the labels file.
        status: Filled by :func:`check_videos`.
        suggestions: Worker paths that may be this video, best first.
    """

    path: str
    files: list[str]
    embedded: bool
    status: VideoStatus = VideoStatus.MISSING
    suggestions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """``{"path", "status", "suggestions"}``, one item of the response's
        ``videos`` list."""
        return {
            "path": self.path,
            "status": self.status.value,
            "suggestions": list(self.suggestions),
        }


def is_labels_path(path: str) -> bool:
    """Whether a path names a labels file (``.slp``, ``.pkg.slp``)."""
    return path.lower().endswith(".slp")


def _load(policy: MountPolicy, labels_path: str) -> Any:
    """The labels, read through a descriptor opened beneath the mount (so a
    link swapped after the check cannot make us read another file)."""
    import sleap_io as sio

    with open_beneath(policy, labels_path, read=True) as opened:
        if not opened.is_file:
            raise LabelsUnreadable("cannot read labels: not a file")
        try:
            return sio.load_slp(fd_path(opened), open_videos=False)
        except Exception as exc:  # sleap-io and h5py raise many kinds
            raise LabelsUnreadable(f"cannot read labels: {type(exc).__name__}") from exc


def _is_embedded(video: Any) -> bool:
    meta = getattr(video, "backend_metadata", None) or {}
    return bool(meta.get("has_embedded_images"))


def labels_video_refs(labels: Any, labels_path: str) -> list[VideoRef]:
    """The videos of loaded labels, in the labels' order."""
    refs = []
    for video in labels.videos:
        if _is_embedded(video):
            refs.append(VideoRef(labels_path, [labels_path], embedded=True))
            continue
        filename = video.filename
        files = (
            [str(f) for f in filename]
            if isinstance(filename, list)
            else [str(filename)]
        )
        refs.append(VideoRef(files[0] if files else "", files, embedded=False))
    return refs


def _readable(policy: MountPolicy, file: str, labels_dir: str) -> bool:
    candidates = [file]
    if not os.path.isabs(file):  # sleap-io reads relative paths from the labels
        candidates = [os.path.join(labels_dir, file)]
    return any(is_file_beneath(policy, path) for path in candidates)


def _basename(path: str) -> str:
    parts = [p for p in _SPLIT.split(path) if p]
    return parts[-1] if parts else ""


def _shared_tail(original: str, candidate: str) -> int:
    a = [p for p in _SPLIT.split(original) if p][::-1]
    b = [p for p in _SPLIT.split(candidate) if p][::-1]
    n = 0
    for x, y in zip(a, b, strict=False):
        if x.casefold() != y.casefold():
            break
        n += 1
    return n


def _rank_key(
    original: str, labels_dir: str
) -> Callable[[tuple[int, str]], tuple[bool, int, int, str]]:
    """Suggestions beside the labels first, then those sharing more trailing
    folders with the original path, then shallower ones."""

    def key(hit: tuple[int, str]) -> tuple[bool, int, int, str]:
        depth, path = hit
        return (
            os.path.dirname(path) != labels_dir,
            -_shared_tail(original, path),
            depth,
            path,
        )

    return key


def check_videos(
    policy: MountPolicy,
    labels_path: str,
    *,
    max_depth: int = 5,
    search_timeout: float = 5.0,
    max_suggestions: int = 5,
) -> FsCheckVideosResponseMsg:
    """The ``FS_CHECK_VIDEOS_RESPONSE`` for a labels file the worker can read.

    Besides the reference fields (``total_videos``, ``missing`` as
    ``[{filename, original_path}]``, ``accessible``, ``embedded``), each
    ``missing`` item carries ``candidates`` (worker paths, best first) and the
    message carries ``videos``: every video as ``{"path", "status",
    "suggestions"}`` in the labels' order. Reference clients ignore both.

    Args:
        policy: The mounts.
        labels_path: The labels file as the client named it (already checked
            to be inside a mount).
        max_depth: Folder depth of the suggestion search.
        search_timeout: Seconds the suggestion search may take.
        max_suggestions: Most suggestions per missing video.

    Raises:
        PathNotAllowed: the labels file is outside the mounts.
        FileNotFoundError: it is gone.
        LabelsUnreadable: sleap-io cannot read it; the caller reports that in
            the response's ``error``.
    """
    refs = labels_video_refs(_load(policy, labels_path), labels_path)
    labels_dir = os.path.dirname(labels_path)
    for ref in refs:
        if ref.embedded:
            ref.status = VideoStatus.EMBEDDED
        elif ref.files and all(_readable(policy, f, labels_dir) for f in ref.files):
            ref.status = VideoStatus.FOUND
    missing = [r for r in refs if r.status is VideoStatus.MISSING]
    timed_out = False
    if missing:
        hits, timed_out = find_names(
            policy,
            [_basename(r.path) for r in missing],
            max_depth=max_depth,
            timeout=search_timeout,
        )
        for ref in missing:
            found = hits.get(_basename(ref.path).casefold(), [])
            ranked = sorted(found, key=_rank_key(ref.path, labels_dir))
            ref.suggestions = [path for _, path in ranked[:max_suggestions]]
    extra: dict[str, Any] = {"videos": [r.to_dict() for r in refs]}
    if timed_out:
        extra["search_timeout"] = True
    return FsCheckVideosResponseMsg(
        slp_path=labels_path,
        total_videos=len(refs),
        missing=[
            {
                "filename": _basename(r.path),
                "original_path": r.path,
                "candidates": list(r.suggestions),
            }
            for r in missing
        ],
        accessible=sum(r.status is VideoStatus.FOUND for r in refs),
        embedded=sum(r.status is VideoStatus.EMBEDDED for r in refs),
        extra=extra,
    )
