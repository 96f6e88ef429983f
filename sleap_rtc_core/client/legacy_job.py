"""A training job on a sleap-rtc 0.0.7 worker, in that worker's dialect.

Such a worker takes the same ``JOB_SUBMIT`` but sends one ``JOB_COMPLETE`` per
model, names no model folder in it and cannot send models back. So the client
asks the worker where it works (``FS_GET_INFO``), names a one-model run itself,
and finds the folders of a several-model run (``{model_type}_{time}``, one shared
time) by listing the worker's checkpoint folder afterwards. The result has the
shape of our worker's ``JOB_COMPLETE`` (``model_paths``) and says
``models_stay_on_worker``, which the model download honours.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import yaml

from ..errors import ChannelClosed, JobError
from ..protocol.channel_fs import (
    FsErrorMsg,
    FsGetInfoMsg,
    FsInfoResponseMsg,
    FsListDirMsg,
    FsListResponseMsg,
)
from ..protocol.dialect import legacy_model_dir, legacy_run_name, newest_run
from ..protocol.jobspec import JobSpec, TrainJobSpec
from ..transport.channel import Channel
from .remote_job import JobCallbacks, RemoteJob

__all__ = ["run_legacy_job"]

logger = logging.getLogger(__name__)

_REPLY_TIMEOUT = 30.0
_MAX_PAGES = 50  # 1,000 entries: a checkpoint folder is never longer in practice


async def run_legacy_job(
    channel: Channel,
    spec: JobSpec,
    callbacks: JobCallbacks | None = None,
    on_accepted: Callable[[RemoteJob], None] | None = None,
) -> dict[str, Any]:
    """Run a training ``spec`` on the 0.0.7 worker at the end of ``channel``.

    Returns:
        ``job_id``, ``duration_seconds`` (all models), ``model_paths`` (the
        worker's folders, pipeline order) and ``models_stay_on_worker: True``.

    Raises:
        JobError: an inference spec (0.0.7 workers stream predictions in a
            form this client does not read), or the worker's folders cannot be
            found.
        JobRejected, TrainingFailed: as :meth:`RemoteJob.run`.
    """
    if not isinstance(spec, TrainJobSpec):
        raise JobError(
            "inference on a sleap-rtc 0.0.7 worker is not supported: "
            "choose another worker, or upgrade that one",
            code="LEGACY_WORKER",
        )
    reply = await channel.request(FsGetInfoMsg(), (FsInfoResponseMsg,), _REPLY_TIMEOUT)
    assert isinstance(reply, FsInfoResponseMsg)
    working_dir = reply.working_dir or "."
    contents = spec.config_contents
    ckpt_dir = _ckpt_dir(contents[0]) if contents else None
    models = max(1, len(contents or spec.config_paths))
    several = models > 1
    if not several and not spec.run_name:
        model_type = spec.model_types[0] if spec.model_types else None
        spec = replace(
            spec, run_name=legacy_run_name(model_type, time.strftime("%Y%m%d_%H%M%S"))
        )
    job = RemoteJob(channel, spec)
    await job.submit()
    if on_accepted is not None:
        on_accepted(job)
    try:
        done = [await job.follow(callbacks) for _ in range(models)]
    except asyncio.CancelledError:
        try:
            await asyncio.shield(job.cancel())
        except ChannelClosed:
            logger.info("! could not cancel job %s: channel closed", job.job_id)
        raise
    if several:
        base = legacy_model_dir(working_dir, ".", ckpt_dir)
        names = await _folder_names(channel, base)
        paths = []
        for model_type in spec.model_types:
            run = newest_run(names, model_type)
            if run is None:
                raise JobError(
                    f"the worker trained the {model_type} model but its folder "
                    f"is not in {base}",
                    code="MODEL_NOT_FOUND",
                )
            paths.append(legacy_model_dir(base, run))
    else:
        assert spec.run_name is not None
        paths = [legacy_model_dir(working_dir, spec.run_name, ckpt_dir)]
    return {
        "job_id": job.job_id,
        "job_type": "train",
        "duration_seconds": sum(float(d.get("duration_seconds") or 0) for d in done),
        "success": True,
        "model_paths": paths,
        "models_stay_on_worker": True,
    }


def _ckpt_dir(content: str) -> Any:
    try:
        return yaml.safe_load(content)["trainer_config"]["ckpt_dir"]
    except (yaml.YAMLError, KeyError, TypeError):
        return None


async def _folder_names(channel: Channel, path: str) -> list[str]:
    names: list[str] = []
    for _ in range(_MAX_PAGES):
        reply = await channel.request(
            FsListDirMsg(path, len(names)),
            (FsListResponseMsg, FsErrorMsg),
            _REPLY_TIMEOUT,
        )
        if isinstance(reply, FsErrorMsg):
            raise JobError(
                f"cannot list the worker's {path}: {reply.message}",
                code="MODEL_NOT_FOUND",
            )
        assert isinstance(reply, FsListResponseMsg)
        names += [str(e.get("name")) for e in reply.entries]
        if not reply.has_more or not reply.entries:
            break
    return names
