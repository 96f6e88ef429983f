"""Fixtures of the worker tests: the worker's one mount with the tiny dataset, and
the half-present project (:func:`~tests.fixtures.half_present.build_half_present`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sleap_rtc_core.worker.files.mounts import MountPolicy
from tests.fixtures.half_present import build_half_present


@pytest.fixture
def mount(tmp_path: Path, tiny_labels: Path) -> Path:
    """``tmp_path/mount``: the worker's one mount, with ``data/tiny.pkg.slp``."""
    root = tmp_path / "mount"
    (root / "data").mkdir(parents=True)
    shutil.copy(tiny_labels, root / "data" / "tiny.pkg.slp")
    return root


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """:func:`build_half_present` in ``tmp_path``."""
    return build_half_present(tmp_path)


@pytest.fixture
def policy(files: dict[str, Path]) -> MountPolicy:
    """The half-present project's one mount (a module may define its own)."""
    return MountPolicy([files["mount"].as_posix()])
