"""The real sleap-rtc 0.0.7 (``make install`` puts it in ``.venv-007``) beside ours.

:class:`Lab` is one room on our real signaling server (in the test's event loop)
with what both generations of peers need: a user with a JWT, an account key, a
registered Ed25519 public key and a room secret; a mount folder the workers
share with the test (as a lab's storage); and homes for 0.0.7 processes with
their ``credentials.json`` and ``sleap-rtc.toml``.

Every process is started with :func:`start` and stopped by :meth:`Lab.close`;
0.0.7 processes load ``legacy_site/sitecustomize.py`` (loopback-only ICE, no
public STUN). 0.0.7's worker runs the real ``sleap-nn`` of the dev venv.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from sleap_rtc_core.signaling.auth.jwt_keys import JwtKeys
from sleap_rtc_core.signaling.service import Service
from sleap_rtc_core.signaling.store.auth_store import Store

from ..fixtures.timing import scaled

__all__ = ["LEGACY_BIN", "Lab", "Proc", "legacy_installed"]

ROOT = Path(__file__).resolve().parents[2]
LEGACY_BIN = ROOT / ".venv-007" / "bin"
OURS = str(Path(sys.executable).with_name("sleap-rtc"))
_SITE = Path(__file__).with_name("legacy_site")


def legacy_installed() -> None:
    """Skip without the 0.0.7 venv, except in CI, where it is a failure."""
    if (LEGACY_BIN / "sleap-rtc").exists():
        return
    why = "sleap-rtc 0.0.7 is not installed in .venv-007 (run `make install`)"
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass
class Proc:
    """A started process and everything it printed so far (both streams)."""

    proc: asyncio.subprocess.Process
    name: str
    lines: list[str] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None

    @property
    def text(self) -> str:
        return "".join(self.lines)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.lines.append(line.decode(errors="replace"))

    async def wait_for(self, pattern: str, timeout: float = 60.0) -> None:
        """Until ``pattern`` was printed (fails with the output if not)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + scaled(timeout)
        while pattern not in self.text:
            if self.proc.returncode is not None or loop.time() > deadline:
                raise AssertionError(
                    f"{self.name} did not print {pattern!r} "
                    f"(exit {self.proc.returncode}):\n{self.text[-6000:]}"
                )
            await asyncio.sleep(0.1)

    async def finish(self, timeout: float = 120.0) -> int:
        """Its exit status, once it ends by itself."""
        try:
            await asyncio.wait_for(self.proc.wait(), scaled(timeout))
        except TimeoutError:
            raise AssertionError(
                f"{self.name} did not end within {timeout} s:\n{self.text[-6000:]}"
            ) from None
        if self._reader is not None:
            await self._reader
        return self.proc.returncode or 0

    async def stop(self) -> None:
        """SIGTERM its group, then SIGKILL (bounded)."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


async def start(
    name: str,
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    stdin: bytes | None = None,
) -> Proc:
    """Start ``argv`` in its own process group, reading its output."""
    sub = asyncio.subprocess
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=sub.PIPE if stdin is not None else sub.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    if stdin is not None:
        assert proc.stdin is not None
        proc.stdin.write(stdin)
        await proc.stdin.drain()
        proc.stdin.close()
    p = Proc(proc, name)
    p._reader = asyncio.create_task(p._read(), name=f"read {name}")
    return p


@dataclass
class Lab:
    """One room of our server, ready for peers of both generations."""

    service: Service
    store: Store
    jwt_keys: JwtKeys
    root: Path
    room_id: str = ""
    room_token: str = ""
    user_id: str = ""
    username: str = "alice"
    account_key: str = ""
    secret: str = field(default_factory=lambda: _b64(os.urandom(32)))
    private_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    procs: list[Proc] = field(default_factory=list)

    def __post_init__(self) -> None:
        user = self.store.add_user(self.username)
        self.user_id = user.user_id
        room = self.store.create_room("lab", owner_id=user.user_id)
        self.room_id, self.room_token = room.room_id, room.token
        _, self.account_key = self.store.create_account_key(user.user_id, "worker")
        public = self.private_key.public_key().public_bytes(
            Encoding.Raw, PublicFormat.Raw
        )
        self.store.add_public_key(user.user_id, _b64(public), "cli")
        self.mount.mkdir(parents=True, exist_ok=True)

    # --- places

    @property
    def url(self) -> str:
        return self.service.server.url

    @property
    def http_url(self) -> str:
        return self.url.replace("ws://", "http://", 1)

    @property
    def mount(self) -> Path:
        """The storage every worker mounts and the test sees at the same path."""
        return self.root / "storage"

    # --- 0.0.7 processes

    def legacy_home(self, name: str, *, private_key: bool = True) -> Path:
        """A home (and working folder) for one 0.0.7 process, logged in."""
        home = self.root / "homes" / name
        (home / ".sleap-rtc").mkdir(parents=True, exist_ok=True)
        creds: dict[str, Any] = {
            "jwt": self.jwt_keys.issue(self.user_id, self.username),
            "account_key": self.account_key,
            "user": {"id": self.user_id, "username": self.username},
            "default_room": self.room_id,
        }
        if private_key:
            raw = self.private_key.private_bytes(
                Encoding.Raw, PrivateFormat.Raw, NoEncryption()
            )
            creds |= {"private_key": _b64(raw), "public_key_registered": True}
        (home / ".sleap-rtc" / "credentials.json").write_text(json.dumps(creds))
        work = self.mount / "work" / name
        work.mkdir(parents=True, exist_ok=True)
        (home / "sleap-rtc.toml").write_text(
            "[worker.io]\n"
            f'working_dir = "{work}"\n'
            "[[worker.io.mounts]]\n"
            f'path = "{self.mount}"\n'
            'label = "storage"\n'
        )
        return home

    def legacy_env(self, home: Path) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(home),
            "PATH": f"{LEGACY_BIN}{os.pathsep}{Path(sys.executable).parent}"
            f"{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(_SITE),
            "PYTHONUNBUFFERED": "1",
            "SLEAP_RTC_SIGNALING_WS": self.url,
            "SLEAP_RTC_SIGNALING_HTTP": self.http_url,
        }

    async def legacy(
        self,
        name: str,
        args: list[str],
        *,
        private_key: bool = True,
        stdin: bytes | None = None,
    ) -> Proc:
        """Run ``sleap-rtc ARGS`` of 0.0.7 (from its home folder)."""
        home = self.legacy_home(name, private_key=private_key)
        proc = await start(
            f"0.0.7 {name}",
            [str(LEGACY_BIN / "sleap-rtc"), *args],
            env=self.legacy_env(home),
            cwd=home,
            stdin=stdin,
        )
        self.procs.append(proc)
        return proc

    async def legacy_python(self, name: str, code: str) -> Proc:
        """Run Python ``code`` with 0.0.7 importable (its API)."""
        home = self.legacy_home(name)
        proc = await start(
            f"0.0.7 {name}",
            [str(LEGACY_BIN / "python"), "-c", code],
            env=self.legacy_env(home),
            cwd=home,
        )
        self.procs.append(proc)
        return proc

    async def legacy_worker(self, name: str, *, secret: bool = False) -> Proc:
        """A 0.0.7 worker of the room (with the room secret, or keys only)."""
        args = ["worker", "--account-key", self.account_key, "--room", self.room_id]
        args += ["--name", name] + (["--room-secret", self.secret] if secret else [])
        proc = await self.legacy(name, args)
        await self.until_worker(lambda props: props.get("worker_name") == name)
        return proc

    # --- our processes

    async def ours(self, name: str, args: list[str]) -> Proc:
        """Run our ``sleap-rtc ARGS`` (loopback-only ICE)."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "SLEAP_RTC_ICE_LOOPBACK": "1"}
        cwd = self.root / "homes" / name
        cwd.mkdir(parents=True, exist_ok=True)
        proc = await start(f"our {name}", [OURS, *args], env=env, cwd=cwd)
        self.procs.append(proc)
        return proc

    def connection(self, *, account_key: bool = False) -> list[str]:
        """Our connection flags for this room (token, or the account key)."""
        cred = (
            ["--account-key", self.account_key]
            if account_key
            else ["--token", self.room_token]
        )
        return ["--server", self.url, "--room", self.room_id, *cred]

    async def our_worker(self, name: str, *extra: str) -> Proc:
        """Our worker, registered with the account key (so it also trusts the
        room's Ed25519 keys) and the room secret."""
        args = ["worker", *self.connection(account_key=True)]
        args += ["--room-secret", self.secret, "--name", name, "--peer-id", name]
        args += ["--mount", f"{self.mount}:storage", *extra]
        proc = await self.ours(name, args)
        await proc.wait_for("ready")
        return proc

    # --- the server's view

    def workers(self) -> dict[str, dict[str, Any]]:
        """Peer id → properties of every worker registered in the room."""
        room = self.service.server.router.registry.rooms.get(self.room_id)
        if room is None:
            return {}
        return {
            p.peer_id: dict(p.metadata.get("properties", {}))
            for p in room.peers.values()
            if p.role == "worker"
        }

    async def until_worker(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = 60.0
    ) -> str:
        """The peer id of a registered worker whose properties ``match``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + scaled(timeout)
        while loop.time() < deadline:
            for peer_id, props in self.workers().items():
                if match(props):
                    return peer_id
            await asyncio.sleep(0.1)
        texts = "\n".join(p.text[-3000:] for p in self.procs)
        raise AssertionError(f"no such worker registered:\n{texts}")

    async def close(self) -> None:
        for proc in reversed(self.procs):
            await proc.stop()
