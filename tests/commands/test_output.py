"""What the client commands print and their exit statuses (:mod:`._output`)."""

from __future__ import annotations

import pytest

from sleap_rtc_core.commands._output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NO_WORKER,
    EXIT_REJECTED,
    fail,
    fetch_command,
    say,
)


def test_statuses_are_distinct_and_ctrl_c_is_what_shells_report() -> None:
    assert len({EXIT_FAILED, EXIT_NO_WORKER, EXIT_REJECTED, EXIT_INTERRUPTED}) == 4
    assert EXIT_INTERRUPTED == 128 + 2  # SIGINT


def test_lines_go_to_stdout_and_failures_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    say("model here: /tmp/m")
    assert fail("failed: boom", EXIT_FAILED) == EXIT_FAILED
    out, err = capsys.readouterr()
    assert out == "model here: /tmp/m\n"
    assert err == "sleap-rtc: failed: boom\n"


def test_the_fetch_line_parses_back_to_the_same_job() -> None:
    import shlex

    from sleap_rtc_core.cli import build_parser

    line = fetch_command("job_0123abcd", "lab-gpu", "/home/me/my models")
    assert (
        line
        == "sleap-rtc fetch job_0123abcd --worker lab-gpu --to '/home/me/my models'"
    )
    args = build_parser().parse_args(shlex.split(line)[1:])
    assert (args.job_id, args.worker, args.to) == (
        "job_0123abcd",
        "lab-gpu",
        "/home/me/my models",
    )
