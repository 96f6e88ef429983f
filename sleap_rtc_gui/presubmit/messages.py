"""Every sentence the presubmission flow shows the labeler.

Kept in one module so that the wording is reviewed in one place, tested exactly,
and can be translated later without touching the machine. Constants are fixed
texts; functions build the texts that include what the worker or the dialog said.
Each popup has a ``*_TITLE`` and a message; the machine puts them into a
``ShowError`` effect.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sleap_rtc_gui.presubmit.states import PresubmitState

__all__ = [
    "CONFIG_FAILED_TITLE",
    "CONNECTION_LOST",
    "CONNECTION_LOST_DURING_TRAINING",
    "CONNECTION_LOST_TITLE",
    "CONNECT_FAILED",
    "CONNECT_FAILED_TITLE",
    "JOB_FAILED_DEFAULT",
    "JOB_FAILED_TITLE",
    "JOB_REJECTED_HEADER",
    "JOB_REJECTED_TITLE",
    "LABELS_NOT_FOUND_TITLE",
    "LABELS_UNREADABLE",
    "LABELS_UNREADABLE_TITLE",
    "LOGIN_EXPIRED",
    "LOGIN_PROMPT",
    "LOGIN_REQUIRED",
    "LOGIN_REQUIRED_TITLE",
    "NO_LABELS",
    "NO_LABELS_TITLE",
    "NO_WORKER_AVAILABLE",
    "NO_WORKER_SELECTED",
    "NO_WORKER_TITLE",
    "TIMED_OUT_TITLE",
    "TIMEOUT_STEPS",
    "UPLOAD_FAILED_TITLE",
    "UPLOAD_REFUSALS",
    "config_failed",
    "format_details",
    "job_failed",
    "job_rejected",
    "labels_not_found",
    "timed_out",
    "upload_failed",
]

LOGIN_PROMPT = "Log in to run training remotely."
"""Shown next to the browser login when no token is stored."""
LOGIN_EXPIRED = "Your login has expired. Please log in again."
"""Shown next to the browser login when the token expired (before or during)."""

LOGIN_REQUIRED_TITLE = "Login required"
LOGIN_REQUIRED = "Login required. Please try again."
"""The browser login failed or was cancelled."""

CONNECT_FAILED_TITLE = "Could not connect"
CONNECT_FAILED = "Could not connect to worker. Check that the worker is running."
"""The worker could not be reached."""

CONNECTION_LOST_TITLE = "Connection lost"
CONNECTION_LOST = "Connection lost. Try again."
"""The data channel closed before the job was accepted."""
CONNECTION_LOST_DURING_TRAINING = (
    "Lost the connection to the worker during training. "
    "The job may still be running on the worker."
)
"""The data channel closed after the job was accepted."""

NO_WORKER_TITLE = "No worker"
NO_WORKER_SELECTED = (
    "No worker selected. Choose a worker from the list, "
    "or start one in this room if none is available."
)
"""**Run Remotely** was pressed with no worker chosen (or none to choose)."""
NO_WORKER_AVAILABLE = (
    "No worker is available to run this job. "
    "Start a worker in this room or choose another worker."
)
"""The chosen worker left, or the room has no worker that can take the job."""

NO_LABELS_TITLE = "Labels not saved"
NO_LABELS = "Save your project first: the worker needs a labels file to train on."
"""**Run Remotely** was pressed on a project that was never saved."""

CONFIG_FAILED_TITLE = "Invalid training options"

LABELS_NOT_FOUND_TITLE = "Labels file not found"

LABELS_UNREADABLE_TITLE = "Labels file unreadable"
LABELS_UNREADABLE = (
    "The worker found the labels file but could not read it, so it cannot "
    "train on it. Save the project again (or check that the worker may read "
    "the file) and try again."
)

JOB_REJECTED_TITLE = "Job rejected"
JOB_REJECTED_HEADER = "The worker rejected the job:"

JOB_FAILED_TITLE = "Training failed"
JOB_FAILED_DEFAULT = "Training failed on the worker."
"""Used when the worker's ``JOB_FAILED`` carries no message."""

UPLOAD_FAILED_TITLE = "Could not send the labels"
UPLOAD_REFUSALS: Mapping[str, str] = {
    "NO_UPLOAD_AREA": "This worker takes no uploads: its owner can give it an "
    "upload folder (--upload-dir), or put the labels where it can see them.",
    "QUOTA_EXCEEDED": "The worker has no room left for your uploads. Ask its "
    "owner to raise the quota, or remove old uploads.",
    "ACCESS_DENIED": "The worker refused the upload.",
}
"""What a refusal code means, per ``FILE_UPLOAD_ERROR`` code."""


def upload_failed(code: str | None) -> str:
    """Why the labels could not be sent (the worker's refusal, or a failure
    here)."""
    known = UPLOAD_REFUSALS.get(code) if code is not None else None
    return known or "The labels file could not be sent to the worker. Try again."


TIMED_OUT_TITLE = "Timed out"
TIMEOUT_STEPS: Mapping[PresubmitState, str] = {
    PresubmitState.LOGGING_IN: "waiting for the browser login",
    PresubmitState.CONNECTING: "connecting to the worker",
    PresubmitState.CHECKING_PATHS: "checking files on the worker",
    PresubmitState.SUBMITTING: "waiting for the worker to accept the job",
}
"""What the flow was doing, per state in which a timeout is legal."""


def config_failed(reason: str) -> str:
    """The dialog's options did not make a valid configuration."""
    reason = reason.strip()
    if not reason:
        return "The training options are not valid."
    return f"The training options are not valid: {reason}"


def labels_not_found(corrections: int) -> str:
    """The labels file stayed invisible to the worker after every correction."""
    plural = "correction" if corrections == 1 else "corrections"
    return (
        f"The labels file was not found on the worker after {corrections} "
        f"{plural}. Check that the file is inside one of the worker's folders "
        "and try again."
    )


def job_rejected(errors: Iterable[Mapping[str, Any]]) -> str:
    """List the worker's field-level reasons, one per line.

    Each line reads ``- field: message (CODE) [path]``; code and path appear only
    when the worker sent them.
    """
    lines = [JOB_REJECTED_HEADER]
    for error in errors:
        line = f"- {error.get('field') or 'job'}: {error.get('message') or 'invalid'}"
        if error.get("code"):
            line += f" ({error['code']})"
        if error.get("path"):
            line += f" [{error['path']}]"
        lines.append(line)
    if len(lines) == 1:
        lines.append("- job: no reason given")
    return "\n".join(lines)


def job_failed(details: Mapping[str, Any]) -> str:
    """The sentence of a ``JOB_FAILED`` popup: the worker's own message if any."""
    message = details.get("message")
    return str(message) if message else JOB_FAILED_DEFAULT


def format_details(details: Mapping[str, Any]) -> str:
    """Render a worker payload as ``key: value`` lines for a popup's details."""
    return "\n".join(f"{key}: {value}" for key, value in details.items())


def timed_out(state: PresubmitState) -> str:
    """A network step took too long."""
    step = TIMEOUT_STEPS.get(state, "waiting for the worker")
    return f"Timed out while {step}. Check your network and try again."
