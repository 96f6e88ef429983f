"""How the client commands (check, train, track, fetch) speak and end: one
line at a time on stdout, errors on stderr, and the exit statuses the README
lists."""

from __future__ import annotations

import sys

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_NO_WORKER",
    "EXIT_REJECTED",
    "fail",
    "fetch_command",
    "say",
]

EXIT_FAILED, EXIT_NO_WORKER, EXIT_REJECTED = 1, 2, 3
EXIT_INTERRUPTED = 130
"""The user cancelled with Ctrl-C (128 + SIGINT, as shells report it)."""


def fail(message: str, status: int) -> int:
    """Say what went wrong on stderr; the exit status."""
    sys.stderr.write(f"sleap-rtc: {message}\n")
    return status


def say(line: str) -> None:
    """One line for the user, at once."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def fetch_command(job_id: str, worker: str, to: object) -> str:
    """The ``sleap-rtc fetch`` line that resumes a copy of a job's results."""
    return f"sleap-rtc fetch {job_id} --worker {worker} --to '{to}'"
