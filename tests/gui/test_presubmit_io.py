"""The presubmission flow through real widgets: every error popup of the tables.

The training dialog and its controller are real; the session to the worker is
:class:`tests.gui.sessions.ScriptedSession` (the data channel is built beside
the GUI), so each test scripts what the worker answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from sleap_rtc_core.errors import (
    ChannelClosed,
    IceFailed,
    JobRejected,
    PeerNotFound,
)
from sleap_rtc_gui.dialogs.training_dialog import TrainingDialog
from sleap_rtc_gui.presubmit import PresubmitState, messages
from sleap_rtc_gui.presubmit_io import FeedOptions, StepTimeouts
from sleap_rtc_gui.session import RemoteSession
from tests.fixtures.timing import async_wait_until
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
