"""Paths of a job: mount confinement checks, video remapping, output names.

* :class:`PathPolicy` is what the job service needs of the worker's mounts
  (``worker.mounts.MountPolicy`` fits); :func:`policy_check` turns it into the
  ``check_path`` of :func:`~..protocol.jobspec_check.validate_spec`.
* :class:`LabelsRemapper` rewrites the video paths of a labels file by the
  spec's ``path_mappings`` (:func:`~..protocol.paths.map_path`), checks every new
  path against the policy, and writes a copy into the job's private folder;
  the original file is never changed.

Blocking file I/O: call from a thread.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from ...errors import PathNotAllowed
from ...protocol.jobspec_check import FieldError, PathCheck, SpecErrorCode
from ...protocol.paths import map_path, usable_mappings

__all__ = [
    "LabelsRemapper",
    "PathPolicy",
    "policy_check",
]

logger = logging.getLogger(__name__)


class PathPolicy(Protocol):
    """The worker's mount confinement (``worker.mounts.MountPolicy`` fits).

    ``resolve(path)`` returns the absolute path with symlinks resolved, or
    raises :class:`~..errors.PathNotAllowed` (code ``ACCESS_DENIED``) when it
    lies outside every mount. The path need not exist.
    """

    def resolve(self, path: str) -> Path:
        """The resolved path inside a mount.

        Raises:
            PathNotAllowed: outside every mount (or no mounts at all).
        """
        ...


# ------------------------------------------------------------------ path checks


def _denied(field_name: str, path: str, exc: PathNotAllowed) -> FieldError:
    if exc.code == "PATH_NOT_FOUND":
        return FieldError(
            field_name, "not found on the worker", SpecErrorCode.PATH_NOT_FOUND, path
        )
    if exc.code in ("ACCESS_DENIED", SpecErrorCode.NOT_ALLOWED):
        return FieldError(
            field_name,
            f"{exc.message or 'not allowed'}; map it to a path inside one of "
            "the worker's mounts",
            SpecErrorCode.NOT_ALLOWED,
            path,
        )
    return FieldError(
        field_name, exc.message or "invalid path", SpecErrorCode.INVALID_PATH, path
    )


def policy_check(policy: PathPolicy, *, must_exist: bool = True) -> PathCheck:
    """A ``check_path(field, path)`` for :func:`validate_spec` over ``policy``.

    Args:
        policy: The mount confinement.
        must_exist: Also report paths that do not exist (``PATH_NOT_FOUND``).
    """

    def check(field_name: str, path: str) -> FieldError | None:
        try:
            resolved = policy.resolve(path)
        except PathNotAllowed as exc:
            return _denied(field_name, path, exc)
        except (OSError, ValueError, RuntimeError) as exc:
            return FieldError(
                field_name, f"invalid path: {exc}", SpecErrorCode.INVALID_PATH, path
            )
        if must_exist and not resolved.exists():
            return FieldError(
                field_name,
                "not found on the worker",
                SpecErrorCode.PATH_NOT_FOUND,
                path,
            )
        return None

    return check


# ----------------------------------------------------------------------- videos


class LabelsRemapper:
    """Remapped copies of labels files whose videos a mapping names.

    :meth:`plan` reads a labels file and checks its new video paths (nothing
    is written); :meth:`write` writes the copies once the job is accepted.
    """

    def __init__(self, mappings: Mapping[str, str], policy: PathPolicy) -> None:
        self._mappings = usable_mappings(mappings)
        self._check = policy_check(policy)
        self._pending: dict[str, tuple[Any, dict[str, str]]] = {}
        self._seen: set[str] = set()
        self.written: dict[str, str] = {}
        self.errors: list[FieldError] = []

    def plan(self, field_name: str, labels_path: str) -> None:
        if (
            not self._mappings
            or not labels_path.endswith(".slp")
            or labels_path in self._seen
        ):
            return
        self._seen.add(labels_path)
        import sleap_io as sio

        try:
            labels = sio.load_slp(labels_path, open_videos=False)
        except Exception as exc:  # sleap-io raises many kinds for a bad file
            self.errors.append(
                FieldError(
                    field_name,
                    f"cannot read the labels file: {exc}",
                    SpecErrorCode.INVALID_VALUE.value,
                    labels_path,
                )
            )
            return
        changed: dict[str, str] = {}
        for i, video in enumerate(labels.videos):
            names = video.filename if isinstance(video.filename, list) else None
            for name in names if names is not None else [video.filename]:
                new = map_path(str(name), self._mappings)
                if new == name:
                    continue
                error = self._check(f"{field_name}.videos[{i}]", new)
                if error is not None:
                    self.errors.append(error)
                changed[str(name)] = new
        if changed:
            self._pending[labels_path] = (labels, changed)

    def write(self, private_dir: Path) -> None:
        import sleap_io as sio

        for i, (path, (labels, changed)) in enumerate(self._pending.items()):
            labels.replace_filenames(filename_map=changed, open_videos=False)
            out = private_dir / f"remapped_{i}_{Path(path).name}"
            sio.save_slp(
                labels, out.as_posix(), embed=False, restore_original_videos=False
            )
            self.written[path] = out.as_posix()
            logger.debug("= remapped %d video path(s) of %s", len(changed), path)
        self._pending.clear()

    def __call__(self, path: str) -> str:
        """The path to give sleap-nn for ``path`` (its copy, if one was made)."""
        return self.written.get(path, path)
