"""Our worker and client through a server with the reference's strict rules.

:class:`~tests.interop.reference_double.ReferenceDouble` requires the sender ids
on ``discover_peers``/``update_metadata`` and replaces stored metadata on every
update (PROTOCOL.md B §1.2, §1.5). Two jobs in a row: the second only finds the
worker if its tags survived the status updates of the first.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sleap_rtc_core.sample_data import tiny_training_config

from .legacy import OURS, Proc, start
from .reference_double import ReferenceDouble

pytestmark = pytest.mark.slow

SECRET = "a lab passphrase"


@pytest.fixture
async def reference() -> AsyncIterator[ReferenceDouble]:
    async with ReferenceDouble() as server:
        yield server


async def ours(
    tmp_path: Path, name: str, args: list[str], server: ReferenceDouble
) -> Proc:
    cwd = tmp_path / name
    cwd.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "SLEAP_RTC_ICE_LOOPBACK": "1"}
    connection = ["--server", server.url, "--room", server.room_id]
    connection += ["--token", server.token, "--room-secret", SECRET]
    return await start(name, [OURS, *args, *connection], env=env, cwd=cwd)


async def test_our_peers_train_twice_through_a_reference_server(
    reference: ReferenceDouble, tmp_path: Path, tiny_labels: Path
) -> None:
    storage = tmp_path / "storage"
    storage.mkdir()
    labels = Path(shutil.copy(tiny_labels, storage / "tiny.pkg.slp"))
    config = storage / "tiny.yaml"
    config.write_text(tiny_training_config(max_epochs=1), encoding="utf-8")
    worker = await ours(
        tmp_path,
        "worker",
        ["worker", "--peer-id", "gpu-1", "--name", "gpu-1", "--mount", str(storage)],
        reference,
    )
    try:
        await worker.wait_for("ready")
        for attempt in (1, 2):
            client = await ours(
                tmp_path,
                f"client-{attempt}",
                ["train", str(labels), "--config", str(config), "--epochs", "1"],
                reference,
            )
            status = await client.finish(timeout=180)
            assert status == 0, f"job {attempt}:\n{client.text}\n{worker.text[-4000:]}"
            assert "model here:" in client.text
        assert reference.refused == []  # every request named its sender
        props = reference.peers["gpu-1"].metadata
        assert "training-worker" in props["tags"]
        assert props["properties"]["status"] == "available"
        assert worker.proc.returncode is None  # no refused update stopped it
    finally:
        await worker.stop()
