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
"""

from __future__ import annotations

import fnmatch
import os
import re
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ...errors import PatternTooBroad
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
    for depth, entry in walk:
        try:
            kind = _match(entry.name, name, wildcard)
            if kind is None or (kind is MatchType.SUBSTRING and not substring):
                continue
            if not entry.is_file() or not policy.allows(entry.path):
                continue
            real = os.path.realpath(entry.path)
            if real in seen_files:
                continue
            seen_files.add(real)
            stat = entry.stat()
        except OSError:
            continue
        score = MATCH_SCORES[kind]
        if file_size is not None and stat.st_size == file_size:
            score += SIZE_BONUS
        found.append(
            Candidate(
                path=entry.path,
                name=entry.name,
                size=stat.st_size,
                modified=stat.st_mtime,
                match_type=kind,
                score=round(score, 3),
                depth=depth,
            )
        )
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
    for depth, entry in walk:
        key = entry.name.casefold()
        if key not in wanted:
            continue
        try:
            if not entry.is_file() or not policy.allows(entry.path):
                continue
            real = os.path.realpath(entry.path)
        except OSError:
            continue
        if real not in seen:
            seen.add(real)
            hits[key].append((depth, entry.path))
    return hits, walk.timed_out


class _Walk:
    """Breadth-first walk of non-folder entries under ``roots`` (so that a
    timeout still leaves the shallow, likelier hits): folder symlinks not
    followed, hidden folders (dot names, and those the policy hides)
    skipped, each real folder read once."""

    def __init__(
        self, policy: MountPolicy, roots: Sequence[str], max_depth: int, deadline: float
    ) -> None:
        self._queue: deque[tuple[str, int]] = deque(
            (d, 0) for d in roots if policy.allows(d)
        )
        self._policy = policy
        self._max_depth = max_depth
        self._deadline = deadline
        self.timed_out = False

    def __iter__(self) -> Iterator[tuple[int, os.DirEntry[str]]]:
        seen: set[str] = set()
        while self._queue:
            if time.monotonic() > self._deadline:
                self.timed_out = True
                return
            folder, depth = self._queue.popleft()
            real = os.path.realpath(folder)
            if real in seen or self._policy.hides(real):
                continue
            seen.add(real)
            try:
                with os.scandir(folder) as it:
                    entries = list(it)
            except OSError:
                continue
            for entry in entries:
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                if is_dir:
                    if depth < self._max_depth and not entry.name.startswith("."):
                        self._queue.append((entry.path, depth + 1))
                    continue
                yield depth, entry
