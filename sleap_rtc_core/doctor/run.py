"""All the checks of ``sleap-rtc doctor``, concurrently, in a fixed order."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .machine import (
    MIN_FREE_BYTES,
    check_disk,
    check_mount,
    check_packages,
    check_python,
    check_sleap_nn,
    check_torch,
    check_zmq_ports,
)
from .report import Check
from .server import check_credentials, check_http, check_room_secret, check_websocket

__all__ = ["CHECK_GROUPS", "DoctorOptions", "run_checks"]

logger = logging.getLogger(__name__)


CHECK_GROUPS = (
    "torch",
    "sleap-nn",
    "server",
    "credentials",
    "room-secret",
    "mounts",
    "zmq",
)
"""Names ``--skip`` accepts; ``server`` also skips ``credentials``."""


@dataclass(frozen=True, slots=True)
class DoctorOptions:
    """What :func:`run_checks` looks at.

    Attributes:
        server: The signaling server; ``None`` skips the server checks.
        credentials: ``register`` fields to try; a :class:`Check` reports why
            there are none (or why they are unusable); ``None`` skips.
        credentials_described: How the credentials were found (no secret).
        room_secret: The room secret this machine would use, tried against a
            worker of the room once the credentials pass.
        mounts: Worker folders to check.
        worker: This machine runs a worker (torch and sleap-nn required).
        gpu: The CUDA device the worker uses.
        zmq_ports: Specific ports to check besides free ones.
        timeout: Seconds for each network check.
        import_timeout: Seconds for the sleap-nn import.
        min_free: Free bytes below which a disk check fails.
        skip: Check groups not to run (:data:`CHECK_GROUPS`).
        extra: Checks done before (e.g. loading a config file), reported
            after the local ones.
    """

    server: str | None = None
    credentials: Mapping[str, Any] | Check | None = None
    credentials_described: str = "credentials"
    room_secret: str | None = field(default=None, repr=False)
    mounts: Sequence[str | os.PathLike[str]] = ()
    worker: bool = False
    gpu: int | tuple[int, ...] | str = 0
    zmq_ports: Sequence[int] = ()
    timeout: float = 10.0
    import_timeout: float = 120.0
    min_free: int = MIN_FREE_BYTES
    skip: frozenset[str] = field(default_factory=frozenset)
    extra: Sequence[Check] = ()


def _skipped(name: str) -> Check:
    return Check(name, None, "skipped (--skip)")


async def _server_checks(opts: DoctorOptions) -> list[Check]:
    if "server" in opts.skip or opts.server is None:
        reason = "skipped (--skip)" if opts.server else "no server given"
        return [
            Check("websocket", None, reason),
            Check("http", None, reason),
            Check("credentials", None, reason),
            Check("room secret", None, reason),
        ]
    ws, http = await asyncio.gather(
        check_websocket(opts.server, timeout=opts.timeout),
        check_http(opts.server, timeout=opts.timeout),
    )
    creds = opts.credentials
    if "credentials" in opts.skip:
        cred = _skipped("credentials")
    elif isinstance(creds, Check):
        cred = creds
    elif creds is None:
        cred = Check(
            "credentials",
            None,
            "no credentials given",
            "pass --room with --token, --api-key or --account-key, or run "
            "`sleap-rtc login`",
        )
    elif not ws.ok:
        cred = Check("credentials", None, "not tried: the server is unreachable")
    else:
        cred = await check_credentials(
            opts.server,
            creds,
            described=opts.credentials_described,
            timeout=opts.timeout,
        )
    if "room-secret" in opts.skip:
        room = _skipped("room secret")
    elif cred.ok is not True or not isinstance(creds, Mapping):
        room = Check("room secret", None, "not tried: no accepted credentials")
    else:
        room = await check_room_secret(
            opts.server,
            creds,
            opts.room_secret,
            worker=opts.worker,
            timeout=opts.timeout,
        )
    return [ws, http, cred, room]


async def _local_checks(opts: DoctorOptions) -> list[Check]:
    torch_task = (
        asyncio.to_thread(_safely, "torch", check_torch, opts.gpu, worker=opts.worker)
        if "torch" not in opts.skip
        else _done(_skipped("torch"))
    )
    nn_task = (
        check_sleap_nn(timeout=opts.import_timeout, worker=opts.worker)
        if "sleap-nn" not in opts.skip
        else _done(_skipped("sleap-nn"))
    )
    torch_check, nn_check = await asyncio.gather(torch_task, nn_task)
    return [check_python(), check_packages(worker=opts.worker), torch_check, nn_check]


def _safely(name: str, check: Callable[..., Check], *args: Any, **kw: Any) -> Check:
    """Run a blocking check; a bug in it becomes a failed check, not a crash."""
    try:
        return check(*args, **kw)
    except Exception as exc:
        logger.debug("! check %s raised", name, exc_info=True)
        return Check(
            name,
            False,
            f"the check itself failed: {type(exc).__name__}: {exc}",
            "run with -vv and report this as a bug",
        )


def _storage_checks(opts: DoctorOptions) -> list[Check]:
    out: list[Check] = []
    if "mounts" in opts.skip:
        return [_skipped("mount")] if opts.mounts else []
    for mount in opts.mounts:
        out.append(_safely("mount", check_mount, mount))
        out.append(_safely("disk", check_disk, mount, opts.min_free))
    if opts.worker and not opts.mounts:
        out.append(
            Check(
                "mount",
                False,
                "no mounts: the worker may not read or write anything",
                "add --mount PATH (or [[mounts]] in the worker config)",
            )
        )
    return out


def _zmq(opts: DoctorOptions) -> Check:
    if "zmq" in opts.skip:
        return _skipped("zmq")
    return _safely("zmq", check_zmq_ports, opts.zmq_ports)


async def _done(check: Check) -> Check:
    return check


async def run_checks(opts: DoctorOptions) -> list[Check]:
    """Run every check not skipped, concurrently; results in a fixed order:
    python, packages, torch, sleap-nn, ``extra``, websocket, http,
    credentials, mount/disk per mount, zmq."""
    local, server, storage, zmq_check = await asyncio.gather(
        _local_checks(opts),
        _server_checks(opts),
        asyncio.to_thread(_storage_checks, opts),
        asyncio.to_thread(_zmq, opts),
    )
    return [*local, *opts.extra, *server, *storage, zmq_check]
