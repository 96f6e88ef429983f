"""One accepted job from start to its last frame: ``sleap-nn`` runs and messages.

:class:`JobRun` owns a :class:`~.prepare.PreparedJob` and runs it as a task
of :class:`~.service.JobService`:

* **Train** (``TrainJobSpec``): each model of the pipeline in order, every one
  with its own :class:`~..progress.trainer_link.TrainerLink` (ephemeral ports)
  and :class:`~.process.JobProcess` (own process group, cwd = the job's private
  folder). Before each model of a pipeline: ``JOB_LOG::Training model i/N: …``
  and ``MODEL_TYPE::{type}``. Every ZMQ progress event goes out unchanged as
  ``PROGRESS_REPORT::{raw}``; each ``epoch_end`` also as ``JOB_PROGRESS``;
  output lines as ``JOB_LOG::{line}`` (``[stderr] …`` and ``CR::…`` marked).
  With ``run_inference`` the suggested frames are then predicted
  (``INFERENCE_BEGIN``, ``INFERENCE_PROGRESS`` / ``INFERENCE_LOG``,
  ``INFERENCE_COMPLETE`` or ``INFERENCE_FAILED``, or ``INFERENCE_SKIPPED``).
* **Track** (``TrackJobSpec``): ``INFERENCE_BEGIN``, sleap-nn's JSON progress
  lines as ``INFERENCE_PROGRESS``, other lines as ``JOB_LOG``, then
  ``INFERENCE_COMPLETE::{"predictions_path"}`` or ``INFERENCE_FAILED``.

Just before each sleap-nn process starts, the job's paths are checked again
(:meth:`~.prepare.PreparedJob.recheck`); a path that changed since the job was
accepted fails it with ``JOB_FAILED`` (``code`` ``NOT_ALLOWED``, the field
errors in ``errors``) and sleap-nn does not run.

Every job ends with exactly one ``JOB_COMPLETE::{json}`` or ``JOB_FAILED::{json}``
(see :meth:`JobRun.run`), sent after the process group is gone and the private
files are removed.

Stop and cancel:

* :meth:`JobRun.stop` (``CONTROL_COMMAND::{"command":"stop"}``) asks the model
  now training to stop through its controller socket: Lightning ends the epoch,
  the best checkpoint is kept, and later models of a pipeline still train (as
  SLEAP's "Stop Early" does). If the trainer has not ended ``stop_timeout`` s
  later it gets SIGINT (checkpoints are still kept), then a cancel.
  ``whole_job=True`` (``JOB_STOP``) also skips the later models and inference.
* :meth:`JobRun.cancel` (``JOB_CANCEL``): SIGTERM to the group, SIGKILL after
  ``stop_grace`` s; the job fails with ``Job cancelled by user``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import Callable
from typing import Any

from ...errors import LocalProtocolError, RemoteProtocolError
from ...progress.trainer_link import TrainerLink
from ...protocol.channel import ChannelMessage, encode_text
from ...protocol.channel_messages import (
    InferenceBeginMsg,
    InferenceCompleteMsg,
    InferenceLogMsg,
    InferenceProgressMsg,
    InferenceSkippedMsg,
    JobCompleteMsg,
    JobFailedMsg,
    JobLogMsg,
    JobProgressMsg,
    JobStateMsg,
    ModelTypeMsg,
    ProgressReportMsg,
)
from ...protocol.jobspec import TrackJobSpec, TrainJobSpec
from ...protocol.jobspec_check import SpecErrorCode
from ...protocol.json_text import loads_object
from ...protocol.states import JOB_TRANSITIONS, JobEvent, JobState, StateMachine
from ..hardware import JobHardware
from ..speed import SpeedBook
from .control import ProcessControl, line_text
from .inference import run_inference
from .outbox import JobOutbox, Sink
from .prepare import PreparedJob
from .process import OutputLine
from .results import (
    STDERR_TAIL_LINES,
    JobInfo,
    epoch_progress,
    failure_code,
    failure_message,
    final_losses,
)
from .sleapnn_cmd import (
    ModelPlan,
    expected_run_dir,
    track_argv,
    track_argv_for_spec,
    train_argv_for_spec,
)

__all__ = ["JobInfo", "JobRun", "StateCallback"]

logger = logging.getLogger(__name__)


class _JobLog(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every record with the job id."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        job_id = (self.extra or {}).get("job_id", "?")
        return f"[{job_id}] {msg}", kwargs


StateCallback = Callable[[str, JobState], None]
"""``on_state_change(job_id, state)``; called on every change of a job's state."""

