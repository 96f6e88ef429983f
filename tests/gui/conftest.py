"""GUI tests run their coroutines on the one qasync loop that the app uses.

pytest-asyncio asks this directory's ``pytest_asyncio_loop_factories`` hook for
the loop of every async test (and its async fixtures) under ``tests/gui``: each
test gets a fresh :class:`qasync.QEventLoop` over the shared ``QApplication``,
so awaiting in a test also lets Qt deliver widget events and signals, as in the
real application (``sleap_rtc_gui.app``). Inside async tests, wait with
``async_wait_until``; ``qtbot.waitUntil`` would re-enter the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sleap_rtc_core.protocol import signaling as sig
from sleap_rtc_core.signaling.client.session_io import Backoff, SignalingClient
from sleap_rtc_core.signaling.service import Service
from sleap_rtc_core.worker.capabilities import StatedGpu, WorkerCapabilities
from sleap_rtc_core.worker.ledger_io import SignalingWorker
from sleap_rtc_gui.app import application, new_event_loop
from tests.fixtures.signaling import RoomCreds

if TYPE_CHECKING:
    from tests.gui.rig import Rig

FAST = Backoff(initial=0.05, cap=0.2)


def _test_loop() -> asyncio.AbstractEventLoop:
    """A qasync loop over the shared application, which must not quit when a
    test closes its last window (that would stop the loop under the test)."""
    application().setQuitOnLastWindowClosed(False)
    return new_event_loop()


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Run every async GUI test on a qasync loop."""
    del config, item
    return {"qasync": _test_loop}


# ------------------------------------------------------------------ real peers


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    """Closes what a test started (workers, clients), last first."""
    async with AsyncExitStack() as exits:
        yield exits


def make_worker(
    svc: Service,
    room: RoomCreds,
    peer_id: str,
    *,
    memory_mb: int = 24576,
    name: str | None = None,
) -> SignalingWorker:
    """A real worker with a stated GPU (the one boundary tests cannot reach)."""
    gpu = StatedGpu("NVIDIA RTX A5000", memory_mb, "12.8")
    return SignalingWorker(
        svc.server.url,
        {"room_id": room.room_id, "token": room.token},
        WorkerCapabilities.from_probe(gpu),
        peer_id=peer_id,
        name=name,
        backoff=FAST,
    )


def make_client(svc: Service, room: RoomCreds, peer_id: str = "gui") -> SignalingClient:
    """A real signaling client with role ``client`` (what the dialog uses)."""
    register = sig.Register(
        peer_id=peer_id,
        role="client",
        room_id=room.room_id,
        token=room.token,
        metadata={"tags": ["sleap-rtc", "client"], "properties": {}},
    )
    return SignalingClient(svc.server.url, register, backoff=FAST)


@pytest.fixture
async def rig(
    service: Service, room: RoomCreds, tmp_path: Path, room_secret: str
) -> AsyncIterator[Rig]:
    """A complete worker on its own loop whose only mount holds a project with
    one moved video (:mod:`tests.gui.rig`)."""
    from tests.gui.rig import open_rig  # it imports this module

    async for opened in open_rig(service, room, tmp_path, room_secret):
        yield opened


@pytest.fixture
async def upload_rig(
    service: Service, room: RoomCreds, tmp_path: Path, room_secret: str
) -> AsyncIterator[Rig]:
    """The :func:`rig` worker with an upload area (``<mount>/uploads``)."""
    from tests.gui.rig import open_rig  # it imports this module

    async for opened in open_rig(
        service, room, tmp_path, room_secret, upload_area="uploads"
    ):
        yield opened


@pytest.fixture
def upload_progress(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Every ``(done, total)`` the real upload dialog is shown, in order (the
    dialog still draws it)."""
    from sleap_rtc_gui.dialogs.upload_progress import UploadProgressDialog

    seen: list[tuple[int, int]] = []
    shown = UploadProgressDialog.set_progress

    def record(self: UploadProgressDialog, done: int, total: int) -> None:
        seen.append((done, total))
        shown(self, done, total)

    monkeypatch.setattr(UploadProgressDialog, "set_progress", record)
    return seen


# ------------------------------------------------------------------ SLEAP's dialog


@pytest.fixture
def labels(tmp_path: Path) -> Path:
    """A tiny saved SLEAP project (``project/labels.pkg.slp``, embedded frames)."""
    from sleap_rtc_core.sample_data import write_tiny_labels

    return write_tiny_labels(tmp_path / "project" / "labels.pkg.slp")


@pytest.fixture
def wrapped() -> Iterator[list[object]]:
    """SLEAP's ``LearningDialog`` wrapped by the plugin for the test (the
    dialogs whose Run Remotely was pressed), unwrapped after it."""
    from sleap_rtc_gui import plugin

    opened: list[object] = []
    assert plugin.install(opened.append)
    assert plugin.installed()
    yield opened
    plugin.uninstall()
    assert not plugin.installed()
