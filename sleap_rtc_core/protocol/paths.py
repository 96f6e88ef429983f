"""The one rule for mapping a client's paths to a worker's.

A mapping is ``{client path: worker path}`` (a job's ``path_mappings``, the CLI's
``--map OLD=NEW``, a choice made in the GUI's PathResolutionDialog). Every path a
job names goes through :func:`map_path`, the labels file, the videos inside it,
the model folders of a track job and ``--map``, and every path written inside a
config text through :func:`map_paths_in_text`, by the same rule:

* the longest key that is the path itself or one of its folders wins
  (``/Volumes/lab`` maps ``/Volumes/lab/x.slp`` but not ``/Volumes/labels``);
* ``/`` and ``\\`` count alike, and a trailing separator on a key or value is
  ignored;
* the rest of the path takes the separators of the worker's side: ``/`` unless
  the value is a Windows path written with ``\\`` only.

:func:`predictions_path_for` names a track job's output beside its data, for
the worker and the client alike. Pure: no file system, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePath

__all__ = [
    "map_path",
    "map_paths_in_text",
    "predictions_path_for",
    "prefix_swap",
    "replace_prefix",
    "usable_mappings",
]

_SEPARATORS = "/\\"
_SPLIT = re.compile(r"[/\\]+")

_STARTS_AFTER = r"\s\"'\[,=("
"""What may come before a path inside a config text (a regex class body)."""

_ENDS_AT = r"\s\"',\]})"
"""What ends a path inside a config text (a regex class body)."""


def usable_mappings(mappings: Mapping[str, str]) -> dict[str, str]:
    """The entries of ``mappings`` that can map anything: string keys and
    values, neither empty (nor only separators)."""
    return {
        k: v
        for k, v in mappings.items()
        if isinstance(k, str)
        and isinstance(v, str)
        and k.strip(_SEPARATORS)
        and v.strip(_SEPARATORS)
    }


def _norm(path: str) -> str:
    return path.replace("\\", "/")


def _join(value: str, rest: str) -> str:
    """``value`` followed by ``rest`` (``""`` or starting with a separator) in
    the separator style of ``value``."""
    windows = "\\" in value and "/" not in value
    tail = rest.replace("/", "\\") if windows else rest.replace("\\", "/")
    base = value.rstrip(_SEPARATORS)
    return base + tail if base or tail else value


def replace_prefix(path: str, old: str, new: str) -> str | None:
    """``path`` with the folder ``old`` replaced by ``new`` (:func:`map_path`
    with the one mapping ``{old: new}``), or ``None`` when ``old`` is neither
    ``path`` nor one of its folders (or empty)."""
    prefix = _norm(old).rstrip("/")
    if not prefix:
        return None
    norm = _norm(path)
    if norm != prefix and not norm.startswith(prefix + "/"):
        return None
    return _join(new, norm[len(prefix) :])


def map_path(path: str, mappings: Mapping[str, str]) -> str:
    """``path`` with the longest mapping key that is the path itself or one of
    its folders replaced by its value; ``path`` unchanged when none is.

    >>> map_path("C:\\\\lab\\\\v.mp4", {"C:\\\\lab": "/mnt/lab"})
    '/mnt/lab/v.mp4'
    """
    best: tuple[int, str] | None = None
    for key, value in usable_mappings(mappings).items():
        mapped = replace_prefix(path, key, value)
        length = len(key.rstrip(_SEPARATORS))
        if mapped is not None and (best is None or length > best[0]):
            best = (length, mapped)
    return path if best is None else best[1]


def prefix_swap(original: str, chosen: str) -> tuple[str, str]:
    """The folders ``(old, new)`` whose swap turns ``original`` into
    ``chosen``: both without their common trailing components (``old`` written
    with ``/``), so one choice in a dialog can move every video of a folder.

    >>> prefix_swap("C:\\\\lab\\\\v\\\\a.mp4", "/data/v/a.mp4")
    ('C:/lab', '/data')
    """
    a, b = _parts(original), _parts(chosen)
    n, limit = 0, min(len(a), len(b))
    while n < limit and a[-1 - n] == b[-1 - n]:
        n += 1
    old_root = "/" if original[:1] in _SEPARATORS else ""
    new_root = "/" if chosen.startswith("/") else ""
    return (
        old_root + "/".join(a[: len(a) - n]),
        new_root + "/".join(b[: len(b) - n]),
    )


def _parts(path: str) -> list[str]:
    return [p for p in _SPLIT.split(path) if p]


def _key_pattern(key: str) -> str:
    """``key`` as a regex in which ``/`` and ``\\`` match each other."""
    return "".join(
        r"[/\\]" if c in _SEPARATORS else re.escape(c) for c in key.rstrip(_SEPARATORS)
    )


def map_paths_in_text(text: str, mappings: Mapping[str, str]) -> str:
    """Every path in ``text`` (a config file) mapped by the rule of
    :func:`map_path`, in one pass.

    A key matches where a path may start (the text's start, after a blank, a
    quote, ``[``, ``,``, ``=`` or ``(``) and only as a whole path or folder (it
    is followed by a separator, a blank, a quote, ``,``, ``]``, ``}``, ``)`` or
    the end). The longest key wins, and replaced text is never replaced
    again.
    """
    pairs = usable_mappings(mappings)
    if not pairs:
        return text
    keys = sorted(pairs, key=len, reverse=True)
    alternatives = "|".join(_key_pattern(k) for k in keys)
    pattern = re.compile(
        rf"(?<![^{_STARTS_AFTER}])({alternatives})((?:[/\\][^{_ENDS_AT}]*)?)"
        rf"(?=[{_ENDS_AT}]|$)"
    )
    by_prefix = {_norm(k).rstrip("/"): v for k, v in pairs.items()}

    def replace(match: re.Match[str]) -> str:
        value = by_prefix[_norm(match.group(1))]
        return _join(value, match.group(2) or "")

    return pattern.sub(replace, text)


def predictions_path_for(data_path: str | PurePath) -> PurePath:
    """``<folder>/<stem>.predictions.slp`` beside a labels or video file."""
    path = PurePath(data_path)
    stem = path.name
    for suffix in (".pkg.slp", ".slp"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    else:
        stem = path.stem
    return path.with_name(f"{stem}.predictions.slp")
