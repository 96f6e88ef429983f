"""The room's workers as a plain model, kept current from signaling (no Qt).

:class:`WorkerDirectory` holds one :class:`WorkerInfo` per worker of the room,
built from ``peer_list`` entries and kept current by ``peer_joined``,
``peer_left`` and ``peer_updated``; every change calls its listeners with the
new list. :func:`watch_workers` is the async loop that feeds it from a
:class:`~sleap_rtc_core.signaling.client.session_io.SignalingClient`: it subscribes
**before** it discovers, so no announcement can slip between the two.

Widgets render the list (``dialogs.worker_panel``); the bridge relays the
listener calls into Qt (STYLE.md convention 11).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sleap_rtc_core.protocol import signaling as sig
from sleap_rtc_core.signaling.client.session_io import SignalingClient
from sleap_rtc_core.worker.capabilities import accepts_uploads

__all__ = ["WorkerDirectory", "WorkerInfo", "watch_workers"]

logger = logging.getLogger(__name__)

WORKER_ROLE = "worker"


def _merge(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``patch`` into a copy of ``base`` (the server's own rule)."""
    out = dict(base)
    for key, value in patch.items():
        old = out.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            out[key] = _merge(old, value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One worker as the list shows it.

    Attributes:
        peer_id: Its peer id (what a job is sent to).
        name: ``worker_name`` if it has one, else its hostname, else the id.
        gpu_model: E.g. ``NVIDIA RTX A5000`` (``CPU`` without CUDA).
        gpu_memory_mb: GPU memory in MiB (0 without CUDA).
        status: ``available``, ``reserved``, ``busy`` or ``maintenance``.
        current_job_id: The running job, if any.
        accepts_uploads: It has an upload area (labels can be sent to it).
        metadata: Everything the worker published, for details.
    """

    peer_id: str
    name: str
    gpu_model: str
    gpu_memory_mb: int
    status: str
    current_job_id: str | None
    accepts_uploads: bool
    metadata: Mapping[str, Any]

    @classmethod
    def from_metadata(cls, peer_id: str, metadata: Mapping[str, Any]) -> WorkerInfo:
        """Read the published metadata leniently (old workers omit fields)."""
        props = metadata.get("properties")
        props = props if isinstance(props, Mapping) else {}
        memory = props.get("gpu_memory_mb")
        if isinstance(memory, bool) or not isinstance(memory, int | float):
            memory = 0
        name = props.get("worker_name") or props.get("hostname") or peer_id
        job = props.get("current_job_id")
        return cls(
            peer_id=peer_id,
            name=str(name),
            gpu_model=str(props.get("gpu_model") or "unknown"),
            gpu_memory_mb=int(memory),
            status=str(props.get("status") or "unknown"),
            current_job_id=str(job) if job else None,
            accepts_uploads=accepts_uploads(metadata),
            metadata=dict(metadata),
        )

    @property
    def memory_text(self) -> str:
        """GPU memory for people: ``24.0 GB``, or ``-`` without a GPU."""
        if self.gpu_memory_mb <= 0:
            return "-"
        return f"{self.gpu_memory_mb / 1024:.1f} GB"


Listener = Callable[[list[WorkerInfo]], None]


class WorkerDirectory:
    """The workers of one room, in the order they were first seen.

    Attributes:
        listeners: Called with the full list after every change.
    """

    def __init__(self) -> None:
        self._workers: dict[str, WorkerInfo] = {}
        self.listeners: list[Listener] = []

    @property
    def workers(self) -> list[WorkerInfo]:
        """The workers now."""
        return list(self._workers.values())

    def get(self, peer_id: str) -> WorkerInfo | None:
        """One worker, if it is in the room."""
        return self._workers.get(peer_id)

    def load(self, peers: Iterable[Mapping[str, Any]]) -> None:
        """Replace the list with a ``peer_list`` answer (non-workers skipped)."""
        self._workers = {}
        for peer in peers:
            if peer.get("role") != WORKER_ROLE or not peer.get("peer_id"):
                continue
            metadata = peer.get("metadata")
            pid = str(peer["peer_id"])
            self._workers[pid] = WorkerInfo.from_metadata(
                pid, metadata if isinstance(metadata, Mapping) else {}
            )
        self._changed()

    def apply(self, message: sig.Message) -> bool:
        """Apply a room announcement; True when the list changed."""
        if isinstance(message, sig.PeerJoined):
            if message.role != WORKER_ROLE:
                return False
            info = WorkerInfo.from_metadata(message.peer_id, message.metadata)
            self._workers[message.peer_id] = info
        elif isinstance(message, sig.PeerLeft):
            if self._workers.pop(message.peer_id, None) is None:
                return False
        elif isinstance(message, sig.PeerUpdated):
            old = self._workers.get(message.peer_id)
            if old is None:
                return False
            metadata = _merge(old.metadata, message.metadata)
            self._workers[message.peer_id] = WorkerInfo.from_metadata(
                message.peer_id, metadata
            )
        else:
            return False
        self._changed()
        return True

    def clear(self) -> None:
        """Forget every worker (e.g. when the room changes)."""
        self._workers = {}
        self._changed()

    def _changed(self) -> None:
        workers = self.workers
        for listener in list(self.listeners):
            listener(workers)


async def watch_workers(client: SignalingClient, directory: WorkerDirectory) -> None:
    """Keep ``directory`` current from ``client``'s room until cancelled.

    Subscribes to the room announcements first, then loads ``discover_peers``
    (every worker, whatever its status: the list shows busy ones too), then
    applies each announcement as it comes.

    Raises:
        SleapRTCError: Discovery failed (e.g. the connection was lost for good).
    """
    async with client.subscribe("peer_joined", "peer_left", "peer_updated") as inbox:
        directory.load(await client.discover({"role": WORKER_ROLE}))
        async for message in inbox:
            if directory.apply(message):
                logger.debug("< %s %s", message.TYPE.value, message)
