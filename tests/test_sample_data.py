"""Tests of :mod:`sleap_rtc_core.sample_data`: the tiny dataset and its config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sleap_io as sio
import yaml

from sleap_rtc_core.sample_data import (
    NODE_NAMES,
    TinyModelType,
    tiny_training_config,
    write_tiny_labels,
    write_tiny_video_labels,
)
from tests.fixtures.data import TINY_FRAMES, TINY_NODES, TINY_SIZE, TINY_SUGGESTIONS

ROOT = Path(__file__).resolve().parents[1]
RESOURCE_CONFIG = ROOT / "resources" / "configs" / "tiny_single_instance.yaml"


def _points(labels: Any) -> np.ndarray:
    return np.stack([lf.instances[0].numpy() for lf in labels.labeled_frames])


def test_embedded_labels_hold_frames_instances_and_suggestions(
    tiny_labels: Path,
) -> None:
    labels = sio.load_slp(tiny_labels.as_posix())
    assert len(labels.videos) == 1
    video = labels.videos[0]
    assert Path(video.filename) == tiny_labels  # the images live in the file
    assert video.shape == (TINY_FRAMES + TINY_SUGGESTIONS, TINY_SIZE, TINY_SIZE, 1)
    assert labels.skeletons[0].node_names == list(TINY_NODES)
    assert [lf.frame_idx for lf in labels.labeled_frames] == list(range(TINY_FRAMES))
    assert all(len(lf.user_instances) == 1 for lf in labels.labeled_frames)
    assert [s.frame_idx for s in labels.suggestions] == list(
        range(TINY_FRAMES, TINY_FRAMES + TINY_SUGGESTIONS)
    )
    points = _points(labels)
    assert np.isfinite(points).all()
    assert (points >= 0).all()
    assert (points < TINY_SIZE).all()


def test_the_head_is_the_brightest_spot(tiny_labels: Path) -> None:
    labels = sio.load_slp(tiny_labels.as_posix())
    lf = labels.labeled_frames[0]
    image = lf.image[..., 0].astype(float)
    head = lf.instances[0].numpy()[0]
    y, x = np.unravel_index(np.argmax(image), image.shape)
    assert np.hypot(x - head[0], y - head[1]) <= 2.5


def test_same_seed_same_data_other_seed_other_data(tmp_path: Path) -> None:
    a = write_tiny_labels(tmp_path / "a.pkg.slp", n_frames=4, size=32, seed=3)
    b = write_tiny_labels(tmp_path / "b.pkg.slp", n_frames=4, size=32, seed=3)
    c = write_tiny_labels(tmp_path / "c.pkg.slp", n_frames=4, size=32, seed=4)
    la, lb, lc = (sio.load_slp(p.as_posix()) for p in (a, b, c))
    np.testing.assert_array_equal(_points(la), _points(lb))
    np.testing.assert_array_equal(la.videos[0][0], lb.videos[0][0])
    assert not np.array_equal(_points(la), _points(lc))


@pytest.mark.parametrize("n_nodes", sorted(NODE_NAMES))
def test_skeleton_sizes(tmp_path: Path, n_nodes: int) -> None:
    path = write_tiny_labels(tmp_path / "x.pkg.slp", n_frames=2, n_nodes=n_nodes)
    labels = sio.load_slp(path.as_posix())
    skeleton = labels.skeletons[0]
    assert tuple(skeleton.node_names) == NODE_NAMES[n_nodes]
    assert len(skeleton.edges) == n_nodes - 1
    assert _points(labels).shape == (2, n_nodes, 2)


def test_video_labels_reference_a_readable_video(
    tiny_video_labels: tuple[Path, Path],
) -> None:
    labels_path, video_path = tiny_video_labels
    assert labels_path.is_absolute()
    assert video_path.is_absolute()
    assert video_path == labels_path.with_suffix(".mp4")
    labels = sio.load_slp(labels_path.as_posix(), open_videos=False)
    assert Path(labels.videos[0].filename) == video_path
    video = sio.load_video(video_path.as_posix())
    assert video.shape[:3] == (TINY_FRAMES + TINY_SUGGESTIONS, TINY_SIZE, TINY_SIZE)
    assert len(labels.labeled_frames) == TINY_FRAMES
    video.close()


def test_video_labels_can_lose_their_video(
    tiny_video_labels: tuple[Path, Path],
) -> None:
    labels_path, video_path = tiny_video_labels
    video_path.unlink()
    labels = sio.load_slp(labels_path.as_posix(), open_videos=False)
    assert Path(labels.videos[0].filename) == video_path
    assert not labels.videos[0].exists()


def test_frames_match_between_the_two_flavours(tmp_path: Path) -> None:
    embedded = write_tiny_labels(tmp_path / "e.pkg.slp", n_frames=3, size=32)
    referenced, _ = write_tiny_video_labels(tmp_path / "r.slp", n_frames=3, size=32)
    le = sio.load_slp(embedded.as_posix())
    lr = sio.load_slp(referenced.as_posix())
    np.testing.assert_array_equal(_points(le), _points(lr))
    # Nearly lossless H.264: the frames differ by a few grey levels at most.
    diff = np.abs(
        le.videos[0][1].astype(int) - lr.videos[0][1][..., :1].astype(int)
    ).mean()
    assert diff < 3


def test_embed_false_writes_a_video_beside_the_labels(tmp_path: Path) -> None:
    path = write_tiny_labels(tmp_path / "sub" / "v.slp", n_frames=2, embed=False)
    assert path == (tmp_path / "sub" / "v.slp").absolute()
    assert (tmp_path / "sub" / "v.mp4").is_file()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_frames": 1},
        {"size": 40},
        {"size": 16},
        {"n_nodes": 4},
        {"n_nodes": 0},
        {"suggestions": -1},
    ],
)
def test_bad_shapes_are_refused(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        write_tiny_labels(tmp_path / "x.pkg.slp", **kwargs)
    with pytest.raises(ValueError, match="must be"):
        write_tiny_video_labels(tmp_path / "x.slp", **kwargs)
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------- config


@pytest.mark.parametrize("model_type", list(TinyModelType))
def test_config_passes_sleap_nn_schema(model_type: TinyModelType) -> None:
    from sleap_nn.config.training_job_config import verify_training_cfg

    text = tiny_training_config(model_type=model_type, train_labels="/d/l.slp")
    cfg = verify_training_cfg(yaml.safe_load(text))
    heads = {k for k, v in cfg.model_config.head_configs.items() if v is not None}
    assert heads == {model_type.value}
    assert cfg.data_config.train_labels_path == ["/d/l.slp"]
    assert cfg.trainer_config.trainer_accelerator == "cpu"
    assert cfg.trainer_config.train_data_loader.num_workers == 0
    assert cfg.trainer_config.zmq.publish_port is None


def test_config_arguments_land_in_the_yaml() -> None:
    cfg = yaml.safe_load(
        tiny_training_config(
            max_epochs=7,
            train_labels=[Path("/a.slp"), "/b.slp"],
            val_labels="/v.slp",
            ckpt_dir=Path("/models"),
            run_name="run",
            batch_size=2,
            learning_rate=0.01,
            accelerator="auto",
        )
    )
    trainer = cfg["trainer_config"]
    assert trainer["max_epochs"] == 7
    assert cfg["data_config"]["train_labels_path"] == ["/a.slp", "/b.slp"]
    assert cfg["data_config"]["val_labels_path"] == ["/v.slp"]
    assert trainer["ckpt_dir"] == "/models"
    assert trainer["run_name"] == "run"
    assert trainer["train_data_loader"]["batch_size"] == 2
    assert trainer["val_data_loader"]["batch_size"] == 2
    assert trainer["optimizer"]["lr"] == 0.01
    assert trainer["trainer_accelerator"] == "auto"
    assert "ckpt_dir" not in yaml.safe_load(tiny_training_config())["trainer_config"]


def test_crop_size_only_for_centered_instance() -> None:
    def crop(kind: str) -> object:
        cfg = yaml.safe_load(tiny_training_config(model_type=kind, crop_size=48))
        return cfg["data_config"]["preprocessing"]["crop_size"]

    assert crop("centered_instance") == 48
    assert crop("centroid") is None
    assert crop("single_instance") is None


def test_unknown_model_type_is_refused() -> None:
    with pytest.raises(ValueError, match="bottomup"):
        tiny_training_config(model_type="bottomup")


def test_resource_config_is_the_generated_one() -> None:
    """``resources/configs/tiny_single_instance.yaml`` must not drift."""
    shipped = yaml.safe_load(RESOURCE_CONFIG.read_text(encoding="utf-8"))
    assert shipped == yaml.safe_load(tiny_training_config())


def test_import_is_light() -> None:
    """A labeler's client imports the package without sleap-io or numpy."""
    code = (
        "import sys, sleap_rtc_core.sample_data;"
        "bad = [m for m in ('sleap_io', 'numpy', 'yaml', 'torch') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
