"""WorkerDirectory: the room's workers from peer_list and announcements."""

from __future__ import annotations

from sleap_rtc_core.protocol import signaling as sig
from sleap_rtc_gui.workers import WorkerDirectory, WorkerInfo


def _meta(status: str = "available", memory: int = 24576) -> dict[str, object]:
    return {
        "tags": ["sleap-rtc"],
        "properties": {
            "gpu_model": "RTX",
            "gpu_memory_mb": memory,
            "status": status,
            "hostname": "box",
        },
    }


def test_load_keeps_workers_only() -> None:
    directory = WorkerDirectory()
    seen: list[list[WorkerInfo]] = []
    directory.listeners.append(seen.append)
    directory.load(
        [
            {"peer_id": "w1", "role": "worker", "metadata": _meta()},
            {"peer_id": "c1", "role": "client", "metadata": {}},
        ]
    )
    assert [w.peer_id for w in directory.workers] == ["w1"]
    assert seen[-1][0].memory_text == "24.0 GB"
    assert seen[-1][0].name == "box"


def test_announcements_add_update_and_remove() -> None:
    directory = WorkerDirectory()
    directory.load([])
    assert directory.apply(
        sig.PeerJoined(peer_id="w1", role="worker", metadata=_meta())
    )
    assert not directory.apply(sig.PeerJoined(peer_id="c", role="client"))
    assert directory.apply(
        sig.PeerUpdated(peer_id="w1", metadata={"properties": {"status": "busy"}})
    )
    worker = directory.get("w1")
    assert worker is not None
    assert (worker.status, worker.gpu_model) == ("busy", "RTX")  # deep-merged
    assert not directory.apply(sig.PeerUpdated(peer_id="nobody", metadata={}))
    assert directory.apply(sig.PeerLeft(peer_id="w1"))
    assert not directory.apply(sig.PeerLeft(peer_id="w1"))
    assert directory.workers == []


def test_lenient_metadata() -> None:
    info = WorkerInfo.from_metadata("w", {"properties": {"gpu_memory_mb": True}})
    assert (info.name, info.gpu_memory_mb, info.memory_text) == ("w", 0, "-")
    assert info.status == "unknown"
