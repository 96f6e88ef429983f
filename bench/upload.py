"""Upload benchmark: a labels package into a real worker's upload area, against
raw aiortc in the same run.

Usage from the repository root::

    .venv/bin/python bench/upload.py            # 100 MB
    .venv/bin/python bench/upload.py --quick    # 20 MB

Every peer in this one process on 127.0.0.1 (aioice limited to the loopback
address, no ICE servers), the signaling server included:

1. **Raw aiortc** (:func:`transfer._raw`): the same bytes from memory, same
   chunk size and flow control, receiver only counting. The ceiling.
2. **Ours, fresh.** :func:`~sleap_rtc_core.client.upload.upload_file` into a
   real :class:`~sleap_rtc_core.worker.service.WorkerService` with an upload
   area: SHA-256 of the file first, ``FILE_UPLOAD_CHECK`` → ``BEGIN``, 64 KiB
   frames with a SHA-256 per 4 MiB segment (fsync'd on the worker), the whole
   hash checked, the file linked into ``sha256/<hex>/``.
3. **Ours, again.** The same file on a new channel: asked by hash, not sent
   (the time of a second job's "upload").
4. Raw aiortc once more (the machine is noisy: both raw runs are shown).

Prints MiB/s and the ratio ours / raw. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (str(ROOT), str(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)

from transfer import MIB, _loopback_only, _make_file, _raw  # noqa: E402

from sleap_rtc_core.client.upload import upload_file  # noqa: E402
from sleap_rtc_core.protocol import signaling as sig  # noqa: E402
from sleap_rtc_core.protocol.channel_auth import b64url_encode  # noqa: E402
from sleap_rtc_core.signaling.auth.jwt_keys import JwtKeys  # noqa: E402
from sleap_rtc_core.signaling.client.session_io import SignalingClient  # noqa: E402
from sleap_rtc_core.signaling.server.router_io import ServerConfig  # noqa: E402
from sleap_rtc_core.signaling.service import build_service  # noqa: E402
from sleap_rtc_core.signaling.store.auth_store import Store  # noqa: E402
from sleap_rtc_core.transport import ChannelAuth, open_channel  # noqa: E402
from sleap_rtc_core.worker.capabilities import (  # noqa: E402
    StatedGpu,
    WorkerCapabilities,
)
from sleap_rtc_core.worker.files.mounts import MountPolicy  # noqa: E402
from sleap_rtc_core.worker.files.uploads import UploadQuota  # noqa: E402
from sleap_rtc_core.worker.hardware import JobHardware  # noqa: E402
from sleap_rtc_core.worker.service import WorkerService  # noqa: E402

BENCHMARK = "upload into the worker's upload area"


async def _ours(url: str, room: object, folder: Path, source: Path) -> dict[str, float]:
    secret = b64url_encode(b"bench secret of thirty-two bytes")
    auth = ChannelAuth(secret=secret)
    mount = folder / "worker"
    mount.mkdir()
    creds = {"room_id": room.room_id, "token": room.token}  # type: ignore[attr-defined]
    worker = WorkerService(
        url,
        creds,
        WorkerCapabilities.from_probe(StatedGpu("bench", 1000, "12.0")),
        MountPolicy([str(mount)]),
        hardware=JobHardware(),
        auth=auth,
        peer_id="w",
        upload_dir=mount / "uploads",
        upload_quota=UploadQuota(
            max_bytes_total=1 << 40, max_bytes_per_uploader=1 << 40
        ),
    )
    register = sig.Register(peer_id="c", role="client", **creds)
    figures: dict[str, float] = {}
    size = (await asyncio.to_thread(source.stat)).st_size
    async with worker, SignalingClient(url, register) as client:
        channel = await open_channel(client, "w", auth=auth, timeout=15)
        async with channel:
            t0, c0 = time.perf_counter(), time.process_time()
            sent = await upload_file(channel, source, timeout=60)
            figures["upload_s"] = time.perf_counter() - t0
            figures["upload_cpu_s"] = time.process_time() - c0
        if sent.cached or sent.sent != size:
            raise RuntimeError("the upload did not send the file")
        channel = await open_channel(client, "w", auth=auth, timeout=15)
        async with channel:
            t0 = time.perf_counter()
            again = await upload_file(channel, source, timeout=60)
            figures["again_s"] = time.perf_counter() - t0
        if not again.cached:
            raise RuntimeError("the second upload was not a cache hit")
    figures["upload_mib_s"] = size / MIB / figures["upload_s"]
    return figures


async def main_async(size_mb: int) -> None:
    _loopback_only()
    size = size_mb * MIB
    chunk = 64 << 10
    store = Store(":memory:")
    room = store.create_room("bench")
    service = build_service(
        ServerConfig(host="127.0.0.1", port=0, ping_interval=60.0),
        store,
        JwtKeys.generate(),
    )
    await service.server.start()
    print(f"file {size_mb} MB, 64 KiB frames; order: raw, ours, ours again, raw")
    try:
        raw_runs = [await _raw(size, chunk)]
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            source = folder / "labels.pkg.slp"
            await asyncio.to_thread(_make_file, source, size)
            ours = await _ours(service.server.url, room, folder, source)
        raw_runs.append(await _raw(size, chunk))
    finally:
        await service.server.stop()
    raw = statistics.mean(r for r, _ in raw_runs)
    runs = " / ".join(f"{r:.2f}" for r, _ in raw_runs)
    print()
    print("| Figure | Value |")
    print("|---|---|")
    print(f"| Raw aiortc, from memory (before / after ours) | {runs} MiB/s |")
    print(
        f"| Ours, upload into the area (hash first, SHA-256 per 4 MiB segment "
        f"and whole, fsync, disk) | {ours['upload_mib_s']:.2f} MiB/s "
        f"({ours['upload_s']:.1f} s) |"
    )
    print(f"| Ratio ours / raw | {ours['upload_mib_s'] / raw:.2f}x |")
    print(
        f"| Same file again (asked by hash, nothing sent) | "
        f"{ours['again_s'] * 1000:.0f} ms |"
    )
    print(
        f"| Process CPU per MB (both peers), ours | "
        f"{ours['upload_cpu_s'] / size_mb * 1000:.0f} ms |"
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 MB")
    parser.add_argument("--size-mb", type=int, default=None)
    args = parser.parse_args(argv)
    asyncio.run(main_async(args.size_mb or (20 if args.quick else 100)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
