"""Finding a file by name (and size) under the worker's mounts (``FS_RESOLVE``).

A labeler's video lives at ``D:\\lab\\mouse1.mp4`` on their laptop and somewhere
else on the GPU box; the worker looks for it by name. The search is blocking
(``os.scandir``), so callers run it in a thread; it bounds itself by depth and
by a deadline it checks between folders, because a thread cannot be cancelled
from outside.

Matching is case-insensitive: an exact name, a wildcard pattern (``*?[``, which
needs at least :data:`MIN_LITERAL_CHARS` literal characters besides dots, so
that ``*.py`` over a whole file server is refused), or a substring. A
candidate whose size equals the expected size scores higher. Hidden folders
(``.git``, ``.cache``) are skipped, folder symlinks are not followed, and a file
whose real path leaves the mounts is never reported.

The walk never reads a folder by its path, which a symlink swapped meanwhile
could lead out of the mounts: each start folder is opened beneath its mount
(:mod:`.beneath`), every folder below is reopened from that descriptor one
component at a time with ``O_NOFOLLOW`` (:func:`~.beneath.open_relative`) and
must be the very folder (device and inode) that its parent listed, and it is
listed through its own descriptor. A file's size is ``fstatat`` in that
folder; a symlink to a file is followed by a walk beneath the mounts, so a
name, size or time from outside them never reaches a result.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import stat as stat_module
import time
from collections import deque
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ...errors import PathNotAllowed, PatternTooBroad
from .beneath import Opened, open_beneath, open_relative, same_file
from .mounts import MountPolicy

__all__ = [
    "MATCH_SCORES",
    "MIN_LITERAL_CHARS",
    "SIZE_BONUS",
    "Candidate",
    "MatchType",
    "PatternTooBroad",
    "SearchResult",
    "find_files",
    "find_names",
    "normalize_pattern",
]

MIN_LITERAL_CHARS = 3
"""A wildcard pattern needs at least this many non-wildcard characters."""

_WILDCARDS = re.compile(r"[*?\[\]]")
_MAX_COLLECTED = 2000
"""Matches kept before ranking; past this the search stops (``truncated``)."""


class MatchType(StrEnum):
    """How a candidate's name matched the pattern."""

    EXACT = "exact"
    WILDCARD = "wildcard"
    SUBSTRING = "substring"


MATCH_SCORES: dict[MatchType, float] = {
    MatchType.EXACT: 0.8,
    MatchType.WILDCARD: 0.6,
    MatchType.SUBSTRING: 0.4,
}
"""Base score of each match type."""

