"""End to end on the CPU: real ``sleap-nn train`` and ``sleap-nn track`` runs.

The worker's pieces together, as the job runner will use them: a train spec
whose ``config_content`` is the tiny config, written to a private file; argv
from :func:`prepare_job`'s plan and :func:`train_argv_for_spec` (what the
worker runs) with the ports of a :class:`TrainerLink`; the
trainer run by :class:`JobProcess` in its own process group; progress read over
real ZMQ. Then the trained model predicts the suggested frames.

Each sleap-nn start costs about 12 s of imports on this machine, so these are
``slow`` tests; the tiny config trains 2 epochs in about 2 s.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pytest
import sleap_io as sio

from sleap_rtc_core.progress.trainer_link import TrainerLink
from sleap_rtc_core.protocol.jobspec import FrameFilter, TrackJobSpec, TrainJobSpec
from sleap_rtc_core.protocol.jobspec_check import validate_spec
from sleap_rtc_core.sample_data import tiny_training_config
from sleap_rtc_core.worker.files.mounts import MountPolicy
from sleap_rtc_core.worker.jobs.prepare import PreparedJob, prepare_job
from sleap_rtc_core.worker.jobs.process import (
    JobProcess,
    OutputLine,
    Stream,
    group_has_live_members,
)
from sleap_rtc_core.worker.jobs.sleapnn_cmd import (
    ModelPlan,
    track_argv_for_spec,
    train_argv_for_spec,
)
from tests.fixtures.data import TINY_FRAMES, TINY_SUGGESTIONS
from tests.fixtures.timing import async_wait_until, scaled

pytestmark = pytest.mark.slow

ENV = {"PYTHONUNBUFFERED": "1", "WANDB_MODE": "disabled", "NO_COLOR": "1"}


def train_spec(labels: Path, max_epochs: int) -> TrainJobSpec:
    """A spec as a client sends it: YAML text, labels and epochs as overrides."""
    spec = TrainJobSpec.from_dict(
        {
            "type": "train",
            "config_content": tiny_training_config(max_epochs=1),
            "model_types": ["single_instance"],
            "labels_path": labels.as_posix(),
            "max_epochs": max_epochs,
        }
    )
    assert validate_spec(spec) == []
    return spec


def prepared(spec: TrainJobSpec, labels: Path, tmp_path: Path) -> PreparedJob:
    """What the worker does with the spec before it runs it (the real
    :func:`prepare_job`: private config file, run folder in ``models/``)."""
    job = prepare_job(
        spec,
        MountPolicy([labels.parent.as_posix(), tmp_path.as_posix()]),
        private_parent=tmp_path,
        models_dir=tmp_path / "models",
    )
    assert isinstance(job, PreparedJob), job
    return job


class Events:
    """Progress events read from a link by an owned task."""

    def __init__(self, link: TrainerLink) -> None:
        self.items: list[dict[str, Any]] = []
        self._task = asyncio.create_task(self._read(link))

    async def _read(self, link: TrainerLink) -> None:
        async for raw in link.messages():
            self.items.append(json.loads(raw))

    def names(self) -> list[str]:
        return [e["event"] for e in self.items]

    def of(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.items if e["event"] == name]

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def run_to_end(proc: JobProcess) -> tuple[int, list[OutputLine]]:
    lines = [line async for line in proc.lines()]
    return await proc.wait(), lines


def _linked_argv(spec: TrainJobSpec, model: ModelPlan, link: TrainerLink) -> list[str]:
    """The production argv of ``model``, its progress and control on ``link``."""
    return train_argv_for_spec(
        spec,
        model,
        publish_port=link.publish_port,
        controller_port=link.controller_port,
    )


async def test_train_two_epochs_then_track(tiny_labels: Path, tmp_path: Path) -> None:
    spec = train_spec(tiny_labels, max_epochs=2)
    (model,) = prepared(spec, tiny_labels, tmp_path).models
    assert model.run_dir is not None
    run_dir = model.run_dir
    (tmp_path / "work").mkdir()

    async with TrainerLink() as link:
        events = Events(link)
        argv = _linked_argv(spec, model, link)
        try:
            async with JobProcess(argv, env=ENV, cwd=tmp_path / "work") as proc:
                code, lines = await asyncio.wait_for(run_to_end(proc), scaled(120))
            assert code == 0, "\n".join(proc.stderr_tail())
            await link.settle(quiet=0.2, timeout=scaled(5))
        finally:
            await events.stop()
        assert not group_has_live_members(proc.pgid)
        assert link.dropped == 0

    names = events.names()
    assert names[0] == "train_begin"
    assert names[-1] == "train_end"
    assert [e["epoch"] for e in events.of("epoch_begin")] == [0, 1]
    epoch_ends = events.of("epoch_end")
    assert [e["epoch"] for e in epoch_ends] == [0, 1]
    assert "train/loss" in epoch_ends[-1]["logs"]
    assert events.of("batch_end")
    assert all(e["what"] == "" for e in events.items)
    assert any(line.stream is Stream.STDOUT for line in lines)

    assert (run_dir / "best.ckpt").stat().st_size > 0
    assert (run_dir / "training_config.yaml").is_file()

    output = tmp_path / "out" / "tiny.predictions.slp"
    output.parent.mkdir()
    track = TrackJobSpec(
        data_path=tiny_labels.as_posix(),
        model_paths=(run_dir.as_posix(),),
        output_path=output.as_posix(),
        frame_filter=FrameFilter.SUGGESTED,
        # Two epochs teach little: take every peak so that there is something.
        peak_threshold=0.0,
    )
    assert validate_spec(track) == []
    argv = track_argv_for_spec(track, device="cpu")
    async with JobProcess(argv, env=ENV, cwd=tmp_path) as proc:
        code, _ = await asyncio.wait_for(run_to_end(proc), scaled(120))
    assert code == 0, "\n".join(proc.stderr_tail())

    predictions = sio.load_slp(output.as_posix())
    frames = sorted(lf.frame_idx for lf in predictions.labeled_frames)
    assert frames == list(range(TINY_FRAMES, TINY_FRAMES + TINY_SUGGESTIONS))
    for lf in predictions.labeled_frames:
        assert lf.predicted_instances
        assert not lf.user_instances


async def test_interrupt_stops_training_and_its_whole_group(
    tiny_labels: Path, tmp_path: Path
) -> None:
    spec = train_spec(tiny_labels, max_epochs=10000)
    (model,) = prepared(spec, tiny_labels, tmp_path).models
    (tmp_path / "work").mkdir()
    async with TrainerLink() as link:
        events = Events(link)
        argv = _linked_argv(spec, model, link)
        try:
            async with JobProcess(argv, env=ENV, cwd=tmp_path / "work") as proc:
                await async_wait_until(
                    lambda: bool(events.of("epoch_end")) or not proc.running,
                    timeout=scaled(120),
                    interval=0.05,
                )
                assert proc.running, "\n".join(proc.stderr_tail())
                assert proc.interrupt_group()
                code, _ = await asyncio.wait_for(run_to_end(proc), scaled(60))
                pgid = proc.pgid
        finally:
            await events.stop()
    # Lightning catches the KeyboardInterrupt, shuts down and exits non-zero.
    assert code != 0
    assert code != -signal.SIGKILL
    assert not group_has_live_members(pgid)
    assert max(e["epoch"] for e in events.of("epoch_begin")) < 100
