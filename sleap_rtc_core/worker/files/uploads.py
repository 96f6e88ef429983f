"""The worker's upload area: where files sent by clients land, stored once.

A lab whose GPU box shares no storage with the laptops sends its labels over
the data channel (:mod:`.upload_service` speaks the messages). They land here,
in a folder the worker's configuration names inside one of its mounts::

    <area>/sha256/<hex>/<name>              complete, verified files, by content
    <area>/sha256/<hex>/.uploader           whose quota the file counts against
    <area>/partial/<uploader>/<hex>.partial bytes received so far
    <area>/partial/<uploader>/<hex>.json    name, size and verified length
    <area>/models/<uploader>/               run folders of jobs on uploads

The rules:

* **Content-addressed.** A file is stored under the SHA-256 of its bytes, so
  the same file sent twice (by anyone) is stored once, and a client that asks
  with the hash first (``FILE_UPLOAD_CHECK``) sends nothing the second time.
* **Nothing half-written looks complete.** Bytes go to ``*.partial`` files
  in the uploader's own folder; a file appears under ``sha256/`` only after
  its size and its SHA-256 matched, by a hard link that never replaces.
* **Resumable.** A partial keeps the bytes up to its last verified segment
  (:class:`Partial`), so an upload cut off by a dropped channel resumes there.
* **Bounded.** Each uploader (a peer id, the only name a room-secret client
  has; the total bounds the disk whatever ids are used) may hold
  :attr:`UploadQuota.max_bytes_per_uploader` in stored and partial uploads,
  and everybody together :attr:`UploadQuota.max_bytes_total`. Files unused
  for :attr:`UploadQuota.expire_days` are removed by :meth:`UploadArea.sweep`.
* **Confined.** Every file is opened beneath the area through descriptors
  (:mod:`.beneath`) and any symlink inside the area is refused, so nothing is
  ever written outside it, whatever was planted there.

Who may use a stored file: a channel that proved it knows the content, by
uploading it or by asking with its hash (see :mod:`.upload_policy`). The area is
hidden from every FS_* request, job path and download otherwise
(:meth:`~.mounts.MountPolicy.hiding`).

Everything here blocks: :mod:`.upload_service` runs it in threads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import stat as stat_module
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import PathNotAllowed, QuotaExceeded, SleapRTCError, UploadConflict
from .beneath import Opened, create_exclusive, open_beneath
from .mounts import MountPolicy
from .slp_write import client_folder_name

__all__ = [
    "SEGMENT_SIZE",
    "Partial",
    "UploadArea",
    "UploadQuota",
]

logger = logging.getLogger(__name__)

SEGMENT_SIZE = 4 << 20
"""Bytes per verified segment of a resumable upload."""

_HEX = re.compile(r"[0-9a-f]{64}\Z")
_SWEEP_LIMIT = 10_000
_CLOEXEC: int = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW: int = getattr(os, "O_NOFOLLOW", 0)
_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class UploadQuota:
    """How much the upload area may hold, and for how long.

    Attributes:
        max_bytes_per_uploader: Stored and partial bytes one uploader may hold.
        max_bytes_total: Bytes all uploaders together may hold.
        expire_days: Days a file (or partial, or run folder) may go unused
            before :meth:`UploadArea.sweep` removes it.
    """

    max_bytes_per_uploader: int = 20 * 1024**3
    """Stored and partial bytes one uploader may hold."""
    max_bytes_total: int = 200 * 1024**3
    """Bytes all uploaders together may hold (what really bounds the disk)."""
    expire_days: float = 30.0
    """Days unused before a file is removed."""

    def __post_init__(self) -> None:
        for name in ("max_bytes_per_uploader", "max_bytes_total"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer: {value!r}")
        if not isinstance(self.expire_days, int | float) or self.expire_days <= 0:
            raise ValueError(f"expire_days must be positive: {self.expire_days!r}")


def check_upload_name(name: str) -> str:
    """``name`` if it is a bare file name fit to store under.

    Raises:
        PathNotAllowed: a folder part, ``..``, a leading dot, NUL or too long.
    """
    if (
        not isinstance(name, str)
        or not name
        or name.startswith(".")
        or any(c in name for c in "/\\\0")
        or len(name.encode("utf-8", "surrogatepass")) > 200
    ):
        raise PathNotAllowed(f"not a bare file name: {str(name)[:80]!r}")
    return name


@dataclass(slots=True)
class _Record:
    name: str
    size: int
    verified: int


class Partial:
    """One upload in progress: bytes ``[0, received)`` of a partial file.

    The bytes up to :attr:`verified` were checked segment by segment and made
    durable; :meth:`keep` cuts the file back to them when the sender goes away.

    Attributes:
        uploader: Whose folder (and quota) it is in.
        sha256: The whole file's announced SHA-256.
        name: The name it will be stored under.
        size: The announced size.
        received: Bytes written so far.
        verified: Bytes checked and durable.
    """

    def __init__(
        self,
        area: UploadArea,
        uploader: str,
        sha256: str,
        record: _Record,
        folder: Opened,
        fd: int,
    ) -> None:
        self.area = area
        self.uploader = uploader
        self.sha256 = sha256
        self.name = record.name
        self.size = record.size
        self.verified = record.verified
        self.received = record.verified
        self._folder = folder
        self._fd = fd
        self._whole = hashlib.sha256()
        self._segment = hashlib.sha256()
        self._closed = False

    def _rehash_prefix(self) -> None:
        os.lseek(self._fd, 0, os.SEEK_SET)
        left = self.verified
        while left > 0:
            block = os.read(self._fd, min(_BLOCK, left))
            if not block:
                raise OSError("the partial file is shorter than recorded")
            self._whole.update(block)
            left -= len(block)
        os.ftruncate(self._fd, self.verified)
        os.lseek(self._fd, self.verified, os.SEEK_SET)

    def write(self, data: bytes) -> None:
        """Append received bytes.

        Raises:
            SleapRTCError: (``SIZE_MISMATCH``) more bytes than announced.
        """
        if self.received + len(data) > self.size:
            raise SleapRTCError(
                f"more bytes than the {self.size} announced", code="SIZE_MISMATCH"
            )
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self._whole.update(data)
        self._segment.update(data)
        self.received += len(data)

    def segment(self, end: int, sha256: str) -> None:
        """The sender says the bytes since the last segment, up to ``end``,
        hash to ``sha256``: check, make them durable, record them.

        Raises:
            SleapRTCError: (``CHECKSUM_MISMATCH`` or ``SIZE_MISMATCH``) they do
                not; the unverified bytes are dropped (the partial is kept).
        """
        if end != self.received:
            self._drop_unverified()
            raise SleapRTCError(
                f"a segment ending at {end}, but {self.received} bytes came",
                code="SIZE_MISMATCH",
            )
        if self._segment.hexdigest() != sha256.lower():
            self._drop_unverified()
            raise SleapRTCError(
                f"segment ending at {end} has the wrong SHA-256",
                code="CHECKSUM_MISMATCH",
            )
        os.fsync(self._fd)
        self.verified = end
        self._segment = hashlib.sha256()
        self.area._write_record(
            self._folder, self.sha256, _Record(self.name, self.size, end)
        )

    def _drop_unverified(self) -> None:
        os.ftruncate(self._fd, self.verified)
        self.received = self.verified
        # The whole-file hash now covers bytes that were dropped: rebuild it.
        self._whole = hashlib.sha256()
        self._segment = hashlib.sha256()
        self._rehash_prefix()

    def finish(self) -> Path:
        """All bytes came: check size and SHA-256, store the file by content.

        Returns:
            The stored file (an identical one stored meanwhile is used).

        Raises:
            SleapRTCError: ``SIZE_MISMATCH`` or ``CHECKSUM_MISMATCH`` (the
                partial is removed: its bytes are not the announced file).
            PathNotAllowed: a symlink where the area has folders.
        """
        if self.received != self.size:
            raise SleapRTCError(
                f"{self.received} bytes received, {self.size} announced",
                code="SIZE_MISMATCH",
            )
        if self._whole.hexdigest() != self.sha256:
            self.discard()
            raise SleapRTCError(
                "the file's SHA-256 is not the one announced", code="CHECKSUM_MISMATCH"
            )
        os.fsync(self._fd)
        path = self.area._place(self)
        self.discard()
        return path

    def keep(self) -> None:
        """The sender went away: keep the verified bytes for a resume."""
        if self._closed:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, self.verified)
            os.fsync(self._fd)
        self._close()

    def discard(self) -> None:
        """Remove the partial and its quota (a stored file counts instead)."""
        if self._closed:
            return
        for name in (f"{self.sha256}.partial", f"{self.sha256}.json"):
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=self._folder.fd)
        self._close()
        self.area._forget_partial(self.uploader, self.sha256)

    def _close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._folder.close()
        self.area._release(self.uploader, self.sha256)

    @property
    def closed(self) -> bool:
        """Whether it was kept or discarded (no more bytes go in)."""
        return self._closed

    @property
    def partial_name(self) -> str:
        """The partial file's name in the uploader's folder."""
        return f"{self.sha256}.partial"


class UploadArea:
    """The upload area of one worker (see the module docstring).

    Attributes:
        root: The area's real path.
        quota: Its limits.
    """

    def __init__(self, root: str | os.PathLike[str], quota: UploadQuota | None = None):
        self.root = Path(os.path.realpath(os.fspath(root)))
        self.quota = quota or UploadQuota()
        self._policy = MountPolicy()  # nothing is reachable before open()
        self._lock = threading.Lock()
        self._blobs: dict[str, tuple[str, int]] = {}
        self._partials: dict[tuple[str, str], int] = {}
        self._active: set[tuple[str, str]] = set()

    def __repr__(self) -> str:
        return f"UploadArea({str(self.root)!r})"

    # ------------------------------------------------------------ opening

    def open(self) -> None:
        """Make the area's folders and count what it holds (at worker start).

        Raises:
            PathNotAllowed: a folder of the area is a symlink.
            OSError: the area cannot be made.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        self._policy = MountPolicy([str(self.root)])
        for sub in ("sha256", "partial", "models"):
            self._open_dir(sub, make=True).close()
        blobs: dict[str, tuple[str, int]] = {}
        partials: dict[tuple[str, str], int] = {}
        for hexname in self._names("sha256"):
            found = self._blob_of(hexname)
            if found is not None:
                blobs[hexname] = (found[1], found[0].stat().st_size)
        for uploader in self._names("partial"):
            with contextlib.suppress(PathNotAllowed, OSError):
                with self._open_dir(f"partial/{uploader}", read=True) as folder:
                    for entry in os.listdir(folder.fd):
                        if entry.endswith(".json") and _HEX.match(entry[:-5]):
                            record = self._read_record(folder, entry[:-5])
                            if record is not None:
                                partials[(uploader, entry[:-5])] = record.size
        with self._lock:
            self._blobs, self._partials = blobs, partials
        logger.info(
            "= upload area %s: %d file(s), %d partial(s), %d bytes",
            self.root,
            len(blobs),
            len(partials),
            self.used_total(),
        )

    def _open_dir(
        self, relative: str, *, make: bool = False, read: bool = False
    ) -> Opened:
        """A folder of the area, by descriptor, refusing any symlink on the way
        (``read``: opened for listing)."""
        expected = os.path.join(self.root, relative) if relative else str(self.root)
        opened = open_beneath(self._policy, expected, make_dirs=make, read=read)
        if opened.real != expected or not opened.is_dir:
            opened.close()
            raise PathNotAllowed(f"a link or a file in the upload area: {relative}")
        return opened

    def _names(self, relative: str) -> list[str]:
        try:
            with self._open_dir(relative, read=True) as folder:
                with os.scandir(folder.fd) as it:
                    return sorted(e.name for e in it)
        except (PathNotAllowed, OSError):
            return []

    # ------------------------------------------------------------ usage

    def used_by(self, uploader: str) -> int:
        """Bytes ``uploader`` holds (stored and partial)."""
        folder = client_folder_name(uploader)
        with self._lock:
            return self._used_by(folder)

    def _used_by(self, folder: str) -> int:
        stored = sum(s for who, s in self._blobs.values() if who == folder)
        partial = sum(s for (who, _), s in self._partials.items() if who == folder)
        return stored + partial

    def used_total(self) -> int:
        """Bytes the whole area holds."""
        with self._lock:
            return sum(s for _, s in self._blobs.values()) + sum(
                self._partials.values()
            )

    @property
    def uploading(self) -> int:
        """Uploads in progress now."""
        with self._lock:
            return len(self._active)

    # ------------------------------------------------------------ lookups

    def lookup(self, sha256: str, *, touch: bool = True) -> Path | None:
        """The stored file with this content, if any (its last use is now)."""
        hexname = sha256.lower()
        if not _HEX.match(hexname):
            return None
        found = self._blob_of(hexname)
        if found is None:
            return None
        if touch:
            with contextlib.suppress(PathNotAllowed, OSError):
                with self._open_dir("sha256") as folder:
                    os.utime(hexname, dir_fd=folder.fd, follow_symlinks=False)
        return found[0]

    def _blob_of(self, hexname: str) -> tuple[Path, str] | None:
        """``(file, uploader folder)`` of a complete stored file."""
        try:
            with self._open_dir(f"sha256/{hexname}", read=True) as folder:
                with os.scandir(folder.fd) as it:
                    entries = list(it)
                names = [
                    e.name
                    for e in entries
                    if not e.name.startswith(".")
                    and stat_module.S_ISREG(e.stat(follow_symlinks=False).st_mode)
                ]
                if len(names) != 1:
                    return None
                owner = ""
                with contextlib.suppress(OSError):
                    flags = os.O_RDONLY | _NOFOLLOW | _CLOEXEC
                    ofd = os.open(".uploader", flags, dir_fd=folder.fd)
                    with os.fdopen(ofd, "rb") as f:
                        owner = f.read(200).decode("utf-8", "replace").strip()
                return Path(folder.real) / names[0], owner
        except (PathNotAllowed, OSError):
            return None

    def stored_path(self, real: str | os.PathLike[str]) -> str | None:
        """The hex of the stored file ``real`` is (a real path), else ``None``."""
        parts = self._relative(real)
        if parts is None or len(parts) != 3 or parts[0] != "sha256":
            return None
        hexname = parts[1]
        found = self._blob_of(hexname) if _HEX.match(hexname) else None
        if found is None or found[0].name != parts[2]:
            return None
        return hexname

    def models_dir(self, uploader: str) -> Path:
        """``<area>/models/<uploader>/``, made if missing.

        Raises:
            PathNotAllowed: a symlink in the way.
        """
        relative = f"models/{client_folder_name(uploader)}"
        self._open_dir(relative, make=True).close()
        return self.root / relative

    def holds_models(self, real: str | os.PathLike[str]) -> bool:
        """Whether ``real`` (a real path) lies in a run folder of the area."""
        parts = self._relative(real)
        return parts is not None and len(parts) >= 3 and parts[0] == "models"

    def _relative(self, real: str | os.PathLike[str]) -> list[str] | None:
        text = os.fspath(real)
        root = str(self.root)
        if text == root:
            return []
        if not text.startswith(root + os.sep):
            return None
        return [p for p in text[len(root) + 1 :].split(os.sep) if p]

    def contains(self, real: str | os.PathLike[str]) -> bool:
        """Whether the real path ``real`` is the area or lies in it."""
        return self._relative(real) is not None

    # ------------------------------------------------------------ uploads

    def begin(
        self,
        uploader: str,
        sha256: str,
        name: str,
        size: int,
        *,
        restart: bool = False,
    ) -> Partial:
        """Start (or resume) receiving ``sha256`` from ``uploader``.

        Raises:
            PathNotAllowed: a bad name, or a symlink in the uploader's folder.
            QuotaExceeded: the uploader, or the area, would hold too much.
            UploadConflict: the same upload runs on another channel.
            OSError: the partial cannot be written.
        """
        hexname = sha256.lower()
        if not _HEX.match(hexname):
            raise PathNotAllowed("not a SHA-256")
        check_upload_name(name)
        folder_name = client_folder_name(uploader)
        key = (folder_name, hexname)
        q = self.quota
        with self._lock:
            if key in self._active:
                raise UploadConflict(
                    "this file is being uploaded on another channel right now"
                )
            held = self._partials.get(key, 0)
            mine = self._used_by(folder_name) - held
            total = (
                sum(s for _, s in self._blobs.values())
                + sum(self._partials.values())
                - held
            )
            if mine + size > q.max_bytes_per_uploader:
                raise QuotaExceeded(
                    f"{size} bytes would take this uploader past the "
                    f"{q.max_bytes_per_uploader} bytes it may keep here "
                    f"({mine} held)"
                )
            if total + size > q.max_bytes_total:
                raise QuotaExceeded(
                    f"{size} bytes would take the upload area past its "
                    f"{q.max_bytes_total} bytes ({total} held)"
                )
            self._active.add(key)
            self._partials[key] = size
        try:
            return self._open_partial(
                uploader, folder_name, hexname, name, size, restart
            )
        except BaseException:
            with self._lock:
                self._active.discard(key)
                if held:
                    self._partials[key] = held
                else:
                    self._partials.pop(key, None)
            raise

    def _open_partial(
        self,
        uploader: str,
        folder_name: str,
        hexname: str,
        name: str,
        size: int,
        restart: bool,
    ) -> Partial:
        folder = self._open_dir(f"partial/{folder_name}", make=True)
        try:
            record = None if restart else self._read_record(folder, hexname)
            if record is None or record.size != size or record.verified > size:
                record = _Record(name, size, 0)
            record.name = name
            flags = os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC
            fd = os.open(f"{hexname}.partial", flags, 0o600, dir_fd=folder.fd)
            if not stat_module.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise PathNotAllowed("the partial upload is not a regular file")
            if os.fstat(fd).st_size < record.verified:
                record.verified = 0
            partial = Partial(self, uploader, hexname, record, folder, fd)
            try:
                partial._rehash_prefix()
                self._write_record(folder, hexname, record)
            except BaseException:
                os.close(fd)
                raise
            return partial
        except BaseException:
            folder.close()
            raise

    def _read_record(self, folder: Opened, hexname: str) -> _Record | None:
        try:
            fd = os.open(f"{hexname}.json", os.O_RDONLY | _NOFOLLOW, dir_fd=folder.fd)
            with os.fdopen(fd, "rb") as f:
                data: Any = json.loads(f.read(4096))
            record = _Record(
                str(data["name"]), int(data["size"]), int(data["verified"])
            )
            check_upload_name(record.name)
        except (OSError, ValueError, KeyError, TypeError, PathNotAllowed):
            return None
        if record.size < 0 or not 0 <= record.verified <= record.size:
            return None
        return record

    def _write_record(self, folder: Opened, hexname: str, record: _Record) -> None:
        temp = f".{hexname}.json.{os.getpid()}.{threading.get_ident()}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=folder.fd)
        fd = create_exclusive(folder, temp, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(
                {"name": record.name, "size": record.size, "verified": record.verified},
                f,
            )
        os.replace(temp, f"{hexname}.json", src_dir_fd=folder.fd, dst_dir_fd=folder.fd)

    def _place(self, partial: Partial) -> Path:
        """Link a verified partial into ``sha256/<hex>/<name>`` (never
        replacing), or find the identical file stored meanwhile."""
        existing = self._blob_of(partial.sha256)
        if existing is not None:
            return existing[0]
        owner = client_folder_name(partial.uploader)
        with self._open_dir(f"sha256/{partial.sha256}", make=True) as blob:
            try:
                os.link(
                    partial.partial_name,
                    partial.name,
                    src_dir_fd=partial._folder.fd,
                    dst_dir_fd=blob.fd,
                    follow_symlinks=False,
                )
            except FileExistsError:
                pass  # stored meanwhile under this name (same content)
            except OSError:
                self._copy_into(partial, blob)
            with contextlib.suppress(FileExistsError):
                fd = create_exclusive(blob, ".uploader", 0o644)
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(owner)
            path = Path(blob.real) / partial.name
        found = self._blob_of(partial.sha256)
        if found is None:
            raise PathNotAllowed("the stored file is not where it was put")
        with self._lock:
            self._blobs[partial.sha256] = (found[1] or owner, partial.size)
        logger.info("= stored upload %s (%d bytes)", path, partial.size)
        return found[0]

    @staticmethod
    def _copy_into(partial: Partial, blob: Opened) -> None:
        """Where hard links are not supported: an exclusive copy."""
        fd = create_exclusive(blob, partial.name, 0o644)
        with os.fdopen(fd, "wb") as out:
            os.lseek(partial._fd, 0, os.SEEK_SET)
            while block := os.read(partial._fd, _BLOCK):
                out.write(block)
            out.flush()
            os.fsync(out.fileno())

    def _forget_partial(self, uploader: str, sha256: str) -> None:
        with self._lock:
            self._partials.pop((client_folder_name(uploader), sha256), None)

    def _release(self, uploader: str, sha256: str) -> None:
        with self._lock:
            self._active.discard((client_folder_name(uploader), sha256))

    # ------------------------------------------------------------ expiry

    def sweep(
        self, now: float | None = None, in_use: Iterable[str] = (), limit: int = 0
    ) -> int:
        """Remove stored files, partials and run folders unused for
        :attr:`UploadQuota.expire_days` (at most ``limit`` entries, default
        :data:`_SWEEP_LIMIT`); ``in_use`` hashes are kept. Returns how many."""
        cutoff = (time.time() if now is None else now) - self.quota.expire_days * 86400
        keep = {h.lower() for h in in_use}
        budget = limit or _SWEEP_LIMIT
        removed = 0
        for hexname in self._names("sha256")[:budget]:
            if hexname in keep or not self._older(f"sha256/{hexname}", cutoff):
                continue
            if self._remove(f"sha256/{hexname}"):
                removed += 1
                with self._lock:
                    self._blobs.pop(hexname, None)
        for uploader in self._names("partial")[:budget]:
            names = self._names(f"partial/{uploader}")[:budget]
            for hexname in sorted({n.split(".", 1)[0] for n in names}):
                with self._lock:
                    active = (uploader, hexname) in self._active
                mine = [n for n in names if n.split(".", 1)[0] == hexname]
                where = f"partial/{uploader}/"
                if active or any(not self._older(where + n, cutoff) for n in mine):
                    continue
                if all([self._remove(where + n) for n in mine]):
                    removed += 1
                    with self._lock:
                        self._partials.pop((uploader, hexname), None)
        for uploader in self._names("models")[:budget]:
            for run in self._names(f"models/{uploader}")[:budget]:
                if self._older(f"models/{uploader}/{run}", cutoff) and self._remove(
                    f"models/{uploader}/{run}"
                ):
                    removed += 1
        if removed:
            logger.info("= upload area: %d expired entr(ies) removed", removed)
        return removed

    def _older(self, relative: str, cutoff: float) -> bool:
        try:
            info = os.lstat(self.root / relative)
        except OSError:
            return False
        return info.st_mtime < cutoff

    def _remove(self, relative: str) -> bool:
        path = self.root / relative
        try:
            if path.is_symlink() or not path.is_dir():
                path.unlink()
            else:
                shutil.rmtree(path)  # fd-based on Linux: never follows links
        except OSError as exc:
            logger.warning("! cannot remove %s: %s", path, exc)
            return False
        return True
