"""``sleap-rtc doctor``'s checks: why a set-up does not work, in one screen.

Each check is a function that returns a :class:`Check` (a verdict, what was
found, and what to do about it), so that the command, a test or the GUI can run
any of them alone. Checks never raise for the condition they look at: a refused
connection or an unwritable folder is a ``FAIL`` with advice, not a traceback.

Blocking probes (importing torch, touching mounts, binding ZMQ sockets, an
HTTP request) run in threads through :func:`asyncio.to_thread`; importing
``sleap-nn`` (slow, and it may crash on a broken torchvision) runs in a child
process with a timeout. :func:`run_checks` runs them all concurrently and
returns them in a fixed order::

    checks = asyncio.run(run_checks(DoctorOptions(server="ws://127.0.0.1:8080")))
    sys.stdout.write(format_report(checks))
    exit_code = 1 if any_failed(checks) else 0
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.metadata
import importlib.util
import logging
import os
import platform
import secrets
import shutil
import stat
import sys
import tempfile
import time
import urllib.error
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)

from .aio import wait_for
from .errors import (
    AuthError,
    ChannelAuthFailed,
    ConnectionLost,
    ErrorCode,
    SleapRTCError,
)
from .http_json import get_json
from .protocol.dialect import Dialect, worker_dialect
from .protocol.signaling import Register
from .signaling.client.session_io import Backoff, SignalingClient
from .transport.auth import ChannelAuth
from .transport.peer import open_channel

__all__ = [
    "CHECK_GROUPS",
    "MIN_FREE_BYTES",
    "Check",
    "DoctorOptions",
    "Verdict",
    "any_failed",
    "check_credentials",
    "check_room_secret",
    "check_disk",
    "check_http",
    "check_importable",
    "check_mount",
    "check_packages",
    "check_python",
    "check_sleap_nn",
    "check_torch",
    "check_websocket",
    "check_zmq_ports",
    "format_report",
    "http_url",
    "run_checks",
]

logger = logging.getLogger(__name__)

MIN_FREE_BYTES = 1 << 30
"""Free space below which a mount's disk check fails (1 GiB)."""

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

_GIB = float(1 << 30)
_SERVER_ADVICE = (
    "start the server (`sleap-rtc server`), check the --server URL, and that no "
    "firewall or proxy blocks the port"
)
_WORKER_INSTALL = (
    "pip install 'sleap-rtc[worker]' (install the torch build your CUDA needs first)"
)


class Verdict(StrEnum):
    """What a check concluded."""

    OK = "OK"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True, slots=True)
class Check:
    """The result of one check.

    Attributes:
        name: Stable name (``websocket``, ``mount`` …) scripts can match on.
        ok: ``True`` passed, ``False`` failed, ``None`` skipped.
        detail: What was found, in one line.
        advice: What to do; empty when there is nothing to do.
    """

    name: str
    ok: bool | None
    detail: str
    advice: str = ""

    @property
    def verdict(self) -> Verdict:
        """``OK``, ``FAIL`` or ``SKIP``."""
        if self.ok is None:
            return Verdict.SKIP
        return Verdict.OK if self.ok else Verdict.FAIL

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready object: ``name``, ``verdict``, ``ok``, ``detail``,
        ``advice``."""
        return {
            "name": self.name,
            "verdict": self.verdict.value,
            "ok": self.ok,
            "detail": self.detail,
            "advice": self.advice,
        }

    def line(self) -> str:
        """One line: verdict, name, what was found and what to do."""
        text = f"{self.verdict.value:<4}  {self.name:<11}  {self.detail}"
        return f"{text}  -> {self.advice}" if self.advice else text


def any_failed(checks: Iterable[Check]) -> bool:
    """Whether any check failed (skipped ones do not count)."""
    return any(c.ok is False for c in checks)


def format_report(checks: Sequence[Check]) -> str:
    """The human report: one line per check and a summary line."""
    lines = [c.line() for c in checks]
    failed = sum(c.ok is False for c in checks)
    skipped = sum(c.ok is None for c in checks)
    tail = f" ({skipped} skipped)" if skipped else ""
    if failed:
        lines.append(f"{failed} of {len(checks)} checks failed{tail}")
    else:
        lines.append(f"all {len(checks) - skipped} checks passed{tail}")
    return "\n".join(lines) + "\n"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError, AttributeError):
        return os.environ.get("USER") or os.environ.get("USERNAME") or "this user"


# --- this machine


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


# --- the server


def http_url(url: str) -> str:
    """The server's HTTP base for a ``ws(s)://`` or ``http(s)://`` URL."""
    url = url.strip().rstrip("/")
    for old, new in (("ws://", "http://"), ("wss://", "https://")):
        if url.startswith(old):
            return new + url.removeprefix(old)
    return url