SIZE_BONUS = 0.2
"""Added when the file's size equals the size asked for."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """One file that matched.

    Attributes:
        path: The file as seen through its mount (not symlink-resolved).
        name: Its file name.
        size: Its size in bytes.
        modified: Its modification time (seconds since the epoch).
        match_type: How the name matched.
        score: Higher is better (see :data:`MATCH_SCORES`, :data:`SIZE_BONUS`).
        depth: Folders below the mount root.
    """

    path: str
    name: str
    size: int
    modified: float
    match_type: MatchType
    score: float
    depth: int

    def to_dict(self) -> dict[str, Any]:
        """The candidate object of ``FS_RESOLVE_RESPONSE``."""
        return {
            "path": self.path,
            "name": self.name,
            "size": self.size,
            "modified": self.modified,
            "match_type": self.match_type.value,
            "score": self.score,
        }


@dataclass(slots=True)
class SearchResult:
    """What one search found.

    Attributes:
        candidates: Best first, at most the limit asked for.
        truncated: More matched than were returned (or the collection cap hit).
        timeout: The deadline passed before every folder was read.
        search_time_ms: Wall time of the search.
    """

    candidates: list[Candidate] = field(default_factory=list)
    truncated: bool = False
    timeout: bool = False
    search_time_ms: float = 0.0


def normalize_pattern(pattern: str) -> str:
    """The file-name part of ``pattern`` (clients may send a whole path, in
    either separator style), checked for breadth.

    Raises:
        ValueError: nothing left to search for.
        PatternTooBroad: a wildcard pattern with fewer than
            :data:`MIN_LITERAL_CHARS` literal characters.
    """
    name = re.split(r"[\\/]", pattern.strip())[-1]
    if not name or name in (".", ".."):
        raise ValueError(f"no file name in pattern {pattern!r}")
    if _WILDCARDS.search(name):
        literal = _WILDCARDS.sub("", name)
        if len(literal.replace(".", "")) < MIN_LITERAL_CHARS:
            raise PatternTooBroad(
                f"pattern {name!r} needs at least {MIN_LITERAL_CHARS} literal "
                "characters"
            )
    return name


def _match(name: str, pattern: str, wildcard: bool) -> MatchType | None:
    folded = name.casefold()
    if folded == pattern:
        return MatchType.EXACT
    if wildcard:
        return MatchType.WILDCARD if fnmatch.fnmatchcase(folded, pattern) else None
    return MatchType.SUBSTRING if pattern in folded else None


def find_files(
    policy: MountPolicy,
    pattern: str,
    *,
    roots: Sequence[str] | None = None,
    file_size: int | None = None,
    max_depth: int = 5,
    timeout: float = 5.0,
    limit: int = 20,
    substring: bool = True,
) -> SearchResult:
    """Search the mounts (or ``roots``) for files named like ``pattern``.

    Blocking: run it with ``asyncio.to_thread``.

    Args:
        policy: The mounts; every candidate must resolve inside one.
        pattern: A file name, a wildcard pattern, or a path whose last part is
            used (see :func:`normalize_pattern`).
        roots: Folders to search instead of every mount (each must be allowed).
        file_size: Expected size in bytes; equal sizes rank higher.
        max_depth: Folder levels below each root to descend (0: the root only).
        timeout: Seconds before the search stops and reports ``timeout``.
        limit: Most candidates returned.
        substring: Whether a name merely containing the pattern matches.

    Returns:
        The ranked candidates.

    Raises:
        ValueError: an empty pattern.
        PatternTooBroad: see :func:`normalize_pattern`.
    """
    started = time.monotonic()
    name = normalize_pattern(pattern).casefold()
    wildcard = _WILDCARDS.search(name) is not None
    result = SearchResult()
    found: list[Candidate] = []
    seen_files: set[str] = set()
    start_dirs = list(roots) if roots is not None else [m.path for m in policy.mounts]
    walk = _Walk(policy, start_dirs, max_depth, started + max(0.0, timeout))
    with contextlib.closing(walk.entries()) as entries:
        for depth, entry in entries:
            kind = _match(entry.name, name, wildcard)
            if kind is None or (kind is MatchType.SUBSTRING and not substring):
                continue
            file = entry.regular_file()
            if file is None or file[0] in seen_files:
                continue
            real, stat = file
            seen_files.add(real)
            found.append(_candidate(entry, stat, kind, file_size, depth))
            if len(found) >= _MAX_COLLECTED:
                result.truncated = True
                break
    result.timeout = walk.timed_out
    found.sort(key=lambda c: (-c.score, c.depth, c.path))
    if len(found) > limit:
        result.truncated = True
    result.candidates = found[:limit]
    result.search_time_ms = round((time.monotonic() - started) * 1000.0, 3)
    return result


def _candidate(
    entry: _Entry,
    stat: os.stat_result,
    kind: MatchType,
    file_size: int | None,
    depth: int,
) -> Candidate:
    score = MATCH_SCORES[kind]
    if file_size is not None and stat.st_size == file_size:
        score += SIZE_BONUS
    return Candidate(
        path=entry.path,
        name=entry.name,
        size=stat.st_size,
        modified=stat.st_mtime,
        match_type=kind,
        score=round(score, 3),
        depth=depth,
    )


def find_names(
    policy: MountPolicy,
    names: Iterable[str],
    *,
    roots: Sequence[str] | None = None,
    max_depth: int = 5,
    timeout: float = 5.0,
) -> tuple[dict[str, list[tuple[int, str]]], bool]:
    """Find several exact file names (case-insensitive) in one walk.

    Blocking: run it with ``asyncio.to_thread``. Used to suggest where the
    missing videos of a labels file are.

    Args:
        policy: The mounts; every hit must resolve inside one.
        names: File names (not paths).
        roots: Folders to search instead of every mount.
        max_depth: Folder levels below each root to descend.
        timeout: Seconds before the walk stops.

    Returns:
        ``({casefolded name: [(depth, path), ...]}, timed_out)``, hits in walk
        order (shallow first).
    """
    wanted = {n.casefold() for n in names if n}
    hits: dict[str, list[tuple[int, str]]] = {n: [] for n in wanted}
    if not wanted:
        return hits, False
    seen: set[str] = set()
    start_dirs = list(roots) if roots is not None else [m.path for m in policy.mounts]
    walk = _Walk(policy, start_dirs, max_depth, time.monotonic() + max(0.0, timeout))
    with contextlib.closing(walk.entries()) as entries:
        for depth, entry in entries:
            key = entry.name.casefold()
            if key not in wanted:
                continue
            file = entry.regular_file()
            if file is not None and file[0] not in seen:
                seen.add(file[0])
                hits[key].append((depth, entry.path))
    return hits, walk.timed_out


@dataclass(frozen=True, slots=True)
class _Entry:
    """A non-folder entry of a folder the walk holds open; usable only until
    the walk moves on, since :meth:`regular_file` reads through that folder.

    Attributes:
        name: Its name.
        path: Its path as seen through the start folder (what clients get).
    """

    name: str
    path: str
    policy: MountPolicy
    folder: Opened

    def regular_file(self) -> tuple[str, os.stat_result] | None:
        """``(real path, stat)`` if it is a regular file, or a symlink that
        leads beneath the mounts to one; ``None`` otherwise (or when gone)."""
        real = os.path.join(self.folder.real, self.name)
        try:
            info = os.stat(self.name, dir_fd=self.folder.fd, follow_symlinks=False)
            if stat_module.S_ISLNK(info.st_mode):
                with open_beneath(self.policy, real) as target:
                    real, info = target.real, target.stat
        except (PathNotAllowed, OSError, ValueError):
            return None
        return (real, info) if stat_module.S_ISREG(info.st_mode) else None


_Queued = tuple[int, tuple[str, ...], int, os.stat_result | None]
"""A folder to read: its start folder, the names below it, its depth, and
what its parent listed under that name (``None`` for a start folder)."""


class _Walk:
    """Breadth-first walk of non-folder entries under ``roots`` (so that a
    timeout still leaves the shallow, likelier hits): folder symlinks not
    followed, hidden folders (dot names, and those the policy hides)
    skipped, each folder read once, every folder read through a descriptor
    (see the module docstring)."""

    def __init__(
        self, policy: MountPolicy, roots: Sequence[str], max_depth: int, deadline: float
    ) -> None:
        self._policy = policy
        self._roots = list(roots)
        self._max_depth = max_depth
        self._deadline = deadline
        self.timed_out = False

    def entries(self) -> Generator[tuple[int, _Entry], None, None]:
        """``(depth, entry)`` of every non-folder entry, shallow first. Close
        it (``contextlib.closing``) when stopping early, to release the start
        folders' descriptors at once."""
        roots = self._open_roots()
        try:
            yield from self._breadth_first(roots)
        finally:
            for _, root in roots:
                root.close()

    def _open_roots(self) -> list[tuple[str, Opened]]:
        """Each start folder that lies beneath a mount, opened (O_PATH)."""
        opened: list[tuple[str, Opened]] = []
        for path in self._roots:
            try:
                root = open_beneath(self._policy, path)
            except (PathNotAllowed, OSError, ValueError):
                continue
            if root.is_dir:
                opened.append((path, root))
            else:
                root.close()
        return opened

    def _breadth_first(
        self, roots: list[tuple[str, Opened]]
    ) -> Iterator[tuple[int, _Entry]]:
        queue: deque[_Queued] = deque((i, (), 0, None) for i in range(len(roots)))
        seen: set[tuple[int, int]] = set()
        while queue:
            if time.monotonic() > self._deadline:
                self.timed_out = True
                return
            index, names, depth, listed = queue.popleft()
            shown, root = roots[index]
            try:
                folder = open_relative(root, names, read=True)
            except (OSError, ValueError):
                continue  # gone, or a symlink by now: not followed
            with folder:
                key = (folder.stat.st_dev, folder.stat.st_ino)
                if key in seen:
                    continue
                if listed is not None and not same_file(listed, folder.stat):
                    continue  # replaced since its parent was listed
                seen.add(key)
                if self._policy.hides(folder.real):
                    continue  # the upload area: not for searching
                try:
                    with os.scandir(folder.fd) as it:
                        items = list(it)
                except OSError:
                    continue
                here = os.path.join(shown, *names)
                for item in items:
                    try:
                        is_dir = item.is_dir(follow_symlinks=False)
                        info = item.stat(follow_symlinks=False) if is_dir else None
                    except OSError:
                        continue
                    if info is not None:
                        if depth < self._max_depth and not item.name.startswith("."):
                            queue.append((index, (*names, item.name), depth + 1, info))
                        continue
                    entry = _Entry(
                        item.name, os.path.join(here, item.name), self._policy, folder
                    )
                    yield depth, entry
