"""``FS_WRITE_SLP``: a copy of a labels file with video paths remapped, written
so that it can neither replace a file nor fill a disk.

The rule (README, "A GPU worker"):

* ``output_dir`` must lie inside a mount (missing folders are made there), and
  the copy goes into a folder of the asking peer below it,
  ``<output_dir>/sleap-rtc-<peer>/`` (see :func:`client_folder_name`), so that
  what a client writes never mixes with, or takes the name of, the labeler's
  own files;
* nothing is ever replaced: the copy gets its name with an exclusive link, and
  a name already taken becomes ``<stem>-2.slp``, ``<stem>-3.slp`` …
  (``FS_WRITE_SLP_OK`` says which);
* each peer may write :attr:`SlpWriteQuota.max_files_per_peer` copies and
  :attr:`SlpWriteQuota.max_bytes_per_peer` bytes per worker process lifetime,
  and all peers together the ``*_total`` limits (a peer id is chosen by its
  client, so the total is what really bounds the disk); past them the answer
  is ``FS_WRITE_SLP_ERROR`` with ``QUOTA_EXCEEDED``.

How: the labels are read through a descriptor opened beneath the mount
(:mod:`.beneath`), saved by sleap-io into a private temporary folder of the
worker (sleap-io writes by name, several times, so it must not write where
others can swap names), measured against the quota, then copied through an
exclusively created hidden file beneath the mount and linked to its name
without replacing anything. No file under the mount is ever half-written under
its final name.

Blocking (sleap-io, file copies): :class:`~.service.FsService` runs it in a
thread.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...errors import LabelsUnreadable, PathNotAllowed, QuotaExceeded
from .beneath import Opened, create_exclusive, fd_path, link_noreplace, open_beneath
from .mounts import MountPolicy

__all__ = [
    "CLIENT_FOLDER_PREFIX",
    "SlpWriteLedger",
    "SlpWriteQuota",
    "client_folder_name",
    "default_output_name",
    "write_remapped_labels",
]

CLIENT_FOLDER_PREFIX = "sleap-rtc-"
"""Start of the name of each peer's folder below an ``output_dir``."""

_MAX_NAME_TRIES = 100
_SPLIT = re.compile(r"[\\/]+")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True, slots=True)
class SlpWriteQuota:
    """What ``FS_WRITE_SLP`` may write during one worker process lifetime.

    Attributes:
        max_files_per_peer: Copies one peer id may write.
        max_bytes_per_peer: Bytes one peer id may write.
        max_files_total: Copies all peers together may write.
        max_bytes_total: Bytes all peers together may write.
    """

    max_files_per_peer: int = 20
    """Copies one peer id may write (a resolve session needs one or two)."""
    max_bytes_per_peer: int = 2 * 1024**3
    """Bytes one peer id may write (a ``.pkg.slp`` carries its frames)."""
    max_files_total: int = 200
    """Copies all peers together may write."""
    max_bytes_total: int = 20 * 1024**3
    """Bytes all peers together may write."""

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer: {value!r}")


class SlpWriteLedger:
    """Counts what each peer wrote against a :class:`SlpWriteQuota`
    (thread-safe: requests of several channels run in threads at once).

    Attributes:
        quota: The limits.
    """

    def __init__(self, quota: SlpWriteQuota | None = None) -> None:
        self.quota = quota or SlpWriteQuota()
        self._lock = threading.Lock()
        self._files: Counter[str] = Counter()
        self._bytes: Counter[str] = Counter()

    def used(self, peer: str) -> tuple[int, int]:
        """``(files, bytes)`` written (or reserved) by ``peer``."""
        with self._lock:
            return self._files[peer], self._bytes[peer]

    def reserve(self, peer: str) -> None:
        """Take one file of ``peer``'s quota before writing.

        Raises:
            QuotaExceeded: ``peer``, or everybody, has written all it may.
        """
        q = self.quota
        with self._lock:
            if self._files[peer] >= q.max_files_per_peer:
                raise QuotaExceeded(
                    f"this client has written {self._files[peer]} labels copies "
                    f"on this worker, the most it may ({q.max_files_per_peer})"
                )
            if self._bytes[peer] >= q.max_bytes_per_peer:
                raise QuotaExceeded(
                    f"this client has written {self._bytes[peer]} bytes of labels "
                    f"copies on this worker, the most it may ({q.max_bytes_per_peer})"
                )
            if sum(self._files.values()) >= q.max_files_total:
                raise QuotaExceeded(
                    "this worker has written all the labels copies it may "
                    f"({q.max_files_total}); ask its owner to restart it"
                )
            self._files[peer] += 1

    def charge(self, peer: str, size: int) -> None:
        """Count ``size`` bytes of a reserved file before it is placed.

        Raises:
            QuotaExceeded: the file would take ``peer``, or everybody, past
                the byte limit (the reservation stays; :meth:`release` it).
        """
        q = self.quota
        with self._lock:
            if self._bytes[peer] + size > q.max_bytes_per_peer:
                raise QuotaExceeded(
                    f"a copy of {size} bytes would take this client past the "
                    f"{q.max_bytes_per_peer} bytes it may write on this worker "
                    f"({self._bytes[peer]} written)"
                )
            if sum(self._bytes.values()) + size > q.max_bytes_total:
                raise QuotaExceeded(
                    f"a copy of {size} bytes would take this worker past the "
                    f"{q.max_bytes_total} bytes it may write for clients"
                )
            self._bytes[peer] += size

    def release(self, peer: str, size: int = 0) -> None:
        """Give back a reservation (and ``size`` charged bytes) of a write
        that did not happen."""
        with self._lock:
            self._files[peer] = max(0, self._files[peer] - 1)
            self._bytes[peer] = max(0, self._bytes[peer] - size)