_STOP = '{"command":"stop"}'


class JobRun:
    """Runs one prepared job and streams its frames (see the module docstring).

    Args:
        job_id: The worker's id for the job.
        client_job_id: The client's id from ``JOB_SUBMIT``.
        owner: The peer that submitted it (only it may attach or control).
        prepared: The validated job and its private files (removed at the end).
        python: Interpreter that runs sleap-nn.
        env: Extra environment for sleap-nn.
        stop_grace: SIGTERM-to-SIGKILL grace of a cancel.
        stop_timeout: How long a graceful stop may take before SIGINT.
        max_buffered: Frames held while no channel is attached.
        on_state: Called with ``(job_id, state)`` on every state change.
        speed: Told what each training and inference took (estimates).
    """

    def __init__(
        self,
        job_id: str,
        client_job_id: str,
        owner: str,
        prepared: PreparedJob,
        *,
        python: str | None,
        env: dict[str, str],
        stop_grace: float,
        stop_timeout: float,
        max_buffered: int,
        on_state: StateCallback,
        hardware: JobHardware | None = None,
        secret: str | None = None,
        speed: SpeedBook | None = None,
    ) -> None:
        self.job_id = job_id
        self._speed = speed
        self._marks: dict[str, float] = {}  # train_begin / train_end times
        self._epochs_seen = 0
        self._secret = secret
        self.hardware = hardware or JobHardware()
        self.client_job_id = client_job_id
        self.owner = owner
        self.prepared = prepared
        self.spec = prepared.spec
        self.job_type = "track" if isinstance(self.spec, TrackJobSpec) else "train"
        self._python = python
        self._on_state = on_state
        self._log = _JobLog(logger, {"job_id": job_id})
        self._machine = StateMachine(
            JOB_TRANSITIONS, JobState.ASSIGNED, logger=self._log
        )
        self.outbox = JobOutbox(job_id, max_buffered)
        self.model_index = 0
        self.model_count = max(1, len(prepared.models))
        self.model_type: str | None = (
            prepared.models[0].model_type if prepared.models else None
        )
        self.last_progress: dict[str, Any] | None = None
        self.result: dict[str, Any] | None = None
        self._final_text: str | None = None
        self._link: TrainerLink | None = None
        self._ctl = ProcessControl(
            cwd=prepared.private_dir,
            env={**env, **self.hardware.env()},
            stop_grace=stop_grace,
            stop_timeout=stop_timeout,
            stderr_lines=STDERR_TAIL_LINES,
            log=self._log,
        )
        self._stop_all = False
        self._stop_model: int | None = None
        self._stopped: set[int] = set()
        self._losses: dict[str, float] = {}

    # -------------------------------------------------------------- state

    @property
    def state(self) -> JobState:
        """The job's state now."""
        return self._machine.state

    @property
    def finished(self) -> bool:
        """Whether the job reached a final state."""
        return self._machine.is_terminal

    def _event(self, event: JobEvent) -> None:
        if not self._machine.can(event):
            return
        before = self._machine.state
        after = self._machine.handle(event)
        if after is not before:
            try:
                self._on_state(self.job_id, after)
            except Exception:
                self._log.exception("! on_state_change failed")

    def holds(self, secret: object) -> bool:
        """Whether ``secret`` is this job's capability (constant-time)."""
        return (
            self._secret is not None
            and isinstance(secret, str)
            and hmac.compare_digest(
                self._secret.encode(), secret.encode("utf-8", "surrogatepass")
            )
        )

    def info(self) -> JobInfo:
        """A snapshot of this job."""
        return JobInfo(
            job_id=self.job_id,
            client_job_id=self.client_job_id,
            owner=self.owner,
            job_type=self.job_type,
            state=self.state,
            model_index=self.model_index,
            model_count=self.model_count,
            model_type=self.model_type,
            attached=self.outbox.attached,
            dropped=self.outbox.total_dropped,
            result=self.result,
            pid=self._ctl.pid,
        )

    def _emit(self, msg: ChannelMessage) -> None:
        try:
            self.outbox.emit(encode_text(msg))
        except LocalProtocolError as exc:  # e.g. a line that cannot be framed
            self._log.warning("! %s: cannot send %s", exc, type(msg).__name__)

    # ------------------------------------------------------------- attach

    def attach(self, sink: Sink) -> None:
        """Attach a channel: ``JOB_STATE`` (with the progress it missed), the
        other frames held for it, then the live stream; a finished job's final
        frame comes last in any case."""
        progress, dropped = self.outbox.take_held_progress()
        state = JobStateMsg(
            job_id=self.job_id,
            state=self.state.value,
            job_type=self.job_type,
            model_index=self.model_index,
            model_count=self.model_count,
            model_type=self.model_type,
            last_progress=self.last_progress,
            progress=progress,
            dropped=dropped,
            result=self.result,
        )
        first = [encode_text(state)]
        final = self._final_text
        if final is not None and final not in self.outbox.held:
            first.append(final)  # delivered before: a finished job ends with it
        self.outbox.attach(sink, first)

    def detach(self, sink: Sink) -> bool:
        """Detach a channel (the job goes on); whether it was attached."""
        return self.outbox.detach(sink)

    # ------------------------------------------------------------ control

    def stop(self, raw: str = _STOP, *, whole_job: bool = False) -> None:
        """Stop gracefully, keeping the model (see the module docstring).

        Args:
            raw: The control text to forward (checked by the trainer link).
            whole_job: Also skip the later models and inference.
        """
        if self.finished:
            return
        self._stop_all = self._stop_all or whole_job
        self._event(JobEvent.STOP)
        if self.job_type == "track":
            self._ctl.interrupt()
            return
        self._stop_model = self.model_index
        self._stopped.add(self.model_index)
        if self._link is not None:
            with contextlib.suppress(RemoteProtocolError, LocalProtocolError):
                self._link.send_command(raw)
        self._ctl.arm_stop()

    def send_command(self, raw: str) -> bool:
        """Forward another control string to the trainer; whether it could."""
        if self._link is None or self.finished:
            return False
        try:
            self._link.send_command(raw)
        except (RemoteProtocolError, LocalProtocolError) as exc:
            self._log.info("! control command refused: %s", exc)
            return False
        return True

    def cancel(self) -> None:
        """Cancel: SIGTERM to the group, SIGKILL after the grace period."""
        if self.finished:
            return
        self._ctl.cancel()

    # ---------------------------------------------------------------- run

    async def run(self) -> None:
        """Run the job to its end; never raises except on task cancellation."""
        started = time.monotonic()
        self._event(JobEvent.START)
        self._emit(JobLogMsg(self.hardware.describe()))
        result: dict[str, Any]
        ok = False
        try:
            if isinstance(self.spec, TrainJobSpec):
                ok, result = await self._run_train(self.spec)
            else:
                ok, result = await self._run_track(self.spec)
        except asyncio.CancelledError:
            self._ctl.cancel()
            ok, result = False, {"message": "Job cancelled: the worker shut down"}
            await self._finish(ok, result, started)
            raise
        except Exception as exc:
            self._log.exception("! job crashed")
            ok, result = False, {"message": f"the worker failed to run the job: {exc}"}
        await self._finish(ok, result, started)

    async def _finish(self, ok: bool, result: dict[str, Any], started: float) -> None:
        outcome = (
            "succeeded" if ok else "cancelled" if self._ctl.cancelled else "failed"
        )
        await asyncio.to_thread(self.prepared.cleanup, outcome)
        duration = round(time.monotonic() - started, 3)
        msg: ChannelMessage
        if ok:
            result.setdefault("stopped_early", bool(self._stopped))
            msg = JobCompleteMsg(
                job_id=self.job_id,
                job_type=self.job_type,
                success=True,
                duration_seconds=duration,
                stopped_early=bool(result.pop("stopped_early")),
                output_path=result.pop("output_path", None),
                extra={"client_job_id": self.client_job_id, **result},
            )
        else:
            msg = JobFailedMsg(
                message=str(result.pop("message", "the job failed")),
                job_id=self.job_id,
                job_type=self.job_type,
                exit_code=result.pop("exit_code", None),
                duration_seconds=duration,
                extra={"client_job_id": self.client_job_id, **result},
            )
        self.result = msg.to_dict()
        self._final_text = encode_text(msg)
        if ok:
            self._event(JobEvent.SUCCEED)
        elif self._ctl.cancelled:
            self._event(JobEvent.CANCEL)
        else:
            self._event(JobEvent.FAIL)
        self.outbox.emit(self._final_text)
        self.outbox.finish()
        self._log.debug("> %s", self._final_text[:200])

    # -------------------------------------------------------------- train

    async def _run_train(self, spec: TrainJobSpec) -> tuple[bool, dict[str, Any]]:
        models = self.prepared.models
        done: list[dict[str, Any]] = []
        for plan in models:
            if self._ctl.cancelled or self._stop_all:
                break
            self.model_index, self.model_type = plan.index, plan.model_type
            if len(models) > 1:
                label = plan.model_type or plan.config_file.stem
                self._emit(
                    JobLogMsg(f"Training model {plan.index + 1}/{len(models)}: {label}")
                )
            if plan.model_type:
                self._emit(ModelTypeMsg(plan.model_type))
            failure = await self._recheck()
            if failure is not None:
                return False, failure
            model, failure = await self._train_one(spec, plan)
            if failure is not None:
                return False, failure
            done.append(model)
        if self._ctl.cancelled:
            return False, {"message": "Job cancelled by user", "reason": "cancelled"}
        result: dict[str, Any] = {
            "output_path": done[-1]["run_dir"],
            "model_paths": [m["run_dir"] for m in done],
            "models": done,
            "final_losses": done[-1]["final_losses"],
            "stopped_early": bool(self._stopped),
        }
        if self.prepared.inference_labels is not None:
            if self._stop_all:
                self._emit(InferenceSkippedMsg("stopped"))
            else:
                result.update(await self._post_inference(result["model_paths"]))
        return True, result

    async def _train_one(
        self, spec: TrainJobSpec, plan: ModelPlan
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        started = time.monotonic()
        run_dir = await asyncio.to_thread(
            expected_run_dir, plan.run_name, ckpt_dir=plan.ckpt_dir
        )
        self._losses = {}
        self._marks, self._epochs_seen = {}, 0
        async with TrainerLink() as link:
            argv = train_argv_for_spec(
                spec,
                plan,
                publish_port=link.publish_port,
                controller_port=link.controller_port,
                extra_overrides=self.hardware.train_overrides(),
                python=self._python,
            )
            self._link = link
            if self._stop_model == plan.index:  # asked before the link existed
                link.send_command(_STOP)
            pump = asyncio.create_task(self._pump_progress(link))
            try:
                ended = await self._ctl.run(argv, self._train_line, stoppable=True)
                await link.settle(quiet=0.1, timeout=2.0)
            finally:
                self._link = None
                await link.close()
                await pump
        self._learn_training(plan, started)
        best = run_dir / "best.ckpt"
        has_model = await asyncio.to_thread(best.is_file)
        stopped = plan.index in self._stopped
        model = {
            "index": plan.index,
            "model_type": plan.model_type,
            "run_dir": run_dir.as_posix(),
            "best_ckpt": best.as_posix() if has_model else None,
            "final_losses": dict(self._losses),
            "stopped_early": stopped,
            "duration_seconds": round(time.monotonic() - started, 3),
        }
        if self._ctl.cancelled:
            return model, {"message": "Job cancelled by user", "reason": "cancelled"}
        if (ended.code == 0 or stopped) and has_model:
            return model, None
        if ended.code == 0:
            message = f"training ended without a model: no {best.name} in {run_dir}"
        elif stopped and not has_model:
            message = "training was stopped before the first checkpoint was saved"
        else:
            message = failure_message("training", ended.code, ended.tail)
        failure = {
            "message": message,
            "exit_code": ended.code,
            "stderr_tail": ended.tail,
            "model_index": plan.index,
            "model_type": plan.model_type,
            "reason": "failed",
        }
        code = failure_code(ended.code, ended.tail)
        if code is not None:
            failure["code"] = code
        return model, failure

    async def _recheck(self) -> dict[str, Any] | None:
        """The failure to report if a path changed since the job was
        accepted (see :meth:`~.prepare.PreparedJob.recheck`), else ``None``."""
        errors = await asyncio.to_thread(self.prepared.recheck)
        if not errors:
            return None
        first = errors[0]
        self._log.warning("! not started: %s %s", first.path, first.message)
        return {
            "message": f"sleap-nn was not started: {first.path} {first.message}",
            "reason": "failed",
            "code": SpecErrorCode.NOT_ALLOWED.value,
            "errors": [e.to_dict() for e in errors],
        }

    def _learn_training(self, plan: ModelPlan, started: float) -> None:
        """Tell the speed book what this model's training took."""
        begin, end = self._marks.get("train_begin"), self._marks.get("train_end")
        if self._speed is None or begin is None or self._ctl.cancelled:
            return
        # The overhead: up to the first epoch, and after the last (saving).
        after = 0.0 if end is None else time.monotonic() - end
        self._speed.record_training(
            epochs=self._epochs_seen,
            frames=plan.labeled_frames,
            startup_seconds=begin - started + after,
            epochs_seconds=None if end is None else end - begin,
        )

    async def _pump_progress(self, link: TrainerLink) -> None:
        async for raw in link.messages():
            self._emit(ProgressReportMsg(raw))
            try:
                event = loads_object(raw)
            except RemoteProtocolError:
                continue
            kind = event.get("event")
            if kind in ("train_begin", "train_end"):
                self._marks[str(kind)] = time.monotonic()
            elif kind == "epoch_end":
                self._epochs_seen += 1
            progress = epoch_progress(event)
            if progress is not None:
                self.last_progress = progress
                self._losses = final_losses(event) or self._losses
                try:
                    self._emit(JobProgressMsg(**progress, job_id=self.job_id))
                except (TypeError, LocalProtocolError):
                    pass

    def _train_line(self, line: OutputLine) -> None:
        self._emit(JobLogMsg(line_text(line)))

    # -------------------------------------------------------------- track

    async def _run_track(self, spec: TrackJobSpec) -> tuple[bool, dict[str, Any]]:
        failure = await self._recheck()
        if failure is not None:
            return False, failure
        output = self.prepared.predictions_path
        data = self.prepared.data_path or spec.data_path
        argv = track_argv_for_spec(
            spec,
            data_path=data,
            output_path=output,
            json_progress=True,
            device=self.hardware.track_device(),
            python=self._python,
        )
        ok, info = await run_inference(
            self._ctl, self._measured(), argv, output, log=JobLogMsg
        )
        if ok:
            return True, {"output_path": info["predictions_path"], **info}
        if self._ctl.cancelled:
            return False, {"message": "Job cancelled by user", "reason": "cancelled"}
        return False, info

    def _measured(self) -> Callable[[ChannelMessage], None]:
        """``_emit``, timing one inference for the speed book on the way:
        from ``INFERENCE_BEGIN`` to its first frames (startup), then the
        frames counted until ``INFERENCE_COMPLETE``."""
        marks: dict[str, float] = {}

        def emit(msg: ChannelMessage) -> None:
            self._emit(msg)
            now = time.monotonic()
            if isinstance(msg, InferenceBeginMsg):
                marks["begin"] = now
            elif isinstance(msg, InferenceProgressMsg):
                data = msg.data
                done = data.get("n_processed") if isinstance(data, dict) else None
                if isinstance(done, int) and not isinstance(done, bool):
                    marks.setdefault("first", now)
                    marks["frames"], marks["last"] = float(done), now
            elif isinstance(msg, InferenceCompleteMsg) and self._speed is not None:
                begin, first = marks.get("begin"), marks.get("first")
                if begin is not None and first is not None:
                    self._speed.record_inference(
                        frames=int(marks["frames"]),
                        startup_seconds=first - begin,
                        frames_seconds=marks["last"] - first,
                    )

        return emit

    async def _post_inference(self, model_paths: list[str]) -> dict[str, Any]:
        labels = self.prepared.inference_labels
        output = self.prepared.predictions_path
        if labels is None or output is None:
            self._emit(InferenceSkippedMsg("no_labels_path"))
            return {}
        failure = await self._recheck()
        if failure is not None:
            return {"inference_error": failure["message"]}
        argv = track_argv(
            labels,
            model_paths,
            output_path=output,
            frame_filter="suggested",
            json_progress=True,
            device=self.hardware.track_device(),
            python=self._python,
        )
        ok, info = await run_inference(
            self._ctl, self._measured(), argv, output, log=InferenceLogMsg
        )
        if ok:
            return {"predictions_path": info["predictions_path"]}
        return {"inference_error": info.get("message")}
