"""The job service end to end: real specs, real sleap-nn on the CPU, real files.

A channel is a real async function collecting the frames it is given (decoded
with :func:`decode_text`); the worker's mount is a folder in ``tmp_path`` that
holds a copy of the tiny embedded dataset. Fast tests cover rejection, path
mapping and cancel (sleap-nn is killed while it imports); the ``slow`` ones
train the tiny model (about 20-30 s per sleap-nn start on this machine).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sleap_io as sio

from sleap_rtc_core.errors import ChannelClosed
from sleap_rtc_core.protocol.channel import ChannelMessage, decode_text
from sleap_rtc_core.protocol.channel_messages import (
    ControlCommandMsg,
    InferenceBeginMsg,
    InferenceCompleteMsg,
    InferenceFailedMsg,
    InferenceLogMsg,
    InferenceSkippedMsg,
    JobAcceptedMsg,
    JobAttachMsg,
    JobCancelMsg,
    JobCompleteMsg,
    JobFailedMsg,
    JobLogMsg,
    JobProgressMsg,
    JobRejectedMsg,
    JobStateMsg,
    JobSubmitMsg,
    ModelTypeMsg,
    ProgressReportMsg,
)
from sleap_rtc_core.protocol.jobspec import TrackJobSpec, TrainJobSpec
from sleap_rtc_core.protocol.states import JobState
from sleap_rtc_core.sample_data import tiny_training_config
from sleap_rtc_core.worker.files.mounts import MountPolicy
from sleap_rtc_core.worker.jobs.prepare import PreparedJob, prepare_job
from sleap_rtc_core.worker.jobs.process import group_has_live_members
from sleap_rtc_core.worker.jobs.service import JobService
from tests.fixtures.timing import async_wait_until, scaled

M = TypeVar("M", bound=ChannelMessage)

PEER = "client-1"


class Channel:
    """A sink: collects the frames sent to it; ``close()`` makes sends fail."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.closed = False

    async def send(self, text: str) -> None:
        if self.closed:
            raise ChannelClosed("closed")
        self.frames.append(text)

    def messages(self) -> list[ChannelMessage]:
        return [decode_text(f) for f in self.frames]

    def of(self, cls: type[M]) -> list[M]:
        return [m for m in self.messages() if isinstance(m, cls)]

    async def wait_for(self, cls: type[M], timeout: float = 10.0) -> M:
        await async_wait_until(
            lambda: bool(self.of(cls)), timeout=scaled(timeout), interval=0.02
        )
        return self.of(cls)[0]

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(m.raw) for m in self.of(ProgressReportMsg)]


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    """Where the service makes each job's private folder."""
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def states() -> list[tuple[str, JobState]]:
    """What ``on_state_change`` was called with."""
    return []


@pytest.fixture
async def service(
    mount: Path, work_dir: Path, states: list[tuple[str, JobState]]
) -> AsyncIterator[JobService]:
    svc = JobService(
        MountPolicy([mount.as_posix()]),
        work_dir=work_dir,
        stop_grace=scaled(5),
        on_state_change=lambda job_id, state: states.append((job_id, state)),
    )
    try:
        yield svc
    finally:
        await svc.close()


def train_spec(mount: Path, **fields: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": "train",
        "config_content": tiny_training_config(max_epochs=2),
        "model_types": ["single_instance"],
        "labels_path": (mount / "data" / "tiny.pkg.slp").as_posix(),
    }
    spec.update(fields)
    return spec


async def submit(
    service: JobService, channel: Channel, spec: dict[str, Any], cid: str = "c1"
) -> None:
    await service.handle(JobSubmitMsg(cid, spec), channel.send, PEER)


# ---------------------------------------------------------------- rejections


async def test_rejects_every_field_error_at_once(
    service: JobService, mount: Path, tmp_path: Path, work_dir: Path
) -> None:
    outside = tmp_path / "outside.slp"
    outside.write_bytes(b"x")
    spec = train_spec(
        mount,
        labels_path=outside.as_posix(),
        val_labels_path=(mount / "missing.slp").as_posix(),
        max_epochs=0,
        batch_size=1000,
        learning_rate=5.0,
        run_name="../escape",
    )
    channel = Channel()
    await submit(service, channel, spec, cid="abc12345")

    (rejected,) = channel.messages()
    assert isinstance(rejected, JobRejectedMsg)
    assert rejected.client_job_id == "abc12345"
    codes = {e["field"]: e["code"] for e in rejected.errors}
    assert codes == {
        "labels_path": "NOT_ALLOWED",
        "val_labels_path": "PATH_NOT_FOUND",
        "max_epochs": "OUT_OF_RANGE",
        "batch_size": "OUT_OF_RANGE",
        "learning_rate": "OUT_OF_RANGE",
        "run_name": "INVALID_VALUE",
    }
    assert all(e["message"] for e in rejected.errors)
    assert not service.jobs
    assert os.listdir(work_dir) == []


