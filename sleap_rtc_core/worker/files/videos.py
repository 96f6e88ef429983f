"""The labels-file side of the worker's path checks: which videos a ``.slp``
references and whether the worker can read them, and writing a copy of the
labels with video paths remapped (the folder swap of ``FS_RESOLVE_WITH_PREFIX``
is :func:`~..protocol.paths.prefix_swap`).

Everything here is blocking (sleap-io reads HDF5; the search walks folders):
:class:`~.service.FsService` runs it with ``asyncio.to_thread``. sleap-io is
imported inside the functions so that importing the worker stays cheap.

A video is

* **embedded** when its frames live inside the labels file (``.pkg.slp``);
* **found** when its path (every file, for an image sequence) exists *and* lies
  inside a mount: a file outside the mounts is reported missing, never found,
  so the answer does not reveal what exists elsewhere on the machine;
* **missing** otherwise, with suggestions: files under the mounts with the same
  name (case-insensitive), those in the labels' own folder first, then those
  whose trailing folders agree most with the original path.
"""

from __future__ import annotations

import datetime
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from ...errors import LabelsUnreadable, PathNotAllowed
from ...protocol.channel_fs import FsCheckVideosResponseMsg
from .mounts import MountPolicy
from .search import find_names

__all__ = [
    "LabelsUnreadable",
    "VideoRef",
    "VideoStatus",
    "check_videos",
    "default_output_name",
    "is_labels_path",
    "labels_video_refs",
    "write_remapped_labels",
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


def _load(real_path: Path) -> Any:
    import sleap_io as sio

    try:
        return sio.load_slp(os.fspath(real_path), open_videos=False)
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
    for path in candidates:
        try:
            if os.path.isfile(policy.resolve(path)):
                return True
        except (PathNotAllowed, OSError):
            continue
    return False


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
        LabelsUnreadable: sleap-io cannot read it; the caller reports that in
            the response's ``error``.
    """
    real = policy.resolve(labels_path)
    refs = labels_video_refs(_load(real), labels_path)
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


def default_output_name(labels_path: str, today: datetime.date | None = None) -> str:
    """``resolved_YYYYMMDD_<stem>.slp`` (``.pkg.slp`` kept), the reference name
    of a remapped copy."""
    name = _basename(labels_path)
    suffix = ".pkg.slp" if name.lower().endswith(".pkg.slp") else ".slp"
    stem = name[: -len(suffix)] if name.lower().endswith(suffix) else name
    day = (today or datetime.date.today()).strftime("%Y%m%d")
    return f"resolved_{day}_{stem}{suffix}"


def _check_output_name(name: str) -> None:
    if (
        not name
        or name in (".", "..")
        or _SPLIT.search(name)
        or "\0" in name
        or name.startswith(".")
        or not name.lower().endswith(".slp")
    ):
        raise ValueError(
            f"output_filename must be a plain file name ending in .slp: {name!r}"
        )


def write_remapped_labels(
    policy: MountPolicy,
    labels_path: str,
    output_dir: str,
    filename_map: Mapping[str, str],
    output_filename: str | None = None,
) -> tuple[str, int]:
    """Write a copy of a labels file with video paths replaced.

    The copy is written to a temporary file beside the target and renamed into
    place, so a reader never sees half a file; embedded videos stay embedded.
    Only videos whose stored path equals a key of ``filename_map`` change.

    Args:
        policy: The mounts; the labels, the output folder and every new video
            path must lie inside one.
        labels_path: The labels file to copy.
        output_dir: Folder for the copy (created if missing, inside a mount).
        filename_map: Stored video path → new worker path.
        output_filename: A plain ``*.slp`` name; default
            :func:`default_output_name`.

    Returns:
        ``(output path as the client named the folder, videos updated)``.

    Raises:
        PathNotAllowed: a path outside the mounts.
        FileNotFoundError: the labels file does not exist.
        ValueError: a bad output file name.
        LabelsUnreadable: sleap-io cannot read or write the labels.
    """
    name = output_filename or default_output_name(labels_path)
    _check_output_name(name)
    real_labels = policy.resolve(labels_path)
    if not real_labels.is_file():
        raise FileNotFoundError(f"labels file not found: {labels_path}")
    for new in filename_map.values():
        policy.resolve(new)
    real_dir = policy.resolve(output_dir)
    real_dir.mkdir(parents=True, exist_ok=True)
    target = real_dir / name
    if target.is_symlink() or target.is_dir():
        raise PathNotAllowed(f"will not overwrite {name} in {output_dir}")
    labels = _load(real_labels)
    updated = 0
    for video in labels.videos:
        if _is_embedded(video) or isinstance(video.filename, list):
            continue
        new_path = filename_map.get(str(video.filename))
        if new_path is not None and new_path != video.filename:
            video.replace_filename(new_path, open=False)
            updated += 1
    fd, scratch = tempfile.mkstemp(prefix=".sleap_rtc_", suffix=".slp", dir=real_dir)
    os.close(fd)
    try:
        # embed=None re-saves embedded frames and keeps references as paths.
        labels.save(scratch, embed=None, verbose=False)
        os.replace(scratch, target)
    except Exception as exc:
        Path(scratch).unlink(missing_ok=True)
        raise LabelsUnreadable(f"cannot write labels: {type(exc).__name__}") from exc
    return os.path.join(output_dir, name), updated
