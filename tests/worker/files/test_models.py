"""The worker's side of model downloads: who may fetch what, manifest, resume.

A real :class:`ModelFileServer` answers over a real authenticated data channel
(PSK) on the embedded signaling server; the job it serves is a hand-made
:class:`JobInfo` whose run folder holds random bytes. The client end speaks the
raw ``FILE_DOWNLOAD_REQUEST`` extension, so the wire format is what is tested.
An inference job's predictions file is served the same way, to its owner only.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sleap_rtc_core.protocol.channel_fs import FsErrorCode, FsErrorMsg
from sleap_rtc_core.protocol.channel_transfer import (
    MODEL_FILE_KIND,
    MODEL_MANIFEST_KIND,
    PREDICTIONS_KIND,
    EndOfFileMsg,
    FileDownloadMetaMsg,
    FileDownloadRequestMsg,
    ModelManifest,
)
from sleap_rtc_core.protocol.states import JobState
from sleap_rtc_core.transport.auth import ChannelAuth
from sleap_rtc_core.transport.channel import Channel
from sleap_rtc_core.transport.peer import open_channel
from sleap_rtc_core.worker.files.models import ModelFileServer
from sleap_rtc_core.worker.files.mounts import MountPolicy
from sleap_rtc_core.worker.jobs.results import JobInfo
from tests.fixtures.timing import scaled
from tests.fixtures.transport import TransportPair

JOB = "job_00000001"


JOB_SECRET = "the-secret-of-job-1"


class Jobs:
    """The authority the server is given: one job, changeable by the test.
    A channel of the job's ``owner`` stands for a channel attached to it
    (``JobService.authorized_job`` decides that for real, tested there);
    any channel may show the job's secret."""

    def __init__(self, info: JobInfo) -> None:
        self.info = info

    def __call__(self, job_id: str, channel: Channel, secret: object) -> JobInfo | None:
        if job_id != self.info.job_id:
            return None
        if channel.peer_id == self.info.owner or secret == JOB_SECRET:
            return self.info
        return None


def info(
    run_dir: Path, owner: str = "c", state: JobState = JobState.SUCCEEDED
) -> JobInfo:
    result = {"job_id": JOB, "models": [{"run_dir": run_dir.as_posix()}]}
    return JobInfo(JOB, "cj", owner, "train", state, 0, 1, None, 0, 0, result, None)


@pytest.fixture
def mount(tmp_path: Path) -> Path:
    root = tmp_path / "mount"
    run = root / "models" / "240506_070809.single_instance.n=20"
    (run / "sub").mkdir(parents=True)
    (run / "best.ckpt").write_bytes(os.urandom(300_000))
    (run / "training_config.yaml").write_text("a: 1\n")
    (run / "sub" / "metrics ü.npz").write_bytes(os.urandom(10))
    (root / "secret.txt").write_text("not a model")
    (run / "escape").symlink_to(root / "secret.txt")
    return root


def run_dir(mount: Path) -> Path:
    return mount / "models" / "240506_070809.single_instance.n=20"


@pytest.fixture
async def jobs(
    transport_pair: TransportPair, room_secret: str, mount: Path
) -> AsyncIterator[Jobs]:
    jobs = Jobs(info(run_dir(mount)))
    server = ModelFileServer(jobs, MountPolicy([mount.as_posix()]))

    async def serve(channel: Channel) -> None:
        async for item in channel:
            if ModelFileServer.handles(item):
                assert isinstance(item, FileDownloadRequestMsg)
                await server.handle(item, channel)

    transport_pair.handler = serve
    async with transport_pair.acceptor(ChannelAuth(secret=room_secret)):
        yield jobs


@pytest.fixture
async def channel(
    jobs: Jobs, transport_pair: TransportPair, room_secret: str
) -> AsyncIterator[Channel]:
    ch = await open_channel(
        transport_pair.signaling.client,
        "w",
        auth=ChannelAuth(secret=room_secret),
        timeout=scaled(10),
    )
    async with ch:
        yield ch


async def fetch(
    channel: Channel, path: str, **fields: object
) -> tuple[FileDownloadMetaMsg | FsErrorMsg, bytes]:
    extra = {"job_id": JOB, **fields.pop("extra", {})}  # type: ignore[dict-item]
    request = FileDownloadRequestMsg(path=path, transfer_id="t1", extra=extra, **fields)  # type: ignore[arg-type]
    reply = await channel.request(
        request, (FileDownloadMetaMsg, FsErrorMsg), scaled(10)
    )
    if isinstance(reply, FsErrorMsg):
        return reply, b""
    data = bytearray()
    while True:
        item = await channel.recv(timeout=scaled(10))
        if isinstance(item, EndOfFileMsg):
            return reply, bytes(data)
        assert isinstance(item, bytes)
        data += item


