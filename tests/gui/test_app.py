"""The shared qasync loop: one QApplication, one loop, Qt and asyncio take turns."""

from __future__ import annotations

import asyncio

import qasync
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from sleap_rtc_gui.app import application, new_event_loop, shared_loop
from tests.fixtures.timing import scaled


def test_application_is_created_once() -> None:
    app = application()
    assert isinstance(app, QApplication)
    assert application() is app


async def test_tests_run_on_a_qasync_loop_shared_with_the_app() -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, qasync.QEventLoop)
    assert shared_loop() is loop


async def test_qt_timers_fire_while_a_coroutine_awaits() -> None:
    fired = asyncio.Event()
    QTimer.singleShot(0, fired.set)
    await asyncio.wait_for(fired.wait(), scaled(5))


def test_new_event_loop_is_a_fresh_qasync_loop() -> None:
    loop = new_event_loop()
    try:
        assert isinstance(loop, qasync.QEventLoop)
        assert loop.run_until_complete(asyncio.sleep(0, "ok")) == "ok"
    finally:
        loop.close()
