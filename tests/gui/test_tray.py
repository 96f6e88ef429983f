"""The tray app over a real worker on a real server: the menu follows the worker,
and Pause really sets ``maintenance`` on the server."""

from __future__ import annotations

from contextlib import AsyncExitStack

from pytestqt.qtbot import QtBot

from sleap_rtc_core.signaling.service import Service
from sleap_rtc_gui.tray import WorkerTray
from tests.fixtures.signaling import RoomCreds
from tests.fixtures.timing import async_wait_until
from tests.gui.conftest import make_worker


def server_status(service: Service, room: RoomCreds, peer_id: str) -> object:
    record = service.server.router.registry.get(room.room_id, peer_id)
    return None if record is None else record.metadata["properties"]["status"]


async def test_menu_reflects_status_and_pause_sets_maintenance(
    qtbot: QtBot, service: Service, room: RoomCreds, stack: AsyncExitStack
) -> None:
    worker = await stack.enter_async_context(make_worker(service, room, "w-tray"))
    tray = WorkerTray(worker, refresh_ms=20)
    stack.push_async_callback(tray.bridge.aclose)
    tray.show()
    assert tray.connection_action.text() == f"Connected to room {room.room_id}"
    assert tray.status_action.text() == "Status: available"
    assert tray.job_action.text() == "No job"
    assert tray.pause_action.isEnabled()
    assert not tray.resume_action.isEnabled()

    tray.pause_action.trigger()
    await async_wait_until(
        lambda: server_status(service, room, "w-tray") == "maintenance"
    )
    await async_wait_until(lambda: tray.status_action.text() == "Status: maintenance")
    assert tray.resume_action.isEnabled()
    assert not tray.pause_action.isEnabled()

    # A change made elsewhere (e.g. the CLI) shows up on the next refresh.
    await worker.update_status("available")
    await async_wait_until(lambda: tray.status_action.text() == "Status: available")

    tray.pause_action.trigger()
    await async_wait_until(lambda: tray.resume_action.isEnabled())
    tray.resume_action.trigger()
    await async_wait_until(
        lambda: server_status(service, room, "w-tray") == "available"
    )
    tray.timer.stop()


async def test_quit_stops_the_worker_cleanly(
    qtbot: QtBot, service: Service, room: RoomCreds
) -> None:
    worker = make_worker(service, room, "w-quit")
    await worker.start()
    quits: list[bool] = []
    tray = WorkerTray(worker, on_quit=lambda: quits.append(True))
    tray.show()
    tray.quit_action.trigger()
    await async_wait_until(lambda: quits == [True])
    assert tray.stopped.is_set()
    await async_wait_until(lambda: server_status(service, room, "w-quit") is None)
    assert not worker.client.connected
    await tray.bridge.aclose()
