"""The checks of this machine against real parts: the interpreter, torch,
a child process importing a module, folders in ``tmp_path``, loopback ports.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sleap_rtc_core.doctor.machine import (
    check_disk,
    check_importable,
    check_mount,
    check_packages,
    check_python,
    check_torch,
    check_zmq_ports,
)
from tests.fixtures.timing import scaled


def test_python_and_packages() -> None:
    python = check_python()
    assert python.ok is True
    assert sys.executable in python.detail
    packages = check_packages(worker=True)
    assert packages.ok is True, packages
    for name in ("sleap-rtc", "websockets", "aiortc", "sleap-nn", "sleap-io", "torch"):
        assert f"{name} " in packages.detail


def test_torch_reports_the_devices() -> None:
    check = check_torch(0, worker=True)
    assert check.ok is True, check
    assert check.detail.startswith("torch ")
    # A GPU index that no machine has fails where CUDA works; without CUDA the
    # worker trains on the CPU, which is reported, not failed.
    far = check_torch(999, worker=True)
    if "no CUDA GPU visible" in check.detail:
        assert far.ok is True
        assert "CPU" in far.advice
    else:
        assert far.ok is False
        assert "does not exist" in far.advice


async def test_importable_in_a_child_process() -> None:
    ok = await check_importable("json", timeout=scaled(30))
    assert ok.ok is True, ok
    missing = await check_importable("no_such_module_xyz", timeout=scaled(30))
    assert missing.ok is False
    assert "pip install" in missing.advice
    optional = await check_importable(
        "no_such_module_xyz", timeout=scaled(30), required=False
    )
    assert optional.ok is None
    broken = await check_importable("sleap_rtc_core._no_such_part", timeout=scaled(30))
    assert broken.ok is False
    assert "ModuleNotFoundError" in broken.detail


async def test_import_timeout_kills_the_child() -> None:
    check = await check_importable("sleap_nn.train", name="sleap-nn", timeout=0.01)
    assert check.ok is False
    assert "did not finish within" in check.detail


@pytest.mark.slow
async def test_sleap_nn_imports_for_real() -> None:
    check = await check_importable("sleap_nn.train", timeout=scaled(180))
    assert check.ok is True, check
    assert "sleap_nn 0.3" in check.detail


def test_mount_readable_and_writable(tmp_path: Path) -> None:
    check = check_mount(tmp_path)
    assert check.ok is True, check
    assert list(tmp_path.iterdir()) == []  # the probe file is gone


def test_mount_through_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    check = check_mount(tmp_path / "link")
    assert check.ok is True
    assert str(tmp_path / "real") in check.detail


def test_mount_missing_or_not_a_folder(tmp_path: Path) -> None:
    missing = check_mount(tmp_path / "nope")
    assert missing.ok is False
    assert "does not exist" in missing.detail
    (tmp_path / "file").write_text("x", encoding="utf-8")
    file = check_mount(tmp_path / "file")
    assert file.ok is False
    assert "not a folder" in file.detail


def test_disk_space(tmp_path: Path) -> None:
    assert check_disk(tmp_path, min_free=0).ok is True
    full = check_disk(tmp_path, min_free=1 << 60)
    assert full.ok is False
    assert "GiB free" in full.detail
    assert "free at least" in full.advice


def test_zmq_ports(held_port: int, free_port: int) -> None:
    assert check_zmq_ports().ok is True
    assert check_zmq_ports([free_port]).ok is True
    taken = check_zmq_ports([held_port])
    assert taken.ok is False
    assert str(held_port) in taken.detail
    assert "ss -ltnp" in taken.advice
