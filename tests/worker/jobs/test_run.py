"""Tests of :mod:`sleap_rtc_core.worker.jobs.run`: one accepted train job from
its first frame to its last, with a stand-in for sleap-nn.

The stand-in is a real program run as the job's "python": it reads the ZMQ
ports and run folder from the Hydra overrides the worker passes, connects a PUB
and a SUB as sleap-nn's trainer does, publishes ``epoch_end`` events, and ends
when a stop command arrives (writing ``best.ckpt`` first, as a stopped trainer
keeps its best model). Everything else is real: the job is prepared from a spec
on a real mount, its frames go to a real coroutine sink.
"""

from __future__ import annotations

import asyncio
import json
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sleap_rtc_core.protocol.channel import decode_text
from sleap_rtc_core.protocol.channel_messages import (
    JobCompleteMsg,
    JobFailedMsg,
    JobLogMsg,
    JobProgressMsg,
    ProgressReportMsg,
)
from sleap_rtc_core.protocol.jobspec import spec_from_dict
from sleap_rtc_core.protocol.states import JobState
from sleap_rtc_core.sample_data import tiny_training_config
from sleap_rtc_core.worker.files.mounts import MountPolicy
from sleap_rtc_core.worker.jobs.prepare import PreparedJob, prepare_job
from sleap_rtc_core.worker.jobs.run import JobRun
from tests.fixtures.timing import async_wait_until, scaled

FAKE_TRAINER = """\
import json, pathlib, sys, zmq

def value(text):
    if text.startswith("'") and text.endswith("'"):
        return text[1:-1]
    return text

args = dict(a[2:].split("=", 1) for a in sys.argv if a.startswith("++"))
mode = pathlib.Path(__file__).with_suffix(".mode").read_text()
if mode == "crash":
    print("CUDA out of memory", file=sys.stderr)
    sys.exit(1)
ctx = zmq.Context()
pub = ctx.socket(zmq.PUB)
pub.connect("tcp://127.0.0.1:" + args["trainer_config.zmq.publish_port"])
sub = ctx.socket(zmq.SUB)
sub.subscribe("")
sub.connect("tcp://127.0.0.1:" + args["trainer_config.zmq.controller_port"])
run = pathlib.Path(value(args["trainer_config.ckpt_dir"]))
run = run / value(args["trainer_config.run_name"])
print("training in", run, flush=True)
for epoch in range(400):
    event = '{"event": "epoch_end", "epoch": %d, "logs": {"train/loss": 0.5}}'
    pub.send_string(event % epoch)
    if sub.poll(50):
        print("command", sub.recv_string(), flush=True)
        run.mkdir(parents=True, exist_ok=True)
        (run / "best.ckpt").write_text("weights")
        pub.send_string('{"event": "train_end"}')
        sys.exit(0)
sys.exit(2)
"""


class Sink:
    """A channel's send: keeps every frame."""

    def __init__(self) -> None:
        self.frames: list[str] = []

    async def __call__(self, text: str) -> None:
        self.frames.append(text)

    def of(self, cls: type[Any]) -> list[Any]:
        return [m for m in map(decode_text, self.frames) if isinstance(m, cls)]


def _fake_python(tmp_path: Path, mode: str) -> str:
    script = tmp_path / "fake_sleap_nn"
    script.write_text(f"#!{sys.executable}\n{FAKE_TRAINER}")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    script.with_suffix(".mode").write_text(mode)
    return str(script)


def _prepared(mount: Path, tmp_path: Path) -> PreparedJob:
    spec = spec_from_dict(
        {
            "type": "train",
            "config_content": tiny_training_config(max_epochs=2),
            "model_types": ["single_instance"],
            "labels_path": (mount / "data" / "tiny.pkg.slp").as_posix(),
        }
    )
    private = tmp_path / "private"
    private.mkdir()
    prepared = prepare_job(
        spec, MountPolicy([mount.as_posix()]), private_parent=private
    )
    assert isinstance(prepared, PreparedJob), prepared
    return prepared


