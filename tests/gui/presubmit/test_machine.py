"""Tests of the presubmission machine following its table, and its texts.

Pure and fast (no Qt, no event loop). Transitions and illegal events are
parametrized from ``TRANSITIONS`` itself, so a new row is covered as soon as it is
added: the test then asks for a sample event and a route to its state below.
The table's own shape is tested in ``test_states.py``, the events' validation in
``test_events.py``.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sleap_rtc_core.errors import LocalProtocolError
from sleap_rtc_gui.presubmit.events import (
    EVENT_TYPES,
    AuthChecked,
    BuildConfig,
    CancelLogin,
    ChannelLost,
    CheckAuth,
    CheckPaths,
    CloseDialog,
    ConfigBuilt,
    ConfigFailed,
    Connected,
    ConnectFailed,
    ConnectWorker,
    Disconnect,
    Effect,
    Event,
    ForwardProgress,
    HidePathResolution,
    JobAccepted,
    JobCompleted,
    JobFailed,
    JobRejected,
    LabelsPathEntered,
    LoginExpired,
    LoginFinished,
    NoWorkerAvailable,
    OpenLogin,
    PathReport,
    PathsChecked,
    PathsResolved,
    ProgressReceived,
    ResolutionCancelled,
    ReturnToDialog,
    RunRequested,
    ShowError,
    ShowPathResolution,
    StartProgressFeed,
    StopUpload,
    SubmitJob,
    TimedOut,
    TrainingDone,
    UploadCancelled,
    UploadFailed,
    UploadFinished,
    UploadLabels,
    UploadRequested,
    UserCancelled,
    VideoCheck,
    VideoStatus,
)
from sleap_rtc_gui.presubmit.machine import PresubmitMachine, RunContext
from sleap_rtc_gui.presubmit.states import (
    CONNECTED_STATES,
    MAX_LABELS_CORRECTIONS,
    PRE_ACCEPT_STATES,
    TRANSITIONS,
    Guard,
    PresubmitState,
    Trigger,
    trigger_event_type,
    trigger_label,
)

S = PresubmitState

# ----------------------------------------------------------------- sample data

YAML = "data_config:\n  train_labels_path: /home/me/proj/labels.slp\n"
LABELS = "/home/me/proj/labels.slp"
WORKER_LABELS = "/mnt/lab/proj/labels.slp"
VIDEO_1 = "/home/me/proj/cam1.mp4"
VIDEO_2 = "/home/me/proj/cam2.mp4"
WORKER_VIDEO_1 = "/mnt/lab/proj/cam1.mp4"
JOB_ID = "job_0123abcd"
STORED = "/srv/uploads/sha256/" + "ab" * 32 + "/labels.pkg.slp"

ALL_FOUND = PathReport(
    labels_path=LABELS,
    labels_found=True,
    videos=(
        VideoCheck(VIDEO_1, VideoStatus.FOUND),
        VideoCheck(VIDEO_2, VideoStatus.EMBEDDED),
    ),
)
VIDEOS_MISSING = PathReport(
    labels_path=LABELS,
    labels_found=True,
    videos=(
        VideoCheck(VIDEO_1, VideoStatus.MISSING, (WORKER_VIDEO_1,)),
        VideoCheck(VIDEO_2, VideoStatus.EMBEDDED),
    ),
)
LABELS_MISSING = PathReport(
    labels_path=LABELS, labels_found=False, labels_suggestions=(WORKER_LABELS,)
)
LABELS_UNREADABLE = PathReport(
    labels_path=LABELS, labels_found=True, error="not an HDF5 file"
)
REJECTIONS = [
    {
        "field": "labels_path",
        "message": "Path not found",
        "code": "PATH_NOT_FOUND",
        "path": WORKER_LABELS,
    },
    {"field": "max_epochs", "message": "must be between 1 and 10000"},
]
FAILURE = {"job_id": JOB_ID, "exit_code": 1, "message": "CUDA out of memory"}
COMPLETION = {
    "job_id": JOB_ID,
    "job_type": "train",
    "duration_seconds": 12.5,
    "success": True,
    "stopped_early": False,
    "output_path": "/mnt/lab/models/single_instance_1",
}


def run_requested(
    *,
    config_yaml: str | None = None,
    labels_path: str | None = LABELS,
    worker_id: str | None = "worker-1",
    room: str | None = "lab",
    worker_uploads: bool = False,
) -> RunRequested:
    """A **Run Remotely** press; by default one that needs the config built."""
    return RunRequested(config_yaml, labels_path, worker_id, room, worker_uploads)


def labels_missing_at(path: str) -> PathReport:
    """The worker does not see the labels file at ``path`` either."""
    return PathReport(labels_path=path, labels_found=False)


# One event per trigger, chosen so that the machine computes that trigger's guard.
SAMPLES: dict[Trigger, Event] = {
    (RunRequested, Guard.NO_WORKER): run_requested(worker_id=None),
    (RunRequested, Guard.NO_LABELS): run_requested(labels_path=None),
    (RunRequested, Guard.NEEDS_CONFIG): run_requested(),
    (RunRequested, Guard.CONFIG_READY): run_requested(config_yaml=YAML),
    ConfigBuilt: ConfigBuilt(YAML),
    ConfigFailed: ConfigFailed("max_epochs must be positive"),
    (AuthChecked, Guard.VALID): AuthChecked(ok=True),
    (AuthChecked, Guard.LOGIN_NEEDED): AuthChecked(ok=False),
    (LoginFinished, Guard.OK): LoginFinished(ok=True, jwt="header.payload.sig"),
    (LoginFinished, Guard.FAILED): LoginFinished(ok=False),
    LoginExpired: LoginExpired(),
    Connected: Connected(),
    ConnectFailed: ConnectFailed("ICE failed"),
    NoWorkerAvailable: NoWorkerAvailable("PEER_NOT_FOUND"),
    (PathsChecked, Guard.ALL_FOUND): PathsChecked(ALL_FOUND),
    (PathsChecked, Guard.VIDEOS_MISSING): PathsChecked(VIDEOS_MISSING),
    (PathsChecked, Guard.LABELS_MISSING): PathsChecked(LABELS_MISSING),
    (PathsChecked, Guard.CORRECTIONS_EXHAUSTED): PathsChecked(
        labels_missing_at("/mnt/try/3.slp")
    ),
    (PathsChecked, Guard.LABELS_UNREADABLE): PathsChecked(LABELS_UNREADABLE),
    LabelsPathEntered: LabelsPathEntered(WORKER_LABELS),
    PathsResolved: PathsResolved({VIDEO_1: WORKER_VIDEO_1}),
    ResolutionCancelled: ResolutionCancelled(),
    UploadRequested: UploadRequested(),
    UploadFinished: UploadFinished(STORED),
    UploadFailed: UploadFailed("no upload area", "NO_UPLOAD_AREA"),
    UploadCancelled: UploadCancelled(),
    JobAccepted: JobAccepted(JOB_ID),
    JobRejected: JobRejected(REJECTIONS),
    ChannelLost: ChannelLost("data channel closed"),
    ProgressReceived: ProgressReceived({"event": "epoch_end", "logs": {"loss": 1}}),
    JobFailed: JobFailed(FAILURE),
    JobCompleted: JobCompleted(COMPLETION),
    UserCancelled: UserCancelled(),
    TimedOut: TimedOut("connect"),
}

_TO_AUTH = [run_requested(), ConfigBuilt(YAML)]
_TO_PATHS = [*_TO_AUTH, AuthChecked(ok=True), Connected()]
_TO_SUBMIT = [*_TO_PATHS, PathsChecked(ALL_FOUND)]
_TO_RUNNING = [*_TO_SUBMIT, JobAccepted(JOB_ID)]

# A route from a fresh machine to each state.
ROUTES: dict[PresubmitState, list[Event]] = {
    S.IDLE: [],
    S.BUILDING_CONFIG: [run_requested()],
    S.CHECKING_AUTH: _TO_AUTH,
    S.LOGGING_IN: [*_TO_AUTH, AuthChecked(ok=False)],
    S.CONNECTING: [*_TO_AUTH, AuthChecked(ok=True)],
    S.CHECKING_PATHS: _TO_PATHS,
    S.RESOLVING_LABELS: [*_TO_PATHS, PathsChecked(LABELS_MISSING)],
    S.UPLOADING: [*_TO_PATHS, PathsChecked(LABELS_MISSING), UploadRequested()],
    S.RESOLVING_VIDEOS: [*_TO_PATHS, PathsChecked(VIDEOS_MISSING)],
    S.SUBMITTING: _TO_SUBMIT,
    S.RUNNING: _TO_RUNNING,
    S.DONE: [*_TO_RUNNING, JobCompleted(COMPLETION)],
    S.FAILED: [*_TO_RUNNING, JobFailed(FAILURE)],
    S.ABORTED: [UserCancelled()],
}


def _corrections(n: int) -> list[Event]:
    """From checking the labels, ``n`` corrections that the worker cannot see."""
    events: list[Event] = []
    for i in range(n):
        events.append(PathsChecked(labels_missing_at(f"/mnt/try/{i}.slp")))
        events.append(LabelsPathEntered(f"/mnt/try/{i + 1}.slp"))
    return events


# Where a trigger needs more history than the state's route gives.
SPECIAL_ROUTES: dict[tuple[PresubmitState, Trigger], list[Event]] = {
    (S.CHECKING_PATHS, (PathsChecked, Guard.CORRECTIONS_EXHAUSTED)): [
        *_TO_PATHS,
        *_corrections(MAX_LABELS_CORRECTIONS),
    ],
}


def drive(
    events: Sequence[Event], machine: PresubmitMachine | None = None
) -> PresubmitMachine:
    """Feed ``events`` to a (new) machine, dropping the effects on the way."""
    machine = machine or PresubmitMachine()
    for event in events:
        machine.receive(event)
    machine.effects()
    return machine


def at(state: PresubmitState) -> PresubmitMachine:
    """A machine in ``state`` with no pending effects."""
    machine = drive(ROUTES[state])
    assert machine.state is state
    return machine


def errors_of(effects: Sequence[Effect]) -> list[ShowError]:
    """The popups among ``effects``."""
    return [e for e in effects if isinstance(e, ShowError)]


# ----------------------------------------------------------------- the table


TABLE_ROWS = [
    pytest.param(state, trigger, target, id=f"{state}-{trigger_label(trigger)}")
    for state, row in TRANSITIONS.items()
    for trigger, target in row.items()
]

ILLEGAL = [
    pytest.param(state, event_type, id=f"{state}-{event_type.__name__}")
    for state in PresubmitState
    for event_type in EVENT_TYPES
    if event_type not in {trigger_event_type(t) for t in TRANSITIONS[state]}
]


def sample_of(event_type: type[Event]) -> Event:
    """Any sample event of ``event_type``."""
    return next(e for t, e in SAMPLES.items() if trigger_event_type(t) is event_type)


def test_every_state_has_a_row_and_a_route() -> None:
    assert set(TRANSITIONS) == set(PresubmitState)
    assert set(ROUTES) == set(PresubmitState)


def test_every_trigger_has_a_sample() -> None:
    triggers = {t for row in TRANSITIONS.values() for t in row}
    assert triggers <= set(SAMPLES)
    assert {trigger_event_type(t) for t in SAMPLES} == set(EVENT_TYPES)


@pytest.mark.parametrize(("state", "trigger", "target"), TABLE_ROWS)
def test_transition(
    state: PresubmitState, trigger: Trigger, target: PresubmitState
) -> None:
    machine = drive(SPECIAL_ROUTES.get((state, trigger), ROUTES[state]))
    assert machine.state is state

    assert machine.receive(SAMPLES[trigger]) is target
    assert machine.state is target
    effects = machine.effects()
    assert machine.effects() == []

    # Rules every transition obeys.
    if target is S.IDLE:
        assert effects[-1] == ReturnToDialog()
        silent = trigger in (ResolutionCancelled, UploadCancelled)
        assert len(errors_of(effects)) == (0 if silent else 1)
    leaves_channel = state in CONNECTED_STATES and target not in CONNECTED_STATES
    closes = leaves_channel and target is not S.RUNNING
    assert (Disconnect() in effects) == closes
    assert (CancelLogin() in effects) == (
        state is S.LOGGING_IN and trigger_event_type(trigger) is not LoginFinished
    )
    assert (StopUpload() in effects) == (state is S.UPLOADING)
    if target is S.RUNNING and state is S.SUBMITTING:
        assert effects == [CloseDialog(), StartProgressFeed(JOB_ID)]
    if target is S.ABORTED:
        assert errors_of(effects) == []
        assert ReturnToDialog() not in effects


@pytest.mark.parametrize(("state", "event_type"), ILLEGAL)
def test_illegal_event_raises_and_changes_nothing(
    state: PresubmitState, event_type: type[Event]
) -> None:
    route = ROUTES[state]
    machine, twin = drive(route[:-1]), drive(route[:-1])
    for m in (machine, twin):
        for event in route[-1:]:
            m.receive(event)  # leave the last step's effects pending
    pending = twin.effects()
    run = machine.run

    with pytest.raises(LocalProtocolError, match=f"{event_type.__name__}.*{state}"):
        machine.receive(sample_of(event_type))

    assert machine.state is state
    assert machine.run is run
    assert machine.effects() == pending


def test_legal_events_follows_the_table() -> None:
    for state in PresubmitState:
        assert at(state).legal_events() == {
            trigger_event_type(t) for t in TRANSITIONS[state]
        }


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(list(SAMPLES.values())), max_size=25))
def test_random_sequences_follow_the_table(events: list[Event]) -> None:
    machine = PresubmitMachine()
    for event in events:
        before = machine.state
        legal = type(event) in machine.legal_events()
        try:
            after = machine.receive(event)
        except LocalProtocolError:
            assert machine.state is before
            continue
        assert legal
        assert after in TRANSITIONS[before].values()


# ----------------------------------------------------------------- full flows


def test_happy_path() -> None:
    machine = PresubmitMachine()
    script: list[tuple[Event, PresubmitState, list[Effect]]] = [
        (run_requested(), S.BUILDING_CONFIG, [BuildConfig(LABELS)]),
        (ConfigBuilt(YAML), S.CHECKING_AUTH, [CheckAuth()]),
        (AuthChecked(ok=True), S.CONNECTING, [ConnectWorker("worker-1", "lab")]),
        (Connected(), S.CHECKING_PATHS, [CheckPaths(LABELS)]),
        (
            PathsChecked(ALL_FOUND),
            S.SUBMITTING,
            [
                SubmitJob(
                    {
                        "type": "train",
                        "config_content": YAML,
                        "labels_path": LABELS,
                        "path_mappings": {},
                    }
                )
            ],
        ),
        (JobAccepted(JOB_ID), S.RUNNING, [CloseDialog(), StartProgressFeed(JOB_ID)]),
        (
            ProgressReceived({"event": "epoch_end"}),
            S.RUNNING,
            [ForwardProgress({"event": "epoch_end"})],
        ),
        (
            JobCompleted(COMPLETION),
            S.DONE,
            [TrainingDone("/mnt/lab/models/single_instance_1", COMPLETION)],
        ),
    ]
    for event, state, effects in script:
        assert machine.receive(event) is state
        assert machine.effects() == effects
    assert machine.finished
    assert machine.run.job_id == JOB_ID
    assert machine.run.config_yaml == YAML
    assert machine.run.last_error is None


def test_config_given_with_the_request_skips_the_build() -> None:
    machine = PresubmitMachine()
    assert machine.receive(run_requested(config_yaml=YAML)) is S.CHECKING_AUTH
    assert machine.effects() == [CheckAuth()]
    drive([AuthChecked(ok=True), Connected(), PathsChecked(ALL_FOUND)], machine)
    assert machine.run.config_yaml == YAML


def test_a_pipeline_of_several_models_travels_as_one_spec() -> None:
    """Top-down: the centroid and the centered-instance configs, in order, with
    their model types (``config_contents``), in one job."""
    machine = drive([run_requested()])
    machine.effects()
    built = ConfigBuilt(YAML, more_configs=("second: 1\n",), model_types=("a", "b"))
    drive([built, AuthChecked(ok=True), Connected()], machine)
    machine.receive(PathsChecked(ALL_FOUND))
    (submit,) = machine.effects()
    assert isinstance(submit, SubmitJob)
    assert submit.spec["config_contents"] == [YAML, "second: 1\n"]
    assert submit.spec["model_types"] == ["a", "b"]
    assert "config_content" not in submit.spec


def test_model_types_must_match_the_configs() -> None:
    with pytest.raises(ValueError, match="one type per config"):
        ConfigBuilt(YAML, more_configs=("x: 1\n",), model_types=("only_one",))


def test_missing_videos_resolved() -> None:
    machine = drive(_TO_PATHS)
    machine.receive(PathsChecked(VIDEOS_MISSING))
    assert machine.state is S.RESOLVING_VIDEOS
    assert machine.effects() == [ShowPathResolution(VIDEOS_MISSING, corrections_left=3)]
    machine.receive(PathsResolved({VIDEO_1: WORKER_VIDEO_1}))
    assert machine.state is S.SUBMITTING
    (submit,) = machine.effects()
    assert isinstance(submit, SubmitJob)
    assert submit.spec["path_mappings"] == {VIDEO_1: WORKER_VIDEO_1}
    assert submit.spec["config_content"] == YAML
    assert submit.spec["labels_path"] == LABELS
    machine.receive(JobAccepted(JOB_ID))
    assert machine.effects() == [CloseDialog(), StartProgressFeed(JOB_ID)]


def test_labels_corrected_then_videos_resolved() -> None:
    machine = drive([*_TO_PATHS, PathsChecked(LABELS_MISSING)])
    machine.receive(LabelsPathEntered(WORKER_LABELS))
    assert machine.effects() == [CheckPaths(WORKER_LABELS)]
    found = PathReport(WORKER_LABELS, True, VIDEOS_MISSING.videos)
    machine.receive(PathsChecked(found))
    assert machine.effects() == [ShowPathResolution(found, corrections_left=2)]
    machine.receive(PathsResolved({VIDEO_1: WORKER_VIDEO_1}))
    (submit,) = machine.effects()
    assert isinstance(submit, SubmitJob)
    assert submit.spec["labels_path"] == LABELS
    assert submit.spec["path_mappings"] == {
        LABELS: WORKER_LABELS,
        VIDEO_1: WORKER_VIDEO_1,
    }


def test_rejected() -> None:
    machine = at(S.SUBMITTING)
    assert machine.receive(JobRejected(REJECTIONS)) is S.IDLE
    assert machine.effects() == [
        Disconnect(),
        ShowError(
            "Job rejected",
            "The worker rejected the job:\n"
            "- labels_path: Path not found (PATH_NOT_FOUND) "
            "[/mnt/lab/proj/labels.slp]\n"
            "- max_epochs: must be between 1 and 10000",
        ),
        ReturnToDialog(),
    ]
    # The dialog stayed open: the labeler can fix the options and run again.
    drive(_TO_SUBMIT, machine)
    assert machine.state is S.SUBMITTING


def test_lost_during_submit() -> None:
    machine = at(S.SUBMITTING)
    machine.receive(ChannelLost("closed"))
    assert machine.state is S.IDLE
    assert machine.effects() == [
        Disconnect(),
        ShowError("Connection lost", "Connection lost. Try again.", "closed"),
        ReturnToDialog(),
    ]


def test_failed_during_training() -> None:
    machine = at(S.RUNNING)
    machine.receive(ProgressReceived({"event": "train_begin"}))
    machine.receive(JobFailed(FAILURE))
    assert machine.state is S.FAILED
    assert machine.effects() == [
        ForwardProgress({"event": "train_begin"}),
        ShowError(
            "Training failed",
            "CUDA out of memory",
            f"job_id: {JOB_ID}\nexit_code: 1\nmessage: CUDA out of memory",
        ),
    ]
    assert machine.finished


def test_failure_without_a_message_says_so() -> None:
    machine = at(S.RUNNING)
    machine.receive(JobFailed({"exit_code": 137}))
    (error,) = machine.effects()
    assert error == ShowError(
        "Training failed", "Training failed on the worker.", "exit_code: 137"
    )


def test_lost_during_training_says_the_job_may_still_run() -> None:
    machine = at(S.RUNNING)
    machine.receive(ChannelLost())
    assert machine.state is S.FAILED
    assert machine.effects() == [
        ShowError(
            "Connection lost",
            "Lost the connection to the worker during training. "
            "The job may still be running on the worker.",
        )
    ]


# ----------------------------------------------------------------- path resolution


@pytest.mark.parametrize("state", [S.RESOLVING_LABELS, S.RESOLVING_VIDEOS])
def test_resolution_cancel_is_silent(state: PresubmitState) -> None:
    machine = at(state)
    machine.receive(ResolutionCancelled())
    assert machine.state is S.IDLE
    assert machine.effects() == [Disconnect(), ReturnToDialog()]
    assert machine.run.last_error is None


def test_up_to_three_labels_corrections() -> None:
    machine = drive(_TO_PATHS)
    checks = 1
    shown: list[int] = []
    for i in range(1, MAX_LABELS_CORRECTIONS + 1):
        machine.receive(PathsChecked(labels_missing_at(f"/mnt/try/{i - 1}.slp")))
        (show,) = machine.effects()
        assert isinstance(show, ShowPathResolution)
        shown.append(show.corrections_left)
        machine.receive(LabelsPathEntered(f"/mnt/try/{i}.slp"))
        assert machine.effects() == [CheckPaths(f"/mnt/try/{i}.slp")]
        checks += 1
    assert shown == [3, 2, 1]
    assert checks == 4
    assert machine.corrections_left == 0

    machine.receive(PathsChecked(labels_missing_at("/mnt/try/3.slp")))
    assert machine.state is S.IDLE
    assert machine.effects() == [
        Disconnect(),
        ShowError(
            "Labels file not found",
            "The labels file was not found on the worker after 3 corrections. "
            "Check that the file is inside one of the worker's folders and try "
            "again.",
            "/mnt/try/3.slp",
        ),
        ReturnToDialog(),
    ]
    # A new run starts with every correction available again.
    drive(_TO_PATHS, machine)
    assert machine.corrections_left == 3


def test_a_labels_file_the_worker_cannot_read_stops_with_the_reason() -> None:
    machine = drive(_TO_PATHS)
    machine.receive(PathsChecked(LABELS_UNREADABLE))
    assert machine.state is S.IDLE
    assert machine.effects() == [
        Disconnect(),
        ShowError(
            "Labels file unreadable",
            "The worker found the labels file but could not read it, so it "
            "cannot train on it. Save the project again (or check that the "
            "worker may read the file) and try again.",
            f"{LABELS}: not an HDF5 file",
        ),
        ReturnToDialog(),
    ]


def test_labels_found_on_the_third_correction() -> None:
    machine = drive([*_TO_PATHS, *_corrections(2)])
    machine.receive(PathsChecked(labels_missing_at("/mnt/try/2.slp")))
    machine.receive(LabelsPathEntered(WORKER_LABELS))
    assert machine.corrections_left == 0
    machine.receive(PathsChecked(PathReport(WORKER_LABELS, True)))
    assert machine.state is S.SUBMITTING


def test_correction_bound_is_configurable() -> None:
    machine = drive(_TO_PATHS, PresubmitMachine(max_labels_corrections=0))
    machine.receive(PathsChecked(LABELS_MISSING))
    assert machine.state is S.IDLE
    (_, error, _) = machine.effects()
    assert isinstance(error, ShowError)
    assert "after 0 corrections" in error.message
    with pytest.raises(ValueError, match="max_labels_corrections"):
        PresubmitMachine(max_labels_corrections=-1)


def test_labels_path_cannot_be_typed_while_resolving_videos() -> None:
    with pytest.raises(LocalProtocolError):
        at(S.RESOLVING_VIDEOS).receive(LabelsPathEntered(WORKER_LABELS))


@pytest.mark.parametrize("state", [S.RESOLVING_LABELS, S.RESOLVING_VIDEOS])
def test_interruptions_hide_the_resolution_dialog(state: PresubmitState) -> None:
    machine = at(state)
    machine.receive(ChannelLost())
    assert machine.effects() == [
        HidePathResolution(),
        Disconnect(),
        ShowError("Connection lost", "Connection lost. Try again."),
        ReturnToDialog(),
    ]


# ----------------------------------------------------------------- other errors


def test_login_failed_or_cancelled() -> None:
    machine = at(S.LOGGING_IN)
    machine.receive(LoginFinished(ok=False))
    assert machine.state is S.IDLE
    assert machine.effects() == [
        ShowError("Login required", "Login required. Please try again."),
        ReturnToDialog(),
    ]


def test_login_then_connect() -> None:
    machine = drive(_TO_AUTH)
    machine.receive(AuthChecked(ok=False))
    assert machine.effects() == [OpenLogin("Log in to run training remotely.")]
    machine.receive(LoginFinished(ok=True, jwt="a.b.c"))
    assert machine.effects() == [ConnectWorker("worker-1", "lab")]


def test_expired_login_at_the_check() -> None:
    machine = drive(_TO_AUTH)
    machine.receive(AuthChecked(ok=False, expired=True))
    assert machine.state is S.LOGGING_IN
    assert machine.effects() == [
        OpenLogin("Your login has expired. Please log in again.")
    ]


def test_login_expired_during_the_flow() -> None:
    machine = at(S.CONNECTING)
    machine.receive(LoginExpired())
    assert machine.state is S.LOGGING_IN
    assert machine.effects() == [
        Disconnect(),
        OpenLogin("Your login has expired. Please log in again."),
    ]
    machine.receive(LoginFinished(ok=True))
    assert machine.effects() == [ConnectWorker("worker-1", "lab")]
    machine.receive(Connected())
    assert machine.effects() == [CheckPaths(LABELS)]


def test_connect_failed() -> None:
    machine = at(S.CONNECTING)
    machine.receive(ConnectFailed("ICE failed"))
    assert machine.effects() == [
        Disconnect(),
        ShowError(
            "Could not connect",
            "Could not connect to worker. Check that the worker is running.",
            "ICE failed",
        ),
        ReturnToDialog(),
    ]


def test_no_worker_selected() -> None:
    machine = PresubmitMachine()
    assert machine.receive(run_requested(worker_id=None)) is S.IDLE
    assert machine.effects() == [
        ShowError(
            "No worker",
            "No worker selected. Choose a worker from the list, "
            "or start one in this room if none is available.",
        ),
        ReturnToDialog(),
    ]
    assert machine.run == RunContext(last_error=machine.run.last_error)


def test_no_worker_available() -> None:
    machine = at(S.CONNECTING)
    machine.receive(NoWorkerAvailable("PEER_NOT_FOUND"))
    assert machine.effects() == [
        Disconnect(),
        ShowError(
            "No worker",
            "No worker is available to run this job. "
            "Start a worker in this room or choose another worker.",
            "PEER_NOT_FOUND",
        ),
        ReturnToDialog(),
    ]


def test_unsaved_project() -> None:
    machine = PresubmitMachine()
    machine.receive(run_requested(labels_path=""))
    assert machine.effects() == [
        ShowError(
            "Labels not saved",
            "Save your project first: the worker needs a labels file to train on.",
        ),
        ReturnToDialog(),
    ]


def test_config_build_failure_shows_the_reason() -> None:
    machine = at(S.BUILDING_CONFIG)
    machine.receive(ConfigFailed("batch_size must be at least 1"))
    assert machine.state is S.IDLE
    assert machine.effects() == [
        ShowError(
            "Invalid training options",
            "The training options are not valid: batch_size must be at least 1",
            "batch_size must be at least 1",
        ),
        ReturnToDialog(),
    ]


TIMEOUTS: dict[PresubmitState, tuple[list[Effect], str]] = {
    S.LOGGING_IN: (
        [CancelLogin()],
        "Timed out while waiting for the browser login. "
        "Check your network and try again.",
    ),
    S.CONNECTING: (
        [Disconnect()],
        "Timed out while connecting to the worker. Check your network and try again.",
    ),
    S.CHECKING_PATHS: (
        [Disconnect()],
        "Timed out while checking files on the worker. "
        "Check your network and try again.",
    ),
    S.SUBMITTING: (
        [Disconnect()],
        "Timed out while waiting for the worker to accept the job. "
        "Check your network and try again.",
    ),
}


def test_timeouts_cover_every_state_that_accepts_one() -> None:
    assert set(TIMEOUTS) == {s for s in S if TimedOut in TRANSITIONS[s]}


@pytest.mark.parametrize("state", list(TIMEOUTS))
def test_timeout(state: PresubmitState) -> None:
    machine = at(state)
    machine.receive(TimedOut("step"))
    closing, message = TIMEOUTS[state]
    assert machine.effects() == [
        *closing,
        ShowError("Timed out", message, "step"),
        ReturnToDialog(),
    ]


@pytest.mark.parametrize("state", sorted(PRE_ACCEPT_STATES))
def test_user_cancel_aborts_cleanly(state: PresubmitState) -> None:
    machine = at(state)
    machine.receive(UserCancelled())
    assert machine.state is S.ABORTED
    expected: list[Effect] = []
    if state in (S.RESOLVING_LABELS, S.RESOLVING_VIDEOS):
        expected.append(HidePathResolution())
    if state is S.LOGGING_IN:
        expected.append(CancelLogin())
    if state is S.UPLOADING:
        expected.append(StopUpload())
    if state in CONNECTED_STATES:
        expected.append(Disconnect())
    assert machine.effects() == expected
    assert machine.finished
    with pytest.raises(LocalProtocolError):
        machine.receive(run_requested())


def test_late_results_after_an_abort_are_illegal() -> None:
    machine = at(S.CONNECTING)
    machine.receive(TimedOut())
    with pytest.raises(
        LocalProtocolError, match="Connected is not allowed in state idle"
    ):
        machine.receive(Connected())


# ----------------------------------------------------------------- plumbing


def test_effects_drain() -> None:
    machine = PresubmitMachine()
    machine.receive(run_requested())
    assert machine.effects() == [BuildConfig(LABELS)]
    assert machine.effects() == []


def test_transitions_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="sleap_rtc_gui.presubmit.machine")
    machine = PresubmitMachine()
    machine.receive(run_requested(config_yaml=YAML))
    with pytest.raises(LocalProtocolError):
        machine.receive(Connected())
    assert [r.getMessage() for r in caplog.records] == [
        "< RunRequested",
        "= checking_auth",
        "> CheckAuth",
        "< Connected",
        "! Connected is not allowed in state checking_auth",
    ]


def test_secrets_stay_out_of_reprs() -> None:
    assert "a.b.c" not in repr(LoginFinished(ok=True, jwt="a.b.c"))
    assert YAML not in repr(run_requested(config_yaml=YAML))
    assert YAML not in repr(drive(_TO_SUBMIT).run)


# ----------------------------------------------------------------- API


@pytest.mark.parametrize(
    "name",
    [
        "sleap_rtc_gui.presubmit.events",
        "sleap_rtc_gui.presubmit.machine",
        "sleap_rtc_gui.presubmit.messages",
        "sleap_rtc_gui.presubmit.states",
    ],
)
def test_module_exports(name: str) -> None:
    module = importlib.import_module(name)
    assert len(module.__all__) == len(set(module.__all__))
    for attr in module.__all__:
        assert hasattr(module, attr), attr
    public_classes = {
        attr
        for attr, value in vars(module).items()
        if isinstance(value, type)
        and value.__module__ == name
        and not attr.startswith("_")
    }
    assert public_classes <= set(module.__all__)


# ----------------------------------------------------------------- uploads


def test_labels_the_worker_cannot_see_are_sent_then_submitted() -> None:
    machine = at(S.RESOLVING_LABELS)
    assert machine.receive(UploadRequested()) is S.UPLOADING
    # The resolution dialog answered (it closes itself); the upload starts.
    assert machine.effects() == [UploadLabels(LABELS)]
    assert machine.receive(UploadFinished(STORED)) is S.SUBMITTING
    assert machine.effects() == [
        StopUpload(),
        SubmitJob(
            {
                "type": "train",
                "config_content": YAML,
                "labels_path": LABELS,
                "path_mappings": {LABELS: STORED},
            }
        ),
    ]
    assert machine.run.uploaded
    machine.receive(JobAccepted(JOB_ID))
    assert machine.effects() == [CloseDialog(), StartProgressFeed(JOB_ID)]


def test_sending_is_offered_only_for_a_worker_with_an_upload_area() -> None:
    for uploads in (False, True):
        machine = drive([run_requested(worker_uploads=uploads), *_TO_PATHS[1:]])
        assert machine.run.worker_uploads is uploads
        machine.receive(PathsChecked(LABELS_MISSING))
        assert machine.effects() == [
            ShowPathResolution(LABELS_MISSING, corrections_left=3, can_upload=uploads)
        ]
        machine.receive(LabelsPathEntered(WORKER_LABELS))
        machine.effects()
        machine.receive(PathsChecked(LABELS_MISSING))
        (shown,) = machine.effects()
        assert isinstance(shown, ShowPathResolution)
        assert shown.can_upload is uploads  # every time the dialog opens


def test_a_track_job_maps_its_uploaded_data_too() -> None:
    machine = drive(
        [
            run_requested(),
            ConfigBuilt("", track={"model_paths": ["/srv/models/m"]}),
            AuthChecked(ok=True),
            Connected(),
            PathsChecked(LABELS_MISSING),
            UploadRequested(),
            UploadFinished(STORED, cached=True),
        ]
    )
    assert machine.state is S.SUBMITTING
    assert machine.run.path_mappings == {LABELS: STORED}


def test_a_refused_upload_says_why_and_returns_to_the_dialog() -> None:
    machine = at(S.UPLOADING)
    machine.receive(UploadFailed("FILE_UPLOAD_ERROR::QUOTA_EXCEEDED", "QUOTA_EXCEEDED"))
    effects = machine.effects()
    assert effects[:2] == [StopUpload(), Disconnect()]
    (error,) = errors_of(effects)
    assert "room" in error.message
    assert error.details == "FILE_UPLOAD_ERROR::QUOTA_EXCEEDED"
    assert effects[-1] == ReturnToDialog()
    assert machine.state is S.IDLE


def test_cancelling_the_upload_is_silent_and_closing_the_dialog_stops_it() -> None:
    machine = at(S.UPLOADING)
    machine.receive(UploadCancelled())
    assert machine.effects() == [StopUpload(), Disconnect(), ReturnToDialog()]
    machine = at(S.UPLOADING)
    machine.receive(UserCancelled())
    assert machine.effects() == [StopUpload(), Disconnect()]
    assert machine.state is S.ABORTED
