"""A symlink inside a mount swapped between a folder inside and one outside,
while the FS_* requests that read a client-named path run: nothing of the
outside folder may ever show, be found or be read. The same for a job's model
downloads, over a real data channel: a link in the run folder swapped between
a file in it and one outside, and a folder of it exchanged with a link out.

The swap runs in a thread for as long as a bounded number of requests take:
a link re-pointed with ``os.replace`` (so the name always exists), or a real
folder exchanged with a link out (``renameat2(RENAME_EXCHANGE)``), which is
what defeats a check of the resolved path followed by a use of it by name:
the check-then-use code these tests replaced failed the ``exchange`` cases in
most runs. Requests and replies go through the text codec as over a data
channel.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sleap_rtc_core.protocol.channel import ChannelMessage, decode_text, encode_text
from sleap_rtc_core.protocol.channel_fs import (
    FsCheckVideosResponseMsg,
    FsErrorMsg,
    FsListDirMsg,
    FsListResponseMsg,
    FsResolveMsg,
    FsResolveResponseMsg,
    FsResolveWithPrefixMsg,
    FsScanDirMsg,
    FsScanDirResponseMsg,
    FsWriteSlpErrorMsg,
    FsWriteSlpMsg,
    FsWriteSlpOkMsg,
    UseWorkerPathMsg,
    WorkerPathErrorMsg,
    WorkerPathOkMsg,
)
from sleap_rtc_core.protocol.channel_transfer import (
    EndOfFileMsg,
    FileDownloadMetaMsg,
    FileDownloadRequestMsg,
    ModelManifest,
)
from sleap_rtc_core.protocol.states import JobState
from sleap_rtc_core.sample_data import write_tiny_video_labels
from sleap_rtc_core.transport.auth import ChannelAuth
from sleap_rtc_core.transport.channel import Channel
from sleap_rtc_core.transport.peer import open_channel
from sleap_rtc_core.worker.files.models import ModelFileServer
from sleap_rtc_core.worker.files.mounts import MountPolicy
from sleap_rtc_core.worker.files.service import FsService
from sleap_rtc_core.worker.files.slp_write import SlpWriteQuota
from sleap_rtc_core.worker.jobs.results import JobInfo
from tests.fixtures.timing import scaled
from tests.fixtures.transport import TransportPair

TRIES = 300
"""Requests per race (each a few system calls)."""
LABEL_TRIES = 60
"""Requests per race that load labels with sleap-io (slower)."""
DOWNLOAD_TRIES = 120
"""Downloads per race (each a round trip over a data channel)."""
_MAX_SWAPS = 10_000_000
"""Bound of the swapping thread's loop (it stops long before)."""


async def ask(service: FsService, msg: ChannelMessage) -> list[ChannelMessage]:
    """``msg`` through the codec to the service, and its replies back."""
    replies = await service.handle(decode_text(encode_text(msg)), "attacker")
    return [decode_text(encode_text(r)) for r in replies]


