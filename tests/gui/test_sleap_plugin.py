"""Run Remotely inside the real SLEAP 1.6 ``LearningDialog``.

SLEAP is installed by the test set-up (``make test``), so these tests use SLEAP's
own training dialog, its form, its ``copy()`` and its LossViewer. The end-to-end
test runs the real signaling server, a real worker (the GPU is stated, a
boundary fake; its jobs run on this CPU), a real data channel and real sleap-nn
training of both models of a top-down pipeline.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from PySide6.QtWidgets import QApplication, QDialog, QPushButton, QVBoxLayout
from pytestqt.qtbot import QtBot

from sleap_rtc_core.protocol.states import JobState
from sleap_rtc_core.sample_data import write_tiny_labels
from sleap_rtc_gui import plugin
from sleap_rtc_gui.job_config import LOCAL_ONLY, WORKER_OWNED
from sleap_rtc_gui.presubmit import PresubmitState
from sleap_rtc_gui.presubmit_io import StepTimeouts
from tests.fixtures.timing import async_wait_until, scaled
from tests.gui.conftest import make_client
from tests.gui.rig import WORKER, Rig
from tests.gui.sessions import StaticAuth

os.environ.setdefault("_SLEAP_LD_FIXED", "1")
learning = pytest.importorskip("sleap.gui.learning.dialog")
LearningDialog = learning.LearningDialog


@pytest.fixture
def labels(tmp_path: Path) -> Path:
    return write_tiny_labels(tmp_path / "project" / "labels.pkg.slp")


def learning_dialog(qtbot: QtBot, path: Path | str, **kwargs: Any) -> Any:
    dialog = LearningDialog("training", str(path), **kwargs)
    qtbot.addWidget(dialog)
    return dialog


def remote_button(dialog: Any) -> QPushButton:
    button = dialog.findChild(QPushButton, plugin.BUTTON_NAME)
    assert button is not None
    return button


@pytest.fixture
def wrapped() -> Any:
    """SLEAP's class wrapped for the test, unwrapped after it."""
    opened: list[Any] = []
    assert plugin.install(opened.append)
    assert plugin.installed()
    yield opened
    plugin.uninstall()
    assert not plugin.installed()


def set_epochs(dialog: Any, epochs: int) -> None:
    """Type ``epochs`` into every model tab of SLEAP's form."""
    for name in dialog.shown_tab_names:
        dialog._ensure_tab_initialized(name).set_fields_from_key_val_dict(
            {"trainer_config.max_epochs": epochs}
        )


# ------------------------------------------------------------------ the button


def test_run_remotely_sits_beside_run_and_follows_it(
    qtbot: QtBot, labels: Path, wrapped: list[Any]
) -> None:
    dialog = learning_dialog(qtbot, labels)
    button = remote_button(dialog)
    layout = dialog.run_button.parentWidget().layout()
    assert layout.indexOf(button) == layout.indexOf(dialog.run_button) - 1
    assert button.text() == plugin.BUTTON_TEXT
    assert button.isEnabled() == dialog.run_button.isEnabled()
    dialog.run_button.setEnabled(False)  # SLEAP does this for an invalid form
    assert not button.isEnabled()
    dialog.run_button.setEnabled(True)
    assert button.isEnabled()
    button.click()
    assert wrapped == [dialog]


def test_install_is_idempotent_and_adds_one_button(
    qtbot: QtBot, labels: Path, wrapped: list[Any]
) -> None:
    assert plugin.install(lambda d: None)
    dialog = learning_dialog(qtbot, labels)
    buttons = [
        b for b in dialog.findChildren(QPushButton) if b.text() == plugin.BUTTON_TEXT
    ]
    assert len(buttons) == 1


def test_the_inference_dialog_gets_the_button_too(
    qtbot: QtBot, labels: Path, wrapped: list[Any]
) -> None:
    dialog = LearningDialog("inference", str(labels))
    qtbot.addWidget(dialog)
    button = remote_button(dialog)
    assert not dialog.run_button.isEnabled()  # no trained model yet
    assert not button.isEnabled()


def test_a_dialog_of_another_shape_is_left_alone_and_logged_once(
    qtbot: QtBot, caplog: pytest.LogCaptureFixture
) -> None:
    """SLEAP's dialog changed shape: no run_button, or Run outside a layout."""
    caplog.set_level(logging.WARNING, logger=plugin.__name__)
    plugin._warned.clear()
    bare = QDialog()
    qtbot.addWidget(bare)
    assert plugin.add_run_remotely(bare, lambda d: None) is None
    assert plugin.add_run_remotely(bare, lambda d: None) is None
    loose = QDialog()
    qtbot.addWidget(loose)
    loose.run_button = QPushButton("Run")  # type: ignore[attr-defined]
    QVBoxLayout(loose)
    assert plugin.add_run_remotely(loose, lambda d: None) is None
    warnings = [r.getMessage() for r in caplog.records]
    assert len([w for w in warnings if "no run_button" in w]) == 1
    assert len([w for w in warnings if "not in a box layout" in w]) == 1


# ------------------------------------------------------------------ the form


