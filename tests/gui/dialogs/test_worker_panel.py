"""The worker panel against a real signaling server and real workers.

The list must follow the room: a worker joining, changing status (pause sets
``maintenance`` on the server) and leaving.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from pytestqt.qtbot import QtBot

from sleap_rtc_core.signaling.service import Service
from sleap_rtc_gui.dialogs.worker_panel import WorkerPanel
from tests.fixtures.signaling import RoomCreds
from tests.fixtures.timing import async_wait_until
from tests.gui.conftest import make_client, make_worker


async def test_list_follows_join_status_and_leave(
    qtbot: QtBot, service: Service, room: RoomCreds, stack: AsyncExitStack
) -> None:
    first = await stack.enter_async_context(make_worker(service, room, "w-one"))
    client = await stack.enter_async_context(make_client(service, room))
    panel = WorkerPanel([room.room_id])
    qtbot.addWidget(panel)
    stack.push_async_callback(panel.bridge.aclose)
    panel.watch(client)

    await async_wait_until(lambda: len(panel.row_texts()) == 1)
    assert panel.row_texts()[0][1:] == ("NVIDIA RTX A5000", "24.0 GB", "Available")

    second = make_worker(service, room, "w-two", memory_mb=8192, name="bench")
    await second.start()
    await async_wait_until(lambda: len(panel.row_texts()) == 2)
    assert ("bench", "NVIDIA RTX A5000", "8.0 GB", "Available") in panel.row_texts()

    await first.update_status("maintenance")
    await async_wait_until(lambda: "Paused" in [r[3] for r in panel.row_texts()])
    assert "1 available" in panel.status_label.text()

    await second.close()
    await async_wait_until(lambda: len(panel.row_texts()) == 1)
    assert panel.row_texts()[0][3] == "Paused"


async def test_run_remotely_emits_the_selected_worker(
    qtbot: QtBot, service: Service, room: RoomCreds, stack: AsyncExitStack
) -> None:
    await stack.enter_async_context(make_worker(service, room, "w-one"))
    client = await stack.enter_async_context(make_client(service, room))
    panel = WorkerPanel([room.room_id])
    qtbot.addWidget(panel)
    stack.push_async_callback(panel.bridge.aclose)
    requests: list[tuple[str, str]] = []
    panel.run_requested.connect(lambda w, r: requests.append((w, r)))

    panel.run_button.click()  # nothing selected: an empty worker id
    panel.watch(client)
    await async_wait_until(lambda: panel.select_worker("w-one"))
    panel.run_button.click()
    assert requests == [("", room.room_id), ("w-one", room.room_id)]
    assert panel.selected_worker() is not None


def test_changing_room_clears_the_list_and_asks_for_the_new_room(
    qtbot: QtBot,
) -> None:
    panel = WorkerPanel(["lab-a", "lab-b"])
    qtbot.addWidget(panel)
    rooms: list[str] = []
    panel.room_changed.connect(rooms.append)
    panel.room_box.setCurrentText("lab-b")
    assert rooms == ["lab-b"]
    assert panel.row_texts() == []
