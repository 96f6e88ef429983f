"""The checks of this machine: Python, packages, torch, sleap-nn, mounts, disk, ZMQ.

Blocking probes (importing torch, touching mounts, binding ZMQ sockets) are plain
functions the runner calls in a thread; importing ``sleap-nn`` (slow, and it may
crash on a broken torchvision) runs in a child process with a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any

from ..aio import wait_for
from .report import Check

__all__ = [
    "MIN_FREE_BYTES",
    "check_disk",
    "check_importable",
    "check_mount",
    "check_packages",
    "check_python",
    "check_sleap_nn",
    "check_torch",
    "check_zmq_ports",
]

MIN_FREE_BYTES = 1 << 30
"""Free space below which a mount's disk check fails (1 GiB)."""

_GIB = float(1 << 30)
_WORKER_INSTALL = (
    "pip install 'sleap-rtc[worker]' (install the torch build your CUDA needs first)"
)


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError, AttributeError):
        return os.environ.get("USER") or os.environ.get("USERNAME") or "this user"


def check_python() -> Check:
    """The interpreter: version, platform and where it lives (which environment).

    sleap-rtc cannot import below Python 3.11, so this only reports.
    """
    detail = (
        f"Python {platform.python_version()} on {platform.system()} "
        f"{platform.machine()} ({sys.executable})"
    )
    return Check("python", True, detail)


def _version(*dists: str) -> str | None:
    for dist in dists:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def check_packages(*, worker: bool = False) -> Check:
    """Installed versions of sleap-rtc and what it runs on.

    Args:
        worker: This machine runs a worker: torch, sleap-nn and sleap-io are
            required, not optional.
    """
    core = {name: _version(name) for name in ("sleap-rtc", "websockets", "aiortc")}
    work = {name: _version(name) for name in ("sleap-nn", "sleap-io", "torch")}
    # PySide6 is looked up by distribution only: the core never imports Qt.
    pyside = _version("PySide6-Essentials", "PySide6")
    parts = [f"{k} {v}" for k, v in (core | work).items() if v]
    if pyside:
        parts.append(f"PySide6 {pyside}")
    missing_core = [k for k, v in core.items() if not v]
    missing_work = [k for k, v in work.items() if not v]
    if missing_work:
        parts.append(f"not installed: {', '.join(missing_work)}")
    detail = ", ".join(parts)
    if missing_core:
        return Check(
            "packages",
            False,
            detail,
            f"missing {', '.join(missing_core)}: pip install sleap-rtc",
        )
    if worker and missing_work:
        return Check("packages", False, detail, _WORKER_INSTALL)
    if pyside and pyside.startswith("6.12."):
        return Check(
            "packages",
            False,
            detail,
            "PySide6 6.12 crashes Python 3.11 under load: "
            "pip install 'PySide6-Essentials<6.12'",
        )
    advice = "" if worker or not missing_work else "needed only on a worker"
    return Check("packages", True, detail, advice)