async def test_manifest_lists_every_file_but_symlinks(
    channel: Channel, mount: Path
) -> None:
    run = run_dir(mount)
    meta, data = await fetch(channel, run.as_posix(), extra={"manifest": True})
    assert isinstance(meta, FileDownloadMetaMsg)
    assert meta.kind == MODEL_MANIFEST_KIND
    assert meta.transfer_id == "t1"
    assert hashlib.sha256(data).hexdigest() == meta.sha256
    manifest = ModelManifest.from_bytes(data)
    assert manifest.job_id == JOB
    assert manifest.name == run.name
    assert sorted(f.path for f in manifest.files) == [
        "best.ckpt",
        "sub/metrics ü.npz",
        "training_config.yaml",
    ]
    (best,) = [f for f in manifest.files if f.path == "best.ckpt"]
    assert best.size == 300_000
    assert best.sha256 == hashlib.sha256((run / "best.ckpt").read_bytes()).hexdigest()


async def test_a_file_whole_then_resumed_at_an_offset(
    channel: Channel, mount: Path
) -> None:
    path = run_dir(mount) / "best.ckpt"
    content = path.read_bytes()
    digest = hashlib.sha256(content).hexdigest()
    meta, data = await fetch(channel, path.as_posix())
    assert isinstance(meta, FileDownloadMetaMsg)
    assert (meta.kind, meta.offset, meta.sha256, data) == (
        MODEL_FILE_KIND,
        0,
        digest,
        content,
    )
    meta, data = await fetch(channel, path.as_posix(), offset=123_456, sha256=digest)
    assert isinstance(meta, FileDownloadMetaMsg)
    assert meta.offset == 123_456
    assert data == content[123_456:]
    # Changed since it was listed: sent whole again.
    meta, data = await fetch(channel, path.as_posix(), offset=10, sha256="0" * 64)
    assert isinstance(meta, FileDownloadMetaMsg)
    assert meta.offset == 0
    assert data == content


async def test_a_link_inside_the_run_folder_serves_its_target(
    channel: Channel, mount: Path
) -> None:
    run = run_dir(mount)
    (run / "latest.ckpt").symlink_to("best.ckpt")
    meta, data = await fetch(channel, (run / "latest.ckpt").as_posix())
    assert isinstance(meta, FileDownloadMetaMsg)
    assert (meta.name, meta.path) == ("best.ckpt", (run / "best.ckpt").as_posix())
    assert data == (run / "best.ckpt").read_bytes()


@pytest.mark.parametrize(
    ("where", "extra", "code"),
    [
        ("escape", {}, FsErrorCode.ACCESS_DENIED),  # symlink out of the run
        ("../../secret.txt", {}, FsErrorCode.ACCESS_DENIED),
        ("missing", {}, FsErrorCode.PATH_NOT_FOUND),
        ("sub", {}, FsErrorCode.ACCESS_DENIED),  # a folder is not a file
        ("best.ckpt", {"manifest": True}, FsErrorCode.ACCESS_DENIED),
        ("best.ckpt", {"job_id": None}, FsErrorCode.INVALID_REQUEST),
        ("best.ckpt", {"job_id": "job_other"}, FsErrorCode.ACCESS_DENIED),
    ],
)
async def test_nothing_outside_the_jobs_run_folders(
    channel: Channel,
    mount: Path,
    where: str,
    extra: dict[str, object],
    code: FsErrorCode,
) -> None:
    path = (run_dir(mount) / where).as_posix()
    reply, _ = await fetch(channel, path, extra=extra)
    assert isinstance(reply, FsErrorMsg)
    assert reply.code is code


@pytest.mark.parametrize(
    ("owner", "state", "code"),
    [
        ("someone-else", JobState.SUCCEEDED, FsErrorCode.ACCESS_DENIED),
        ("c", JobState.RUNNING, FsErrorCode.PATH_NOT_FOUND),
        ("c", JobState.FAILED, FsErrorCode.PATH_NOT_FOUND),
    ],
)
async def test_only_the_owner_of_a_finished_job(
    channel: Channel,
    jobs: Jobs,
    mount: Path,
    owner: str,
    state: JobState,
    code: FsErrorCode,
) -> None:
    jobs.info = info(run_dir(mount), owner, state)
    reply, _ = await fetch(channel, (run_dir(mount) / "best.ckpt").as_posix())
    assert isinstance(reply, FsErrorMsg)
    assert reply.code is code


# ----------------------------------------------------------------- predictions