def client_folder_name(peer: str) -> str:
    """``sleap-rtc-<peer>``: the peer id with anything but letters, digits,
    ``_`` and ``-`` replaced, cut to 64 characters, and a short hash of the id
    added when it had to change (so two ids never share a folder)."""
    safe = _UNSAFE.sub("_", peer)[:64]
    if safe != peer or not safe:
        digest = hashlib.sha256(peer.encode("utf-8", "surrogatepass")).hexdigest()
        safe = f"{safe}_{digest[:8]}" if safe else digest[:12]
    return CLIENT_FOLDER_PREFIX + safe


def _basename(path: str) -> str:
    parts = [p for p in _SPLIT.split(path) if p]
    return parts[-1] if parts else ""


def _split_suffix(name: str) -> tuple[str, str]:
    """``(stem, suffix)``, the suffix ``.pkg.slp`` or ``.slp`` as written."""
    lower = name.lower()
    for suffix in (".pkg.slp", ".slp"):
        if lower.endswith(suffix):
            return name[: -len(suffix)], name[-len(suffix) :]
    return name, ".slp"


def default_output_name(labels_path: str, today: datetime.date | None = None) -> str:
    """``resolved_YYYYMMDD_<stem>.slp`` (``.pkg.slp`` kept), the reference name
    of a remapped copy."""
    stem, suffix = _split_suffix(_basename(labels_path))
    day = (today or datetime.date.today()).strftime("%Y%m%d")
    return f"resolved_{day}_{stem}{suffix.lower()}"


def _check_output_name(name: str) -> None:
    if (
        not name
        or name in (".", "..")
        or _SPLIT.search(name)
        or "\0" in name
        or name.startswith(".")
        or not name.lower().endswith(".slp")
        or len(name.encode("utf-8", "surrogatepass")) > 200
    ):
        raise ValueError(
            f"output_filename must be a plain file name ending in .slp: {name!r}"
        )


def _candidates(name: str) -> list[str]:
    stem, suffix = _split_suffix(name)
    return [name] + [f"{stem}-{i}{suffix}" for i in range(2, _MAX_NAME_TRIES + 1)]


def _is_embedded(video: Any) -> bool:
    meta = getattr(video, "backend_metadata", None) or {}
    return bool(meta.get("has_embedded_images"))


def _restore_source_name(path: str, read_as: str, real: str) -> None:
    """sleap-io stores the name it read the labels from as the filename of
    embedded videos; put the labels' real path back instead of the
    ``/proc/self/fd`` name (only in the worker's private scratch copy)."""
    import h5py

    with h5py.File(path, "r+") as f:
        dataset = f.get("videos_json")
        if not isinstance(dataset, h5py.Dataset):
            return
        for i, raw in enumerate(dataset[:]):
            item = json.loads(raw)
            if isinstance(item, dict) and item.get("filename") == read_as:
                item["filename"] = real
                dataset[i] = json.dumps(item, separators=(",", ":")).encode()


