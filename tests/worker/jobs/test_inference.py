"""Tests of :mod:`sleap_rtc_core.worker.jobs.inference` with real child
processes standing in for ``sleap-nn track``: JSON lines become progress, the
rest log lines, and the predictions file decides success."""

from __future__ import annotations

import sys
from pathlib import Path

from sleap_rtc_core.protocol.channel import ChannelMessage
from sleap_rtc_core.protocol.channel_messages import (
    InferenceBeginMsg,
    InferenceCompleteMsg,
    InferenceFailedMsg,
    InferenceLogMsg,
    InferenceProgressMsg,
    JobLogMsg,
)
from sleap_rtc_core.worker.jobs.control import ProcessControl
from sleap_rtc_core.worker.jobs.inference import run_inference
from tests.fixtures.timing import scaled


def _control(tmp_path: Path) -> ProcessControl:
    return ProcessControl(
        cwd=tmp_path, env={}, stop_grace=scaled(2), stop_timeout=1, stderr_lines=5
    )


def _tracker(output: Path, *, write: bool, code: int = 0) -> list[str]:
    program = (
        "import sys\n"
        'print(\'{"n_processed": 1, "n_total": 2}\', flush=True)\n'
        "print('{not json', flush=True)\n"
        "print('loading model', flush=True)\n"
        + (f"open({str(output)!r}, 'w').write('slp')\n" if write else "")
        + ("print('killed by OOM', file=sys.stderr)\n" if code else "")
        + f"sys.exit({code})\n"
    )
    return [sys.executable, "-c", program]


async def test_progress_lines_and_the_predictions_path_are_reported(
    tmp_path: Path,
) -> None:
    sent: list[ChannelMessage] = []
    output = tmp_path / "predictions.slp"
    ok, result = await run_inference(
        _control(tmp_path),
        sent.append,
        _tracker(output, write=True),
        output,
        log=InferenceLogMsg,
    )
    assert ok
    assert result == {"predictions_path": output.as_posix()}
    assert isinstance(sent[0], InferenceBeginMsg)
    progress = [m.raw for m in sent if isinstance(m, InferenceProgressMsg)]
    assert progress == ['{"n_processed": 1, "n_total": 2}']
    logs = [m.line for m in sent if isinstance(m, InferenceLogMsg)]
    assert logs == ["{not json", "loading model"]
    assert isinstance(sent[-1], InferenceCompleteMsg)
    assert sent[-1].predictions_path == output.as_posix()


async def test_a_clean_exit_without_predictions_fails(tmp_path: Path) -> None:
    sent: list[ChannelMessage] = []
    output = tmp_path / "predictions.slp"
    ok, result = await run_inference(
        _control(tmp_path),
        sent.append,
        _tracker(output, write=False),
        output,
        log=JobLogMsg,
    )
    assert not ok
    assert "no predictions" in result["message"]
    assert any(isinstance(m, JobLogMsg) for m in sent)
    assert isinstance(sent[-1], InferenceFailedMsg)


async def test_a_failing_tracker_reports_its_exit_and_stderr(tmp_path: Path) -> None:
    sent: list[ChannelMessage] = []
    output = tmp_path / "predictions.slp"
    ok, result = await run_inference(
        _control(tmp_path),
        sent.append,
        _tracker(output, write=True, code=3),
        output,
        log=InferenceLogMsg,
    )
    assert not ok
    assert result["exit_code"] == 3
    assert result["stderr_tail"] == ["killed by OOM"]
    assert result["reason"] == "failed"
    assert isinstance(sent[-1], InferenceFailedMsg)


async def test_a_cancelled_tracker_says_so(tmp_path: Path) -> None:
    control = _control(tmp_path)
    control.cancel()
    sent: list[ChannelMessage] = []
    ok, result = await run_inference(
        control,
        sent.append,
        _tracker(tmp_path / "p.slp", write=True),
        None,
        log=InferenceLogMsg,
    )
    assert not ok
    assert result["message"] == "inference cancelled by user"
    assert "code" not in result