def _ws_url(url: str) -> str:
    url = url.strip()
    for old, new in (("http://", "ws://"), ("https://", "wss://")):
        if url.startswith(old):
            return new + url.removeprefix(old)
    return url


async def check_websocket(url: str, *, timeout: float = 10.0) -> Check:
    """Open a WebSocket to the server and time a ping round trip."""
    url = _ws_url(url)
    started = time.monotonic()
    try:
        async with connect(
            url, open_timeout=timeout, compression=None, ping_interval=None
        ) as ws:
            opened = time.monotonic() - started
            sent = time.monotonic()
            pong = await ws.ping()
            await wait_for(pong, timeout)
            rtt = time.monotonic() - sent
    except InvalidURI:
        return Check(
            "websocket",
            False,
            f"not a WebSocket URL: {url!r}",
            "use --server ws://HOST:PORT (wss:// with TLS)",
        )
    except InvalidStatus as exc:
        return Check(
            "websocket",
            False,
            f"{url} answered HTTP {exc.response.status_code} instead of a "
            "WebSocket upgrade",
            "point --server at the signaling server itself (a proxy must "
            "forward WebSocket upgrades)",
        )
    except (InvalidHandshake, ConnectionClosed) as exc:
        return Check(
            "websocket", False, f"{url}: handshake failed: {exc}", _SERVER_ADVICE
        )
    except TimeoutError:
        return Check(
            "websocket", False, f"{url}: no answer within {timeout:g} s", _SERVER_ADVICE
        )
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        advice = _SERVER_ADVICE
        if "certificate" in str(exc).lower():
            advice = "the server's TLS certificate is not trusted here"
        return Check("websocket", False, f"cannot connect to {url}: {reason}", advice)
    return Check(
        "websocket",
        True,
        f"{url}: connected in {_ms(opened)}, round trip {_ms(rtt)}",
    )


async def check_http(url: str, *, timeout: float = 10.0) -> Check:
    """``GET /health`` on the server's HTTP side, with its round-trip time."""
    health = f"{http_url(url)}/health"
    if not health.startswith(("http://", "https://")):
        return Check(
            "http", False, f"not a server URL: {url!r}", "use --server ws://HOST:PORT"
        )
    started = time.monotonic()
    try:
        status, body = await asyncio.to_thread(get_json, health, timeout)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return Check("http", False, f"GET {health}: {reason}", _SERVER_ADVICE)
    took = time.monotonic() - started
    if status != 200 or body.get("status") != "healthy":
        return Check(
            "http",
            False,
            f"GET {health}: HTTP {status} {body.get('status', '')}".rstrip(),
            "the server is up but not healthy: read its log",
        )
    version = body.get("version", "?")
    return Check("http", True, f"GET {health}: healthy, version {version}, {_ms(took)}")


_AUTH_ADVICE: Mapping[str, str] = {
    ErrorCode.AUTH_FAILED.value: "the credential was refused: check it, or make a "
    "new one (`sleap-rtc token create`, `sleap-rtc login`)",
    ErrorCode.ROOM_NOT_FOUND.value: "no such room on this server: check --room "
    "(`sleap-rtc room list` on the server)",
    ErrorCode.ROOM_EXPIRED.value: "the room has expired: ask its owner for a new one",
    ErrorCode.ROOM_FULL.value: "the room is full: ask the admin to raise the limit",
    ErrorCode.IDENTITY_MISMATCH.value: "the peer id is held by another credential",
}


def _probe_client(
    url: str, role: str, credentials: Mapping[str, Any], timeout: float
) -> SignalingClient:
    """A throwaway signaling client for one check (a fresh peer id).

    Raises:
        SleapRTCError, TypeError: credentials ``register`` cannot carry.
    """
    register = Register(
        peer_id=f"doctor-{secrets.token_hex(4)}",
        role=role,
        metadata={"tags": ["sleap-rtc", "doctor"], "properties": {}},
        **dict(credentials),
    )
    return SignalingClient(
        _ws_url(url),
        register,
        backoff=Backoff(initial=0.2, cap=1.0),
        give_up_after=timeout,
        request_timeout=timeout,
    )


