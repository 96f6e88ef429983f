"""Data-channel benchmark: file transfer over our channel against raw aiortc.

Usage from the repository root::

    .venv/bin/python bench/transfer.py            # 200 MB, 10 connections
    .venv/bin/python bench/transfer.py --quick    # 20 MB, 3 connections
    .venv/bin/python bench/transfer.py --size-mb 50 --chunk-kb 64

Three phases, every peer in this one process on 127.0.0.1 (aioice is limited
to the loopback address, no ICE servers), the signaling server included:

1. **Connect.** Time from ``open_channel`` (offer through the real signaling
   server, answer, ICE, DTLS, SCTP) to an authenticated channel (PSK), several
   times; a fresh connection each time.
2. **Ours.** ``send_file`` of a file on disk, client → worker (``FILE_UPLOAD_*``
   with the SHA-256 check first), the worker's ``serve_upload`` writing it to
   disk and verifying size and SHA-256; then the same file worker → client as a
   download (``FILE_DOWNLOAD_META``).
3. **Raw aiortc.** Two ``RTCPeerConnection`` with the SDP passed by hand, one
   data channel, the same bytes from memory in chunks of the same size, the
   sender pausing above the same high-water mark and resuming on
   ``bufferedamountlow``; the receiver only counts bytes. This is the ceiling
   of the transport itself: no framing, no hashing, no disk.

Prints MiB/s of each and the ratio ours / raw (same run). Figures only; nothing
is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sleap_rtc_core.protocol import signaling as sig  # noqa: E402
from sleap_rtc_core.protocol.channel_auth import b64url_encode  # noqa: E402
from sleap_rtc_core.protocol.channel_transfer import (  # noqa: E402
    FileDownloadMetaMsg,
    FileUploadCheckMsg,
    FileUploadStartMsg,
)
from sleap_rtc_core.signaling.auth.jwt_keys import JwtKeys  # noqa: E402
from sleap_rtc_core.signaling.client.session_io import SignalingClient  # noqa: E402
from sleap_rtc_core.signaling.server.router_io import ServerConfig  # noqa: E402
from sleap_rtc_core.signaling.service import build_service  # noqa: E402
from sleap_rtc_core.signaling.store.auth_store import Store  # noqa: E402
from sleap_rtc_core.transport import (  # noqa: E402
    DEFAULT_HIGH_WATER,
    DEFAULT_LOW_WATER,
    Channel,
    ChannelAcceptor,
    ChannelAuth,
    UploadCache,
    open_channel,
    receive_file,
    send_file,
    serve_upload,
)

BENCHMARK = "data-channel transfer"

MIB = 1 << 20


def _loopback_only() -> None:
    aioice.ice.get_host_addresses = (  # type: ignore[assignment]
        lambda use_ipv4, use_ipv6: ["127.0.0.1"] if use_ipv4 else []
    )


def _make_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    block = hashlib.sha256(b"bench").digest() * (MIB // 32)
    with path.open("wb") as f:
        left = size
        while left:
            piece = block[: min(left, len(block))]
            f.write(piece)
            digest.update(piece)
            left -= len(piece)
    return digest.hexdigest()


async def _ours(
    client_sig: SignalingClient,
    worker_sig: SignalingClient,
    source: Path,
    folder: Path,
    chunk: int,
    connects: int,
) -> dict[str, float]:
    secret = b64url_encode(b"bench secret of thirty-two bytes")
    auth = ChannelAuth(secret=secret)
    mount = folder / "worker"
    mount.mkdir()
    down = folder / "client"
    down.mkdir()
    uploaded: asyncio.Queue[Path] = asyncio.Queue()
    worker_channel: asyncio.Queue[Channel] = asyncio.Queue()
    cache = UploadCache()

    async def on_channel(channel: Channel) -> None:
        await worker_channel.put(channel)
        async for msg in channel:
            if isinstance(msg, FileUploadCheckMsg | FileUploadStartMsg):
                path = await serve_upload(
                    channel,
                    msg,
                    allowed=lambda p: p.is_relative_to(mount),
                    cache=cache,
                    timeout=60,
                )
                await uploaded.put(path)

    figures: dict[str, float] = {}
    async with ChannelAcceptor(worker_sig, auth=auth, on_channel=on_channel):
        times = []
        for _ in range(connects):
            t0 = time.perf_counter()
            channel = await open_channel(client_sig, "w", auth=auth, timeout=15)
            times.append(time.perf_counter() - t0)
            await channel.close()
            await worker_channel.get()
        figures["connect_p50_ms"] = statistics.median(times) * 1000
        figures["connect_max_ms"] = max(times) * 1000

        channel = await open_channel(client_sig, "w", auth=auth, timeout=15)
        worker = await worker_channel.get()
        size = (await asyncio.to_thread(source.stat)).st_size
        t0, c0 = time.perf_counter(), time.process_time()
        sent = await send_file(
            channel, source, dest_dir=str(mount), chunk_size=chunk, timeout=60
        )
        stored = await uploaded.get()
        figures["upload_s"] = time.perf_counter() - t0
        figures["upload_cpu_s"] = time.process_time() - c0
        if sent.cached or stored.stat().st_size != size:
            raise RuntimeError("upload did not store the file")

        # Download: the worker's reader is iterating; send from another task.
        t0, c0 = time.perf_counter(), time.process_time()
        sending = asyncio.create_task(send_file(worker, stored, chunk_size=chunk))
        meta = await channel.recv(timeout=30)
        if not isinstance(meta, FileDownloadMetaMsg):
            raise RuntimeError(f"expected FILE_DOWNLOAD_META, got {meta!r}")
        path = await receive_file(channel, meta, down, timeout=60)
        await sending
        figures["download_s"] = time.perf_counter() - t0
        figures["download_cpu_s"] = time.process_time() - c0
        if (await asyncio.to_thread(path.stat)).st_size != size:
            raise RuntimeError("download size differs")
        await channel.close()
    figures["upload_mib_s"] = size / MIB / figures["upload_s"]
    figures["download_mib_s"] = size / MIB / figures["download_s"]
    return figures


async def _raw(size: int, chunk: int) -> tuple[float, float]:
    """(MiB/s, CPU s) of plain aiortc, same chunk size and flow control."""
    config = RTCConfiguration(iceServers=[])
    a, b = RTCPeerConnection(config), RTCPeerConnection(config)
    done = asyncio.get_running_loop().create_future()
    received = 0

    def on_datachannel(dc: object) -> None:
        def on_message(data: bytes | str) -> None:
            nonlocal received
            received += len(data)
            if received >= size and not done.done():
                done.set_result(None)

        dc.on("message", on_message)  # type: ignore[attr-defined]

    b.on("datachannel", on_datachannel)
    dc = a.createDataChannel("raw")
    opened = asyncio.Event()
    dc.on("open", opened.set)
    low = asyncio.Event()
    dc.bufferedAmountLowThreshold = DEFAULT_LOW_WATER
    dc.on("bufferedamountlow", low.set)
    await a.setLocalDescription(await a.createOffer())
    await b.setRemoteDescription(a.localDescription)
    await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(b.localDescription)
    await asyncio.wait_for(opened.wait(), 15)
    payload = bytes(range(256)) * (chunk // 256) + bytes(chunk % 256)
    t0, c0 = time.perf_counter(), time.process_time()
    sent = 0
    while sent < size:
        while dc.bufferedAmount > DEFAULT_HIGH_WATER:
            low.clear()
            if dc.bufferedAmount > DEFAULT_HIGH_WATER:
                await low.wait()
        piece = payload[: min(chunk, size - sent)]
        dc.send(piece)
        sent += len(piece)
    await asyncio.wait_for(done, 600)
    took = time.perf_counter() - t0
    cpu = time.process_time() - c0
    await a.close()
    await b.close()
    return size / MIB / took, cpu


async def main_async(size_mb: int, chunk_kb: int, connects: int) -> None:
    _loopback_only()
    size = size_mb * MIB
    chunk = chunk_kb << 10
    store = Store(":memory:")
    room = store.create_room("bench")
    service = build_service(
        ServerConfig(host="127.0.0.1", port=0, ping_interval=60.0),
        store,
        JwtKeys.generate(),
    )
    await service.server.start()

    def client(peer_id: str, role: str) -> SignalingClient:
        register = sig.Register(
            peer_id=peer_id, role=role, room_id=room.room_id, token=room.token
        )
        return SignalingClient(service.server.url, register)

    print(f"file {size_mb} MB, chunks {chunk_kb} KiB, {connects} connections")
    print("order: raw, ours (upload, download), raw", flush=True)
    try:
        raw_runs = [await _raw(size, chunk)]
        async with client("w", "worker") as worker_sig, client("c", "client") as c:
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                source = folder / "payload.bin"
                await asyncio.to_thread(_make_file, source, size)
                ours = await _ours(c, worker_sig, source, folder, chunk, connects)
        raw_runs.append(await _raw(size, chunk))
    finally:
        await service.server.stop()
    raw = statistics.mean(r for r, _ in raw_runs)
    raw_cpu = statistics.mean(c for _, c in raw_runs) / size_mb * 1000
    up_cpu = ours["upload_cpu_s"] / size_mb * 1000
    down_cpu = ours["download_cpu_s"] / size_mb * 1000
    print()
    print("| Figure | Value |")
    print("|---|---|")
    print(
        f"| Offer → authenticated channel, p50 / max of {connects} | "
        f"{ours['connect_p50_ms']:.0f} / {ours['connect_max_ms']:.0f} ms |"
    )
    runs = " / ".join(f"{r:.2f}" for r, _ in raw_runs)
    print(
        f"| Raw aiortc, {size_mb} MB from memory, {chunk_kb} KiB chunks "
        f"(before / after ours) | {runs} MiB/s, mean {raw:.2f} |"
    )
    print(
        f"| Ours, upload client → worker (disk, SHA-256 both ends) | "
        f"{ours['upload_mib_s']:.2f} MiB/s ({ours['upload_s']:.1f} s) |"
    )
    print(
        f"| Ours, download worker → client (disk, SHA-256 both ends) | "
        f"{ours['download_mib_s']:.2f} MiB/s ({ours['download_s']:.1f} s) |"
    )
    print(
        f"| Throughput ratio ours / raw, upload / download | "
        f"{ours['upload_mib_s'] / raw:.2f}x / {ours['download_mib_s'] / raw:.2f}x |"
    )
    print(
        f"| Process CPU per MB (both peers), raw / upload / download | "
        f"{raw_cpu:.0f} / {up_cpu:.0f} / {down_cpu:.0f} ms |"
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 MB, 3 connects")
    parser.add_argument("--size-mb", type=int, default=None)
    parser.add_argument("--chunk-kb", type=int, default=64)
    parser.add_argument("--connects", type=int, default=None)
    args = parser.parse_args(argv)
    size = args.size_mb or (20 if args.quick else 200)
    connects = args.connects or (3 if args.quick else 10)
    asyncio.run(main_async(size, args.chunk_kb, connects))
    return 0


if __name__ == "__main__":
    sys.exit(main())
