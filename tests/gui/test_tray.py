"""The tray app over a real worker on a real server: the menu follows the worker,
and Pause really sets ``maintenance`` on the server."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from sleap_rtc_core.cli import build_parser
from sleap_rtc_core.commands.worker import worker_service_from_args
from sleap_rtc_core.signaling.service import Service
from sleap_rtc_gui.tray import WorkerTray
from tests.fixtures.signaling import RoomCreds, peer_status
from tests.fixtures.timing import async_wait_until
from tests.gui.conftest import make_worker


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
        lambda: peer_status(service, room, "w-tray") == "maintenance"
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
    await async_wait_until(lambda: peer_status(service, room, "w-tray") == "available")
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
    await async_wait_until(lambda: peer_status(service, room, "w-quit") is None)
    assert not worker.client.connected
    await tray.bridge.aclose()


@pytest.mark.parametrize("command", ["worker", "tray"])
def test_the_tray_takes_its_settings_as_the_worker_command_does(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, room: RoomCreds
) -> None:
    """``--config``, then the environment, then the flags, for both commands
    (the tray once took only its own few flags)."""
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "worker.toml"
    config.write_text(
        f'name = "from-file"\nroom = "{room.room_id}"\nmax_concurrent_jobs = 2\n'
        f'[[mounts]]\npath = "{data}"\nlabel = "lab"\n'
    )
    monkeypatch.setenv("SLEAP_RTC_TOKEN", room.token)
    monkeypatch.setenv("SLEAP_ROOM_SECRET", "a passphrase")
    args = build_parser().parse_args(
        [command, "--config", str(config), "--server", "ws://127.0.0.1:9"]
    )
    service = worker_service_from_args(args)
    assert [(m.path, m.label) for m in service.policy.mounts] == [(str(data), "lab")]
    assert service.worker.ledger.max_concurrent_jobs == 2
    assert service.worker.client.session.register.metadata["properties"][
        "worker_name"
    ] == ("from-file")
