"""The presubmission states and their transition table, as data.

``TRANSITIONS[state][trigger] -> new_state`` is the whole flow of **Run Remotely**
(STYLE.md convention 2, after h11's ``_state.py``). A trigger is an event type, or,
where the outcome of one event depends on its payload or on what the machine has
seen so far, a pair ``(event_type, Guard)``; h11 keys its switch events the same
way. The machine computes the guard, looks the trigger up here, and treats a
missing entry as an illegal event. Effects are not in the table: they carry
payloads, so :mod:`.machine` derives them from the transition taken.

The diagram in ``docs/presubmit.md`` is generated from this table by
:func:`render_mermaid` (``python scripts/make_presubmit_diagram.py``); a test fails
when the document is stale.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import TypeAlias

from sleap_rtc_gui.presubmit.events import (
    AuthChecked,
    ChannelLost,
    ConfigBuilt,
    ConfigFailed,
    Connected,
    ConnectFailed,
    Event,
    JobAccepted,
    JobCompleted,
    JobFailed,
    JobRejected,
    LabelsPathEntered,
    LoginExpired,
    LoginFinished,
    NoWorkerAvailable,
    PathsChecked,
    PathsResolved,
    ProgressReceived,
    ResolutionCancelled,
    RunRequested,
    TimedOut,
    UploadCancelled,
    UploadFailed,
    UploadFinished,
    UploadRequested,
    UserCancelled,
)

__all__ = [
    "CONNECTED_STATES",
    "GUARDS",
    "MAX_LABELS_CORRECTIONS",
    "PRE_ACCEPT_STATES",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "Guard",
    "PresubmitState",
    "Trigger",
    "render_mermaid",
    "trigger_event_type",
    "trigger_label",
]

MAX_LABELS_CORRECTIONS = 3
"""How many worker paths for the labels file the labeler may try (PROTOCOL.md B
§4.5: "up to 3 corrections") before the run is given up."""


class PresubmitState(StrEnum):
    """Where the **Run Remotely** flow is."""

    IDLE = "idle"
    """The training dialog is open and nothing runs; also where errors return."""
    BUILDING_CONFIG = "building_config"
    """The dialog's options are being turned into a training YAML."""
    CHECKING_AUTH = "checking_auth"
    """Looking for a stored, unexpired JWT."""
    LOGGING_IN = "logging_in"
    """Waiting for the browser login."""
    CONNECTING = "connecting"
    """Opening and authenticating the data channel to the chosen worker."""
    CHECKING_PATHS = "checking_paths"
    """Asking the worker whether it sees the labels file and every video."""
    RESOLVING_LABELS = "resolving_labels"
    """The worker cannot see the labels file; the labeler may type its path."""
    UPLOADING = "uploading"
    """Sending the labels file to the worker's upload area (it shares no
    storage with the labeler), with progress and a Cancel."""
    RESOLVING_VIDEOS = "resolving_videos"
    """Some videos are missing on the worker; the labeler points at them."""
    SUBMITTING = "submitting"
    """``JOB_SUBMIT`` sent, waiting for ``JOB_ACCEPTED`` or ``JOB_REJECTED``."""
    RUNNING = "running"
    """The job was accepted, the dialog closed, progress streams."""
    DONE = "done"
    """Training completed; the model path is known."""
    FAILED = "failed"
    """Training failed, or the channel was lost while it ran."""
    ABORTED = "aborted"
    """The labeler cancelled or closed the dialog before the job was accepted."""