def track_info(
    predictions: Path, owner: str = "c", state: JobState = JobState.SUCCEEDED
) -> JobInfo:
    result = {
        "job_id": JOB,
        "output_path": predictions.as_posix(),
        "predictions_path": predictions.as_posix(),
    }
    return JobInfo(JOB, "cj", owner, "track", state, 0, 1, None, 0, 0, result, None)


def predictions_of(mount: Path) -> Path:
    path = mount / "proj" / "labels.predictions.slp"
    if not path.exists():
        path.parent.mkdir(parents=True)
        path.write_bytes(os.urandom(200_000))
        (path.parent / "labels.slp").write_bytes(b"the user's labels")
    return path


async def test_the_owner_gets_the_predictions_whole_or_resumed(
    channel: Channel, jobs: Jobs, mount: Path
) -> None:
    path = predictions_of(mount)
    jobs.info = track_info(path)
    content = path.read_bytes()
    digest = hashlib.sha256(content).hexdigest()
    meta, data = await fetch(channel, path.as_posix(), extra={"predictions": True})
    assert isinstance(meta, FileDownloadMetaMsg)
    assert (meta.kind, meta.name, meta.offset, meta.sha256, data) == (
        PREDICTIONS_KIND,
        path.name,
        0,
        digest,
        content,
    )
    meta, data = await fetch(
        channel,
        path.as_posix(),
        offset=1000,
        sha256=digest,
        extra={"predictions": True},
    )
    assert isinstance(meta, FileDownloadMetaMsg)
    assert (meta.kind, meta.offset, data) == (PREDICTIONS_KIND, 1000, content[1000:])


@pytest.mark.parametrize(
    ("owner", "state", "where", "code"),
    [
        ("someone-else", JobState.SUCCEEDED, "predictions", FsErrorCode.ACCESS_DENIED),
        ("c", JobState.RUNNING, "predictions", FsErrorCode.PATH_NOT_FOUND),
        ("c", JobState.CANCELLED, "predictions", FsErrorCode.PATH_NOT_FOUND),
        ("c", JobState.SUCCEEDED, "labels", FsErrorCode.ACCESS_DENIED),
        ("c", JobState.SUCCEEDED, "model", FsErrorCode.ACCESS_DENIED),
        ("c", JobState.SUCCEEDED, "relative", FsErrorCode.INVALID_REQUEST),
    ],
)
async def test_predictions_only_to_the_owner_of_a_finished_job(
    channel: Channel,
    jobs: Jobs,
    mount: Path,
    owner: str,
    state: JobState,
    where: str,
    code: FsErrorCode,
) -> None:
    path = predictions_of(mount)
    jobs.info = track_info(path, owner, state)
    asked = {
        "predictions": path.as_posix(),
        "labels": (path.parent / "labels.slp").as_posix(),
        "model": (run_dir(mount) / "best.ckpt").as_posix(),
        "relative": "proj/labels.predictions.slp",
    }[where]
    reply, _ = await fetch(channel, asked, extra={"predictions": True})
    assert isinstance(reply, FsErrorMsg)
    assert reply.code is code


async def test_no_predictions_outside_the_mounts_or_of_a_training_job(
    channel: Channel, jobs: Jobs, mount: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere.predictions.slp"
    outside.write_bytes(b"x")
    jobs.info = track_info(outside)
    reply, _ = await fetch(channel, outside.as_posix(), extra={"predictions": True})
    assert isinstance(reply, FsErrorMsg)
    assert reply.code is FsErrorCode.ACCESS_DENIED
    jobs.info = info(run_dir(mount))  # a training job without inference
    ckpt = (run_dir(mount) / "best.ckpt").as_posix()
    reply, _ = await fetch(channel, ckpt, extra={"predictions": True})
    assert isinstance(reply, FsErrorMsg)
    assert reply.code is FsErrorCode.PATH_NOT_FOUND


@pytest.mark.parametrize(
    ("secret", "allowed"),
    [(JOB_SECRET, True), ("a-guessed-secret", False), (None, False), (7, False)],
)
async def test_another_channel_needs_the_jobs_secret(
    channel: Channel, jobs: Jobs, mount: Path, secret: object, allowed: bool
) -> None:
    """A channel that is not the job's (any peer id) gets the files only by
    showing the job's secret; a wrong one is the same answer as no job."""
    jobs.info = info(run_dir(mount), owner="someone-else")
    extra = {} if secret is None else {"job_secret": secret}
    ckpt = (run_dir(mount) / "best.ckpt").as_posix()
    reply, data = await fetch(channel, ckpt, extra=extra)
    if allowed:
        assert isinstance(reply, FileDownloadMetaMsg)
        assert data == (run_dir(mount) / "best.ckpt").read_bytes()
    else:
        assert isinstance(reply, FsErrorMsg)
        assert reply.code is FsErrorCode.ACCESS_DENIED
