"""The presubmission flow through real widgets: every error popup of the
tables, and sending the labels (the path resolution dialog's **Send it to the
worker**, the progress dialog, its Cancel, a refusal).

The training dialog and its controller are real; the session to the worker is
:class:`tests.gui.sessions.ScriptedSession` (the data channel is built beside
the GUI), so each test scripts what the worker answers (the channel's upload
itself is tested in ``tests/client/test_upload.py``), except at the end, where
a real worker with an upload area (the ``upload_rig``) takes the labels over a
real channel and trains on them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from sleap_rtc_core.errors import (
    ChannelClosed,
    IceFailed,
    JobRejected,
    PeerNotFound,
    UploadRefused,
)
from sleap_rtc_core.sample_data import write_tiny_video_labels
from sleap_rtc_core.worker.files import upload_service
from sleap_rtc_gui.dialogs.training_dialog import TrainingDialog
from sleap_rtc_gui.presubmit import PresubmitState, messages
from sleap_rtc_gui.presubmit_io import FeedOptions, StepTimeouts
from sleap_rtc_gui.session import RemoteSession, UploadingSession, VideoUploadingSession
from tests.fixtures.timing import async_wait_until, scaled
from tests.gui.conftest import make_client
from tests.gui.rig import WORKER, Rig
from tests.gui.sessions import ScriptedSession, StaticAuth, report

LABELS = "/home/me/labels.slp"
NO_FEED = FeedOptions(publish_port=None, controller_port=None)


def make_dialog(
    qtbot: QtBot,
    session: ScriptedSession | None = None,
    auth: StaticAuth | None = None,
    *,
    connect_error: BaseException | None = None,
    labels: str | None = LABELS,
    timeouts: StepTimeouts | None = None,
) -> TrainingDialog:
    session = session or ScriptedSession()

    async def factory(worker_id: str, room: str | None) -> RemoteSession:
        if connect_error is not None:
            raise connect_error
        return session

    dialog = TrainingDialog(
        labels, factory, auth or StaticAuth(), feed=NO_FEED, timeouts=timeouts
    )
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def popup_texts(dialog: TrainingDialog) -> list[tuple[str, str]]:
    return [(p.windowTitle(), p.text()) for p in dialog.controller.popups]


async def run_and_wait(
    dialog: TrainingDialog, state: PresubmitState, *, uploads: bool = False
) -> None:
    dialog.controller.run("w-one", "lab", dialog.labels_path, uploads=uploads)
    await async_wait_until(lambda: dialog.controller.state is state)


async def test_no_worker_selected(qtbot: QtBot) -> None:
    dialog = make_dialog(qtbot)
    dialog.worker_panel.run_button.click()
    assert popup_texts(dialog) == [
        (messages.NO_WORKER_TITLE, messages.NO_WORKER_SELECTED)
    ]
    assert dialog.isVisible()
    assert dialog.worker_panel.isEnabled()


async def test_project_not_saved(qtbot: QtBot) -> None:
    dialog = make_dialog(qtbot, labels=None)
    dialog.controller.run("w-one", "lab", None)
    assert popup_texts(dialog) == [(messages.NO_LABELS_TITLE, messages.NO_LABELS)]


async def test_invalid_options(qtbot: QtBot, monkeypatch: pytest.MonkeyPatch) -> None:
    dialog = make_dialog(qtbot)

    def invalid() -> str:
        raise ValueError("epochs must be at least 1")

    monkeypatch.setattr(dialog, "build_config", invalid)
    dialog.controller.run("w-one", "lab", LABELS)
    assert popup_texts(dialog) == [
        (
            messages.CONFIG_FAILED_TITLE,
            messages.config_failed("epochs must be at least 1"),
        )
    ]


async def test_login_failure_returns_to_the_dialog(qtbot: QtBot) -> None:
    auth = StaticAuth(ok=False)
    auth.login_result = False
    dialog = make_dialog(qtbot, auth=auth)
    dialog.controller.run("w-one", "lab", LABELS)
    await async_wait_until(lambda: bool(dialog.controller.popups))
    assert popup_texts(dialog) == [
        (messages.LOGIN_REQUIRED_TITLE, "Login required. Please try again.")
    ]
    assert dialog.controller.state is PresubmitState.IDLE
    assert auth.logins == 1


async def test_expired_login_opens_the_browser_then_goes_on(qtbot: QtBot) -> None:
    auth = StaticAuth(ok=True, expired=True)
    session = ScriptedSession()
    dialog = make_dialog(qtbot, session, auth)
    await run_and_wait(dialog, PresubmitState.RUNNING)
    assert auth.logins == 1
    assert session.submitted[0]["labels_path"] == LABELS


@pytest.mark.parametrize(
    ("error", "title", "text"),
    [
        (
            IceFailed("ICE failed"),
            messages.CONNECT_FAILED_TITLE,
            "Could not connect to worker. Check that the worker is running.",
        ),
        (
            PeerNotFound("w-one left"),
            messages.NO_WORKER_TITLE,
            messages.NO_WORKER_AVAILABLE,
        ),
    ],
)
async def test_connect_errors(
    qtbot: QtBot, error: BaseException, title: str, text: str
) -> None:
    dialog = make_dialog(qtbot, connect_error=error)
    dialog.controller.run("w-one", "lab", LABELS)
    await async_wait_until(lambda: bool(dialog.controller.popups))
    assert popup_texts(dialog) == [(title, text)]
    assert dialog.controller.popups[0].detailedText() == str(error)


async def test_connect_timeout(qtbot: QtBot) -> None:
    never = asyncio.Event()

    async def slow(worker_id: str, room: str | None) -> RemoteSession:
        await never.wait()
        raise AssertionError("unreachable")

    dialog = TrainingDialog(
        LABELS,
        slow,
        StaticAuth(),
        feed=NO_FEED,
        timeouts=StepTimeouts(connect=0.05),
    )
    qtbot.addWidget(dialog)
    dialog.controller.run("w-one", "lab", LABELS)
    await async_wait_until(lambda: bool(dialog.controller.popups))
    assert popup_texts(dialog) == [
        (messages.TIMED_OUT_TITLE, messages.timed_out(PresubmitState.CONNECTING))
    ]


async def test_channel_lost_while_checking_paths(qtbot: QtBot) -> None:
    session = ScriptedSession()
    session.check_error = ChannelClosed("data channel closed")
    dialog = make_dialog(qtbot, session)
    dialog.controller.run("w-one", "lab", LABELS)
    await async_wait_until(lambda: bool(dialog.controller.popups))
    assert popup_texts(dialog) == [
        (messages.CONNECTION_LOST_TITLE, "Connection lost. Try again.")
    ]
    assert session.closed


@pytest.mark.parametrize(
    ("error", "title", "check"),
    [
        (
            JobRejected(
                "rejected",
                errors=[
                    {
                        "field": "labels_path",
                        "message": "outside the mounts",
                        "code": "PATH_NOT_ALLOWED",
                        "path": "/etc/x",
                    }
                ],
            ),
            messages.JOB_REJECTED_TITLE,
            lambda text: "- labels_path: outside the mounts (PATH_NOT_ALLOWED)" in text,
        ),
        (
            ChannelClosed("gone"),
            messages.CONNECTION_LOST_TITLE,
            lambda text: text == "Connection lost. Try again.",
        ),
    ],
)
async def test_submit_errors(
    qtbot: QtBot, error: BaseException, title: str, check: Callable[[str], bool]
) -> None:
    session = ScriptedSession()
    session.submit_error = error
    dialog = make_dialog(qtbot, session)
    dialog.controller.run("w-one", "lab", LABELS)
    await async_wait_until(lambda: bool(dialog.controller.popups))
    [(shown_title, text)] = popup_texts(dialog)
    assert shown_title == title
    assert check(text)
    assert dialog.isVisible()


async def test_labels_never_found_after_the_corrections(qtbot: QtBot) -> None:
    missing = report(found=False)
    session = ScriptedSession(missing)
    dialog = make_dialog(qtbot, session)
    dialog.controller.run("w-one", "lab", LABELS)
    for attempt in range(3):
        await async_wait_until(lambda: dialog.controller.path_dialog is not None)
        path_dialog = dialog.controller.path_dialog
        assert path_dialog is not None
        assert path_dialog.labels_mode
        path_dialog.labels_box.setEditText(f"/mnt/try{attempt}/labels.slp")
        path_dialog.ok_button.click()
        answered = path_dialog
        await async_wait_until(
            lambda answered=answered: dialog.controller.path_dialog is not answered
        )
    await async_wait_until(lambda: bool(dialog.controller.popups))
    assert popup_texts(dialog) == [
        (messages.LABELS_NOT_FOUND_TITLE, messages.labels_not_found(3))
    ]
    assert session.checked[1:] == [f"/mnt/try{i}/labels.slp" for i in range(3)]


async def test_cancelling_path_resolution_is_silent(qtbot: QtBot) -> None:
    session = ScriptedSession(report(missing=("/home/me/a.mp4",)))
    dialog = make_dialog(qtbot, session)
    await run_and_wait(dialog, PresubmitState.RESOLVING_VIDEOS)
    path_dialog = dialog.controller.path_dialog
    assert path_dialog is not None
    path_dialog.reject()
    assert dialog.controller.state is PresubmitState.IDLE
    assert dialog.controller.popups == []
    assert dialog.worker_panel.isEnabled()


async def _accepted(qtbot: QtBot) -> tuple[TrainingDialog, ScriptedSession]:
    session = ScriptedSession()
    dialog = make_dialog(qtbot, session)
    await run_and_wait(dialog, PresubmitState.RUNNING)
    return dialog, session


async def test_job_failed_during_training(qtbot: QtBot) -> None:
    dialog, session = await _accepted(qtbot)
    assert not dialog.isVisible()  # closed once accepted
    session.fail({"message": "CUDA out of memory", "exit_code": 1})
    await async_wait_until(lambda: dialog.controller.state is PresubmitState.FAILED)
    [popup] = dialog.controller.popups
    assert (popup.windowTitle(), popup.text()) == (
        messages.JOB_FAILED_TITLE,
        "CUDA out of memory",
    )
    assert "exit_code: 1" in popup.detailedText()
    await async_wait_until(lambda: session.closed)


async def test_channel_lost_during_training(qtbot: QtBot) -> None:
    dialog, session = await _accepted(qtbot)
    session.feed.put_nowait(None)  # the stream ends without JOB_COMPLETE
    await async_wait_until(lambda: dialog.controller.state is PresubmitState.FAILED)
    assert popup_texts(dialog) == [
        (messages.CONNECTION_LOST_TITLE, messages.CONNECTION_LOST_DURING_TRAINING)
    ]


async def test_cancel_aborts_and_closes_the_channel(qtbot: QtBot) -> None:
    session = ScriptedSession(report(missing=("/home/me/a.mp4",)))
    dialog = make_dialog(qtbot, session)
    await run_and_wait(dialog, PresubmitState.RESOLVING_VIDEOS)
    dialog.cancel_button.click()
    assert dialog.controller.state is PresubmitState.ABORTED
    assert dialog.controller.path_dialog is None
    await async_wait_until(lambda: session.closed)
    assert not dialog.isVisible()


async def test_done_reports_the_model_path(qtbot: QtBot) -> None:
    dialog, session = await _accepted(qtbot)
    done: list[Any] = []
    dialog.controller.training_done.connect(done.append)
    session.complete({"job_id": "job_0000abcd", "output_path": "/models/run1"})
    await async_wait_until(lambda: done == ["/models/run1"])
    assert dialog.controller.state is PresubmitState.DONE


# ------------------------------------------------------------------ sending the labels

STORED = "/srv/uploads/sha256/" + "ab" * 32 + "/labels.pkg.slp"
SIZE = 40_000_000


class UploadingScripted(ScriptedSession):
    """Also uploads: reports half the file, then waits for ``go`` (or fails
    with ``error``)."""

    def __init__(self) -> None:
        super().__init__(report(LABELS, found=False))
        self.go = asyncio.Event()
        self.error: BaseException | None = None
        self.uploads: list[str] = []
        self.cancelled_uploads = 0

    async def upload_labels(
        self, labels_path: str, on_progress: Callable[[int, int], None]
    ) -> tuple[str, bool]:
        self.uploads.append(labels_path)
        on_progress(0, SIZE)
        on_progress(SIZE // 2, SIZE)
        try:
            await self.go.wait()
        except asyncio.CancelledError:
            self.cancelled_uploads += 1
            raise
        if self.error is not None:
            raise self.error
        on_progress(SIZE, SIZE)
        return STORED, False


async def test_the_published_upload_area_decides_what_the_dialog_offers(
    qtbot: QtBot,
) -> None:
    """The worker panel's metadata reaches the path resolution dialog."""
    for uploads in (False, True):
        session = ScriptedSession(report(LABELS, found=False))
        dialog = make_dialog(qtbot, session)
        properties = {"status": "available", **({"uploads": True} if uploads else {})}
        panel = dialog.worker_panel
        metadata = {"properties": properties}
        panel.directory.load(
            [{"peer_id": "w-one", "role": "worker", "metadata": metadata}]
        )
        panel.set_workers(panel.directory.workers)
        assert dialog.worker_panel.select_worker("w-one")
        dialog.worker_panel.run_button.click()
        await async_wait_until(
            lambda d=dialog: d.controller.state is PresubmitState.RESOLVING_LABELS
        )
        path_dialog = dialog.controller.path_dialog
        assert path_dialog is not None
        assert path_dialog.upload_button.isVisible() is uploads
        path_dialog.reject()  # Cancel: the run ends and closes its session
        await async_wait_until(lambda s=session: s.closed)