def check_torch(
    gpu_index: int | tuple[int, ...] | str = 0, *, worker: bool = False
) -> Check:
    """torch, its CUDA build and the GPUs it sees; blocking (imports torch).

    Args:
        gpu_index: The device(s) the worker would use (``--gpu``: an index,
            several, or ``"all"``).
        worker: torch is required (a missing torch fails instead of skipping).
    """
    try:
        torch: Any = importlib.import_module("torch")
    except ImportError:
        if worker:
            return Check("torch", False, "torch is not installed", _WORKER_INSTALL)
        return Check("torch", None, "torch is not installed (needed only on a worker)")
    except Exception as exc:  # a broken install raises anything at import
        return Check(
            "torch",
            False,
            f"import torch failed: {type(exc).__name__}: {exc}",
            "reinstall torch (the build your CUDA needs) in this environment",
        )
    cuda = getattr(torch.version, "cuda", None)
    build = f"torch {torch.__version__} ({f'CUDA {cuda}' if cuda else 'CPU'} build)"
    try:
        available = bool(torch.cuda.is_available())
        count = int(torch.cuda.device_count()) if available else 0
        gpus = [
            f"{i}: {props.name} {props.total_memory / _GIB:.0f} GiB"
            for i, props in (
                (i, torch.cuda.get_device_properties(i)) for i in range(count)
            )
        ]
    except RuntimeError as exc:  # broken driver
        return Check(
            "torch",
            False,
            f"{build}; CUDA failed: {exc}",
            "check the NVIDIA driver with `nvidia-smi`",
        )
    if not available:
        advice = (
            "no CUDA: on a GPU machine install a CUDA build of torch "
            "(e.g. pip install torch --index-url "
            "https://download.pytorch.org/whl/cu128); training runs on the CPU"
            if not cuda
            else "CUDA build but no GPU visible: check `nvidia-smi`, the driver "
            "and CUDA_VISIBLE_DEVICES; training runs on the CPU"
        )
        return Check("torch", True, f"{build}, no CUDA GPU visible", advice)
    detail = f"{build}, {count} GPU(s): {'; '.join(gpus)}"
    wanted = (gpu_index,) if isinstance(gpu_index, int) else gpu_index
    missing = [] if isinstance(wanted, str) else [i for i in wanted if i >= count]
    if missing:
        return Check(
            "torch",
            False,
            detail,
            f"GPU {missing[0]} does not exist: use --gpu 0 to {count - 1} or all",
        )
    return Check("torch", True, detail)


async def check_importable(
    module: str,
    *,
    name: str | None = None,
    timeout: float = 120.0,
    required: bool = True,
    python: str = sys.executable,
) -> Check:
    """Import ``module`` in a child Python (with a timeout) and report its version.

    A child process keeps a slow import off this process and a crashing one
    (a mismatched torchvision) from taking the doctor down with it.

    Args:
        module: The module to import (``sleap_nn.train``).
        name: The check's name (default: ``module``).
        timeout: Seconds before the child is killed and the check fails.
        required: A missing top-level package fails (else it is skipped).
        python: The interpreter to use.
    """
    name = name or module
    top = module.partition(".")[0]
    if importlib.util.find_spec(top) is None:
        detail = f"{top} is not installed"
        if required:
            return Check(name, False, detail, _WORKER_INSTALL)
        return Check(name, None, f"{detail} (needed only on a worker)")
    code = (
        "import importlib, sys\n"
        f"importlib.import_module({module!r})\n"
        f"top = sys.modules[{top!r}]\n"
        "print(getattr(top, '__version__', '?'))\n"
    )
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        python,
        "-c",
        code,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await wait_for(proc.communicate(), timeout)
    except TimeoutError:
        return Check(
            name,
            False,
            f"import {module} did not finish within {timeout:g} s",
            "a very slow disk or a hung CUDA driver; try `python -c 'import "
            f"{module}'` by hand",
        )
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    took = time.monotonic() - started
    if proc.returncode != 0:
        lines = err.decode(errors="replace").strip().splitlines()
        last = lines[-1] if lines else f"exit status {proc.returncode}"
        return Check(
            name,
            False,
            f"import {module} failed: {last}",
            "reinstall matching torch/torchvision and sleap-nn "
            "(pip install 'sleap-rtc[worker]')",
        )
    version = out.decode(errors="replace").strip() or "?"
    return Check(name, True, f"import {module} OK ({top} {version}, {took:.1f} s)")


def check_sleap_nn(*, timeout: float = 120.0, worker: bool = False) -> Awaitable[Check]:
    """``sleap_nn.train`` importable (what ``sleap-nn train`` loads)."""
    return check_importable(
        "sleap_nn.train", name="sleap-nn", timeout=timeout, required=worker
    )


