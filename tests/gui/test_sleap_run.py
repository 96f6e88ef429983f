"""Run Remotely from the real SLEAP 1.6 ``LearningDialog``, end to end.

SLEAP is installed by the test set-up (``make test``), so these tests use SLEAP's
own training dialog, its form and its LossViewer. They run the real signaling
server, a real worker (the GPU is stated, a boundary fake; its jobs run on this
CPU), a real data channel and real sleap-nn training and inference.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from pytestqt.qtbot import QtBot

from sleap_rtc_core.protocol.states import JobState
from sleap_rtc_core.sample_data import write_tiny_labels
from sleap_rtc_gui.presubmit import PresubmitState
from sleap_rtc_gui.presubmit_io import StepTimeouts
from sleap_rtc_gui.sleap_run import (
    RunParts,
    SleapRemoteRun,
    merge_predictions,
    pipeline_summary,
)
from tests.fixtures.timing import async_wait_until, scaled
from tests.gui.conftest import make_client
from tests.gui.learning import (
    LearningDialog,
    learning_dialog,
    set_epochs,
    single,
    target,
)
from tests.gui.rig import WORKER, Rig
from tests.gui.sessions import StaticAuth


def test_the_panel_says_which_pipeline_runs(qtbot: QtBot, labels: Path) -> None:
    dialog = learning_dialog(qtbot, labels)
    assert pipeline_summary(dialog) == (
        "top-down (centroid, centered_instance), with the settings of SLEAP's "
        "training dialog. The worker picks its GPU."
    )
    predict = LearningDialog("inference", str(labels))
    qtbot.addWidget(predict)
    single(predict)
    assert pipeline_summary(predict).startswith(
        "single (single_instance): predict with the trained models"
    )

    class Bare:  # a dialog of another SLEAP version, without these attributes
        pass

    assert pipeline_summary(Bare()).startswith("the chosen pipeline, with")


def test_predictions_join_the_open_labels_on_the_projects_videos(
    qtbot: QtBot, tmp_path: Path
) -> None:
    """SLEAP's own merge: frames predicted on the worker's copy of the video
    come back on the project's video (by index, else by file name)."""
    import numpy as np
    import sleap_io as sio

    path = write_tiny_labels(tmp_path / "p" / "labels.pkg.slp", suggestions=3)
    dialog = learning_dialog(qtbot, path)
    merged: list[int] = []
    dialog._handle_learning_finished.connect(merged.append)
    labels = dialog.labels
    [video] = labels.videos
    skeleton = labels.skeletons[0]
    on_worker = sio.Video(filename="/worker/copy/" + Path(video.filename).name)
    elsewhere = sio.Video(filename="/worker/other.mp4")
    points = np.full((len(skeleton.nodes), 2), 10.0)

    def predicted(frame_idx: int, on: sio.Video) -> sio.LabeledFrame:
        instance = sio.PredictedInstance.from_numpy(points, skeleton=skeleton)
        return sio.LabeledFrame(video=on, frame_idx=frame_idx, instances=[instance])

    frames = [(0, predicted(20, on_worker)), (None, predicted(21, on_worker))]
    frames.append((None, predicted(22, elsewhere)))  # no match: kept as it is
    params = {"_prediction_mode": "add"}
    assert merge_predictions(dialog, frames, params, ["/models/x"]) == 3
    assert merged == [3]
    mine = {lf.frame_idx for lf in labels.labeled_frames if lf.predicted_instances}
    assert {20, 21} <= mine
    assert all(
        lf.video is video
        for lf in labels.labeled_frames
        if lf.predicted_instances and lf.frame_idx in (20, 21)
    )


