"""Open a path beneath a mount without letting a swapped symlink lead out of it.

:meth:`~.mounts.MountPolicy.resolve` answers "is this path inside a mount?" by
resolving it to a string; whatever opens that string later resolves it again,
and a symlink swapped in between leads anywhere. The functions here never use a
checked string again. They open the mount root, then walk the path one
component at a time with ``dir_fd=`` and ``O_NOFOLLOW``, so each step is taken
from a folder already known to be inside, and what they hand back is an open
file descriptor (or what was read through one).

Symlinks inside a mount are common (``proj/video.mp4 -> /data/raw/video.mp4``),
so they are followed, but by this walk rather than by the kernel: the link is
read with ``readlinkat``, a relative target continues the walk from the link's
folder, an absolute one starts over from the mount that holds it, and a
``..`` at a mount root starts over from the root's parent. Wherever the walk
would leave every mount it stops with :class:`~...errors.PathNotAllowed`, and
so does a walk that ends in a folder the policy hides (or below one). At
most :data:`MAX_SYMLINKS` links are followed (a loop ends as "not found"). A
mount's own path is trusted as the worker's configuration gave it, but its real
path is opened without following any symlink, so a folder above a mount that
became a link since the worker started is refused too.

A walk that found its names itself (a search listing folders, a run folder's
files) reopens them with :func:`open_relative`, which follows no symlink at
all: there a link where a folder was listed means it was swapped meanwhile.

``openat2(RESOLVE_BENEATH)`` would do the walk in the kernel, but it refuses
every absolute symlink, including the ones that point inside the mount, and
Python has no binding for it; the walk here costs a few system calls per
component, which the FS_* requests can afford.

Everything here blocks: callers run it in ``asyncio.to_thread``. Linux only
(``O_PATH``, ``/proc/self/fd``), with a fallback where ``O_PATH`` is missing.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat as stat_module
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType

from ...errors import PathNotAllowed, SleapRTCError
from .mounts import MountPolicy

__all__ = [
    "MAX_SYMLINKS",
    "Opened",
    "create_exclusive",
    "fd_path",
    "is_file_beneath",
    "link_noreplace",
    "list_dir_beneath",
    "open_beneath",
    "open_relative",
    "same_file",
    "stat_beneath",
]

MAX_SYMLINKS = 40
"""Symlinks one walk follows before it gives up (the kernel's own limit)."""

_O_PATH: int = getattr(os, "O_PATH", 0)
_CLOEXEC: int = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW: int = getattr(os, "O_NOFOLLOW", 0)
_STEP = (_O_PATH or (os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)) | _CLOEXEC | _NOFOLLOW
"""Flags of each intermediate step: no side effects, never through a link."""
_READ = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | _CLOEXEC | _NOFOLLOW
"""Flags of a final component that is read (a FIFO must not block us)."""
_ROOT_STEP = _STEP | os.O_DIRECTORY


@dataclass(slots=True)
class Opened:
    """An open file or folder beneath a mount; close it (or use ``with``).

    Attributes:
        fd: The descriptor (``O_PATH`` unless it was opened for reading).
        real: Its path with every symlink resolved, as the walk found it (a
            name for messages and for later walks, never opened by itself).
        stat: ``fstat`` of :attr:`fd`.
    """

    fd: int
    real: str
    stat: os.stat_result

    @property
    def is_dir(self) -> bool:
        """Whether it is a folder."""
        return stat_module.S_ISDIR(self.stat.st_mode)

    @property
    def is_file(self) -> bool:
        """Whether it is a regular file."""
        return stat_module.S_ISREG(self.stat.st_mode)

    def close(self) -> None:
        """Close the descriptor (idempotent)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Opened:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Restart(SleapRTCError):
    """The walk left its root: start over with this absolute path."""

    def __init__(self, parts: list[str], links: int) -> None:
        super().__init__()
        self.parts = parts
        self.links = links


def _parts(path: str) -> list[str]:
    """The components of ``path``, ``""`` and ``.`` dropped, ``..`` kept."""
    return [p for p in path.split("/") if p and p != "."]


def _not_found(text: str, code: int = errno.ENOENT) -> FileNotFoundError:
    # strerror is what the service reports: name only what the client sent.
    return FileNotFoundError(code, f"not found: {text}")


def _match_root(policy: MountPolicy, parts: list[str]) -> tuple[str, list[str]] | None:
    """The real root of the innermost mount whose path (as configured, or
    real) begins ``parts``, and the rest of ``parts`` below it."""
    best: tuple[int, str] | None = None
    for mount, root in zip(policy.mounts, policy.roots, strict=True):
        real = os.fspath(root)
        for alias in (mount.path, real):
            prefix = _parts(alias)
            n = len(prefix)
            if parts[:n] == prefix and (best is None or n > best[0]):
                best = (n, real)
    return None if best is None else (best[1], parts[best[0] :])


def _open_root(real_root: str, text: str) -> int:
    """The mount root, opened from ``/`` without following any symlink."""
    fd = os.open("/", _ROOT_STEP)
    try:
        for name in _parts(real_root):
            child = os.open(name, _ROOT_STEP, dir_fd=fd)
            os.close(fd)
            fd = child
    except OSError as exc:
        os.close(fd)
        if exc.errno == errno.ENOENT:
            raise _not_found(text) from None
        # A link (or a file) where the mount's real path had a folder.
        raise PathNotAllowed(f"the mount holding {text} is not available") from None
    return fd


def _walk(policy: MountPolicy, text: str, *, read: bool, make_dirs: bool) -> Opened:
    if not isinstance(text, str) or not text or "\0" in text:
        raise PathNotAllowed("not a valid path")
    if not os.path.isabs(text):
        raise PathNotAllowed(f"not an absolute path: {text}")
    pending = _parts(text)
    links = 0
    while True:
        match = _match_root(policy, pending)
        if match is None:
            raise PathNotAllowed(f"outside the worker's mounts: {text}")
        root, rest = match
        try:
            opened = _walk_root(root, rest, text, read, make_dirs, links)
        except _Restart as restart:
            pending, links = restart.parts, restart.links
            continue
        if policy.hides(opened.real):
            opened.close()
            raise PathNotAllowed(f"outside the worker's mounts: {text}")
        return opened


def _walk_root(
    root: str,
    rest: list[str],
    text: str,
    read: bool,
    make_dirs: bool,
    links: int,
) -> Opened:
    """Walk ``rest`` beneath ``root``; raises :class:`_Restart` where the
    walk must leave ``root`` (a ``..`` above it, an absolute symlink)."""
    fds = [_open_root(root, text)]
    names: list[str] = []
    todo = deque(rest)
    opened_for_read = False
    try:
        while todo:
            name = todo.popleft()
            opened_for_read = False
            if name == "..":
                if names:
                    names.pop()
                    os.close(fds.pop())
                    continue
                parent = _parts(os.path.dirname(root))
                raise _Restart([*parent, *todo], links)
            last = not todo
            try:
                fd = os.open(name, _READ if last and read else _STEP, dir_fd=fds[-1])
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    fd = -1  # a symlink (the flags without O_PATH say so)
                elif exc.errno == errno.ENOENT and make_dirs:
                    _mkdir(name, fds[-1])
                    todo.appendleft(name)
                    continue
                elif exc.errno in (errno.ENOENT, errno.ENOTDIR):
                    raise _not_found(text) from None
                else:
                    raise
            if fd >= 0:
                info = os.fstat(fd)
                if not stat_module.S_ISLNK(info.st_mode):
                    if not last and not stat_module.S_ISDIR(info.st_mode):
                        os.close(fd)
                        raise _not_found(text, errno.ENOTDIR)
                    fds.append(fd)
                    names.append(name)
                    opened_for_read = last and read
                    continue
                os.close(fd)
            links += 1
            if links > MAX_SYMLINKS:
                raise _not_found(text, errno.ELOOP)
            try:
                target = os.readlink(name, dir_fd=fds[-1])
            except OSError:
                raise _not_found(text) from None  # swapped away meanwhile
            if target.startswith("/"):
                raise _Restart([*_parts(target), *todo], links)
            todo.extendleft(reversed(_parts(target)))
        if read and not opened_for_read:
            # Ended on a folder reached by ``..`` or on the root itself, which
            # were only located: open it (".", no name to swap) for reading.
            fds.append(os.open(".", _READ, dir_fd=fds[-1]))
        fd = fds.pop()
        return Opened(fd, _join(root, names), os.fstat(fd))
    finally:
        for fd in fds:
            os.close(fd)


def _mkdir(name: str, dir_fd: int) -> None:
    try:
        os.mkdir(name, 0o777, dir_fd=dir_fd)
    except FileExistsError:
        pass  # made meanwhile: the retried open checks what it is


def _join(root: str, names: list[str]) -> str:
    return os.path.join(root, *names) if names else root


def open_beneath(
    policy: MountPolicy,
    path: str,
    *,
    read: bool = False,
    make_dirs: bool = False,
) -> Opened:
    """Open ``path`` (absolute, as the client named it) beneath its mount.

    Args:
        policy: The mounts.
        path: The path to open.
        read: Open the final component for reading (a folder can then be
            listed); otherwise it is only located (``O_PATH``).
        make_dirs: Create missing folders on the way (and at the end), each
            with ``mkdirat`` in a folder already walked.

    Raises:
        PathNotAllowed: a relative or malformed path, one that lies outside
            every mount, or whose walk (through ``..`` or symlinks) leaves them.
        FileNotFoundError: nothing there, a file where a folder was needed, or
            too many symlinks; its ``strerror`` names only ``path``.
        OSError: any other failure of a step (``PermissionError`` ...).
    """
    return _walk(policy, path, read=read, make_dirs=make_dirs)


def open_relative(
    folder: Opened, names: Sequence[str], *, read: bool = False
) -> Opened:
    """Open ``names`` (plain components) below an open folder, each step with
    ``dir_fd=`` and ``O_NOFOLLOW`` and no symlink followed at all, so what
    opens lies below ``folder`` as it is now (not below whatever its path
    names by then). For walks that found these names themselves (a search, a
    run folder's files), where any link on the way means something changed.

    Args:
        folder: A folder from :func:`open_beneath` (or from here).
        names: The components below it; none opens ``folder`` itself again.
        read: Open the last one for reading (otherwise it is only located).

    Raises:
        ValueError: a component that is not a plain name (``..``, ``/``).
        FileNotFoundError: a component is missing, a symlink, or a file where
            a folder was needed.
        OSError: any other failure of a step.
    """
    for name in names:
        if not name or "/" in name or name in (".", "..") or "\0" in name:
            raise ValueError(f"not a plain name: {name!r}")
    if not names:
        fd = os.open(".", _READ if read else _ROOT_STEP, dir_fd=folder.fd)
        return Opened(fd, folder.real, os.fstat(fd))
    fd = folder.fd
    try:
        for i, name in enumerate(names):
            last = i == len(names) - 1
            try:
                child = os.open(name, _READ if last and read else _STEP, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOENT, errno.ENOTDIR):
                    raise _not_found(name, exc.errno) from None
                raise
            if fd != folder.fd:
                os.close(fd)
            fd = child
            info = os.fstat(fd)
            if stat_module.S_ISLNK(info.st_mode):  # O_PATH opens the link itself
                raise _not_found(name, errno.ELOOP)
            if not last and not stat_module.S_ISDIR(info.st_mode):
                raise _not_found(name, errno.ENOTDIR)
    except BaseException:
        if fd != folder.fd:
            os.close(fd)
        raise
    return Opened(fd, os.path.join(folder.real, *names), info)


def same_file(a: os.stat_result, b: os.stat_result) -> bool:
    """Whether two ``stat`` results are of one file (device and inode)."""
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def stat_beneath(policy: MountPolicy, path: str) -> os.stat_result:
    """``stat`` of what ``path`` leads to, beneath its mount.

    Raises:
        PathNotAllowed: see :func:`open_beneath`.
        FileNotFoundError: see :func:`open_beneath`.
        OSError: see :func:`open_beneath`.
    """
    with open_beneath(policy, path) as opened:
        return opened.stat


def is_file_beneath(policy: MountPolicy, path: str) -> bool:
    """Whether ``path`` leads to a regular file beneath a mount (never raises
    for a bad or refused path)."""
    try:
        info = stat_beneath(policy, path)
    except (PathNotAllowed, OSError, ValueError):
        return False
    return stat_module.S_ISREG(info.st_mode)


def list_dir_beneath(
    policy: MountPolicy, folder: Opened
) -> Iterator[tuple[str, os.stat_result]]:
    """``(name, stat)`` of each entry of an open folder, read through its
    descriptor. A symlink is reported as what it leads to, walked beneath the
    mounts from the folder's real path; one that leads out of them, or nowhere,
    is left out, so a listing never shows anything outside.

    Args:
        policy: The mounts.
        folder: A folder from :func:`open_beneath` with ``read=True``.

    Raises:
        OSError: the folder cannot be read.
    """
    with os.scandir(folder.fd) as entries:
        items = list(entries)
    for entry in items:
        if policy.hides(os.path.join(folder.real, entry.name)):
            continue  # a folder the policy hides is not shown either
        try:
            info = entry.stat(follow_symlinks=False)
            if stat_module.S_ISLNK(info.st_mode):
                info = stat_beneath(policy, os.path.join(folder.real, entry.name))
        except (PathNotAllowed, OSError):
            continue  # a link out, a broken link, or gone meanwhile
        yield entry.name, info


def create_exclusive(folder: Opened, name: str, mode: int = 0o644) -> int:
    """A new file ``name`` in an open folder, for writing: never an existing
    file, never through a symlink (``O_CREAT | O_EXCL | O_NOFOLLOW``).

    Raises:
        FileExistsError: something is already called ``name``.
        ValueError: ``name`` is not a plain file name.
        OSError: the file cannot be created.
    """
    if not name or "/" in name or name in (".", "..") or "\0" in name:
        raise ValueError(f"not a plain file name: {name!r}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
    return os.open(name, flags, mode, dir_fd=folder.fd)


_RENAME_NOREPLACE = 1


def _renameat2_noreplace(dir_fd: int, src: str, dst: str) -> None:
    """``renameat2(..., RENAME_NOREPLACE)`` through libc (glibc >= 2.28).

    Raises:
        OSError: ``ENOSYS`` where libc or the file system lacks it, else the
            call's own error (``EEXIST`` when ``dst`` exists).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        raise OSError(errno.ENOSYS, "renameat2 is not available") from None
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    renameat2.restype = ctypes.c_int
    rc = renameat2(
        dir_fd, os.fsencode(src), dir_fd, os.fsencode(dst), _RENAME_NOREPLACE
    )
    if rc != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def link_noreplace(folder: Opened, src: str, dst: str) -> None:
    """Give the file ``src`` of an open folder the name ``dst`` there too,
    never replacing anything, then drop ``src``: ``linkat`` + ``unlinkat``, or
    ``renameat2(RENAME_NOREPLACE)`` on file systems without hard links.

    Raises:
        FileExistsError: ``dst`` exists (``src`` is left as it was).
        OSError: neither way works here.
    """
    try:
        os.link(
            src, dst, src_dir_fd=folder.fd, dst_dir_fd=folder.fd, follow_symlinks=False
        )
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (
            errno.EPERM,
            errno.EOPNOTSUPP,
            errno.ENOTSUP,
            errno.EMLINK,
        ):
            raise
        try:
            _renameat2_noreplace(folder.fd, src, dst)
        except OSError as fallback:
            if fallback.errno == errno.EEXIST:
                raise FileExistsError(errno.EEXIST, f"exists: {dst}") from None
            raise
        return
    os.unlink(src, dir_fd=folder.fd)


def fd_path(opened: Opened) -> str:
    """A path that opens exactly :attr:`Opened.fd`'s file (``/proc/self/fd``),
    for libraries that take only a name (sleap-io, h5py); :attr:`Opened.real`
    where ``/proc`` is not mounted (checked, but no longer race-free)."""
    proc = f"/proc/self/fd/{opened.fd}"
    return proc if os.path.exists(proc) else opened.real