def without(tree: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """``tree`` without the dotted ``keys``."""
    out = yaml.safe_load(yaml.safe_dump(tree))
    for key in keys:
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return out


def test_the_job_is_what_sleaps_copy_produces(qtbot: QtBot, labels: Path) -> None:
    from sleap_rtc_gui.sleap_form import remote_configs

    dialog = learning_dialog(qtbot, labels)
    assert dialog.current_pipeline == "top-down"
    set_epochs(dialog, 3)
    dialog.copy()
    copied = QApplication.clipboard().text()
    built = remote_configs(dialog)
    assert built.model_types == ("centroid", "centered_instance")
    ours = [yaml.safe_load(text) for text in built.configs]
    # copy() joins one YAML document per head; the heads are top-level blocks.
    sleaps = [yaml.safe_load(doc) for doc in _split_documents(copied)]
    assert len(sleaps) == 2
    for mine, theirs in zip(ours, sleaps, strict=True):
        assert mine["trainer_config"]["max_epochs"] == 3
        assert without(mine, WORKER_OWNED + LOCAL_ONLY) == without(
            theirs, WORKER_OWNED + LOCAL_ONLY
        )
        for key in WORKER_OWNED:  # the worker decides these
            section, _, leaf = key.rpartition(".")
            node = mine
            for part in section.split("."):
                node = node.get(part) or {}
            assert leaf not in node, key


def _split_documents(text: str) -> list[str]:
    """copy()'s text: each head's YAML starts again at ``data_config:``."""
    docs: list[str] = []
    for line in text.splitlines(keepends=True):
        if line.startswith("data_config:"):
            docs.append("")
        if docs:
            docs[-1] += line
    return docs


def test_a_head_reusing_a_local_model_is_refused_clearly(
    qtbot: QtBot, labels: Path
) -> None:
    from sleap_rtc_gui.sleap_form import remote_configs

    dialog = learning_dialog(qtbot, labels)

    class Reused:
        head_name = "centroid"
        dont_retrain = True

    dialog.get_every_head_config_data = lambda form: [Reused()]
    with pytest.raises(ValueError, match="already trained"):
        remote_configs(dialog)


# ------------------------------------------------------------------ end to end


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
    from sleap_rtc_gui.sleap_run import RunParts, SleapRemoteRun

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


def single(dialog: Any) -> None:
    """Choose SLEAP's single-animal pipeline (one model, the fastest to train)."""
    dialog.pipeline_form_widget.current_pipeline = "single"
    assert dialog.shown_tab_names == ["single_instance"]


def target(dialog: Any, key: str) -> None:
    """Pick SLEAP's *Inference Target* (``nothing``, ``suggestions``…)."""
    from sleap.gui.widgets.frame_target_selector import FrameTargetSelection

    dialog.frame_target_selector.set_selection(FrameTargetSelection(target_key=key))


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


def test_frame_lists_become_the_ranges_of_a_track_spec() -> None:
    from sleap_rtc_core.protocol.jobspec_check import parse_frame_ranges
    from sleap_rtc_gui.sleap_form import frame_ranges

    assert frame_ranges([7, 1, 2, 3, 3]) == "1-3,7"
    assert frame_ranges([0]) == "0"
    assert frame_ranges([]) == ""
    assert parse_frame_ranges(frame_ranges([5, 9, 10, 11])) == [(5, 5), (9, 11)]


def test_the_inference_target_becomes_track_specs(qtbot: QtBot, labels: Path) -> None:
    from sleap_rtc_gui.sleap_form import inference_plan

    dialog = learning_dialog(qtbot, labels)
    target(dialog, "nothing")
    assert inference_plan(dialog).specs == ()
    target(dialog, "suggestions")
    [spec] = inference_plan(dialog).specs
    assert spec["frame_filter"] == "suggested"
    video = dialog.labels.videos[0]
    dialog.frame_selection = {"clip": {video: [1, 2, 3, 7]}}
    target(dialog, "clip")
    plan = inference_plan(dialog)
    assert plan.specs == (
        {"exclude_user_labeled": False, "video_index": 0, "frames": "1-3,7"},
    )
    assert plan.params["_prediction_mode"] in ("replace", "add")


def test_label_takes_our_flags_after_the_labels_file() -> None:
    from sleap_rtc_core.cli import build_parser

    args = build_parser().parse_args(
        ["label", "labels.slp", "--room", "r", "--token", "t", "--sleap-arg=--reset"]
    )
    assert (args.labels, args.room, args.token) == ("labels.slp", "r", "t")
    assert args.sleap_arg == ["--reset"]


@pytest.mark.slow
def test_sleap_rtc_label_starts_sleap_with_the_plugin(
    labels: Path, tmp_path: Path
) -> None:
    """The front door: the real ``sleap-rtc label`` process starts SLEAP's main
    window on the labels with Run Remotely installed (stopped after that)."""
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "HOME": str(tmp_path), "QT_QPA_PLATFORM": "offscreen"}
    cmd = [sys.executable, "-m", "sleap_rtc_core.cli", "-v", "label", str(labels)]
    cmd += ["--room", "r", "--token", "t"]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + scaled(90)
        seen: list[str] = []
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if "Launching GUI" in line:
                break
        text = "".join(seen)
        assert "Run Remotely added to LearningDialog" in text
        assert "Launching GUI" in text
        assert proc.poll() is None  # SLEAP's window is up
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(scaled(10))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
