"""Every combination of our and sleap-rtc 0.0.7 peers trains through our server.

Real processes on loopback: 0.0.7's own CLI, API and worker (``.venv-007``), our
``sleap-rtc`` CLI, the real sleap-nn on the tiny dataset, our signaling server.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sleap_rtc_core.protocol.jobspec import TrainJobSpec
from sleap_rtc_core.sample_data import tiny_training_config
from sleap_rtc_core.transport.auth import ChannelAuth
from sleap_rtc_gui.remote import open_session
from sleap_rtc_gui.session import UpdateKind
from tests.fixtures.signaling import RoomCreds
from tests.fixtures.transport import make_signaling

from .legacy import Lab

pytestmark = pytest.mark.slow

DONE_007 = "Remote Training Completed Successfully"


def staged(lab: Lab, tiny_labels: Path) -> tuple[Path, Path]:
    """The tiny labels and a one-epoch config on the lab's storage."""
    data = lab.mount / "data"
    data.mkdir(parents=True, exist_ok=True)
    labels = Path(shutil.copy(tiny_labels, data / "tiny.pkg.slp"))
    config = data / "tiny.yaml"
    config.write_text(tiny_training_config(max_epochs=1), encoding="utf-8")
    return labels, config


def legacy_train_args(lab: Lab, worker: str, config: Path, labels: Path) -> list[str]:
    return [
        "train",
        "--room",
        lab.room_id,
        "--worker-id",
        worker,
        "--config",
        str(config),
        "--labels",
        str(labels),
    ]


API_TRAIN = """
from sleap_rtc.api import run_training
result = run_training(
    config_path={config!r}, room_id={room!r}, worker_id={worker!r},
    labels_path={labels!r}, timeout=300,
)
print("API RESULT", result.success, result.job_id, flush=True)
"""


def api_train(lab: Lab, worker: str, config: Path, labels: Path) -> str:
    return API_TRAIN.format(
        config=str(config), room=lab.room_id, worker=worker, labels=str(labels)
    )


def run_folders(folder: Path) -> list[Path]:
    """The sleap-nn run folders (a ``training_config.yaml``) under ``folder``."""
    return sorted(p.parent for p in folder.rglob("training_config.yaml"))


async def test_a_legacy_worker_trains_for_the_legacy_cli_then_the_api(
    lab: Lab, tiny_labels: Path
) -> None:
    """0.0.7 worker, 0.0.7 CLI then 0.0.7 API, through our server: both sign
    the challenge with the Ed25519 key our server lists for the room."""
    labels, config = staged(lab, tiny_labels)
    worker_proc = await lab.legacy_worker("old-gpu")
    worker = await lab.until_worker(lambda p: p.get("worker_name") == "old-gpu")
    cli = await lab.legacy(
        "old-cli", legacy_train_args(lab, worker, config, labels), stdin=b"s\n"
    )
    await cli.wait_for(DONE_007, timeout=120)
    await cli.stop()  # it never exits by itself (0.0.7 waits on its socket)
    api = await lab.legacy_python("old-api", api_train(lab, worker, config, labels))
    assert await api.finish(timeout=120) == 0, worker_proc.text[-8000:]
    assert "API RESULT True job_" in api.text
    assert worker_proc.text.count("[AUTH] Ed25519 auth OK") == 2
    assert len(run_folders(lab.mount / "work" / "old-gpu")) == 2


async def test_our_worker_trains_for_the_legacy_cli_and_api(
    lab: Lab, tiny_labels: Path
) -> None:
    """Our worker serves 0.0.7 clients: the CLI with the room secret (HMAC), the
    API with its Ed25519 key (our worker fetches the room's keys)."""
    labels, config = staged(lab, tiny_labels)
    await lab.our_worker("new-gpu")
    args = legacy_train_args(lab, "new-gpu", config, labels)
    cli = await lab.legacy(
        "old-cli",
        [*args, "--room-secret", lab.secret],
        private_key=False,
        stdin=b"s\n",
    )
    await cli.wait_for(DONE_007, timeout=120)
    await cli.stop()
    api = await lab.legacy_python("old-api", api_train(lab, "new-gpu", config, labels))
    assert await api.finish(timeout=120) == 0, api.text[-4000:]
    assert "API RESULT True job_" in api.text