def _save_copy(source: Opened, filename_map: Mapping[str, str], scratch: str) -> int:
    """Load the labels through ``source``'s descriptor, remap, save to
    ``scratch``; the number of videos changed."""
    import sleap_io as sio

    read_as = fd_path(source)
    try:
        labels = sio.load_slp(read_as, open_videos=False)
    except Exception as exc:  # sleap-io and h5py raise many kinds
        raise LabelsUnreadable(f"cannot read labels: {type(exc).__name__}") from exc
    updated = 0
    for video in labels.videos:
        if _is_embedded(video) or isinstance(video.filename, list):
            continue
        new_path = filename_map.get(str(video.filename))
        if new_path is not None and new_path != video.filename:
            video.replace_filename(new_path, open=False)
            updated += 1
    labels.provenance["filename"] = source.real
    try:
        # embed=None re-saves embedded frames (read through the descriptor,
        # still open) and keeps references as paths.
        labels.save(scratch, embed=None, verbose=False)
        if read_as != source.real:
            _restore_source_name(scratch, read_as, source.real)
    except Exception as exc:
        raise LabelsUnreadable(f"cannot write labels: {type(exc).__name__}") from exc
    return updated


def _place(scratch: str, folder: Opened, name: str) -> str:
    """Copy ``scratch`` into ``folder`` under ``name`` or the first free
    variant of it; the name used."""
    part = f".sleap_rtc_{secrets.token_hex(8)}.part"
    fd = create_exclusive(folder, part)
    try:
        with os.fdopen(fd, "wb") as out, open(scratch, "rb") as src:
            shutil.copyfileobj(src, out, 1024 * 1024)
            out.flush()
            os.fsync(out.fileno())
        for candidate in _candidates(name):
            try:
                link_noreplace(folder, part, candidate)
            except FileExistsError:
                continue
            return candidate
        raise FileExistsError(
            f"{name} and its {_MAX_NAME_TRIES - 1} numbered variants all exist"
        )
    finally:
        try:
            os.unlink(part, dir_fd=folder.fd)
        except FileNotFoundError:
            pass  # linked and unlinked: placed


def write_remapped_labels(
    policy: MountPolicy,
    labels_path: str,
    output_dir: str,
    filename_map: Mapping[str, str],
    output_filename: str | None = None,
    *,
    peer: str = "anonymous",
    ledger: SlpWriteLedger | None = None,
) -> tuple[str, int]:
    """Write a copy of a labels file with video paths replaced (see the module
    docstring for where it goes and what it may not do).

    Only videos whose stored path equals a key of ``filename_map`` change;
    embedded videos stay embedded. The original is never touched.

    Args:
        policy: The mounts; the labels, the output folder and every new video
            path must lie inside one.
        labels_path: The labels file to copy.
        output_dir: The folder below which the peer's folder is (made if
            missing, inside a mount).
        filename_map: Stored video path → new worker path.
        output_filename: A plain ``*.slp`` name; default
            :func:`default_output_name`.
        peer: Who asks (the quota's key and the folder's name).
        ledger: The quota bookkeeping (default: a fresh one, default limits).

    Returns:
        ``(output path as the client named the folder, videos updated)``.

    Raises:
        PathNotAllowed: a path outside the mounts.
        FileNotFoundError: the labels file does not exist.
        ValueError: a bad output file name.
        LabelsUnreadable: sleap-io cannot read or write the labels.
        QuotaExceeded: the peer (or everybody) has written all it may.
        FileExistsError: the name and every numbered variant are taken.
    """
    name = output_filename or default_output_name(labels_path)
    _check_output_name(name)
    policy.resolve(output_dir)  # refuse early; the walk below checks again
    for new in filename_map.values():
        policy.resolve(new)
    ledger = ledger or SlpWriteLedger()
    ledger.reserve(peer)
    charged = 0
    try:
        with open_beneath(policy, labels_path, read=True) as source:
            if not source.is_file:
                raise FileNotFoundError(f"labels file not found: {labels_path}")
            with tempfile.TemporaryDirectory(prefix="sleap_rtc_slp_") as private:
                scratch = os.path.join(private, "copy.slp")
                updated = _save_copy(source, filename_map, scratch)
                size = os.stat(scratch).st_size
                ledger.charge(peer, size)
                charged = size
                folder_name = client_folder_name(peer)
                folder_path = os.path.join(output_dir, folder_name)
                with open_beneath(policy, folder_path, make_dirs=True) as folder:
                    if not folder.is_dir:
                        raise PathNotAllowed(f"not a folder: {folder_path}")
                    placed = _place(scratch, folder, name)
    except BaseException:
        ledger.release(peer, charged)
        raise
    return os.path.join(output_dir, folder_name, placed), updated
