"""Sending the labels from the training dialog: the path resolution dialog's
**Send it to the worker**, the progress dialog, its Cancel, a refusal.

The training dialog, its controller and every dialog are real widgets; the
session is a :class:`tests.gui.sessions.ScriptedSession` that also uploads
(the channel's upload itself is tested in ``tests/client/test_upload.py``),
except at the end, where a real worker with an upload area (the
``upload_rig``) takes the labels over a real channel and trains on them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from sleap_rtc_core.errors import UploadRefused
from sleap_rtc_core.sample_data import write_tiny_video_labels
from sleap_rtc_core.worker.files import upload_service
from sleap_rtc_gui.dialogs.path_resolution import (
    NO_UPLOAD_AREA_HINT,
    SEND_INSTEAD_HINT,
    PathResolutionDialog,
)
from sleap_rtc_gui.dialogs.training_dialog import TrainingDialog
from sleap_rtc_gui.dialogs.upload_progress import UploadProgressDialog
from sleap_rtc_gui.presubmit import PresubmitState, messages
from sleap_rtc_gui.presubmit_io import FeedOptions, StepTimeouts
from sleap_rtc_gui.session import UploadingSession, VideoUploadingSession
from tests.fixtures.timing import async_wait_until, scaled
from tests.gui.conftest import make_client
from tests.gui.rig import WORKER, Rig
from tests.gui.sessions import ScriptedSession, StaticAuth, report
from tests.gui.test_presubmit_io import LABELS, make_dialog, run_and_wait

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


def test_the_labels_dialog_offers_to_send_the_file(qtbot: QtBot) -> None:
    dialog = PathResolutionDialog(report(LABELS, found=False), 3, can_upload=True)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.upload_button.isVisible()
    assert dialog.upload_label.text() == SEND_INSTEAD_HINT
    with qtbot.waitSignal(dialog.upload_requested):
        dialog.upload_button.click()
    assert not dialog.isVisible()
    videos = PathResolutionDialog(report(missing=("/home/me/a.mp4",)), can_upload=True)
    qtbot.addWidget(videos)
    assert videos.upload_button.isHidden()


def test_a_slp_may_go_with_its_videos_a_package_only_as_it_is(qtbot: QtBot) -> None:
    dialog = PathResolutionDialog(report(LABELS, found=False), 3, can_upload=True)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.upload_videos_button.isVisible()
    with qtbot.waitSignal(dialog.upload_with_videos_requested):
        dialog.upload_videos_button.click()
    assert not dialog.isVisible()
    package = PathResolutionDialog(
        report("/home/me/p.pkg.slp", found=False), 3, can_upload=True
    )
    qtbot.addWidget(package)
    package.show()
    assert package.upload_button.isVisible()
    assert package.upload_videos_button.isHidden()
    none = PathResolutionDialog(report(LABELS, found=False), 3)
    qtbot.addWidget(none)
    none.show()
    assert none.upload_videos_button.isHidden()


def test_a_worker_without_an_upload_area_is_not_offered_the_file(
    qtbot: QtBot,
) -> None:
    dialog = PathResolutionDialog(report(LABELS, found=False), 3)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.upload_button.isHidden()
    assert dialog.upload_label.isVisible()
    assert dialog.upload_label.text() == NO_UPLOAD_AREA_HINT
    requests: list[object] = []
    dialog.upload_requested.connect(lambda: requests.append(None))
    dialog.upload_button.click()  # hidden, and ignored if clicked anyway
    assert requests == []
    assert dialog.isVisible()


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


def test_progress_shows_bytes_rate_and_eta_and_cancel_says_so(qtbot: QtBot) -> None:
    now = [0.0]
    dialog = UploadProgressDialog("labels.pkg.slp", clock=lambda: now[0])
    qtbot.addWidget(dialog)
    dialog.set_progress(0, SIZE)
    now[0] = 4.0
    dialog.set_progress(SIZE // 4, SIZE)
    assert dialog.bar.value() == 25
    assert dialog.status_label.text() == "10.0/40.0 MB  2.5 MB/s  ETA 12 s"
    with qtbot.waitSignal(dialog.cancelled):
        dialog.cancel_button.click()


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


# ------------------------------------------------------------------ a real worker


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
