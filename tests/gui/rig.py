"""A real worker on its own loop, its project, and a room to reach it.

The rig for the GUI tests that talk to a real worker (``test_remote``,
``test_sleap_run``, ``test_presubmit_io``): the signaling server, a
:class:`WorkerService` whose mount is a temporary folder (the GPU is stated, the
one boundary tests cannot reach; its jobs run on this CPU) and a labels file
whose second video was moved. :func:`open_rig` passes worker options on
(``upload_area`` makes an upload area inside the mount).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sleap_rtc_core.sample_data import write_tiny_video_labels
from sleap_rtc_core.signaling.client.session_io import SignalingClient
from sleap_rtc_core.signaling.service import Service
from sleap_rtc_core.transport import ChannelAuth
from sleap_rtc_core.worker.service import WorkerService
from sleap_rtc_gui.remote import ChannelSession, ChannelSessionFactory
from tests.fixtures.signaling import RoomCreds
from tests.fixtures.timing import async_wait_until, scaled
from tests.fixtures.transport import stated_worker
from tests.gui.conftest import FAST, make_client

WORKER = "w-gpu"
_ids = itertools.count()


@dataclass(frozen=True)
class Project:
    """Labels on the worker's mount whose second video was moved.

    Attributes:
        mount: The worker's only mount.
        labels: The labels file (same path for the labeler and the worker).
        found: The video that is where the labels say.
        missing: Where the labels say the second video is (nothing there).
        moved: Where the second video really is (the worker suggests it).
    """

    mount: Path
    labels: Path
    found: Path
    missing: Path
    moved: Path


def write_half_missing(mount: Path) -> Project:
    """Two tiny videos referenced by one labels file; the second one moved."""
    import sleap_io as sio

    raw = mount / "raw"
    scratch = mount / "scratch"
    part_a, video_a = write_tiny_video_labels(
        scratch / "a.slp", video_path=raw / "a.mp4", n_frames=5
    )
    part_b, video_b = write_tiny_video_labels(
        scratch / "b.slp", video_path=raw / "b.mp4", n_frames=5, seed=1
    )
    a = sio.load_slp(part_a.as_posix(), open_videos=False)
    b = sio.load_slp(part_b.as_posix(), open_videos=False)
    skeleton = a.skeletons[0]
    frames = list(a.labeled_frames) + [
        sio.LabeledFrame(
            video=b.videos[0],
            frame_idx=lf.frame_idx,
            instances=[
                sio.Instance.from_numpy(inst.numpy(), skeleton=skeleton)
                for inst in lf.instances
            ],
        )
        for lf in b.labeled_frames
    ]
    labels = mount / "project" / "labels.slp"
    labels.parent.mkdir()
    sio.Labels(
        labeled_frames=frames, videos=[a.videos[0], b.videos[0]], skeletons=[skeleton]
    ).save(labels.as_posix(), embed=False, verbose=False)
    for path in scratch.iterdir():
        path.unlink()
    scratch.rmdir()
    moved = mount / "moved" / "b.mp4"
    moved.parent.mkdir()
    video_b.rename(moved)
    return Project(mount, labels, video_a, video_b, moved)


class WorkerThread:
    """A :class:`WorkerService` on its own asyncio loop in a thread.

    The worker is another machine: it keeps its own loop, so that nothing it
    does runs when pytest-qt processes Qt events between a test and its
    teardown (outside the qasync loop, where a task would find no loop).

    Attributes:
        service: The worker, once started (read its state from tests only).
    """

    def __init__(self, make: Callable[[], WorkerService]) -> None:
        self._make = make
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="worker", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.service: WorkerService | None = None

    async def start(self) -> WorkerService:
        """Start the thread; the worker once registered.

        Raises:
            Whatever starting the worker raised.
        """
        self._thread.start()
        if not await asyncio.to_thread(self._ready.wait, scaled(20)):
            raise TimeoutError("the worker did not start")
        if self._error is not None or self.service is None:
            raise RuntimeError("the worker did not start") from self._error
        return self.service

    async def stop(self) -> None:
        """Close the worker and join its thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        await asyncio.to_thread(self._thread.join, scaled(30))

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        service = self._make()
        try:
            await service.start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            await service.close()
            return
        self.service = service
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await service.close()


