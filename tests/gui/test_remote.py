"""The real session: the training dialog over a real data channel to a real worker.

Everything is real: the signaling server, a :class:`WorkerService` whose mount
is a temporary folder (the GPU is stated, the one boundary tests cannot reach),
the WebRTC channel on 127.0.0.1, the widgets, sleap-nn training on the CPU, and
ZMQ sockets bound like SLEAP's LossViewer. The labels file references two
external videos; one of them was moved, so the PathResolutionDialog opens with
the worker's suggestion for it, and the test accepts it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import zmq
import zmq.asyncio
from pytestqt.qtbot import QtBot

from sleap_rtc_core.cli import build_parser
from sleap_rtc_core.errors import (
    InvalidState,
    JobRejected,
    PathNotAllowed,
    TransportError,
)
from sleap_rtc_core.sample_data import tiny_training_config
from sleap_rtc_core.signaling.client.session_io import SignalingClient
from sleap_rtc_core.transport import ChannelAuth
from sleap_rtc_gui.commands import session_factory
from sleap_rtc_gui.dialogs.training_dialog import TrainingDialog
from sleap_rtc_gui.presubmit import PresubmitState, VideoStatus, messages
from sleap_rtc_gui.presubmit_io import FeedOptions, StepTimeouts
from sleap_rtc_gui.remote import ChannelSession, ChannelSessionFactory, open_session
from sleap_rtc_gui.session import RemoteSession, UpdateKind
from tests.client.test_remote_job import RAW, play_worker
from tests.fixtures.signaling import RoomCreds
from tests.fixtures.timing import async_wait_until, scaled
from tests.fixtures.transport import ChannelPair
from tests.gui.conftest import make_client
from tests.gui.rig import WORKER, Rig
from tests.gui.sessions import StaticAuth

NO_FEED = FeedOptions(publish_port=None, controller_port=None)


def other_secret() -> str:
    """A well-formed room secret that is not the worker's."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


# ------------------------------------------------------------------ the session


async def test_check_paths_reports_found_and_missing_with_suggestions(
    rig: Rig,
) -> None:
    session, project = await rig.session(), rig.project
    report = await session.check_paths(str(project.labels))
    assert report.labels_found
    by_path = {v.path: v for v in report.videos}
    assert by_path[str(project.found)].status is VideoStatus.FOUND
    missing = by_path[str(project.missing)]
    assert missing.status is VideoStatus.MISSING
    assert missing.suggestions[0] == str(project.moved)


async def test_labels_not_on_the_worker_get_suggestions_by_name(rig: Rig) -> None:
    session = await rig.session()
    report = await session.check_paths("/home/me/project/labels.slp")
    assert not report.labels_found
    assert report.videos == ()
    assert str(rig.project.labels) in report.labels_suggestions


async def test_list_dir_shows_mounts_then_folders(rig: Rig) -> None:
    session, project = await rig.session(), rig.project
    [mount] = await session.list_dir("")
    assert (mount.path, mount.is_dir) == (str(project.mount), True)
    entries = {e.path: e.is_dir for e in await session.list_dir(mount.path)}
    assert entries[str(project.mount / "raw")] is True
    assert entries[str(project.mount / "project")] is True
    files = await session.list_dir(str(project.mount / "raw"))
    assert [(e.path, e.is_dir) for e in files] == [(str(project.found), False)]
    with pytest.raises(PathNotAllowed):
        await session.list_dir("/etc")


async def test_a_rejected_spec_raises_with_every_field_error(rig: Rig) -> None:
    session = await rig.session()
    with pytest.raises(JobRejected) as rejected:
        await session.submit(
            {
                "type": "train",
                "config_content": tiny_training_config(max_epochs=1),
                "labels_path": "/etc/passwd",
            }
        )
    assert "labels_path" in {e["field"] for e in rejected.value.errors}
    with pytest.raises(InvalidState):
        await anext(session.updates())  # nothing was accepted


