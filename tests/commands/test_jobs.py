"""``sleap-rtc check``, ``train`` and ``track`` against a separately started
server and worker (real processes, real WebRTC on 127.0.0.1, real sleap-nn)."""

from __future__ import annotations

import base64
import json
import os
import pty
import secrets
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sleap_rtc_core.commands.jobs import parse_map
from sleap_rtc_core.sample_data import (
    tiny_training_config,
    write_tiny_labels,
    write_tiny_video_labels,
)
from tests.fixtures.cli import CLI_ENV, SLEAP_RTC, run_cli, start_server, start_worker
from tests.fixtures.timing import scaled


@dataclass
class Lab:
    """A running server and worker, and the flags a client needs."""

    shared: Path
    flags: list[str]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("lab")
    data, shared = root / "data", root / "shared"
    shared.mkdir()
    server, url = start_server(data)
    procs: list[subprocess.Popen[str]] = [server]
    try:
        room = json.loads(
            run_cli(
                "room", "create", "--name", "lab", "--data-dir", str(data), "--json"
            ).stdout
        )
        secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        flags = [
            "--server",
            url,
            "--room",
            room["room_id"],
            "--token",
            room["room_token"],
            "--room-secret",
            secret,
        ]
        procs.append(
            start_worker(
                *flags, "--mount", str(shared), "--peer-id", "gpu1", "--name", "lab-gpu"
            )
        )
        yield Lab(shared, flags)
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=30)


def model_here(out: str) -> Path:
    """The model folder ``train`` said is here (its last ``model here:``)."""
    lines = [x for x in out.splitlines() if x.startswith("model here: ")]
    assert lines, out
    return Path(lines[-1].removeprefix("model here: "))


def test_map_flags() -> None:
    assert parse_map("/home/me=/data") == ("/home/me", "/data")
    with pytest.raises(ValueError, match="OLD=NEW"):
        parse_map("nothing")