async def test_rejects_invalid_yaml(service: JobService, mount: Path) -> None:
    channel = Channel()
    await submit(service, channel, train_spec(mount, config_content="a: [1, 2\n"))
    (rejected,) = channel.of(JobRejectedMsg)
    (error,) = rejected.errors
    assert error["field"] == "config"
    assert error["code"] == "CONFIG_PARSE_ERROR"


async def test_rejects_paths_outside_the_mounts(
    service: JobService, mount: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(mount / "data" / "tiny.pkg.slp", elsewhere / "tiny.pkg.slp")
    (mount / "link.slp").symlink_to(elsewhere / "tiny.pkg.slp")
    config = tiny_training_config(ckpt_dir=elsewhere / "models")
    channel = Channel()
    spec = train_spec(
        mount, labels_path=(mount / "link.slp").as_posix(), config_content=config
    )
    await submit(service, channel, spec)
    (rejected,) = channel.of(JobRejectedMsg)
    errors = {e["field"]: e for e in rejected.errors}
    assert errors["labels_path"]["code"] == "NOT_ALLOWED"
    assert errors["config.trainer_config.ckpt_dir"]["code"] == "NOT_ALLOWED"


async def test_rejects_a_malformed_spec_and_an_unknown_attach(
    service: JobService, mount: Path
) -> None:
    channel = Channel()
    await submit(service, channel, {"type": "bogus"})
    await service.handle(JobAttachMsg("job_00000000"), channel.send, PEER)
    rejected, state = channel.messages()
    assert isinstance(rejected, JobRejectedMsg)
    assert rejected.errors[0]["field"] == "spec"
    assert isinstance(state, JobStateMsg)
    assert state.state == "unknown"


# ------------------------------------------------------------------ mappings


def test_prepare_writes_private_configs_and_a_remapped_labels_copy(
    tmp_path: Path, tiny_video_labels: tuple[Path, Path]
) -> None:
    labels, video = tiny_video_labels
    root = tmp_path / "mount"
    (root / "videos").mkdir(parents=True)
    moved = root / "videos" / video.name
    shutil.move(labels, root / labels.name)
    shutil.move(video, moved)
    client_labels = "C:\\Users\\me\\project\\labels.slp"
    spec = TrainJobSpec.from_dict(
        train_spec(
            root,
            labels_path=client_labels,
            path_mappings={
                client_labels: (root / labels.name).as_posix(),
                video.parent.as_posix(): (root / "videos").as_posix(),
            },
            model_types=["single_instance"],
        )
    )
    job = prepare_job(spec, MountPolicy([root.as_posix()]), private_parent=tmp_path)
    assert isinstance(job, PreparedJob)
    try:
        assert stat.S_IMODE(job.private_dir.stat().st_mode) == 0o700
        (model,) = job.models
        assert stat.S_IMODE(model.config_file.stat().st_mode) == 0o600
        assert model.config_file.parent == job.private_dir
        assert model.ckpt_dir == root / "models"
        assert model.train_labels is not None
        (copy,) = model.train_labels
        assert Path(copy).parent == job.private_dir
        assert sio.load_slp(copy, open_videos=False).videos[0].filename == (
            moved.as_posix()
        )
        # The original is untouched.
        original = sio.load_slp((root / labels.name).as_posix(), open_videos=False)
        assert original.videos[0].filename == video.as_posix()
    finally:
        job.cleanup()
    assert not job.private_dir.exists()

    # A video mapped out of the mounts is refused, and nothing is left behind.
    spec2 = TrainJobSpec.from_dict(
        train_spec(
            root,
            labels_path=(root / labels.name).as_posix(),
            path_mappings={video.as_posix(): (tmp_path / "x.mp4").as_posix()},
        )
    )
    errors = prepare_job(
        spec2, MountPolicy([root.as_posix()]), private_parent=tmp_path / "p"
    )
    assert isinstance(errors, list)
    assert [(e.field, e.code) for e in errors] == [
        ("labels_path.videos[0]", "NOT_ALLOWED")
    ]


# -------------------------------------------------------------------- cancel


async def test_cancel_kills_the_group_and_removes_temp_files(
    service: JobService,
    mount: Path,
    work_dir: Path,
    states: list[tuple[str, JobState]],
) -> None:
    channel = Channel()
    await submit(service, channel, train_spec(mount, max_epochs=10000))
    accepted = await channel.wait_for(JobAcceptedMsg)
    job_id = accepted.job_id
    assert len(os.listdir(work_dir)) == 1  # the private folder
    await async_wait_until(
        lambda: service.jobs[job_id].pid is not None, timeout=scaled(10)
    )
    pid = service.jobs[job_id].pid
    assert pid is not None

    await service.handle(JobCancelMsg(), channel.send, PEER)
    failed = await channel.wait_for(JobFailedMsg, timeout=20)
    assert failed.message == "Job cancelled by user"
    assert failed.job_id == job_id
    assert not group_has_live_members(pid)
    assert os.listdir(work_dir) == []
    assert service.jobs[job_id].state is JobState.CANCELLED
    assert [s for j, s in states if j == job_id] == [
        JobState.ASSIGNED,
        JobState.RUNNING,
        JobState.CANCELLED,
    ]


# ---------------------------------------------------------------- real runs


@pytest.mark.slow
async def test_train_detach_attach_then_track(
    service: JobService, mount: Path, work_dir: Path, states: list[tuple[str, JobState]]
) -> None:
    first = Channel()
    await submit(service, first, train_spec(mount, run_name="tiny"))
    accepted = await first.wait_for(JobAcceptedMsg)
    job_id, job_secret = accepted.job_id, accepted.job_secret
    assert job_secret
    # The client goes away after the first progress event.
    await first.wait_for(ProgressReportMsg, timeout=120)
    service.detach(first.send)
    seen_live = len(first.of(ProgressReportMsg))
    await async_wait_until(
        lambda: service.jobs[job_id].state is JobState.SUCCEEDED,
        timeout=scaled(120),
        interval=0.1,
    )

    # Without the secret the job is not ours, whatever the peer id says.
    stranger = Channel()
    await service.handle(JobAttachMsg(job_id), stranger.send, PEER)
    unknown = stranger.messages()[0]
    assert isinstance(unknown, JobStateMsg)
    assert unknown.state == "unknown"
    # A new channel, any peer id, reattaches with the secret and gets the rest.
    second = Channel()
    await service.handle(JobAttachMsg(job_id, job_secret), second.send, "other")
    complete = await second.wait_for(JobCompleteMsg)
    state = second.messages()[0]
    assert isinstance(state, JobStateMsg)
    assert state.state == "succeeded"
    assert state.result is not None
    assert state.result["job_id"] == job_id
    events = [
        json.loads(raw)["event"]
        for raw in [m.raw for m in first.of(ProgressReportMsg)] + state.progress
    ]
    assert len(events) > seen_live
    assert events[0] == "train_begin"
    assert events[-1] == "train_end"
    assert events.count("epoch_end") == 2
    assert state.last_progress is not None
    assert state.last_progress["epoch"] == 1
    assert isinstance(second.messages()[-1], JobCompleteMsg)
    assert first.of(ModelTypeMsg)[0].model_type == "single_instance"

    run_dir = mount / "data" / "models" / "tiny"
    assert complete.output_path == run_dir.as_posix()
    assert complete.stopped_early is False
    assert (run_dir / "best.ckpt").stat().st_size > 0
    assert complete.extra["model_paths"] == [run_dir.as_posix()]
    assert "val/loss" in complete.extra["final_losses"]
    assert os.listdir(work_dir) == []
    assert [s for j, s in states if j == job_id] == [
        JobState.ASSIGNED,
        JobState.RUNNING,
        JobState.SUCCEEDED,
    ]

    # Inference with the new model on the suggested frames.
    out = mount / "out" / "tiny.predictions.slp"
    out.parent.mkdir()
    track = TrackJobSpec(
        data_path=(mount / "data" / "tiny.pkg.slp").as_posix(),
        model_paths=(run_dir.as_posix(),),
        output_path=out.as_posix(),
        only_suggested_frames=True,
        peak_threshold=0.0,
    )
    third = Channel()
    await submit(service, third, track.to_dict(), cid="t1")
    done = await third.wait_for(JobCompleteMsg, timeout=120)
    assert not third.of(JobFailedMsg)
    assert third.of(InferenceBeginMsg)
    assert third.of(InferenceCompleteMsg)[0].predictions_path == out.as_posix()
    assert done.job_type == "track"
    assert done.output_path == out.as_posix()
    predictions = sio.load_slp(out.as_posix())
    assert len(predictions.labeled_frames) == 4
    assert third.of(JobLogMsg)


@pytest.mark.slow
async def test_stop_keeps_the_model_then_predicts(
    service: JobService, mount: Path, states: list[tuple[str, JobState]]
) -> None:
    channel = Channel()
    spec = train_spec(mount, max_epochs=1000, run_name="stopped", run_inference=True)
    await submit(service, channel, spec)
    job_id = (await channel.wait_for(JobAcceptedMsg)).job_id
    await channel.wait_for(JobProgressMsg, timeout=120)  # one epoch done
    await service.handle(ControlCommandMsg('{"command":"stop"}'), channel.send, PEER)
    complete = await channel.wait_for(JobCompleteMsg, timeout=120)

    assert complete.stopped_early is True
    run_dir = mount / "data" / "models" / "stopped"
    assert (run_dir / "best.ckpt").stat().st_size > 0
    epochs = [e["epoch"] for e in channel.events() if e["event"] == "epoch_end"]
    assert max(epochs) < 20
    predictions = mount / "data" / "tiny.predictions.slp"
    assert complete.extra.get("predictions_path") == predictions.as_posix(), [
        *channel.of(InferenceFailedMsg),
        *channel.of(InferenceSkippedMsg),
        *channel.of(InferenceLogMsg)[-5:],
    ]
    assert channel.of(InferenceCompleteMsg)
    # Too little training for peaks above the default threshold: the file is
    # what matters here.
    assert len(sio.load_slp(predictions.as_posix()).videos) == 1
    assert [s for j, s in states if j == job_id] == [
        JobState.ASSIGNED,
        JobState.RUNNING,
        JobState.STOPPING,
        JobState.SUCCEEDED,
    ]