async def test_cancel_ends_the_stream_with_a_failure(rig: Rig) -> None:
    session, project = await rig.session(), rig.project
    job_id = await session.submit(
        {
            "type": "train",
            "config_content": tiny_training_config(max_epochs=1000),
            "labels_path": str(project.labels),
            "path_mappings": {str(project.missing): str(project.moved)},
        }
    )
    assert job_id
    await session.cancel()
    kinds = [u.kind async for u in session.updates()]
    assert kinds[-1] is UpdateKind.FAILED
    await async_wait_until(lambda: rig.worker.jobs.running == 0, timeout=scaled(30))


async def test_progress_reaches_the_loss_viewer_side_as_the_trainer_sent_it(
    channel_pair: ChannelPair,
) -> None:
    """The session hands each progress text on unchanged (the controller then
    publishes it to LossViewer as is), as the scripted sessions of the other
    tests do."""
    worker = asyncio.ensure_future(play_worker(channel_pair.worker))
    session = ChannelSession(channel_pair.client)
    spec = {"type": "train", "labels_path": "/d/l.slp", "config_content": ""}
    assert await session.submit(spec) == "job-1"
    updates = [u async for u in session.updates()]
    await worker
    assert [(u.kind, u.payload) for u in updates[:-1]] == [(UpdateKind.PROGRESS, RAW)]
    assert updates[-1].kind is UpdateKind.COMPLETE


async def test_no_room_secret_fails_before_connecting(room: RoomCreds) -> None:
    connected: list[str | None] = []

    async def never(room_id: str | None) -> SignalingClient:
        connected.append(room_id)
        raise AssertionError("must not connect without credentials")

    factory = ChannelSessionFactory(never, lambda _room: ChannelAuth())
    with pytest.raises(TransportError, match="no room secret") as failed:
        await factory(WORKER, room.room_id)
    assert failed.value.code == "NO_ROOM_SECRET"
    assert connected == []


async def test_open_session_closes_the_client_it_owns_on_failure(rig: Rig) -> None:
    client = make_client(rig.service, rig.room, "gui-owned")
    await client.start(timeout=scaled(5))
    rig.stack.push_async_callback(client.close)
    wrong = ChannelAuth(secret=other_secret())
    with pytest.raises(TransportError, match="refused our room credentials"):
        await open_session(client, WORKER, wrong, own_signaling=True)
    assert not client.connected
    await rig.settle()


async def test_the_gui_command_wires_the_real_factory(rig: Rig) -> None:
    args = build_parser().parse_args(
        [
            "gui",
            str(rig.project.labels),
            "--server",
            rig.service.server.url,
            "--room",
            rig.room.room_id,
            "--token",
            rig.room.token,
            "--room-secret",
            rig.secret,
        ]
    )
    session = await session_factory(args)(WORKER, rig.room.room_id)
    rig.stack.push_async_callback(session.close)
    assert isinstance(session, RemoteSession)
    report = await session.check_paths(str(rig.project.labels))
    assert len(report.missing) == 1