@contextmanager
def swapping(race: dict[str, Path | str]) -> Iterator[None]:
    """Swap ``race["swap"]`` between inside and outside, as fast as it goes,
    until the block ends; it is inside again afterwards."""
    stop = threading.Event()
    failures: list[BaseException] = []
    step = _exchange if race["mode"] == "exchange" else _relink
    thread = threading.Thread(
        target=_swap_until, args=(stop, step, race, failures), name="swap"
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        if race["mode"] != "exchange":
            _relink(0, race)
        elif Path(race["swap"]).is_symlink():
            _exchange(1, race)
    assert not failures, failures


def _swap_until(
    stop: threading.Event,
    step: Any,
    race: dict[str, Path | str],
    failures: list[BaseException],
) -> None:
    try:
        for i in range(_MAX_SWAPS):
            if stop.is_set():
                return
            step(i, race)
    except BaseException as exc:  # reported by swapping()
        failures.append(exc)


def _relink(i: int, race: dict[str, Path | str]) -> None:
    """Point the link at the inside (even ``i``) or the outside folder."""
    link = Path(race["swap"])
    scratch = link.with_name(".swap.next")
    os.symlink(race["inside_target" if i % 2 == 0 else "outside_target"], scratch)
    os.replace(scratch, link)


def _exchange(i: int, race: dict[str, Path | str]) -> None:
    """Swap the real folder and the link out with one ``renameat2``
    (``RENAME_EXCHANGE``), so that the name always exists."""
    name = Path(race["swap"])
    _rename_exchange(name, name.with_name(".swap_other"))


_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.renameat2.argtypes = [
    ctypes.c_int,
    ctypes.c_char_p,
    ctypes.c_int,
    ctypes.c_char_p,
    ctypes.c_uint,
]
_LIBC.renameat2.restype = ctypes.c_int


def _rename_exchange(a: Path, b: Path) -> None:
    """``renameat2`` through libc, loaded once with its signature declared
    (glibc's symbol; Python has no flag for ``RENAME_EXCHANGE``)."""
    at_fdcwd, rename_exchange = -100, 2
    if _LIBC.renameat2(at_fdcwd, bytes(a), at_fdcwd, bytes(b), rename_exchange):
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


@pytest.fixture(params=["absolute", "relative", "exchange"])
def race(tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Path | str]:
    """``mount/inside/`` (``inside.txt``, ``deeper/inside.txt``, ``labels.slp``
    referencing ``/inside/video.mp4``) and ``outside/`` (``SECRET.txt``,
    ``deeper/SECRET.txt``, ``labels.slp`` referencing ``/SECRET/video.mp4``),
    and ``mount/swap``: a link swapped between them (absolute or relative
    targets), or (``exchange``) the inside folder itself swapped with a link
    to the outside, so that what was checked as a real folder is a link when
    it is used."""
    mount, outside = tmp_path / "mount", tmp_path / "outside"
    inside = mount / "inside"
    for folder, name in ((inside, "inside.txt"), (outside, "SECRET.txt")):
        (folder / "deeper").mkdir(parents=True)
        (folder / name).write_bytes(b"x")
        (folder / "deeper" / name).write_bytes(b"x")
    for folder, video in (
        (inside, "/inside/video.mp4"),
        (outside, "/SECRET/video.mp4"),
    ):
        scratch = tmp_path / f"{folder.name}.slp"
        write_tiny_video_labels(
            scratch, video_path=tmp_path / "v.mp4", n_frames=2, size=32
        )
        _retarget(scratch, folder / "labels.slp", video)
    mode = request.param
    link = mount / "swap"
    targets = (
        (str(inside), str(outside)) if mode == "absolute" else ("inside", "../outside")
    )
    if mode == "exchange":
        inside.rename(link)
        os.symlink(outside, mount / ".swap_other")
        try:
            _rename_exchange(link, mount / ".swap_other")
            _rename_exchange(link, mount / ".swap_other")
        except (OSError, AttributeError) as exc:
            pytest.skip(f"no renameat2(RENAME_EXCHANGE) here: {exc}")
    else:
        os.symlink(targets[0], link)
    return {
        "mode": mode,
        "mount": mount,
        "outside": outside,
        "swap": link,
        "inside_target": targets[0],
        "outside_target": targets[1],
    }


def _retarget(src: Path, dst: Path, video: str) -> None:
    """A copy of the labels ``src`` whose video path is ``video``."""
    import sleap_io as sio

    labels = sio.load_slp(str(src), open_videos=False)
    labels.videos[0].replace_filename(video, open=False)
    labels.save(str(dst), embed=None, verbose=False)


def _tree(folder: Path) -> list[Path]:
    """Everything below ``folder``, relative to it."""
    return sorted(p.relative_to(folder) for p in folder.rglob("*"))


def _service(
    race: dict[str, Path | str], quota: SlpWriteQuota | None = None
) -> FsService:
    return FsService(MountPolicy([str(race["mount"])]), slp_write_quota=quota)


async def test_list_dir_never_shows_the_outside(race: dict[str, Path | str]) -> None:
    service = _service(race)
    swap = Path(race["swap"])
    shown: set[str] = set()
    with swapping(race):
        for i in range(TRIES):
            path = swap if i % 2 else swap / "deeper"
            for reply in await ask(service, FsListDirMsg(str(path))):
                if isinstance(reply, FsListResponseMsg):
                    shown.update(e["name"] for e in reply.entries)
                else:
                    assert isinstance(reply, FsErrorMsg), reply
    assert shown <= {"inside.txt", "deeper", "labels.slp"}, shown
    (reply,) = await ask(service, FsListDirMsg(str(swap)))
    assert isinstance(reply, FsListResponseMsg)
    assert "inside.txt" in {e["name"] for e in reply.entries}


async def test_resolve_never_finds_the_outside(race: dict[str, Path | str]) -> None:
    """FS_RESOLVE walks the mount while the swap runs: neither a name from
    outside nor the size of an outside file with an inside name shows."""
    service = _service(race)
    outside = Path(race["outside"])
    (outside / "deeper" / "inside.txt").write_bytes(b"outside bytes")
    found: list[tuple[str, int]] = []
    with swapping(race):
        for i in range(TRIES):
            pattern = ("SECRET.txt", ".txt", "inside.txt")[i % 3]
            (reply,) = await ask(service, FsResolveMsg(pattern))
            assert isinstance(reply, FsResolveResponseMsg), reply
            found.extend((c["name"], c["size"]) for c in reply.candidates)
    assert set(found) <= {("inside.txt", 1)}, set(found)
    (reply,) = await ask(service, FsResolveMsg("inside.txt"))
    assert isinstance(reply, FsResolveResponseMsg)
    assert {(c["name"], c["size"]) for c in reply.candidates} == {("inside.txt", 1)}


async def test_path_checks_never_find_the_outside(
    race: dict[str, Path | str],
) -> None:
    service = _service(race)
    swap = Path(race["swap"])
    with swapping(race):
        for i in range(TRIES):
            kind = i % 3
            if kind == 0:
                (scan,) = await ask(
                    service, FsScanDirMsg(str(swap), ["SECRET.txt", "inside.txt"])
                )
                assert isinstance(scan, FsScanDirResponseMsg | FsErrorMsg), scan
                if isinstance(scan, FsScanDirResponseMsg):
                    assert scan.found["SECRET.txt"] is None
            elif kind == 1:
                replies = await ask(service, UseWorkerPathMsg(f"{swap}/SECRET.txt"))
                assert [type(r) for r in replies] == [WorkerPathErrorMsg], replies
            else:
                msg = FsResolveWithPrefixMsg(
                    original_path="/c/SECRET.txt", new_path=f"{swap}/deeper/SECRET.txt"
                )
                (reply,) = await ask(service, msg)
                assert isinstance(reply, FsErrorMsg), reply


async def test_labels_read_are_never_the_outside_ones(
    race: dict[str, Path | str],
) -> None:
    service = _service(race)
    swap = Path(race["swap"])
    seen: list[str] = []
    with swapping(race):
        for _ in range(LABEL_TRIES):
            replies = await ask(service, UseWorkerPathMsg(f"{swap}/labels.slp"))
            for reply in replies:
                if isinstance(reply, FsCheckVideosResponseMsg):
                    seen.extend(m["original_path"] for m in reply.missing)
                else:
                    assert isinstance(reply, WorkerPathOkMsg | WorkerPathErrorMsg)
    assert set(seen) <= {"/inside/video.mp4"}, set(seen)


async def test_write_slp_never_reads_or_writes_the_outside(
    race: dict[str, Path | str],
) -> None:
    quota = SlpWriteQuota(
        max_files_per_peer=LABEL_TRIES + 1, max_files_total=LABEL_TRIES + 1
    )
    service = _service(race, quota)
    swap, mount = Path(race["swap"]), Path(race["mount"])
    outside = Path(race["outside"])
    before = _tree(outside)
    written: list[str] = []
    with swapping(race):
        for i in range(LABEL_TRIES):
            msg = FsWriteSlpMsg(
                slp_path=f"{swap}/labels.slp",
                output_dir=str(swap) if i % 2 else str(mount),
                filename_map={},
            )
            (reply,) = await ask(service, msg)
            assert isinstance(reply, FsWriteSlpOkMsg | FsWriteSlpErrorMsg), reply
            if isinstance(reply, FsWriteSlpOkMsg):
                written.append(reply.output_path)
    assert _tree(outside) == before
    msg = FsWriteSlpMsg(f"{swap}/labels.slp", str(swap), {})
    (reply,) = await ask(service, msg)
    assert isinstance(reply, FsWriteSlpOkMsg), reply
    written.append(reply.output_path)
    import sleap_io as sio

    for path in written:
        labels = sio.load_slp(path, open_videos=False)
        assert labels.videos[0].filename == "/inside/video.mp4"


# ------------------------------------------------------------ model downloads

JOB = "job_00000001"
MODEL_SIZE = 70_000
"""Bytes of each model file: two binary frames."""
INSIDE = b"I" * MODEL_SIZE
OUTSIDE = b"O" * MODEL_SIZE


@pytest.fixture(params=["relink", "exchange"])
def model_race(tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    """A job's run folder ``mount/run`` with ``inside.ckpt`` and
    ``sub/model.ckpt``, and ``outside/`` with ``secret.ckpt`` and
    ``sub/model.ckpt`` of other bytes (the same size); then either
    ``run/latest.ckpt``, a link re-pointed between ``inside.ckpt`` and
    ``outside/secret.ckpt`` (``relink``), or ``run/sub`` exchanged with a link
    to ``outside/sub`` (``exchange``)."""
    mount, outside = tmp_path / "mount", tmp_path / "outside"
    run = mount / "run"
    for folder, data, name in ((run, INSIDE, "inside"), (outside, OUTSIDE, "secret")):
        (folder / "sub").mkdir(parents=True)
        (folder / f"{name}.ckpt").write_bytes(data)
        (folder / "sub" / "model.ckpt").write_bytes(data)
    race: dict[str, Any] = {"mount": mount, "run": run, "mode": request.param}
    if request.param == "relink":
        os.symlink("inside.ckpt", run / "latest.ckpt")
        race.update(
            swap=run / "latest.ckpt",
            inside_target="inside.ckpt",
            outside_target=str(outside / "secret.ckpt"),
            asked=run / "latest.ckpt",
        )
    else:
        os.symlink(outside / "sub", run / ".swap_other")
        try:
            _rename_exchange(run / "sub", run / ".swap_other")
            _rename_exchange(run / "sub", run / ".swap_other")
        except (OSError, AttributeError) as exc:
            pytest.skip(f"no renameat2(RENAME_EXCHANGE) here: {exc}")
        race.update(swap=run / "sub", asked=run / "sub" / "model.ckpt")
    return race


@pytest.fixture
async def model_channel(
    transport_pair: TransportPair, room_secret: str, model_race: dict[str, Any]
) -> AsyncIterator[Channel]:
    """A channel to a :class:`ModelFileServer` that serves the finished job
    whose run folder is ``model_race["run"]`` to any channel (ownership is
    tested in tests/worker/files/test_models.py)."""
    run = model_race["run"]
    result = {"job_id": JOB, "models": [{"run_dir": run.as_posix()}]}
    info = JobInfo(
        JOB, "cj", "c", "train", JobState.SUCCEEDED, 0, 1, None, 0, 0, result, None
    )
    server = ModelFileServer(
        lambda job_id, _channel, _secret: info if job_id == JOB else None,
        MountPolicy([str(model_race["mount"])]),
    )

    async def serve(channel: Channel) -> None:
        async for item in channel:
            if isinstance(item, FileDownloadRequestMsg):
                await server.handle(item, channel)

    transport_pair.handler = serve
    auth = ChannelAuth(secret=room_secret)
    async with transport_pair.acceptor(auth):
        channel = await open_channel(
            transport_pair.signaling.client, "w", auth=auth, timeout=scaled(10)
        )
        async with channel:
            yield channel


async def download(
    channel: Channel, path: Path, **extra: Any
) -> tuple[FileDownloadMetaMsg | FsErrorMsg, bytes]:
    """One ``FILE_DOWNLOAD_REQUEST`` of ``JOB`` and what comes back."""
    offset, sha256 = extra.pop("offset", 0), extra.pop("sha256", None)
    request = FileDownloadRequestMsg(
        path=path.as_posix(),
        offset=offset,
        sha256=sha256,
        transfer_id="t",
        extra={"job_id": JOB, **extra},
    )
    reply = await channel.request(
        request, (FileDownloadMetaMsg, FsErrorMsg), scaled(10)
    )
    data = bytearray()
    while isinstance(reply, FileDownloadMetaMsg):
        item = await channel.recv(timeout=scaled(10))
        if isinstance(item, EndOfFileMsg):
            break
        assert isinstance(item, bytes), item
        data += item
    return reply, bytes(data)


async def test_model_downloads_never_send_outside_bytes(
    model_channel: Channel, model_race: dict[str, Any]
) -> None:
    asked, run = model_race["asked"], model_race["run"]
    digest = hashlib.sha256(INSIDE).hexdigest()
    outside_digest = hashlib.sha256(OUTSIDE).hexdigest()
    with swapping(model_race):
        for i in range(DOWNLOAD_TRIES):
            kind = i % 3
            if kind == 2:
                meta, data = await download(model_channel, run, manifest=True)
                if isinstance(meta, FileDownloadMetaMsg):
                    manifest = ModelManifest.from_bytes(data)
                    assert {f.sha256 for f in manifest.files} == {digest}, manifest
                continue
            resume = {"offset": 1000, "sha256": digest} if kind else {}
            meta, data = await download(model_channel, asked, **resume)
            assert b"O" not in data
            if isinstance(meta, FileDownloadMetaMsg):
                assert meta.sha256 == digest != outside_digest
                assert data == INSIDE[meta.offset :]
    meta, data = await download(model_channel, asked)
    assert isinstance(meta, FileDownloadMetaMsg), meta
    assert data == INSIDE