class Guard(StrEnum):
    """Which branch an event takes when its type alone does not decide."""

    NO_WORKER = "no worker"
    """``RunRequested`` without a worker (none chosen, none available)."""
    NO_LABELS = "no labels"
    """``RunRequested`` without a saved labels file."""
    CONFIG_READY = "config given"
    """``RunRequested`` already carries the training YAML."""
    NEEDS_CONFIG = "config to build"
    """``RunRequested`` without the YAML: build it first."""
    VALID = "valid"
    """``AuthChecked``: a JWT is present and not expired."""
    LOGIN_NEEDED = "login needed"
    """``AuthChecked``: no JWT, or an expired one."""
    OK = "ok"
    """``LoginFinished`` succeeded."""
    FAILED = "failed"
    """``LoginFinished`` failed or was cancelled."""
    ALL_FOUND = "all found"
    """``PathsChecked``: the worker sees the labels and every video."""
    VIDEOS_MISSING = "videos missing"
    """``PathsChecked``: the labels are visible, some videos are not."""
    LABELS_MISSING = "labels missing"
    """``PathsChecked``: the labels file is not visible; corrections are left."""
    CORRECTIONS_EXHAUSTED = "corrections exhausted"
    """``PathsChecked``: the labels file is still not visible and no correction
    is left."""
    LABELS_UNREADABLE = "labels unreadable"
    """``PathsChecked``: the worker has the labels file but could not read it."""


GUARDS: Mapping[type[Event], tuple[Guard, ...]] = {
    RunRequested: (
        Guard.NO_WORKER,
        Guard.NO_LABELS,
        Guard.NEEDS_CONFIG,
        Guard.CONFIG_READY,
    ),
    AuthChecked: (Guard.VALID, Guard.LOGIN_NEEDED),
    LoginFinished: (Guard.OK, Guard.FAILED),
    PathsChecked: (
        Guard.ALL_FOUND,
        Guard.VIDEOS_MISSING,
        Guard.LABELS_MISSING,
        Guard.CORRECTIONS_EXHAUSTED,
        Guard.LABELS_UNREADABLE,
    ),
}
"""The guarded event types and every branch each can take. A state that accepts
a guarded type has a row for each of its guards, and never a bare row for it."""

Trigger: TypeAlias = type[Event] | tuple[type[Event], Guard]
"""A key of ``TRANSITIONS[state]``: an event type, or an event type and a guard."""

S = PresubmitState

_TABLE: dict[PresubmitState, dict[Trigger, PresubmitState]] = {
    S.IDLE: {
        (RunRequested, Guard.NO_WORKER): S.IDLE,
        (RunRequested, Guard.NO_LABELS): S.IDLE,
        (RunRequested, Guard.NEEDS_CONFIG): S.BUILDING_CONFIG,
        (RunRequested, Guard.CONFIG_READY): S.CHECKING_AUTH,
        UserCancelled: S.ABORTED,
    },
    S.BUILDING_CONFIG: {
        ConfigBuilt: S.CHECKING_AUTH,
        ConfigFailed: S.IDLE,
        UserCancelled: S.ABORTED,
    },
    S.CHECKING_AUTH: {
        (AuthChecked, Guard.VALID): S.CONNECTING,
        (AuthChecked, Guard.LOGIN_NEEDED): S.LOGGING_IN,
        UserCancelled: S.ABORTED,
    },
    S.LOGGING_IN: {
        (LoginFinished, Guard.OK): S.CONNECTING,
        (LoginFinished, Guard.FAILED): S.IDLE,
        TimedOut: S.IDLE,
        UserCancelled: S.ABORTED,
    },
    S.CONNECTING: {
        Connected: S.CHECKING_PATHS,
        ConnectFailed: S.IDLE,
        NoWorkerAvailable: S.IDLE,
        LoginExpired: S.LOGGING_IN,
        TimedOut: S.IDLE,
        UserCancelled: S.ABORTED,
    },
    S.CHECKING_PATHS: {
        (PathsChecked, Guard.ALL_FOUND): S.SUBMITTING,
        (PathsChecked, Guard.VIDEOS_MISSING): S.RESOLVING_VIDEOS,
        (PathsChecked, Guard.LABELS_MISSING): S.RESOLVING_LABELS,
        (PathsChecked, Guard.CORRECTIONS_EXHAUSTED): S.IDLE,
        (PathsChecked, Guard.LABELS_UNREADABLE): S.IDLE,
        ChannelLost: S.IDLE,
        TimedOut: S.IDLE,
        UserCancelled: S.ABORTED,
    },
    S.RESOLVING_LABELS: {
        LabelsPathEntered: S.CHECKING_PATHS,
        UploadRequested: S.UPLOADING,
        ResolutionCancelled: S.IDLE,
        ChannelLost: S.IDLE,
        UserCancelled: S.ABORTED,
    },
    S.UPLOADING: {
        UploadFinished: S.SUBMITTING,
        UploadFailed: S.IDLE,
        UploadCancelled: S.IDLE,
        ChannelLost: S.IDLE,
        UserCancelled: S.ABORTED,
    },
    S.RESOLVING_VIDEOS: {
        PathsResolved: S.SUBMITTING,
        ResolutionCancelled: S.IDLE,
        ChannelLost: S.IDLE,
        UserCancelled: S.ABORTED,
    },
    S.SUBMITTING: {
        JobAccepted: S.RUNNING,
        JobRejected: S.IDLE,
        ChannelLost: S.IDLE,
        TimedOut: S.IDLE,
        UserCancelled: S.ABORTED,
    },
    S.RUNNING: {
        ProgressReceived: S.RUNNING,
        JobCompleted: S.DONE,
        JobFailed: S.FAILED,
        ChannelLost: S.FAILED,
    },
    S.DONE: {},
    S.FAILED: {},
    S.ABORTED: {},
}

