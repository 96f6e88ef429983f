"""Fixtures of the worker tests: the worker's one mount with the tiny dataset."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture
def mount(tmp_path: Path, tiny_labels: Path) -> Path:
    """``tmp_path/mount``: the worker's one mount, with ``data/tiny.pkg.slp``."""
    root = tmp_path / "mount"
    (root / "data").mkdir(parents=True)
    shutil.copy(tiny_labels, root / "data" / "tiny.pkg.slp")
    return root