@pytest.mark.slow
async def test_top_down_from_sleaps_dialog_trains_both_models_into_the_project(
    qtbot: QtBot, rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """Run Remotely in SLEAP's dialog → PathResolutionDialog → SLEAP's
    LossViewer → both models in the project's models/ → SLEAP lists them."""
    import sleap_io as sio

    project = rig.project
    labels = sio.load_slp(str(project.labels))  # the moved video stays closed
    dialog = learning_dialog(qtbot, project.labels, labels=labels)
    assert dialog.current_pipeline == "top-down"
    set_epochs(dialog, 1)

    client = make_client(rig.service, rig.room, "gui-panel")
    await rig.stack.enter_async_context(client)
    run = await start_remote_run(qtbot, rig, dialog, client, wait_viewer=False)

    # The second video was moved: SLEAP's dialog is still open while it's fixed.
    controller = run.controller
    await async_wait_until(lambda: controller.path_dialog is not None, scaled(20))
    assert dialog.isVisible()
    paths = controller.path_dialog
    assert paths is not None
    assert paths.worker_path(str(project.missing)) == str(project.moved)
    paths.ok_button.click()
    [(_, _, _, status)] = run.panel.worker_panel.row_texts()
    assert status.endswith("sees the labels")

    # Accepted: SLEAP's dialog closes and SLEAP's own LossViewer draws epochs.
    await async_wait_until(lambda: run.viewer is not None, scaled(20))
    assert not dialog.isVisible()
    viewer = run.viewer
    await async_wait_until(lambda: viewer.last_epoch_val_loss is not None, scaled(120))
    await async_wait_until(lambda: run.message is not None, scaled(180))
    assert controller.state is PresubmitState.DONE
    assert controller.popups == []

    # Both models, SLEAP-named, in models/ beside the labels.
    models = project.labels.parent / "models"
    names = sorted(p.name for p in models.iterdir())
    assert [n.rsplit(".", 2)[-2] for n in names] == ["centered_instance", "centroid"]
    for folder in run.models:
        assert Path(folder).parent == models
        assert (Path(folder) / "best.ckpt").is_file()
        trained = yaml.safe_load((Path(folder) / "training_config.yaml").read_text())
        assert trained["trainer_config"]["max_epochs"] == 1
        assert trained["trainer_config"]["trainer_accelerator"] == "cpu"
    assert "models are in" in run.message.text()

    # SLEAP's training dialog lists them, and loads each into its form without
    # an error (pytest-qt fails the test on an exception in a Qt slot).
    caplog.clear()
    again = learning_dialog(qtbot, project.labels, labels=labels)
    again.pipeline_form_widget.current_pipeline = "top-down"
    assert again.shown_tab_names == ["centroid", "centered_instance"]
    for head in again.shown_tab_names:
        trained = [
            info
            for info in again._cfg_getter.get_filtered_configs(head_filter=head)
            if info.has_trained_model
        ]
        assert [Path(info.path).parent.name for info in trained] == [
            n for n in names if f".{head}." in n
        ]
        again.tabs[head].acceptSelectedConfigInfo(trained[0])
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    await rig.settle("gui-panel")


async def start_remote_run(
    qtbot: QtBot, rig: Rig, dialog: Any, client: Any, *, wait_viewer: bool = True
) -> Any:
    """Run Remotely on ``dialog`` (SLEAP's) to the rig's worker, as a labeler;
    with ``wait_viewer``, until SLEAP's LossViewer shows the accepted job."""

    async def connect_room(room: str) -> Any:
        return client

    parts = RunParts(rig.factory(), StaticAuth(), connect_room, [rig.room.room_id])
    run = SleapRemoteRun(dialog, parts)
    run.panel.controller.timeouts = StepTimeouts(
        connect=scaled(20), check_paths=scaled(20)
    )
    qtbot.addWidget(run.panel)
    rig.stack.push_async_callback(run.panel.worker_panel.bridge.aclose)
    rig.stack.push_async_callback(run.panel.controller.aclose)
    dialog.show()
    run.show()
    panel = run.panel.worker_panel
    await async_wait_until(lambda: panel.select_worker(WORKER), scaled(10))
    panel.run_button.click()
    if wait_viewer:
        await async_wait_until(lambda: run.viewer is not None, scaled(30))
    return run


@pytest.mark.slow
async def test_predicting_suggestions_after_training_merges_into_the_open_labels(
    qtbot: QtBot, rig: Rig
) -> None:
    import sleap_io as sio

    path = await asyncio.to_thread(
        write_tiny_labels, rig.project.mount / "fresh" / "labels.pkg.slp", suggestions=4
    )
    dialog = learning_dialog(qtbot, path)
    single(dialog)
    set_epochs(dialog, 1)
    target(dialog, "suggestions")
    merged: list[int] = []
    dialog._handle_learning_finished.connect(merged.append)
    client = make_client(rig.service, rig.room, "gui-panel")
    await rig.stack.enter_async_context(client)

    run = await start_remote_run(qtbot, rig, dialog, client)
    await async_wait_until(lambda: run.message is not None, scaled(240))
    assert run.controller.state is PresubmitState.DONE
    assert merged == [4]
    assert "4 frames were predicted" in run.message.text()
    suggested = {s.frame_idx for s in dialog.labels.suggestions}
    predicted = {
        lf.frame_idx for lf in dialog.labels.labeled_frames if lf.predicted_instances
    }
    assert predicted == suggested
    assert all(lf.video is dialog.labels.videos[0] for lf in dialog.labels)
    on_disk = await asyncio.to_thread(sio.load_slp, str(path))
    assert not any(lf.predicted_instances for lf in on_disk)  # SLEAP saves, not us

    # SLEAP's inference dialog: the model just trained, Run Remotely, the user's
    # frames predicted on the worker and merged into the same open labels.
    predict = LearningDialog("inference", str(path), labels=dialog.labels)
    qtbot.addWidget(predict)
    predict._handle_learning_finished.connect(merged.append)
    single(predict)
    target(predict, "user_labeled")
    assert predict.run_button.isEnabled()  # SLEAP found the trained model
    before = len(dialog.labels.labeled_frames)
    run = await start_remote_run(qtbot, rig, predict, client, wait_viewer=False)
    await async_wait_until(lambda: run.message is not None, scaled(240))
    assert run.viewer is None  # SLEAP shows no LossViewer for inference
    assert run.controller.state is PresubmitState.DONE
    assert merged == [4, 20]
    assert "20 frames were predicted" in run.message.text()
    assert len(dialog.labels.labeled_frames) == before  # same frames, more preds
    assert len([lf for lf in dialog.labels if lf.predicted_instances]) == 24
    await rig.settle("gui-panel")


@pytest.mark.slow
async def test_loss_viewers_stop_early_and_cancel_reach_the_worker(
    qtbot: QtBot, rig: Rig
) -> None:
    path = await asyncio.to_thread(
        write_tiny_labels, rig.project.mount / "long" / "labels.pkg.slp"
    )
    client = make_client(rig.service, rig.room, "gui-panel")
    await rig.stack.enter_async_context(client)

    async def long_run_with_an_epoch_done() -> tuple[Any, Any]:
        dialog = learning_dialog(qtbot, path)
        single(dialog)
        set_epochs(dialog, 500)
        target(dialog, "nothing")
        run = await start_remote_run(qtbot, rig, dialog, client)
        await async_wait_until(lambda: run.viewer.epoch >= 1, scaled(120))
        return run, run.viewer

    # Stop Early: the worker stops after the epoch, and the model is kept.
    run, viewer = await long_run_with_an_epoch_done()
    viewer.stop_button.click()
    await async_wait_until(lambda: run.message is not None, scaled(120))
    assert run.controller.state is PresubmitState.DONE
    [stopped] = rig.worker.jobs.jobs.values()
    assert stopped.state is JobState.SUCCEEDED
    assert [Path(m).name.split(".")[1] for m in run.models] == ["single_instance"]

    # Cancel Training: the job is cancelled on the worker; nothing is kept.
    run, viewer = await long_run_with_an_epoch_done()
    viewer.cancel_button.click()
    await async_wait_until(lambda: len(rig.worker.jobs.jobs) == 2, scaled(10))
    await async_wait_until(
        lambda: list(rig.worker.jobs.jobs.values())[1].state is JobState.CANCELLED,
        scaled(60),
    )
    await async_wait_until(lambda: run.controller.machine.finished, scaled(30))
    assert run.controller.state is not PresubmitState.DONE
    assert run.message is None
    await async_wait_until(lambda: not viewer.isVisible(), scaled(10))
    await rig.settle("gui-panel")


@pytest.mark.slow
async def test_labels_a_worker_cannot_see_are_sent_once_from_sleaps_dialog(
    qtbot: QtBot,
    upload_rig: Rig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    upload_progress: list[tuple[int, int]],
) -> None:
    """A worker that shares no storage with the labels (it has an upload
    area): Run Remotely offers sending them, shows the upload, trains on the
    package and feeds SLEAP's LossViewer; a second Run Remotely on the same
    labels asks by hash and sends nothing."""
    from sleap_rtc_core.sample_data import write_tiny_video_labels
    from sleap_rtc_core.worker.files import upload_service
    from sleap_rtc_core.worker.files.uploads import UploadArea

    rig = upload_rig
    assert rig.upload_dir is not None
    monkeypatch.setattr(upload_service, "SEGMENT_SIZE", 8 << 10)  # several steps
    path, _video = await asyncio.to_thread(
        write_tiny_video_labels, tmp_path / "laptop" / "labels.slp", n_frames=6
    )
    assert not path.is_relative_to(rig.project.mount)
    begun: list[str] = []  # uploads the worker started receiving
    begin = UploadArea.begin

    def counted(self: UploadArea, uploader: str, sha256: str, *a: Any, **k: Any) -> Any:
        begun.append(sha256)
        return begin(self, uploader, sha256, *a, **k)

    monkeypatch.setattr(UploadArea, "begin", counted)
    progress = upload_progress
    client = make_client(rig.service, rig.room, "gui-panel")
    await rig.stack.enter_async_context(client)

    async def run_remotely(epochs: int) -> Any:
        dialog = learning_dialog(qtbot, path)
        single(dialog)
        set_epochs(dialog, epochs)
        target(dialog, "nothing")
        run = await start_remote_run(qtbot, rig, dialog, client, wait_viewer=False)
        controller = run.controller
        await async_wait_until(lambda: controller.path_dialog is not None, scaled(20))
        paths = controller.path_dialog
        assert controller.state is PresubmitState.RESOLVING_LABELS
        assert paths.upload_button.isVisible()  # the worker has an upload area
        assert dialog.isVisible()
        paths.upload_button.click()
        assert controller.state is PresubmitState.UPLOADING
        assert controller.upload_dialog is not None
        await async_wait_until(lambda: run.viewer is not None, scaled(60))
        assert controller.upload_dialog is None
        assert not dialog.isVisible()
        return run

    # First run: the package goes up in verified steps and trains there.
    run = await run_remotely(1)
    assert len(begun) == 1
    assert len(progress) > 2
    total = progress[-1][1]
    assert progress[-1] == (total, total)
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)
    stored = Path(run.controller.machine.run.path_mappings[str(path)])
    assert stored.is_relative_to(rig.upload_dir / "sha256")
    viewer = run.viewer
    await async_wait_until(lambda: viewer.last_epoch_val_loss is not None, scaled(180))
    await async_wait_until(lambda: run.message is not None, scaled(180))
    assert run.controller.state is PresubmitState.DONE, run.controller.machine.run
    assert run.controller.popups == []
    [model] = run.models  # came home beside the labels, where SLEAP lists them
    assert Path(model).parent == path.parent / "models"
    assert (Path(model) / "best.ckpt").is_file()

    # Second run on the same labels: asked by hash, nothing is sent again.
    progress.clear()
    run = await run_remotely(500)
    assert begun == begun[:1]  # the worker received no second upload
    assert Path(run.controller.machine.run.path_mappings[str(path)]) == stored
    assert progress[-1] == (total, total)
    viewer = run.viewer
    viewer.cancel_button.click()
    await async_wait_until(lambda: run.controller.machine.finished, scaled(60))
    assert run.controller.state is not PresubmitState.DONE
    await rig.settle("gui-panel")