TRANSITIONS: Mapping[PresubmitState, Mapping[Trigger, PresubmitState]] = (
    MappingProxyType({state: MappingProxyType(row) for state, row in _TABLE.items()})
)
"""The flow, read-only. Every state has a row; terminal states have empty rows."""

del S

PRE_ACCEPT_STATES: frozenset[PresubmitState] = frozenset(
    {
        PresubmitState.IDLE,
        PresubmitState.BUILDING_CONFIG,
        PresubmitState.CHECKING_AUTH,
        PresubmitState.LOGGING_IN,
        PresubmitState.CONNECTING,
        PresubmitState.CHECKING_PATHS,
        PresubmitState.RESOLVING_LABELS,
        PresubmitState.UPLOADING,
        PresubmitState.RESOLVING_VIDEOS,
        PresubmitState.SUBMITTING,
    }
)
"""States in which the training dialog is open (the labeler may cancel)."""

CONNECTED_STATES: frozenset[PresubmitState] = frozenset(
    {
        PresubmitState.CONNECTING,
        PresubmitState.CHECKING_PATHS,
        PresubmitState.RESOLVING_LABELS,
        PresubmitState.UPLOADING,
        PresubmitState.RESOLVING_VIDEOS,
        PresubmitState.SUBMITTING,
    }
)
"""Pre-accept states in which a channel to the worker exists or is being opened:
leaving them for the dialog, the login or an abort closes it."""

TERMINAL_STATES: frozenset[PresubmitState] = frozenset(
    {PresubmitState.DONE, PresubmitState.FAILED, PresubmitState.ABORTED}
)
"""States nothing leaves; a new run needs a new machine."""


def trigger_event_type(trigger: Trigger) -> type[Event]:
    """The event type of a table key, with or without a guard."""
    return trigger[0] if isinstance(trigger, tuple) else trigger


def trigger_label(trigger: Trigger) -> str:
    """A table key as text: ``"PathsChecked (videos missing)"``."""
    if isinstance(trigger, tuple):
        return f"{trigger[0].__name__} ({trigger[1].value})"
    return trigger.__name__


def render_mermaid() -> str:
    """Render :data:`TRANSITIONS` as a Mermaid ``stateDiagram-v2``.

    Returns:
        The diagram source, without the Markdown fence, ending with a newline.
        Edges are listed in table order, so the output is stable.
    """
    lines = ["stateDiagram-v2", f"    [*] --> {PresubmitState.IDLE.value}"]
    for state, row in TRANSITIONS.items():
        for trigger, target in row.items():
            lines.append(
                f"    {state.value} --> {target.value}: {trigger_label(trigger)}"
            )
    for state in PresubmitState:
        if state in TERMINAL_STATES:
            lines.append(f"    {state.value} --> [*]")
    return "\n".join(lines) + "\n"