def test_the_session_module_never_imports_qt() -> None:
    code = (
        "import sys, sleap_rtc_gui.remote; "
        "bad = [m for m in ('PySide6', 'qasync') if m in sys.modules]; "
        "sys.exit(str(bad) if bad else 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


# ------------------------------------------------------------------ the dialog


def make_dialog(
    qtbot: QtBot, rig: Rig, factory: ChannelSessionFactory, feed: FeedOptions = NO_FEED
) -> TrainingDialog:
    """The standalone dialog on the rig's labels; closed with the rig."""
    dialog = TrainingDialog(
        str(rig.project.labels),
        factory,
        StaticAuth(),
        rooms=[rig.room.room_id],
        feed=feed,
        timeouts=StepTimeouts(connect=scaled(20), check_paths=scaled(20)),
    )
    qtbot.addWidget(dialog)
    rig.stack.push_async_callback(dialog.worker_panel.bridge.aclose)
    rig.stack.push_async_callback(dialog.controller.aclose)
    return dialog


async def test_wrong_room_secret_shows_could_not_connect(
    qtbot: QtBot, rig: Rig
) -> None:
    dialog = make_dialog(qtbot, rig, rig.factory(secret=other_secret()))
    dialog.show()
    dialog.controller.run(WORKER, rig.room.room_id, dialog.labels_path)
    await async_wait_until(lambda: bool(dialog.controller.popups), scaled(20))
    [popup] = dialog.controller.popups
    assert (popup.windowTitle(), popup.text()) == (
        messages.CONNECT_FAILED_TITLE,
        "Could not connect to worker. Check that the worker is running.",
    )
    assert "room credentials" in popup.detailedText()
    assert dialog.controller.state is PresubmitState.IDLE
    assert dialog.isVisible()  # back to the dialog, nothing submitted
    assert rig.worker.jobs.jobs == {}
    await rig.settle()


@pytest.mark.slow
async def test_run_remotely_trains_and_feeds_loss_viewer(
    qtbot: QtBot, rig: Rig
) -> None:
    # LossViewer's sockets, bound where SLEAP binds them (on free ports here).
    ctx = zmq.asyncio.Context.instance()
    viewer_sub = ctx.socket(zmq.SUB)
    viewer_sub.subscribe("")
    viewer_pub = ctx.socket(zmq.PUB)
    for sock in (viewer_sub, viewer_pub):
        sock.setsockopt(zmq.LINGER, 0)
        rig.stack.callback(sock.close, 0)
    publish_port = viewer_sub.bind_to_random_port("tcp://127.0.0.1")
    controller_port = viewer_pub.bind_to_random_port("tcp://127.0.0.1")

    panel_client = make_client(rig.service, rig.room)
    await rig.stack.enter_async_context(panel_client)
    feed = FeedOptions(publish_port, controller_port)
    dialog = make_dialog(qtbot, rig, rig.factory(), feed)
    done: list[Any] = []
    dialog.controller.training_done.connect(done.append)
    dialog.epochs_box.setValue(1)
    dialog.show()
    dialog.worker_panel.watch(panel_client)
    await async_wait_until(lambda: dialog.worker_panel.select_worker(WORKER))
    dialog.worker_panel.run_button.click()

    # The second video is missing: the worker's suggestion is preselected.
    project = rig.project
    await async_wait_until(
        lambda: dialog.controller.path_dialog is not None, scaled(20)
    )
    paths = dialog.controller.path_dialog
    assert paths is not None
    assert dialog.controller.state is PresubmitState.RESOLVING_VIDEOS
    assert paths.table.rowCount() == 2
    assert paths.worker_path(str(project.missing)) == str(project.moved)
    paths.browse_button.click()  # FS_GET_MOUNTS over the channel
    await async_wait_until(
        lambda: (
            paths.browse_list.count() == 1
            and paths.browse_list.item(0).toolTip() == str(project.mount)
        )
    )
    assert paths.ok_button.isEnabled()
    paths.ok_button.click()

    # Accepted: the dialog closes, progress reaches the LossViewer's SUB.
    await async_wait_until(lambda: not dialog.isVisible(), scaled(20))
    assert dialog.controller.state in (PresubmitState.RUNNING, PresubmitState.DONE)
    events: list[str] = []
    while "train_end" not in events:
        text = await asyncio.wait_for(viewer_sub.recv_string(), scaled(60))
        events.append(json.loads(text).get("event", ""))
    assert "epoch_end" in events

    await async_wait_until(
        lambda: dialog.controller.state is PresubmitState.DONE, scaled(30)
    )
    [model_path] = done
    model_dir = Path(model_path)
    assert model_dir.is_relative_to(project.mount)
    assert await asyncio.to_thread(lambda: list(model_dir.glob("*.ckpt")))
    assert dialog.controller.popups == []
    await async_wait_until(lambda: dialog.controller.session is None)
    await rig.settle("gui")  # the session's client left, the panel's stays
