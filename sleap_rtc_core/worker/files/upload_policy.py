"""Which stored uploads a channel's jobs may read: its grants and its path policy.

A path is no proof of knowing a file: a channel may use a stored upload only
when it uploaded it or asked for it by its SHA-256 (:class:`UploadGrants`), and
:class:`UploadJobPolicy` resolves a job's paths through the worker's mounts with
the area hidden but for those files and the channel's own run folders.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

from ...errors import PathNotAllowed
from .mounts import MountPolicy
from .slp_write import client_folder_name
from .uploads import UploadArea

__all__ = ["UploadGrants", "UploadJobPolicy"]


class UploadGrants:
    """The stored files one channel may use: those it uploaded, and those it
    asked about by hash (it knows the content). A path is no proof: stored
    paths carry the hash, but a path seen in a log or a listing is not the
    file, so naming one without a grant is refused."""

    def __init__(self) -> None:
        self._hashes: set[str] = set()

    def add(self, sha256: str) -> None:
        """Allow the stored file with this content."""
        self._hashes.add(sha256.lower())

    def __contains__(self, sha256: object) -> bool:
        return isinstance(sha256, str) and sha256.lower() in self._hashes

    def __iter__(self) -> Any:
        return iter(sorted(self._hashes))

    def __len__(self) -> int:
        return len(self._hashes)


class UploadJobPolicy:
    """The job path policy of one channel: the worker's mounts (the upload
    area hidden), plus the stored files this channel holds grants for, the
    run folders of its own uploader under ``<area>/models/``, and the run
    folders of jobs whose secret it showed (``models``: a model trained from
    an upload, named from another connection or process).

    Fits :class:`~..jobs.paths.PathPolicy`.
    """

    def __init__(
        self,
        base: MountPolicy,
        area: UploadArea,
        grants: UploadGrants,
        uploader: str,
        models: Collection[str] = (),
    ) -> None:
        self.base = base
        self.area = area
        self.grants = grants
        self.uploader = uploader
        self.models = models

    def resolve(self, path: str) -> Path:
        """The real path of ``path`` if the job may use it.

        Raises:
            PathNotAllowed: outside the mounts, or inside the upload area
                without a grant (or outside this uploader's run folders).
        """
        text = os.fspath(path)
        if isinstance(text, str) and os.path.isabs(text) and "\0" not in text:
            real = os.path.realpath(text)
            if self.area.contains(real):
                hexname = self.area.stored_path(real)
                if hexname is not None and hexname in self.grants:
                    return Path(real)
                mine = self.area.root / "models" / client_folder_name(self.uploader)
                if real == str(mine) or real.startswith(str(mine) + os.sep):
                    return Path(real)
                for run in self.models:
                    if self.area.holds_models(run) and (
                        real == run or real.startswith(run + os.sep)
                    ):
                        return Path(real)
                raise PathNotAllowed(
                    f"not an upload of this connection: {text} (send it, or ask "
                    "for it by its SHA-256, first; a model: show its job's "
                    "secret)"
                )
        return self.base.resolve(text)

    def models_dir_for(self, labels_path: str) -> Path | None:
        """Where run folders go for labels that are an upload (``None``:
        the default, beside the labels)."""
        real = os.path.realpath(labels_path) if os.path.isabs(labels_path) else ""
        if real and self.area.stored_path(real) is not None:
            return self.area.models_dir(self.uploader)
        return None