async def check_credentials(
    url: str,
    credentials: Mapping[str, Any],
    *,
    described: str = "credentials",
    timeout: float = 10.0,
) -> Check:
    """Register with a throwaway peer id, then disconnect at once.

    Args:
        url: The server.
        credentials: ``register`` fields (``room_id`` + ``token``, ``api_key``,
            or ``jwt`` + ``room_id``).
        described: How the credentials were found (for the report; no secret).
        timeout: Seconds for the whole attempt.
    """
    try:
        client = _probe_client(url, "doctor", credentials, timeout)
    except (SleapRTCError, TypeError) as exc:
        return Check("credentials", False, f"{described}: unusable: {exc}", "")
    try:
        reply = await client.start(timeout=timeout)
    except AuthError as exc:
        advice = _AUTH_ADVICE.get(exc.code, "check the credentials and the room")
        return Check(
            "credentials", False, f"{described}: refused: {exc.message}", advice
        )
    except ConnectionLost as exc:
        return Check("credentials", False, f"{described}: not tried: {exc.message}", "")
    except TimeoutError:
        return Check(
            "credentials",
            False,
            f"{described}: no answer to register within {timeout:g} s",
            "the server is overloaded or a proxy holds the WebSocket",
        )
    except SleapRTCError as exc:
        return Check(
            "credentials",
            False,
            f"{described}: refused: {exc.message} ({exc.code})",
            _AUTH_ADVICE.get(exc.code, "read the server's log"),
        )
    finally:
        await client.close()
    workers = sum(
        1
        for meta in reply.peer_metadata.values()
        if isinstance(meta, dict)
        and {"training-worker", "inference-worker"} & set(meta.get("tags") or [])
    )
    others = len(reply.peer_list)
    return Check(
        "credentials",
        True,
        f"{described}: accepted in room {reply.room_id} "
        f"({others} other peer(s), {workers} worker(s))",
    )


async def check_room_secret(
    url: str,
    credentials: Mapping[str, Any],
    secret: str | None,
    *,
    worker: bool = False,
    timeout: float = 10.0,
) -> Check:
    """Open a data channel to a worker of the room with ``secret``: both ends
    must prove it (a mismatch fails either way), then close it.

    Args:
        url: The server.
        credentials: ``register`` fields that the credentials check accepted.
        secret: The room secret this machine would use (``None``: none found).
        worker: This machine runs a worker (without a secret it refuses every
            channel).
        timeout: Seconds for registering, discovery and the channel each.
    """
    if secret is None:
        if credentials.get("api_key"):
            return Check(
                "room secret",
                None,
                "no room secret: only clients that sign with a room member's key "
                "can open a channel",
                "give the room's secret too if its members use one",
            )
        who = "this worker refuses every channel" if worker else "no channel opens"
        return Check(
            "room secret",
            False,
            f"no room secret: {who}",
            "give the secret `sleap-rtc room create` printed: --room-secret, "
            "$SLEAP_ROOM_SECRET or ~/.sleap-rtc/room-secrets/ROOM",
        )
    try:
        auth = ChannelAuth(secret=secret)
    except SleapRTCError as exc:
        return Check("room secret", False, f"unusable: {exc.message}", "")
    client = _probe_client(url, "client", credentials, timeout)
    try:
        await client.start(timeout=timeout)
        peers = await client.discover({"role": "worker"}, timeout=timeout)
        current = [p for p in peers if worker_dialect(p) is Dialect.CURRENT]
        if not current:
            return Check(
                "room secret",
                None,
                "not tried: no sleap-rtc worker of this version is in the room",
                "run the check again while a worker runs",
            )
        target = str(current[0]["peer_id"])
        try:
            channel = await open_channel(client, target, auth=auth, timeout=timeout)
        except ChannelAuthFailed as exc:
            return Check(
                "room secret",
                False,
                f"worker {target}: {exc.message}",
                "this machine's room secret is not the worker's: give both the "
                "one `sleap-rtc room create` printed",
            )
        except (SleapRTCError, TimeoutError) as exc:
            return Check(
                "room secret", None, f"not tried: no channel to {target}: {exc}", ""
            )
        await channel.close()
    except (SleapRTCError, TimeoutError) as exc:
        return Check("room secret", None, f"not tried: {exc}", "")
    finally:
        await client.close()
    return Check(
        "room secret",
        True,
        f"worker {target} accepted it and proved it holds the same secret",
    )


# --- all of them


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