class VideoUploadingScripted(UploadingScripted):
    """Also sends a ``.slp`` with its videos (at once)."""

    async def upload_labels_with_videos(
        self, labels_path: str, on_progress: Callable[[int, int], None]
    ) -> tuple[str, bool, dict[str, str]]:
        self.uploads.append(f"videos:{labels_path}")
        on_progress(SIZE, SIZE)
        return STORED_SLP, False, {"/home/me/a.mp4": STORED_VIDEO}


STORED_SLP = "/srv/uploads/sha256/" + "cd" * 32 + "/labels.slp"
STORED_VIDEO = "/srv/uploads/sha256/" + "ef" * 32 + "/a.mp4"


async def test_labels_sent_with_their_videos_map_each_video(qtbot: QtBot) -> None:
    session = VideoUploadingScripted()
    assert isinstance(session, VideoUploadingSession)
    dialog = make_dialog(qtbot, session)
    await run_and_wait(dialog, PresubmitState.RESOLVING_LABELS, uploads=True)
    path_dialog = dialog.controller.path_dialog
    assert path_dialog is not None
    path_dialog.upload_videos_button.click()
    await async_wait_until(lambda: dialog.controller.state is PresubmitState.RUNNING)
    (spec,) = session.submitted
    assert spec["path_mappings"] == {LABELS: STORED_SLP, "/home/me/a.mp4": STORED_VIDEO}
    assert session.uploads == [f"videos:{LABELS}"]