def check_mount(path: str | os.PathLike[str]) -> Check:
    """A worker mount exists, is a folder, readable, and writable (a temp file
    is written and deleted); blocking."""
    given = Path(path)
    try:
        resolved = given.expanduser().resolve()
    except (OSError, RuntimeError):  # a symlink loop
        resolved = given
    label = str(given) if resolved == given else f"{given} (-> {resolved})"
    user = _user()
    try:
        mode = resolved.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return Check(
            "mount",
            False,
            f"{label}: does not exist",
            "create the folder or fix the mount path",
        )
    except OSError as exc:
        return Check(
            "mount",
            False,
            f"{label}: not accessible to {user}: {exc.strerror}",
            f"give {user} access to the folder and every folder above it",
        )
    if not stat.S_ISDIR(mode):
        return Check(
            "mount", False, f"{label}: not a folder", "a mount must be a folder"
        )
    try:
        with os.scandir(resolved) as entries:
            next(entries, None)
    except OSError as exc:
        return Check(
            "mount",
            False,
            f"{label}: not readable by {user}: {exc.strerror}",
            f"give {user} read access (chmod/chown, or the unit's ReadWritePaths)",
        )
    try:
        fd, tmp = tempfile.mkstemp(prefix=".sleap-rtc-doctor-", dir=resolved)
    except OSError as exc:
        return Check(
            "mount",
            False,
            f"{label}: readable but not writable by {user}: {exc.strerror}",
            f"give {user} write access (models and predictions are written "
            "here), or mount it read-write",
        )
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(b"sleap-rtc doctor\n")
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return Check("mount", True, f"{label}: readable and writable")


def check_disk(path: str | os.PathLike[str], min_free: int = MIN_FREE_BYTES) -> Check:
    """Free space on the file system of ``path``; blocking.

    Args:
        path: A mount.
        min_free: Fewer free bytes than this fails.
    """
    try:
        usage = shutil.disk_usage(Path(path).expanduser())
    except OSError as exc:
        return Check("disk", None, f"{path}: cannot tell ({exc.strerror})")
    detail = f"{path}: {usage.free / _GIB:.1f} GiB free of {usage.total / _GIB:.1f} GiB"
    if usage.free < min_free:
        return Check(
            "disk",
            False,
            detail,
            f"free at least {min_free / _GIB:.1f} GiB: checkpoints and "
            "predictions need room",
        )
    return Check("disk", True, detail)


def check_zmq_ports(ports: Sequence[int] = (), host: str = "127.0.0.1") -> Check:
    """ZMQ can bind on loopback: two ports the system picks (what each job
    uses) and every port in ``ports`` (e.g. LossViewer's); blocking."""
    try:
        import zmq
    except ImportError:
        return Check("zmq", False, "pyzmq is not installed", "pip install pyzmq")
    ctx = zmq.Context()
    sockets: list[Any] = []
    taken: list[str] = []
    try:
        picked = []
        for kind in (zmq.SUB, zmq.XPUB):
            sock = ctx.socket(kind)
            sockets.append(sock)
            try:
                picked.append(sock.bind_to_random_port(f"tcp://{host}"))
            except zmq.ZMQError as exc:
                return Check(
                    "zmq",
                    False,
                    f"cannot bind on {host}: {exc.strerror}",
                    "the loopback interface must be up and usable",
                )
        for port in ports:
            sock = ctx.socket(zmq.PUB)
            sockets.append(sock)
            try:
                sock.bind(f"tcp://{host}:{port}")
            except zmq.ZMQError as exc:
                taken.append(f"{port} ({exc.strerror})")
    finally:
        for sock in sockets:
            sock.close(linger=0)
        ctx.term()
    if taken:
        return Check(
            "zmq",
            False,
            f"cannot bind {host}:{', '.join(taken)}",
            "another program holds the port: find it with `ss -ltnp`, stop it, "
            "or configure another port",
        )
    named = f" and {', '.join(map(str, ports))}" if ports else ""
    return Check("zmq", True, f"bound {host} on free ports{named}")
