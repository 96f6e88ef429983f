"""The golden transcript of ``sleap-rtc train`` on a two-worker room.

Two real workers (one sees the data, one does not), ``train`` with its stdin
closed, the output normalised by :func:`normalise` and compared with
``golden/train_two_workers.txt``. Progress lines are dropped (their look is
free to change: bars on a terminal, plain lines otherwise), and ids, numbers,
times and paths are replaced by placeholders, so the golden pins the *shape*
of the conversation: what is asked, which worker is chosen and why, where the
model is.

To regenerate after an intended change of the output::

    SLEAP_RTC_UPDATE_GOLDEN=1 python -m pytest tests/cli/test_golden.py

then review the diff of the golden file like any other change.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from sleap_rtc_core.sample_data import tiny_training_config, write_tiny_labels
from tests.fixtures.timing import scaled, wait_until

from .conftest import Lab

GOLDEN = Path(__file__).parent / "golden" / "train_two_workers.txt"
UPDATE_GOLDEN = os.environ.get("SLEAP_RTC_UPDATE_GOLDEN") == "1"
"""Rewrite the golden file instead of comparing (read at import: the tests'
environment drops ``SLEAP_RTC_*`` variables)."""

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_PROGRESS = re.compile(
    # progress and timed waits ("… so far": shown only when a step lasts > 1 s)
    r"^\s*(epoch\b|upload\b|download\b|copying\b|inference\b|train\b.*\d+%"
    r"|[\u2500-\u259f\s]+\d|.*\bso far\b)",
    re.IGNORECASE,
)
_REPLACEMENTS = (
    (re.compile(r"\bjob[-_][0-9a-zA-Z]+"), "<JOB>"),
    (re.compile(r"\bcli-[0-9a-f]{8}\b"), "<CLIENT>"),
    (re.compile(r"\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?Z?"), "<TIME>"),
    (re.compile(r"\b\d\d:\d\d(:\d\d)?\b"), "<TIME>"),
    (re.compile(r"\d+(\.\d+)?"), "<N>"),
)


def normalise(text: str, root: Path) -> list[str]:
    """The shape of a transcript: one line per step, comparable across runs.

    * ANSI escapes go; a line rewritten in place (``\\r``) keeps its last form.
    * Progress lines go (``epoch …``, ``upload …``, ``download …``, bars):
      their format is not part of the shape.
    * Paths below the test's folder become ``<LAB>/…``; job ids ``<JOB>``,
      client peer ids ``<CLIENT>``, clock times ``<TIME>``, every other number
      ``<N>``.
    * Blank lines go and repeated lines collapse into one; a run of list
      items (``  - …``) is sorted (workers answer in any order).
    """
    lines: list[str] = []
    for raw in _ANSI.sub("", text).splitlines():
        line = raw.rsplit("\r", 1)[-1].rstrip()
        if not line.strip() or _PROGRESS.match(line):
            continue
        line = line.replace(str(root), "<LAB>")
        for pattern, placeholder in _REPLACEMENTS:
            line = pattern.sub(placeholder, line)
        if not lines or lines[-1] != line:
            lines.append(line)
    return _sort_items(lines)


def _sort_items(lines: list[str]) -> list[str]:
    out: list[str] = []
    items: list[str] = []
    for line in [*lines, ""]:
        if line.startswith("  - "):
            items.append(line)
            continue
        out.extend(sorted(items))
        items.clear()
        out.append(line)
    return out[:-1]


def test_normalise_drops_progress_and_replaces_what_varies(tmp_path: Path) -> None:
    text = (
        "job job-1a2b3c4d accepted\n"
        "  - b: CPU\n"
        "  - a: CPU\n"
        "epoch 1/2 loss 0.53\r\x1b[2Kepoch 2/2 loss 0.41\n"
        "upload labels.pkg.slp 45% 1.2 MB/s\n"
        "\n"
        f"model here: {tmp_path}/models/run_12\n"
        "duration: 3.4 s\n"
        "duration: 5.0 s\n"
    )
    assert normalise(text, tmp_path) == [
        "job <JOB> accepted",
        "  - a: CPU",
        "  - b: CPU",
        "model here: <LAB>/models/run_<N>",
        "duration: <N> s",
    ]


@pytest.mark.slow
def test_train_on_a_two_worker_room_has_the_expected_shape(lab: Lab) -> None:
    shared, other = lab.root / "shared", lab.root / "elsewhere"
    chosen = lab.worker("gpu-a", shared)
    lab.worker("gpu-b", other)
    labels = write_tiny_labels(shared / "proj" / "labels.pkg.slp")
    config = lab.root / "cfg.yaml"
    config.write_text(tiny_training_config(max_epochs=2))
    result = lab.run("train", str(labels), "--config", str(config), *lab.flags())
    transcript = result.stdout + result.stderr
    assert result.returncode == 0, transcript
    got = [
        "--- stdout",
        *normalise(result.stdout, lab.root),
        "--- stderr",
        *normalise(result.stderr, lab.root),
        f"--- exit {result.returncode}",
    ]
    if UPDATE_GOLDEN:
        GOLDEN.write_text("\n".join(got) + "\n", encoding="utf-8")
    expected = GOLDEN.read_text(encoding="utf-8").splitlines()
    assert got == expected, "\n".join(got)
    # One job id everywhere: the one train says is the one the worker ran.
    (job_id,) = set(re.findall(r"\bjob[-_][0-9a-zA-Z]+", transcript))
    wait_until(lambda: job_id in chosen.output, timeout=scaled(10))
    lab.assert_clean(transcript)
