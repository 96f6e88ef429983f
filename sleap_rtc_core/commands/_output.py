"""How the client commands (check, train, track, fetch) speak and end: one
line at a time on stdout, errors on stderr, and the exit statuses the README
lists.

``--quiet`` (:func:`set_quiet`) keeps only what a script reads: errors
(:func:`fail`) and the result lines (:func:`say_result`, e.g. the model's path);
the steps told with :func:`say` and the progress display stay silent."""

from __future__ import annotations

import argparse
import sys

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_NO_WORKER",
    "EXIT_REJECTED",
    "add_quiet_arg",
    "fail",
    "fetch_command",
    "is_quiet",
    "say_result",
    "say",
    "set_quiet",
]

EXIT_FAILED, EXIT_NO_WORKER, EXIT_REJECTED = 1, 2, 3
EXIT_INTERRUPTED = 130
"""The user cancelled with Ctrl-C (128 + SIGINT, as shells report it)."""


_quiet = False


def set_quiet(quiet: bool) -> None:
    """``--quiet``: from now on :func:`say` prints nothing (one command per
    process, so a module flag is the command's setting)."""
    global _quiet
    _quiet = quiet


def add_quiet_arg(parser: argparse.ArgumentParser, what: str) -> None:
    """``-q``/``--quiet``, printing only ``what``."""
    parser.add_argument("-q", "--quiet", action="store_true", help=f"quiet: {what}")


def is_quiet() -> bool:
    """Whether ``--quiet`` was given."""
    return _quiet


def fail(message: str, status: int) -> int:
    """Say what went wrong on stderr; the exit status."""
    sys.stderr.write(f"sleap-rtc: {message}\n")
    return status


def say(line: str) -> None:
    """One line for the user, at once (none with ``--quiet``)."""
    if not _quiet:
        say_result(line)


def say_result(line: str) -> None:
    """A result line (where the model or the predictions are), printed even
    with ``--quiet``: what a script reads."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def fetch_command(job_id: str, worker: str, to: object) -> str:
    """The ``sleap-rtc fetch`` line that resumes a copy of a job's results."""
    return f"sleap-rtc fetch {job_id} --worker {worker} --to '{to}'"
