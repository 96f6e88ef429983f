"""A server under test, in its own process (started by ``_servers.start_child``).

Usage (the bench does this; by hand only to poke at a server)::

    .venv/bin/python bench/_server_child.py bare
    .venv/bin/python bench/_server_child.py ours [--loop asyncio|uvloop]
        [--ping-interval SECONDS]

It prints ``PORT <n>`` once it listens and stops on SIGTERM. ``ours`` is
:class:`SignalingServer` with two **bench-only shortcuts**, neither of which a
real deployment has:

* a permissive authenticator: any ``room_id`` with a non-empty ``token``
  registers (no SQLite, no JWT), so the bench measures routing, not auth;
* an HTTP handler for ``/bench/...``: ``seed`` adds peers straight to the
  registry (as a replicating backend adds peers held by another node: no
  connection, no fan-out) so that discovery rooms of 10,000 peers need no
  10,000 sockets; ``profile/start`` and ``profile/stop`` run cProfile inside
  the server process.

The rate limit is lifted (the bench saturates on purpose) and so is the room
size limit (one more peer joins a room of 10,000, the default limit) and the
per-address connection cap (every bench peer comes from 127.0.0.1); every
other limit is the default.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["main"]

_ROOT = Path(__file__).resolve().parent.parent


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when the bench process dies."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    # Ctrl-C reaches the whole process group; the parent stops us itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def serve_bare() -> int:
    """Run the bare relay of ``bench/bare_relay.py`` (default asyncio loop)."""
    import bare_relay

    return bare_relay.main(["--host", "127.0.0.1", "--port", "0"])


def serve_ours(loop_kind: str, ping_interval: float) -> int:
    """Run our signaling server with the bench authenticator and HTTP hooks."""
    if str(_ROOT) not in sys.path:
        sys.path.insert(0, str(_ROOT))
    import cProfile

    from _profiles import peer_profile

    from sleap_rtc_core.errors import ErrorCode, SignalingError
    from sleap_rtc_core.signaling.http.wire import HttpRequest, HttpResponse
    from sleap_rtc_core.signaling.server.limits import Limits
    from sleap_rtc_core.signaling.server.registry import PeerRecord
    from sleap_rtc_core.signaling.server.router_io import ServerConfig, SignalingServer

    @dataclass(frozen=True, slots=True)
    class BenchIdentity:
        """What the router needs to know about a peer (``IdentityLike``)."""

        room_id: str
        principal: str
        display_name: str
        credential_id: str | None = None
        kind: str = "bench"
        server_metadata: dict[str, Any] = field(default_factory=dict)
        revocation_ids: frozenset[str] = frozenset()

    class BenchAuthenticator:
        """Accepts any ``room_id`` with a non-empty ``token`` (bench only)."""

        def authenticate(self, message: Any) -> BenchIdentity:
            if not message.room_id or not message.token:
                raise SignalingError(
                    "bench: room_id and token are required",
                    code=ErrorCode.AUTH_FAILED,
                )
            return BenchIdentity(
                room_id=message.room_id,
                principal=f"room:{message.room_id}",
                display_name=message.peer_id or "bench",
            )

    profilers: list[cProfile.Profile] = []
    holder: list[SignalingServer] = []

    def reply(obj: Any, status: int = 200) -> HttpResponse:
        return HttpResponse(status, json.dumps(obj).encode())

    def seed(room_id: str, start: int, count: int) -> HttpResponse:
        registry = holder[0].router.registry
        now = time.time()
        for i in range(start, start + count):
            role, metadata = peer_profile(i)
            registry.add(
                PeerRecord(
                    peer_id=f"seed-{i:05d}",
                    room_id=room_id,
                    role=role,
                    metadata=metadata,
                    connected_at=now,
                    principal=f"room:{room_id}",
                    node="bench-seed",
                )
            )
        return reply({"room_size": len(registry.rooms[room_id].peers)})

    async def bench_http(request: HttpRequest) -> HttpResponse:
        body = json.loads(request.body or b"{}")
        if request.path == "/bench/seed":
            return seed(body["room_id"], body["start"], body["count"])
        if request.path == "/bench/profile/start":
            profilers.append(cProfile.Profile())
            profilers[-1].enable()
            return reply({"ok": True})
        if request.path == "/bench/profile/stop":
            prof = profilers.pop()
            prof.disable()
            prof.dump_stats(body["path"])
            return reply({"ok": True})
        return reply({"detail": "Not Found"}, 404)

    async def run() -> None:
        limits = Limits(
            messages_per_second=1e9,
            burst=1_000_000_000,
            max_peers_per_room=100_000,
            max_peers_per_credential=100_000,
            max_connections_per_address=100_000,  # every bench peer is loopback
        )
        config = ServerConfig(
            host="127.0.0.1", port=0, ping_interval=ping_interval, limits=limits
        )
        server = SignalingServer(config, BenchAuthenticator(), http=bench_http)
        holder.append(server)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await server.start()
        print(f"PORT {server.port}", flush=True)
        try:
            await stop.wait()
        finally:
            await server.stop()

    if loop_kind == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run())
    else:
        asyncio.run(run())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description="A bench server child.")
    parser.add_argument("kind", choices=["bare", "ours"])
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--ping-interval", type=float, default=20.0)
    args = parser.parse_args(argv)
    _die_with_parent()
    if args.kind == "bare":
        return serve_bare()
    return serve_ours(args.loop, args.ping_interval)


if __name__ == "__main__":
    sys.exit(main())
