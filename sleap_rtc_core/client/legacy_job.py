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

import logging
import time
from dataclasses import dataclass, replace
from typing import Any

import yaml

from ..errors import JobError, SleapRTCError
from ..protocol.channel_fs import (
    FsErrorMsg,
    FsGetInfoMsg,
    FsInfoResponseMsg,
    FsListDirMsg,
    FsListResponseMsg,
)
from ..protocol.dialect import (
    Dialect,
    legacy_model_dir,
    legacy_run_name,
    newest_run,
    worker_dialect,
)
from ..protocol.jobspec import TrainJobSpec
from ..signaling.client.session_io import SignalingClient
from ..transport.channel import Channel
from .remote_job import JobCallbacks, RemoteJob

__all__ = ["DISCOVER_TIMEOUT", "LegacyJob", "is_legacy_worker"]

logger = logging.getLogger(__name__)

DISCOVER_TIMEOUT = 5.0
"""Seconds to look a named worker up (an old server may not answer)."""

_REPLY_TIMEOUT = 30.0
_MAX_PAGES = 50  # 1,000 entries: a checkpoint folder is never longer in practice


async def is_legacy_worker(signaling: SignalingClient, worker_id: str) -> bool:
    """Whether the named worker is a 0.0.7 one (by its registration metadata);
    a worker the server cannot show is taken as current."""
    try:
        peers = await signaling.discover({}, timeout=DISCOVER_TIMEOUT)
    except (SleapRTCError, TimeoutError) as exc:
        logger.debug("cannot look %s up (%s): taken as current", worker_id, exc)
        return False
    for peer in peers:
        if peer.get("peer_id") == worker_id:
            return worker_dialect(peer) is Dialect.LEGACY
    return False


@dataclass
class LegacyJob(RemoteJob):
    """A training job on the 0.0.7 worker at the end of ``channel``.

    :meth:`follow` returns ``job_id``, ``duration_seconds`` (all models),
    ``model_paths`` (the worker's folders, pipeline order) and
    ``models_stay_on_worker: True``.
    """

    working_dir: str = "."

    async def submit(self, timeout: float = 120.0) -> str:
        """Ask where the worker works, name a one-model run, then submit.

        Raises:
            JobError: an inference spec (0.0.7 workers stream predictions in a
                form this client does not read).
            JobRejected, TimeoutError: as :meth:`RemoteJob.submit`.
        """
        spec = self.spec
        if not isinstance(spec, TrainJobSpec):
            raise JobError(
                "inference on a sleap-rtc 0.0.7 worker is not supported: "
                "choose another worker, or upgrade that one",
                code="LEGACY_WORKER",
            )
        reply = await self.channel.request(
            FsGetInfoMsg(), (FsInfoResponseMsg,), _REPLY_TIMEOUT
        )
        assert isinstance(reply, FsInfoResponseMsg)
        self.working_dir = reply.working_dir or "."
        if self._models() == 1 and not spec.run_name:
            model_type = spec.model_types[0] if spec.model_types else None
            stamp = time.strftime("%Y%m%d_%H%M%S")
            self.spec = replace(spec, run_name=legacy_run_name(model_type, stamp))
        return await super().submit(timeout)

    async def follow(self, callbacks: JobCallbacks | None = None) -> dict[str, Any]:
        """Every model's ``JOB_COMPLETE``, then the folders they were written to.

        Raises:
            TrainingFailed: as :meth:`RemoteJob.follow`, for any model.
            JobError: a model's folder cannot be found on the worker.
        """
        done = []
        for _ in range(self._models()):  # no comprehension: super() needs this frame
            done.append(await super().follow(callbacks))
        seconds = sum(float(d.get("duration_seconds") or 0) for d in done)
        return {
            "job_id": self.job_id,
            "job_type": "train",
            "duration_seconds": seconds,
            "success": True,
            "model_paths": await self._model_paths(),
            "models_stay_on_worker": True,
        }

    def _models(self) -> int:
        spec = self.spec
        assert isinstance(spec, TrainJobSpec)
        return max(1, len(spec.config_contents or spec.config_paths))

    async def _model_paths(self) -> list[str]:
        spec = self.spec
        assert isinstance(spec, TrainJobSpec)
        contents = spec.config_contents
        ckpt_dir = _ckpt_dir(contents[0]) if contents else None
        if self._models() == 1:
            assert spec.run_name is not None
            return [legacy_model_dir(self.working_dir, spec.run_name, ckpt_dir)]
        base = legacy_model_dir(self.working_dir, ".", ckpt_dir)
        names = await _folder_names(self.channel, base)
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
        return paths


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
