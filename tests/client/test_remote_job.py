"""RemoteJob over a real authenticated channel; the worker's end is played by
the test (it answers exactly what a worker would), so each frame is known."""

from __future__ import annotations

import asyncio
from typing import Any

from sleap_rtc_core.client.remote_job import JobCallbacks, RemoteJob
from sleap_rtc_core.protocol.channel_messages import (
    JobAcceptedMsg,
    JobCompleteMsg,
    JobSubmitMsg,
    ProgressReportMsg,
)
from sleap_rtc_core.protocol.jobspec import TrainJobSpec
from sleap_rtc_core.transport.channel import Channel
from tests.fixtures.timing import scaled
from tests.fixtures.transport import ChannelPair

# As a trainer may publish it: compact, keys in its own order, a float that
# json.dumps would write differently.
RAW = '{"logs":{"train/loss":5.0e-01},"event":"epoch_end","epoch":0}'


async def play_worker(channel: Channel, job_id: str = "job-1") -> None:
    """Accept the first JOB_SUBMIT, report one progress text, complete."""
    while True:
        item = await channel.recv(timeout=scaled(10))
        if isinstance(item, JobSubmitMsg):
            break
    await channel.send(JobAcceptedMsg(job_id))
    await channel.send(ProgressReportMsg(RAW))
    await channel.send(
        JobCompleteMsg(job_id=job_id, job_type="train", success=True, extra={})
    )


async def test_progress_texts_arrive_exactly_as_the_trainer_sent_them(
    channel_pair: ChannelPair,
) -> None:
    worker = asyncio.ensure_future(play_worker(channel_pair.worker))
    texts: list[str] = []
    events: list[Any] = []
    job = RemoteJob(channel_pair.client, TrainJobSpec(labels_path="/d/l.slp"))
    result = await asyncio.wait_for(
        job.run(JobCallbacks(on_progress=events.append, on_progress_text=texts.append)),
        scaled(20),
    )
    await worker
    assert texts == [RAW]  # byte for byte
    assert events == [{"logs": {"train/loss": 0.5}, "event": "epoch_end", "epoch": 0}]
    assert result["job_id"] == "job-1"