async def _uploading(qtbot: QtBot) -> tuple[object, UploadingScripted]:
    session = UploadingScripted()
    assert isinstance(session, UploadingSession)
    dialog = make_dialog(qtbot, session)
    await run_and_wait(dialog, PresubmitState.RESOLVING_LABELS, uploads=True)
    path_dialog = dialog.controller.path_dialog
    assert path_dialog is not None
    path_dialog.upload_button.click()
    assert dialog.controller.state is PresubmitState.UPLOADING
    await async_wait_until(lambda: bool(session.uploads))
    progress = dialog.controller.upload_dialog
    assert progress is not None
    assert progress.bar.value() == 50
    return dialog, session


async def test_sent_labels_are_submitted_by_their_stored_path(qtbot: QtBot) -> None:
    dialog, session = await _uploading(qtbot)
    session.go.set()
    await async_wait_until(lambda: dialog.controller.state is PresubmitState.RUNNING)
    (spec,) = session.submitted
    assert spec["labels_path"] == LABELS
    assert spec["path_mappings"] == {LABELS: STORED}
    assert dialog.controller.upload_dialog is None
    assert session.uploads == [LABELS]


async def test_cancel_stops_the_upload_and_returns_silently(qtbot: QtBot) -> None:
    dialog, session = await _uploading(qtbot)
    progress = dialog.controller.upload_dialog
    progress.cancel_button.click()
    assert dialog.controller.state is PresubmitState.IDLE
    await async_wait_until(lambda: session.cancelled_uploads == 1)
    await async_wait_until(lambda: session.closed)
    assert dialog.controller.popups == []
    assert session.submitted == []
    assert dialog.controller.upload_dialog is None


