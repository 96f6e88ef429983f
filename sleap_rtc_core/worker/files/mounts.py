"""The folders a worker exposes, and the policy that confines every path to them.

A worker serves files only from its *mounts*: folders named in its configuration
or with ``--mount PATH[:LABEL]``. Every path a peer names (a labels file, a video,
a folder to list, an output folder) goes through :meth:`MountPolicy.resolve`,
which follows symlinks and ``..`` the way the operating system will when the
file is opened, and refuses the path unless the *real* path lies inside the real
path of a mount. So a symlink inside a mount that points out is refused, while a
mount that is itself a symlink works (its target is resolved once, when the
policy is built). No mount means nothing is allowed (DESIGN.md, "Paths").

A policy may also *hide* folders inside its mounts (the worker's upload area):
a hidden folder and everything below it are refused like a path outside every
mount, so no FS_* request, job path or download can name them; the upload
service reaches them through a policy of its own.

Relative paths are refused rather than resolved against the worker's current
folder: a peer cannot know that folder, and a path that means different things
on different days is not a path we want to confirm.

Nothing here does I/O beyond ``os.path.realpath`` (which reads symlinks).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePath

from ...errors import PathNotAllowed

__all__ = ["Mount", "MountPolicy", "parse_mount"]

logger = logging.getLogger(__name__)

_SEPARATORS = ("/", "\\")


def _default_label(path: str) -> str:
    return PurePath(path).name or path


@dataclass(frozen=True, slots=True)
class Mount:
    """One folder the worker exposes.

    Attributes:
        path: The folder as configured, made absolute (symlinks not resolved:
            this is the name clients see and send back).
        label: The short name clients show for it (default: the folder name).
    """

    path: str
    label: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path:
            raise ValueError(f"mount path must be a non-empty string: {self.path!r}")
        if "\0" in self.path:
            raise ValueError("mount path must not contain NUL")
        absolute = os.path.abspath(os.path.expanduser(self.path))
        object.__setattr__(self, "path", absolute)
        if not self.label:
            object.__setattr__(self, "label", _default_label(absolute))

    @classmethod
    def parse(cls, spec: str) -> Mount:
        """A mount from the ``--mount PATH[:LABEL]`` syntax.

        The label is the text after the last ``:`` when that text is not empty
        and holds no path separator, so ``/data:lab``, ``/data`` and Windows
        paths like ``C:\\data`` (no label) or ``C:\\data:lab`` all read right.

        Raises:
            ValueError: an empty path.
        """
        path, sep, label = spec.rpartition(":")
        if not sep or not path or any(s in label for s in _SEPARATORS):
            return cls(spec)
        if len(path) == 1 and path.isalpha() and not label:
            return cls(spec)  # "C:" alone is a drive, not a path and a label
        return cls(path, label)

    def to_entry(self) -> dict[str, str]:
        """The ``{"path", "label"}`` object of ``FS_GET_MOUNTS`` and metadata."""
        return {"path": self.path, "label": self.label}


def parse_mount(spec: str) -> Mount:
    """Same as :meth:`Mount.parse` (handy as an ``argparse`` ``type``)."""
    return Mount.parse(spec)


def _inside(real: str, root: str) -> bool:
    if real == root:
        return True
    prefix = root if root.endswith(os.sep) else root + os.sep
    return real.startswith(prefix)


class MountPolicy:
    """Confines paths to the worker's mounts.

    Attributes:
        mounts: The mounts, in configuration order.
    """

    def __init__(
        self,
        mounts: Iterable[Mount | str] = (),
        *,
        hidden: Iterable[str | os.PathLike[str]] = (),
    ) -> None:
        """Resolve each mount's (and hidden folder's) real path once.

        Args:
            mounts: :class:`Mount` objects or ``PATH[:LABEL]`` strings.
            hidden: Folders inside the mounts that are refused as if outside.

        Raises:
            ValueError: two mounts with the same label, or a bad mount path.
        """
        items = tuple(m if isinstance(m, Mount) else Mount.parse(m) for m in mounts)
        labels = [m.label for m in items]
        duplicates = sorted({x for x in labels if labels.count(x) > 1})
        if duplicates:
            raise ValueError(f"mount labels must be unique: {duplicates}")
        self.mounts: tuple[Mount, ...] = items
        self._roots: tuple[str, ...] = tuple(os.path.realpath(m.path) for m in items)
        self._hidden: tuple[str, ...] = tuple(
            os.path.realpath(os.fspath(h)) for h in hidden
        )
        for mount, root in zip(items, self._roots, strict=True):
            if not os.path.isdir(root):
                logger.warning("mount %s (%s) is not a folder", mount.label, root)

    def __repr__(self) -> str:
        hidden = f", hidden={list(self._hidden)!r}" if self._hidden else ""
        return f"MountPolicy({list(self.mounts)!r}{hidden})"

    def hiding(self, *folders: str | os.PathLike[str]) -> MountPolicy:
        """The same mounts with ``folders`` hidden as well."""
        return MountPolicy(self.mounts, hidden=(*self._hidden, *folders))

    def hides(self, real: str | os.PathLike[str]) -> bool:
        """Whether the real path ``real`` is a hidden folder or lies below one."""
        text = os.fspath(real)
        return any(_inside(text, h) for h in self._hidden)

    @property
    def roots(self) -> tuple[Path, ...]:
        """The real path of each mount, aligned with :attr:`mounts`."""
        return tuple(Path(r) for r in self._roots)

    def entries(self) -> list[dict[str, str]]:
        """``[{"path", "label"}]`` for ``FS_GET_MOUNTS`` and the worker metadata."""
        return [m.to_entry() for m in self.mounts]

    def by_label(self, label: str) -> Mount | None:
        """The mount with this label, or ``None``."""
        return next((m for m in self.mounts if m.label == label), None)

    def resolve(self, path: str | os.PathLike[str]) -> Path:
        """The real path of ``path``, if it lies inside a mount.

        Symlinks and ``..`` are resolved first (components that do not exist yet
        are kept as given), so what is checked is what the OS would open.

        Raises:
            PathNotAllowed: (code ``ACCESS_DENIED``) a relative or malformed
                path, or one whose real path is outside every mount.
        """
        text = os.fspath(path)
        if not isinstance(text, str) or not text or "\0" in text:
            raise PathNotAllowed("not a valid path")
        if not os.path.isabs(text):
            raise PathNotAllowed(f"not an absolute path: {text}")
        try:
            real = os.path.realpath(text)
        except (OSError, ValueError) as exc:
            raise PathNotAllowed(f"cannot resolve {text}: {exc}") from None
        if not any(_inside(real, root) for root in self._roots) or self.hides(real):
            raise PathNotAllowed(f"outside the worker's mounts: {text}")
        return Path(real)

    def allows(self, path: str | os.PathLike[str]) -> bool:
        """Whether :meth:`resolve` would accept ``path``."""
        try:
            self.resolve(path)
        except PathNotAllowed:
            return False
        return True

    def mount_of(self, path: str | os.PathLike[str]) -> Mount | None:
        """The innermost mount that holds ``path``, or ``None`` if none does."""
        try:
            real = os.fspath(self.resolve(path))
        except PathNotAllowed:
            return None
        best: tuple[int, Mount] | None = None
        for mount, root in zip(self.mounts, self._roots, strict=True):
            if _inside(real, root) and (best is None or len(root) > best[0]):
                best = (len(root), mount)
        return None if best is None else best[1]