@dataclass
class Rig:
    """A worker, its project, and one exit stack for everything a test opens.

    Everything on the test's loop closes inside this one fixture's teardown, and
    :meth:`settle` lets a test end only once the server has seen every peer
    that left go: pytest-qt processes Qt events between a test and its
    teardown, outside the qasync loop, and a task woken then finds no loop.

    Attributes:
        stack: Closes what the test opened (last first), then the worker.
        worker: The complete worker (mount: ``project.mount``).
        project: The labels and videos on the mount.
        service: The signaling service.
        room: The room of the worker and the clients.
        secret: The room secret the worker checks.
        upload_dir: The worker's upload area, if it has one.
    """

    stack: AsyncExitStack
    worker: WorkerService
    project: Project
    service: Service
    room: RoomCreds
    secret: str
    upload_dir: Path | None = None

    def factory(self, secret: str | None = None) -> ChannelSessionFactory:
        """The dialog's session factory, with the room secret (or ``secret``)."""
        auth = ChannelAuth(secret=secret or self.secret)
        return ChannelSessionFactory(
            signaling_for(self.service, self.room), lambda _room: auth
        )

    async def session(self) -> ChannelSession:
        """A session to the worker, closed with the rig."""
        opened = await self.factory()(WORKER, self.room.room_id)
        self.stack.push_async_callback(opened.close)
        return opened

    def peers(self) -> set[str]:
        """The peers the server has in the room now."""
        registry = self.service.server.router.registry
        return {p.peer_id for p in registry.peers(self.room.room_id)}

    async def settle(self, *peers: str) -> None:
        """Wait until exactly ``peers`` (and the worker) are in the room."""
        expected = {WORKER, *peers}
        await async_wait_until(lambda: self.peers() == expected, scaled(10))


async def open_rig(
    service: Service,
    room: RoomCreds,
    tmp_path: Path,
    room_secret: str,
    *,
    upload_area: str | None = None,
    **worker_options: Any,
) -> AsyncIterator[Rig]:
    """A complete worker whose only mount is ``tmp_path/shared`` holding
    :func:`write_half_missing`'s project.

    ``upload_area`` (a folder name inside the mount) gives the worker an
    upload area there; ``worker_options`` go to :func:`stated_worker`
    (``submit_timeout`` …).

    The cyclic garbage collector is paused while the rig lives (and run on this
    thread before and after): otherwise a collection triggered in another
    thread (the worker's, or an executor's) may destroy Qt objects left over
    from earlier tests there, leaving Qt timers that point at freed objects.
    """
    gc.collect()
    gc.disable()
    try:
        async for rig in _rig(
            service, room, tmp_path, room_secret, upload_area, worker_options
        ):
            yield rig
    finally:
        gc.enable()
        gc.collect()


async def _rig(
    service: Service,
    room: RoomCreds,
    tmp_path: Path,
    room_secret: str,
    upload_area: str | None,
    worker_options: dict[str, Any],
) -> AsyncIterator[Rig]:
    mount = tmp_path / "shared"
    mount.mkdir()
    project = await asyncio.to_thread(write_half_missing, mount)
    upload_dir = mount / upload_area if upload_area is not None else None
    if upload_dir is not None:
        worker_options["upload_dir"] = upload_dir
    worker_options.setdefault("backoff", FAST)
    thread = WorkerThread(
        lambda: stated_worker(
            service.server.url, room, mount, room_secret, WORKER, **worker_options
        )
    )
    async with AsyncExitStack() as stack:
        rig = Rig(
            stack,
            await thread.start(),
            project,
            service,
            room,
            room_secret,
            upload_dir,
        )

        async def stop_worker() -> None:
            await thread.stop()
            await async_wait_until(lambda: not rig.peers(), scaled(10))

        stack.push_async_callback(stop_worker)
        yield rig


def signaling_for(service: Service, room: RoomCreds) -> Callable[[str | None], Any]:
    """A signaling source: a fresh started client of ``room`` per session."""

    async def connect(room_id: str | None) -> SignalingClient:
        assert room_id in (None, room.room_id)
        client = make_client(service, room, f"gui-run-{next(_ids)}")
        await client.start(timeout=scaled(5))
        return client

    return connect