def _job(
    mount: Path,
    tmp_path: Path,
    mode: str,
    states: list[JobState],
    secret: str | None = None,
) -> JobRun:
    return JobRun(
        "job_0000abcd",
        "client-job",
        "client-1",
        _prepared(mount, tmp_path),
        python=_fake_python(tmp_path, mode),
        env={},
        stop_grace=scaled(5),
        stop_timeout=scaled(10),
        max_buffered=1000,
        on_state=lambda _job_id, state: states.append(state),
        secret=secret,
    )


def _attached(
    mount: Path, tmp_path: Path, mode: str
) -> tuple[JobRun, Sink, list[JobState]]:
    """A job with a sink attached, and the states it reports (in order)."""
    states: list[JobState] = []
    job = _job(mount, tmp_path, mode, states)
    sink = Sink()
    job.attach(sink)
    return job, sink, states


async def _until(check: Callable[[], bool]) -> None:
    await async_wait_until(check, timeout=scaled(30), interval=0.02)


async def test_a_stopped_training_completes_with_its_model_and_raw_progress(
    mount: Path, tmp_path: Path
) -> None:
    job, sink, states = _attached(mount, tmp_path, "train")
    running = asyncio.create_task(job.run())
    await _until(lambda: bool(sink.of(JobProgressMsg)))
    job.stop()
    await running
    assert await job.outbox.drain(scaled(5))

    (complete,) = sink.of(JobCompleteMsg)
    assert not sink.of(JobFailedMsg)
    assert job.state is JobState.SUCCEEDED
    assert states[-1] is JobState.SUCCEEDED
    # Progress travels as the trainer wrote it, byte for byte.
    raws = [m.raw for m in sink.of(ProgressReportMsg)]
    assert raws
    assert all(
        raw == '{"event": "train_end"}'
        or raw.startswith('{"event": "epoch_end", "epoch": ')
        for raw in raws
    )
    logs = [m.line for m in sink.of(JobLogMsg)]
    assert any(line.startswith("command ") and "stop" in line for line in logs)
    payload = json.loads(sink.frames[-1].split("::", 1)[1])
    assert payload["job_id"] == complete.job_id == "job_0000abcd"
    assert payload["stopped_early"] is True
    assert not job.prepared.private_dir.exists()


async def test_a_crashing_trainer_fails_the_job_with_its_stderr(
    mount: Path, tmp_path: Path
) -> None:
    job, sink, states = _attached(mount, tmp_path, "crash")
    await job.run()
    assert await job.outbox.drain(scaled(5))
    (failed,) = sink.of(JobFailedMsg)
    assert not sink.of(JobCompleteMsg)
    assert job.state is JobState.FAILED
    assert "CUDA out of memory" in failed.message + json.dumps(failed.extra)


async def test_cancel_fails_the_job_as_cancelled_by_the_user(
    mount: Path, tmp_path: Path
) -> None:
    job, sink, states = _attached(mount, tmp_path, "train")
    running = asyncio.create_task(job.run())
    await _until(lambda: bool(sink.of(ProgressReportMsg)))
    job.cancel()
    await running
    assert await job.outbox.drain(scaled(5))
    (failed,) = sink.of(JobFailedMsg)
    assert "cancelled by user" in failed.message + json.dumps(failed.extra)
    assert job.finished


@pytest.mark.parametrize("secret", [None, "s3cret"])
async def test_only_the_jobs_secret_is_held(
    mount: Path, tmp_path: Path, secret: str | None
) -> None:
    job = _job(mount, tmp_path, "train", [], secret)
    assert not job.holds(None)
    assert not job.holds("other")
    assert job.holds("s3cret") is (secret == "s3cret")
    await asyncio.to_thread(job.prepared.cleanup)
