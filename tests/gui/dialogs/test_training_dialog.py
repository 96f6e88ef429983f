"""The happy path: Run Remotely → closed dialog → progress on LossViewer's port.

Real: the signaling server, the worker the list shows, the widgets, the ZMQ
sockets (a SUB and a PUB bound like SLEAP's LossViewer). Scripted: the session
to the worker (:mod:`tests.gui.sessions`; the data channel is built beside us).
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest
import yaml
import zmq
import zmq.asyncio
from pytestqt.qtbot import QtBot

from sleap_rtc_core.signaling.service import Service
from sleap_rtc_gui.dialogs.training_dialog import (
    MODEL_TYPES,
    TrainingDialog,
    build_training_config,
)
from sleap_rtc_gui.presubmit import PresubmitState
from sleap_rtc_gui.presubmit_io import FeedOptions
from sleap_rtc_gui.session import RemoteSession
from tests.fixtures.signaling import RoomCreds
from tests.fixtures.timing import async_wait_until, scaled
from tests.gui.conftest import make_client, make_worker
from tests.gui.sessions import ScriptedSession, StaticAuth

EPOCH_END = (
    '{"what": "", "event": "epoch_end", "logs": {"train/loss": 0.5, '
    '"val/loss": 0.4}, "epoch": 0}'
)


def test_config_carries_the_options() -> None:
    config = yaml.safe_load(build_training_config("centroid", 7, 8, 0.5))
    assert config["trainer_config"]["max_epochs"] == 7
    assert config["trainer_config"]["train_data_loader"]["batch_size"] == 8
    assert config["data_config"]["preprocessing"]["scale"] == 0.5
    assert config["model_config"]["head_configs"]["centroid"] is not None
    with pytest.raises(ValueError, match="scale"):
        build_training_config("centroid", 1, 1, 0.0)


@pytest.mark.parametrize("model_type", [value for _, value in MODEL_TYPES])
def test_the_standalone_dialog_trains_real_models(model_type: str) -> None:
    """SLEAP's profile for the type (SLEAP is installed here), never the demo's
    tiny network, and nothing about the hardware: the worker decides."""
    from importlib.resources import files

    from sleap_rtc_gui.job_config import SLEAP_PROFILES

    config = yaml.safe_load(build_training_config(model_type, 3, 2, 1.0))
    profile = yaml.safe_load(
        (files("sleap") / "training_profiles" / SLEAP_PROFILES[model_type]).read_text()
    )
    unet = config["model_config"]["backbone_config"]["unet"]
    assert (
        unet["filters"] == profile["model_config"]["backbone_config"]["unet"]["filters"]
    )
    assert unet["filters"] > 8  # the demo's toy has 8
    trainer = config["trainer_config"]
    for owned in ("trainer_accelerator", "trainer_devices", "ckpt_dir", "run_name"):
        assert owned not in trainer
    assert "publish_port" not in trainer["zmq"]


def test_without_sleap_the_defaults_are_sleap_nns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sleap_rtc_gui import job_config

    monkeypatch.setattr(job_config, "_sleap_profile", lambda model_type: None)
    config = yaml.safe_load(build_training_config("single_instance", 5, 4, 1.0))
    assert config["model_config"]["backbone_config"]["unet"]["filters"] == 32
    assert config["trainer_config"]["max_epochs"] == 5


async def test_run_remotely_to_loss_viewer(
    qtbot: QtBot, service: Service, room: RoomCreds, stack: AsyncExitStack
) -> None:
    ctx = zmq.asyncio.Context.instance()
    viewer_sub = ctx.socket(zmq.SUB)
    viewer_sub.subscribe("")
    viewer_pub = ctx.socket(zmq.PUB)
    for sock in (viewer_sub, viewer_pub):
        sock.setsockopt(zmq.LINGER, 0)
        stack.callback(sock.close, 0)
    publish_port = viewer_sub.bind_to_random_port("tcp://127.0.0.1")
    controller_port = viewer_pub.bind_to_random_port("tcp://127.0.0.1")

    await stack.enter_async_context(make_worker(service, room, "w-one"))
    client = await stack.enter_async_context(make_client(service, room))
    session = ScriptedSession()
    opened: list[tuple[str, str | None]] = []

    async def factory(worker_id: str, room_id: str | None) -> RemoteSession:
        opened.append((worker_id, room_id))
        return session

    dialog = TrainingDialog(
        "/home/me/labels.slp",
        factory,
        StaticAuth(),
        rooms=[room.room_id],
        feed=FeedOptions(publish_port, controller_port),
    )
    qtbot.addWidget(dialog)
    stack.push_async_callback(dialog.controller.aclose)
    stack.push_async_callback(dialog.worker_panel.bridge.aclose)
    dialog.epochs_box.setValue(3)
    dialog.show()
    dialog.worker_panel.watch(client)
    await async_wait_until(lambda: dialog.worker_panel.select_worker("w-one"))

    dialog.worker_panel.run_button.click()
    await async_wait_until(lambda: not dialog.isVisible())
    assert dialog.controller.state is PresubmitState.RUNNING
    assert opened == [("w-one", room.room_id)]
    spec = session.submitted[0]
    assert spec["labels_path"] == "/home/me/labels.slp"
    assert yaml.safe_load(spec["config_content"])["trainer_config"]["max_epochs"] == 3

    session.progress(EPOCH_END)
    text = await asyncio.wait_for(viewer_sub.recv_string(), scaled(5))
    assert text == EPOCH_END  # verbatim, as the trainer sent it

    async def stopped() -> bool:
        await viewer_pub.send_string('{"command": "stop"}')  # Stop Early
        return session.stopped > 0

    await async_wait_until(stopped, interval=0.02)

    session.complete({"output_path": "/models/run1"})
    await async_wait_until(lambda: dialog.controller.state is PresubmitState.DONE)
    await async_wait_until(lambda: session.closed)


async def test_own_loss_plot_when_sleap_is_absent(qtbot: QtBot) -> None:
    session = ScriptedSession()

    async def factory(worker_id: str, room_id: str | None) -> RemoteSession:
        return session

    dialog = TrainingDialog(
        "/home/me/labels.slp",
        factory,
        StaticAuth(),
        feed=FeedOptions(None, None, show_plot=True),
    )
    qtbot.addWidget(dialog)
    dialog.controller.run("w-one", "lab", dialog.labels_path)
    await async_wait_until(lambda: dialog.controller.plot is not None)
    plot = dialog.controller.plot
    assert plot is not None
    qtbot.addWidget(plot)
    session.progress(EPOCH_END)
    await async_wait_until(lambda: plot.canvas.series["val"] == [(1, 0.4)])
    plot.stop_button.click()
    await async_wait_until(lambda: session.stopped == 1)
    await dialog.controller.aclose()
