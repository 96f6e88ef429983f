"""In-test implementations of the GUI's session Protocols.

The data channel and the worker's path checks are built beside the GUI, so the
dialog tests drive the GUI through :class:`ScriptedSession`, a plain
implementation of :class:`~sleap_rtc_gui.session.RemoteSession` whose answers
the test sets, and :class:`StaticAuth`. Everything else in those tests (the
signaling server, the workers, ZMQ) is real.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

from sleap_rtc_gui.presubmit import PathReport, VideoCheck, VideoStatus
from sleap_rtc_gui.session import DirEntry, SessionUpdate, UpdateKind

__all__ = ["ScriptedSession", "StaticAuth", "report"]


def report(
    labels: str = "/home/me/labels.slp",
    found: bool = True,
    missing: tuple[str, ...] = (),
    present: tuple[str, ...] = (),
    suggestions: Mapping[str, tuple[str, ...]] | None = None,
) -> PathReport:
    """A path report: ``present`` videos found, ``missing`` ones not."""
    suggestions = suggestions or {}
    videos = [VideoCheck(p, VideoStatus.FOUND) for p in present] + [
        VideoCheck(p, VideoStatus.MISSING, suggestions.get(p, ())) for p in missing
    ]
    return PathReport(labels, found, tuple(videos))


class ScriptedSession:
    """A RemoteSession whose answers the test scripts.

    Attributes:
        reports: Answers to ``check_paths``, in order (the last one repeats).
        submit_error: Raised by ``submit`` instead of accepting.
        submitted: Specs received.
        stopped: How many times ``stop`` was called.
        closed: Whether ``close`` was called.
        feed: Queue behind ``updates`` (put ``SessionUpdate``s, ``None`` ends).
    """

    def __init__(self, *reports: PathReport, job_id: str = "job_0000abcd") -> None:
        self.reports = list(reports) or [report()]
        self.job_id = job_id
        self.submit_error: BaseException | None = None
        self.check_error: BaseException | None = None
        self.submitted: list[dict[str, Any]] = []
        self.checked: list[str] = []
        self.stopped = 0
        self.cancelled = 0
        self.closed = False
        self.feed: asyncio.Queue[SessionUpdate | None] = asyncio.Queue()
        self.tree: dict[str, list[DirEntry]] = {
            "": [DirEntry("/mnt/data", True)],
            "/mnt/data": [DirEntry("/mnt/data/fly.mp4")],
        }

    async def check_paths(self, labels_path: str) -> PathReport:
        self.checked.append(labels_path)
        if self.check_error is not None:
            raise self.check_error
        return self.reports.pop(0) if len(self.reports) > 1 else self.reports[0]

    async def list_dir(self, path: str) -> list[DirEntry]:
        return list(self.tree.get(path, []))

    async def submit(self, spec: Mapping[str, Any]) -> str:
        self.submitted.append(dict(spec))
        if self.submit_error is not None:
            raise self.submit_error
        return self.job_id

    async def updates(self) -> AsyncIterator[SessionUpdate]:
        while True:
            update = await self.feed.get()
            if update is None:
                return
            yield update

    async def stop(self) -> None:
        self.stopped += 1

    async def cancel(self) -> None:
        self.cancelled += 1

    async def close(self) -> None:
        self.closed = True

    def progress(self, raw: str) -> None:
        self.feed.put_nowait(SessionUpdate(UpdateKind.PROGRESS, raw))

    def complete(self, result: Mapping[str, Any]) -> None:
        self.feed.put_nowait(SessionUpdate(UpdateKind.COMPLETE, dict(result)))

    def fail(self, details: Mapping[str, Any]) -> None:
        self.feed.put_nowait(SessionUpdate(UpdateKind.FAILED, dict(details)))


class StaticAuth:
    """An AuthProvider with a fixed stored login and a scripted browser login."""

    def __init__(self, ok: bool = True, expired: bool = False) -> None:
        self.ok = ok
        self.expired = expired
        self.login_result = True
        self.logins = 0
        self.gate: asyncio.Event | None = None

    def check(self) -> tuple[bool, bool]:
        return self.ok, self.expired

    async def login(self) -> bool:
        self.logins += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.login_result:
            self.ok, self.expired = True, False
        return self.login_result