def test_check_lists_what_the_worker_sees(lab: Lab) -> None:
    labels, video = write_tiny_video_labels(lab.shared / "proj" / "labels.slp")
    result = run_cli("check", str(labels), *lab.flags, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["labels"] == {"path": str(labels), "found": True}
    assert report["videos"] == [
        {"path": str(video), "status": "found", "suggestions": []}
    ]
    # The video moved: missing, with the worker's suggestion; exit 1.
    moved = lab.shared / "moved" / video.name
    moved.parent.mkdir()
    video.rename(moved)
    result = run_cli("check", str(labels), *lab.flags, "--json")
    assert result.returncode == 1
    (entry,) = json.loads(result.stdout)["videos"]
    assert entry["status"] == "missing"
    assert str(moved) in entry["suggestions"]


def test_workers_are_named_by_id_or_name_and_check_says_which(lab: Lab) -> None:
    labels, _video = write_tiny_video_labels(lab.shared / "named" / "labels.slp")
    result = run_cli("check", str(labels), *lab.flags, "--json")
    assert result.returncode == 0, result.stderr
    assert "asking worker gpu1" in result.stderr  # stdout stays JSON
    json.loads(result.stdout)
    by_name = run_cli("check", str(labels), *lab.flags, "--worker", "lab-gpu")
    assert by_name.returncode == 0, by_name.stdout + by_name.stderr
    unknown = run_cli("check", str(labels), *lab.flags, "--worker", "gpu-box-9")
    assert unknown.returncode == 2
    assert "no worker 'gpu-box-9' in this room" in unknown.stderr
    assert "gpu1 (lab-gpu)" in unknown.stderr


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("sleap-rtc ")


def test_check_map_moves_the_videos_as_train_map_does(lab: Lab) -> None:
    """``--map`` applies to the videos inside the labels too (one rule for
    ``check`` and ``train``): a moved folder is found where the map says, and
    a map to a folder without the video says so."""
    labels, video = write_tiny_video_labels(
        lab.shared / "mapped" / "labels.slp",
        video_path=lab.shared / "mapped" / "old" / "session-mapped.mp4",
    )
    new_home = lab.shared / "mapped" / "new"
    new_home.mkdir()
    video.rename(new_home / video.name)
    old_folder = str(video.parent)
    result = run_cli(
        "check", str(labels), *lab.flags, "--json", "--map", f"{old_folder}={new_home}"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (entry,) = json.loads(result.stdout)["videos"]
    assert entry["status"] == "found"
    assert entry["worker_path"] == str(new_home / video.name)
    nowhere = lab.shared / "mapped" / "nowhere"
    result = run_cli(
        "check", str(labels), *lab.flags, "--map", f"{old_folder}={nowhere}"
    )
    assert result.returncode == 1
    assert "missing" in result.stdout


@pytest.mark.slow
def test_a_suggested_video_is_never_taken_silently(lab: Lab, tmp_path: Path) -> None:
    """No terminal: a same-named file elsewhere is not taken on its own (it may
    be another experiment's video); ``--accept-suggestions`` says to."""
    labels, video = write_tiny_video_labels(
        lab.shared / "silent" / "labels.slp",
        video_path=lab.shared / "silent" / "session-silent.mp4",
    )
    moved = lab.shared / "other-experiment" / video.name
    moved.parent.mkdir()
    video.rename(moved)
    config = tmp_path / "cfg.yaml"
    config.write_text(tiny_training_config(max_epochs=1))
    train = ["train", str(labels), "--config", str(config), *lab.flags]
    result = run_cli(*train)
    assert result.returncode == 3, result.stdout + result.stderr
    assert f"the worker suggests {moved}" in result.stderr
    assert "--accept-suggestions" in result.stderr
    assert not (lab.shared / "silent" / "models").exists()  # nothing ran
    result = run_cli(*train, "--accept-suggestions")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"using the worker's {moved}" in result.stdout


@pytest.mark.slow
def test_an_unreachable_server_is_said_not_waited_on(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    labels = write_tiny_labels(tmp_path / "x.pkg.slp")
    flags = ["--server", f"ws://127.0.0.1:{port}", "--room", "r", "--token", "t"]
    result = run_cli("check", str(labels), *flags, "--room-secret", "s")
    assert result.returncode == 1
    assert f"cannot reach ws://127.0.0.1:{port}" in result.stderr


def test_labels_outside_the_mounts_are_rejected(lab: Lab, tmp_path: Path) -> None:
    labels = write_tiny_labels(tmp_path / "private.pkg.slp")
    config = tmp_path / "cfg.yaml"
    config.write_text(tiny_training_config(max_epochs=1))
    result = run_cli("train", str(labels), "--config", str(config), *lab.flags)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "--map" in result.stderr


def test_no_worker_is_exit_2(lab: Lab, tmp_path: Path) -> None:
    labels = write_tiny_labels(lab.shared / "x.pkg.slp")
    config = tmp_path / "cfg.yaml"
    config.write_text(tiny_training_config(max_epochs=1))
    result = run_cli(
        "train",
        str(labels),
        "--config",
        str(config),
        *lab.flags,
        "--min-gpu-memory",
        "1000000",
    )
    assert result.returncode == 2, result.stdout + result.stderr


@pytest.mark.slow
def test_train_then_track_remotely(lab: Lab, tmp_path: Path) -> None:
    labels = write_tiny_labels(lab.shared / "train.pkg.slp", suggestions=2)
    config = tmp_path / "cfg.yaml"
    config.write_text(tiny_training_config(max_epochs=2))
    result = run_cli("train", str(labels), "--config", str(config), *lab.flags)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    # The workers asked, each with its answer, then the choice and why.
    assert "found 1 available worker:" in out
    assert "  - lab-gpu (gpu1): " in out
    assert ": estimate " in out
    assert "selected lab-gpu (gpu1) (reason: only one)" in out
    assert "epoch 2/2" in out
    model_dir = model_here(out)
    assert list(model_dir.glob("*.ckpt"))
    # The worker's folder is visible here (same path): nothing is copied, and
    # the path is said once.
    assert out.count(str(model_dir)) == 1
    assert "result: " not in out

    # A new process fetches the models by the job's id (its secret was kept
    # when it was accepted), naming the worker by its name.
    job_id = out.split("job ", 1)[1].split(" accepted", 1)[0]
    fetched = tmp_path / "fetched"
    got = run_cli(
        "fetch", job_id, "--worker", "lab-gpu", "--to", str(fetched), *lab.flags
    )
    assert got.returncode == 0, got.stdout + got.stderr
    (copy,) = fetched.iterdir()
    assert sorted(p.name for p in copy.glob("*.ckpt")) == sorted(
        p.name for p in model_dir.glob("*.ckpt")
    )
    nobody = run_cli("fetch", "job_00000000", "--worker", "gpu1", *lab.flags)
    assert nobody.returncode == 1
    assert "no job" in nobody.stderr

    predictions = lab.shared / "predictions.slp"
    result = run_cli(
        "track",
        str(labels),
        "--model",
        str(model_dir),
        "--output",
        str(predictions),
        *lab.flags,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert predictions.exists()
    # Visible from here (same path): reported, not copied.
    assert f"predictions here: {predictions}" in result.stdout


@pytest.fixture(scope="module")
def island(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A second worker (``island``) of the lab's room that shares no storage
    with the client: its one mount holds only its upload area."""
    root = tmp_path_factory.mktemp("island")
    proc = start_worker(
        *lab.flags,
        "--mount",
        str(root),
        "--upload-dir",
        str(root / "uploads"),
        "--peer-id",
        "island",
    )
    try:
        yield root
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_without_upload_a_file_the_worker_cannot_see_is_rejected(
    lab: Lab, island: Path, tmp_path: Path
) -> None:
    labels = write_tiny_labels(tmp_path / "home.pkg.slp")
    config = tmp_path / "cfg.yaml"
    config.write_text(tiny_training_config(max_epochs=1))
    result = run_cli(
        "train", str(labels), "--config", str(config), *lab.flags, "--worker", "island"
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "--upload" in result.stderr
    assert not list((island / "uploads" / "sha256").iterdir())


@pytest.mark.slow
def test_train_sends_the_labels_once_to_a_worker_without_shared_storage(
    lab: Lab, island: Path, tmp_path: Path
) -> None:
    labels = write_tiny_labels(tmp_path / "home" / "train.pkg.slp")
    config = tmp_path / "cfg.yaml"
    config.write_text(tiny_training_config(max_epochs=1))
    train = ("train", str(labels), "--config", str(config), *lab.flags)
    first = run_cli(*train, "--worker", "island", "--upload")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "uploaded train.pkg.slp" in first.stdout
    stored = list((island / "uploads" / "sha256").glob("*/train.pkg.slp"))
    assert len(stored) == 1
    assert stored[0].read_bytes() == labels.read_bytes()
    model_dir = model_here(first.stdout)
    # Sent: the model comes home (the worker's copy is in its upload area).
    assert model_dir.parent == labels.parent / "models"
    assert list(model_dir.glob("*.ckpt"))
    # The second job on the same data: asked by hash, not sent again.
    second = run_cli(*train, "--worker", "island", "--upload")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "already" in second.stdout
    assert "not sent" in second.stdout
    assert len(list((island / "uploads" / "sha256").iterdir())) == 1


def test_a_worker_without_an_upload_area_is_not_sent_anything(
    lab: Lab, tmp_path: Path
) -> None:
    labels = write_tiny_labels(tmp_path / "home.pkg.slp")
    config = tmp_path / "cfg.yaml"
    config.write_text(tiny_training_config(max_epochs=1))
    train = ("train", str(labels), "--config", str(config), *lab.flags)
    for flags in ((), ("--upload",)):
        result = run_cli(*train, "--worker", "gpu1", *flags)
        assert result.returncode == 3, result.stdout + result.stderr
        assert "has no upload area" in result.stderr
        assert "--upload-dir" in result.stderr
        assert "or --upload to send it" not in result.stderr


@pytest.mark.slow
def test_a_slp_goes_with_its_videos_when_asked(
    lab: Lab, island: Path, tmp_path: Path
) -> None:
    # Its own bytes and name: the island is shared by this module's tests.
    labels, video = write_tiny_video_labels(
        tmp_path / "vids" / "labels.slp", video_path=tmp_path / "cam.mp4", seed=5
    )
    config = tmp_path / "cfg.yaml"
    config.write_text(tiny_training_config(max_epochs=1))
    train = ("train", str(labels), "--config", str(config), *lab.flags)
    result = run_cli(*train, "--worker", "island", "--upload-with-videos")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"video {video}: on the worker at" in result.stdout
    assert "uploaded labels.slp" in result.stdout
    stored = island / "uploads" / "sha256"
    assert [p.read_bytes() for p in stored.glob(f"*/{video.name}")] == [
        video.read_bytes()
    ]
    assert [p.read_bytes() for p in stored.glob("*/labels.slp")] == [
        labels.read_bytes()
    ]
    assert list(model_here(result.stdout).glob("*.ckpt"))
    again = run_cli(*train, "--worker", "island", "--upload-with-videos")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "not sent" in again.stdout


@pytest.mark.slow
def test_a_slp_with_external_videos_goes_as_a_package(
    lab: Lab, island: Path, tmp_path: Path
) -> None:
    labels, _video = write_tiny_video_labels(tmp_path / "proj" / "labels.slp")
    config = tmp_path / "cfg.yaml"
    config.write_text(tiny_training_config(max_epochs=1))
    result = run_cli(
        "train",
        str(labels),
        "--config",
        str(config),
        *lab.flags,
        "--worker",
        "island",
        "--upload",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "uploaded labels.pkg.slp" in result.stdout
    assert list((island / "uploads" / "sha256").glob("*/labels.pkg.slp"))


@pytest.mark.slow
def test_track_sends_the_video_and_the_predictions_come_home(
    lab: Lab, island: Path, tmp_path: Path
) -> None:
    labels = write_tiny_labels(tmp_path / "home" / "train.pkg.slp")
    config = tmp_path / "cfg.yaml"
    config.write_text(tiny_training_config(max_epochs=1))
    train = run_cli(
        "train",
        str(labels),
        "--config",
        str(config),
        *lab.flags,
        "--worker",
        "island",
        "--upload",
        "--no-download",
    )
    assert train.returncode == 0, train.stdout + train.stderr
    # A run folder in the upload area: this new process shows the kept
    # secret of the job that trained it, and may name it.
    model = model_here(train.stdout)
    assert model.is_relative_to(island / "uploads" / "models")
    _labels, video = write_tiny_video_labels(tmp_path / "clips" / "labels.slp")
    track = ("track", str(video), "--model", str(model), *lab.flags)
    # --download: on this one machine the worker's file is visible here too.
    result = run_cli(*track, "--worker", "island", "--upload", "--download")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"uploaded {video.name}" in result.stdout
    assert "showed the worker the secrets" in result.stdout
    stored = list((island / "uploads" / "sha256").glob(f"*/{video.name}"))
    assert [p.read_bytes() for p in stored] == [video.read_bytes()]
    home = video.with_name(f"{video.stem}.predictions.slp")
    assert f"predictions here: {home}" in result.stdout
    assert home.exists()
    # The predictions were written in the uploader's folder, not beside the
    # stored video (where nothing but the file may be).
    assert not list(stored[0].parent.glob("*.predictions.slp"))
    # A .slp whose videos are elsewhere is not sent as its labeled frames.
    refused = run_cli(
        "track",
        str(_labels),
        "--model",
        str(model),
        *lab.flags,
        "--worker",
        "island",
        "--upload",
    )
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert ".pkg.slp" in refused.stderr


_ESC = "\x1b["


@pytest.mark.slow
def test_train_without_a_terminal_prints_plain_progress(
    lab: Lab, tmp_path: Path
) -> None:
    """Piped (CI): the epoch lines on stdout, the waits told on stderr as
    plain lines, never an escape code; the estimate is labelled."""
    labels = write_tiny_labels(lab.shared / "plain.pkg.slp")
    config = tmp_path / "cfg.yaml"
    config.write_text(tiny_training_config(max_epochs=2))
    result = run_cli("train", str(labels), "--config", str(config), *lab.flags)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ": estimate " in result.stdout
    assert "  epoch 2/2  loss " in result.stdout
    # sleap-nn takes seconds to import torch: that wait is said, with its time.
    assert "  waiting for sleap-nn to start (loading the labels)  " in result.stderr
    assert " so far" in result.stderr
    assert _ESC not in result.stdout + result.stderr


@pytest.mark.slow
def test_train_on_a_terminal_draws_a_bar(lab: Lab, tmp_path: Path) -> None:
    """stderr a terminal: a live bar drawn there (escape codes), while stdout,
    a pipe, keeps its plain epoch lines."""
    labels = write_tiny_labels(lab.shared / "bar.pkg.slp")
    config = tmp_path / "cfg.yaml"
    config.write_text(tiny_training_config(max_epochs=2))
    master, slave = pty.openpty()
    drawn = bytearray()

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's last writer closed it
                return
            if not chunk:
                return
            drawn.extend(chunk)

    proc = subprocess.Popen(
        [SLEAP_RTC, "train", str(labels), "--config", str(config), *lab.flags],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        text=True,
        env={**os.environ, **CLI_ENV, "TERM": "xterm", "COLUMNS": "120"},
    )
    os.close(slave)
    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        out, _ = proc.communicate(timeout=scaled(120))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=scaled(10))
        os.close(master)
    text = drawn.decode(errors="replace")
    assert proc.returncode == 0, out + text
    assert "  epoch 2/2  loss " in out
    assert _ESC not in out
    assert _ESC in text  # the bar is drawn, and redrawn, in place
    assert "waiting for sleap-nn to start" in text
    assert "━" in text  # rich's bar