async def test_a_refusal_says_what_it_means(qtbot: QtBot) -> None:
    dialog, session = await _uploading(qtbot)
    session.error = UploadRefused("no upload area here", code="NO_UPLOAD_AREA")
    session.go.set()
    await async_wait_until(lambda: dialog.controller.state is PresubmitState.IDLE)
    (popup,) = dialog.controller.popups
    assert popup.windowTitle() == messages.UPLOAD_FAILED_TITLE
    assert popup.text() == messages.UPLOAD_REFUSALS["NO_UPLOAD_AREA"]
    assert session.submitted == []


@pytest.mark.slow
@pytest.mark.parametrize("with_videos", [False, True], ids=["package", "videos"])
async def test_labels_sent_to_a_real_worker_train_there(
    qtbot: QtBot,
    upload_rig: Rig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    with_videos: bool,
    upload_progress: list[tuple[int, int]],
) -> None:
    """The worker's mount does not hold the labels: the dialog offers to send
    them, shows the upload, and the job trains on the stored package (or on
    the labels as they are and their video, stored where the job may read
    them)."""
    rig = upload_rig
    assert rig.upload_dir is not None
    monkeypatch.setattr(upload_service, "SEGMENT_SIZE", 8 << 10)  # several steps
    labels, video = await asyncio.to_thread(
        write_tiny_video_labels, tmp_path / "home" / "labels.slp", n_frames=6
    )
    assert not labels.is_relative_to(rig.project.mount)
    progress = upload_progress

    panel_client = make_client(rig.service, rig.room)
    await rig.stack.enter_async_context(panel_client)
    dialog = TrainingDialog(
        str(labels),
        rig.factory(),
        StaticAuth(),
        rooms=[rig.room.room_id],
        feed=FeedOptions(publish_port=None, controller_port=None),
        timeouts=StepTimeouts(connect=scaled(20), check_paths=scaled(20)),
    )
    qtbot.addWidget(dialog)
    rig.stack.push_async_callback(dialog.worker_panel.bridge.aclose)
    rig.stack.push_async_callback(dialog.controller.aclose)
    done: list[Any] = []
    dialog.controller.training_done.connect(done.append)
    dialog.epochs_box.setValue(1)
    dialog.show()
    dialog.worker_panel.watch(panel_client)
    await async_wait_until(lambda: dialog.worker_panel.select_worker(WORKER))
    chosen = dialog.worker_panel.selected_worker()
    assert chosen is not None
    assert chosen.accepts_uploads
    dialog.worker_panel.run_button.click()

    await async_wait_until(
        lambda: dialog.controller.path_dialog is not None, scaled(20)
    )
    paths = dialog.controller.path_dialog
    assert paths is not None
    assert dialog.controller.state is PresubmitState.RESOLVING_LABELS
    assert paths.upload_button.isVisible()
    (paths.upload_videos_button if with_videos else paths.upload_button).click()
    assert dialog.controller.upload_dialog is not None

    await async_wait_until(lambda: not dialog.isVisible(), scaled(30))
    assert dialog.controller.upload_dialog is None
    assert len(progress) > 2  # one per verified step
    total = progress[-1][1]
    assert progress[-1] == (total, total)
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)
    stored = Path(dialog.controller.machine.run.path_mappings[str(labels)])
    assert stored.is_relative_to(rig.upload_dir)
    assert stored.name == ("labels.slp" if with_videos else "labels.pkg.slp")
    mappings = dialog.controller.machine.run.path_mappings
    if with_videos:
        stored_video = Path(mappings[str(video)])
        assert stored_video.is_relative_to(rig.upload_dir / "sha256")
        same = await asyncio.to_thread(
            lambda: stored_video.read_bytes() == video.read_bytes()
        )
        assert same
    else:
        assert str(video) not in mappings

    # Generous: sleap-nn starts, trains and exports on a CPU that may be busy.
    await async_wait_until(lambda: dialog.controller.machine.finished, scaled(300))
    assert dialog.controller.state is PresubmitState.DONE, dialog.controller.machine.run
    [model_path] = done
    model_dir = Path(model_path)
    assert model_dir.is_relative_to(rig.upload_dir / "models")
    assert await asyncio.to_thread(lambda: list(model_dir.glob("*.ckpt")))
    assert dialog.controller.popups == []
    await async_wait_until(lambda: dialog.controller.session is None)
    await rig.settle("gui")  # the session's client left, the panel's stays
