"""One ``sleap-nn track`` run of a job, reported with the ``INFERENCE_*`` messages.

Used for track jobs and for the inference after training. sleap-nn runs with
``--gui``, which prints one JSON object per progress update on stdout
(``{"n_processed","n_total","rate","eta"}``); those lines go out unchanged as
``INFERENCE_PROGRESS::{json}``, every other line as a log message of the
caller's choosing (``JOB_LOG`` for track jobs, ``INFERENCE_LOG`` after
training). The run starts with ``INFERENCE_BEGIN::{}`` and ends with
``INFERENCE_COMPLETE::{"predictions_path"}`` or ``INFERENCE_FAILED::{"error"}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...errors import RemoteProtocolError
from ...protocol.channel import ChannelMessage
from ...protocol.channel_messages import (
    InferenceBeginMsg,
    InferenceCompleteMsg,
    InferenceFailedMsg,
    InferenceLogMsg,
    InferenceProgressMsg,
    JobLogMsg,
)
from ...protocol.json_text import loads_object
from .control import ProcessControl, line_text
from .process import OutputLine, Stream
from .results import failure_code, failure_message

__all__ = ["run_inference"]


async def run_inference(
    ctl: ProcessControl,
    emit: Callable[[ChannelMessage], None],
    argv: list[str],
    output: Path | None,
    *,
    log: type[JobLogMsg] | type[InferenceLogMsg],
) -> tuple[bool, dict[str, Any]]:
    """Run ``sleap-nn track`` and report it.

    Args:
        ctl: Runs the process (cancel and group handling).
        emit: Sends one message of the job.
        argv: The ``track`` command, with ``--gui``.
        output: The predictions file it must write.
        log: The message type for output lines that are not progress.

    Returns:
        ``(True, {"predictions_path"})``, or ``(False, {"message",
        "exit_code", "stderr_tail", "reason"})``.
    """
    emit(InferenceBeginMsg())

    def on_line(line: OutputLine) -> None:
        text = line.text
        if line.stream is Stream.STDOUT and text.startswith("{"):
            try:
                loads_object(text)
            except RemoteProtocolError:
                pass
            else:
                emit(InferenceProgressMsg(text))
                return
        emit(log(line_text(line)))

    ended = await ctl.run(argv, on_line)
    exists = output is not None and await asyncio.to_thread(output.is_file)
    if ended.code == 0 and exists and output is not None:
        path = output.as_posix()
        emit(InferenceCompleteMsg(predictions_path=path))
        return True, {"predictions_path": path}
    if ctl.cancelled:
        message = "inference cancelled by user"
    elif ended.code == 0:
        message = "inference wrote no predictions (no frames to predict?)"
    else:
        message = failure_message("inference", ended.code, ended.tail)
    emit(InferenceFailedMsg(message))
    failure: dict[str, Any] = {
        "message": message,
        "exit_code": ended.code,
        "stderr_tail": ended.tail,
        "reason": "failed",
    }
    code = None if ctl.cancelled else failure_code(ended.code, ended.tail)
    if code is not None:
        failure["code"] = code
    return False, failure