async def test_our_client_trains_on_a_legacy_worker_negotiated_then_named(
    lab: Lab, tiny_labels: Path
) -> None:
    """Our ``sleap-rtc train`` on a 0.0.7 worker (it holds the admin slot, so it
    never reads ``job_request``): placed without negotiation, then named with
    ``--worker``; the model folder is found on the shared storage; the limits
    of an old worker are said once; a client that refuses old workers says so."""
    labels, config = staged(lab, tiny_labels)
    await lab.legacy_worker("old-gpu", secret=True)
    worker = await lab.until_worker(lambda p: p.get("worker_name") == "old-gpu")
    secret = ["--room-secret", lab.secret]
    job = ["train", str(labels), "--config", str(config), "--epochs", "1"]
    for how in ([], ["--worker", worker]):
        ours = await lab.ours("new-cli", [*job, *lab.connection(), *secret, *how])
        assert await ours.finish(timeout=120) == 0, ours.text[-4000:]
        assert ours.text.count("runs sleap-rtc 0.0.7") == 1, ours.text
        (model_line,) = [
            line for line in ours.text.splitlines() if "model here:" in line
        ]
        model = Path(model_line.split("model here:", 1)[1].strip())
        assert (model / "training_config.yaml").is_file(), ours.text
        assert model.parent == lab.mount / "work" / "old-gpu"
    refusing = await lab.ours(
        "strict-cli", [*job, *lab.connection(), *secret, "--refuse-legacy-workers"]
    )
    assert await refusing.finish(timeout=60) != 0
    assert "refuses them" in refusing.text or "refuses such" in refusing.text


async def test_a_two_model_job_from_the_gui_session_on_a_legacy_worker(
    lab: Lab, tiny_labels: Path
) -> None:
    """A top-down pipeline (two configs in one job, as Run Remotely sends it)
    through the GUI's session on a 0.0.7 worker: one ``JOB_COMPLETE`` per model,
    and each folder, named by the worker ``{model_type}_{time}``, found by
    listing its working folder; the models stay there."""
    labels, _ = staged(lab, tiny_labels)
    await lab.legacy_worker("old-gpu", secret=True)
    worker = await lab.until_worker(lambda p: p.get("worker_name") == "old-gpu")
    spec = TrainJobSpec(
        config_contents=(
            tiny_training_config(model_type="centroid", max_epochs=1),
            tiny_training_config(model_type="centered_instance", max_epochs=1),
        ),
        model_types=("centroid", "centered_instance"),
        labels_path=str(labels),
    )
    room = RoomCreds(lab.room_id, lab.room_token)
    client = make_signaling(lab.url, room, "gui-client", "client")
    await client.start()
    session = await open_session(
        client, worker, ChannelAuth(secret=lab.secret), own_signaling=True
    )
    try:
        assert session.legacy
        await session.submit(spec.to_dict())
        updates = [u async for u in session.updates()]
        assert updates[-1].kind is UpdateKind.COMPLETE, updates[-1]
        result = dict(updates[-1].payload)
        local = await session.download_models(result, lab.root / "models")
    finally:
        await session.close()
    assert result["models_stay_on_worker"] is True
    folders = [Path(p) for p in result["model_paths"]]
    assert local == folders  # visible on the shared storage: not copied
    assert [f.name.rsplit("_", 2)[0] for f in folders] == [
        "centroid",
        "centered_instance",
    ]
    for folder in folders:
        assert folder.parent == lab.mount / "work" / "old-gpu"
        assert (folder / "training_config.yaml").is_file()
