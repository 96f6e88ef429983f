"""A tiny synthetic SLEAP dataset and the fastest sleap-nn config that trains on it.

Nothing ships with sleap, sleap-io or sleap-nn that a test or ``sleap-rtc demo``
could train on, so we draw our own: grayscale frames of a dark arena with one
bright "animal" (a chain of Gaussian blobs, head brightest) at a random position
and heading, one user instance per frame, a 1-3 node skeleton along its body. A
UNet learns where the blobs are within a few epochs, and two epochs on 20 frames
of 64x64 take about a second on a CPU (plus about 12 s of sleap-nn imports).

Two flavours, because the worker has to cope with both:

* :func:`write_tiny_labels` embeds the images in the labels file (``.pkg.slp``):
  one self-contained file, nothing else to find.
* :func:`write_tiny_video_labels` writes a real ``.mp4`` and a ``.slp`` that only
  *references* it by path, so a test can move or delete the video and exercise
  the missing-video paths.

:func:`tiny_training_config` returns sleap-nn 0.3.5 YAML for the matching tiny
model (``single_instance``, or the ``centroid`` + ``centered_instance`` pair of a
top-down pipeline).

sleap-io, numpy and PyYAML are imported inside the functions, so importing
:mod:`sleap_rtc_core` never pulls them in (a labeler's client does not need them).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "NODE_NAMES",
    "TinyModelType",
    "tiny_training_config",
    "write_tiny_labels",
    "write_tiny_video_labels",
]

NODE_NAMES: dict[int, tuple[str, ...]] = {
    1: ("head",),
    2: ("head", "tail"),
    3: ("head", "thorax", "tail"),
}
"""Skeleton node names by node count, ordered from head to tail."""

# Blob radius (px) and peak brightness per node, head first; the body blob sits in
# the middle whatever the node count, so the animal looks the same to the model.
_HEAD = (3.5, 235.0)
_BODY = (5.0, 150.0)
_TAIL = (3.0, 110.0)
_HALF_LENGTH = 0.14  # head/tail distance from the centre, as a fraction of size
_BACKGROUND = (18.0, 4.0)  # mean, std of the arena's noise


class TinyModelType(StrEnum):
    """The model types :func:`tiny_training_config` can write."""

    SINGLE_INSTANCE = "single_instance"
    CENTROID = "centroid"
    CENTERED_INSTANCE = "centered_instance"


def _check_shape(n_frames: int, size: int, n_nodes: int, suggestions: int) -> None:
    if n_frames < 2:
        raise ValueError(f"n_frames must be at least 2 (train + val), got {n_frames}")
    if size < 32 or size % 16:
        raise ValueError(f"size must be a multiple of 16 and >= 32, got {size}")
    if n_nodes not in NODE_NAMES:
        raise ValueError(f"n_nodes must be one of {sorted(NODE_NAMES)}, got {n_nodes}")
    if suggestions < 0:
        raise ValueError(f"suggestions must be >= 0, got {suggestions}")


def _draw_frames(
    n_total: int, size: int, n_nodes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``(n, size, size)`` uint8 and node positions ``(n, n_nodes, 2)`` x/y."""
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    half = _HALF_LENGTH * size
    margin = half + 6.0
    frames = np.empty((n_total, size, size), dtype=np.uint8)
    points = np.empty((n_total, n_nodes, 2), dtype=np.float64)
    for i in range(n_total):
        centre = rng.uniform(margin, size - margin, 2)
        angle = rng.uniform(0.0, 2.0 * math.pi)
        heading = np.array([math.cos(angle), math.sin(angle)])
        head, tail = centre + half * heading, centre - half * heading
        image = rng.normal(*_BACKGROUND, (size, size)).astype(np.float32)
        for (x, y), (radius, peak) in ((tail, _TAIL), (centre, _BODY), (head, _HEAD)):
            sigma2 = 2.0 * (radius / 1.5) ** 2
            blob = peak * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / sigma2)
            np.maximum(image, blob, out=image)
        frames[i] = np.clip(image, 0, 255).astype(np.uint8)
        nodes = {1: [head], 2: [head, tail], 3: [head, centre, tail]}[n_nodes]
        points[i] = np.stack(nodes)
    return frames, points


def _build_labels(
    video: Any, points: np.ndarray, n_frames: int, suggestions: int
) -> Any:
    """Labels with one user instance on each of the first ``n_frames`` frames."""
    import sleap_io as sio

    names = NODE_NAMES[points.shape[1]]
    skeleton = sio.Skeleton(
        list(names), edges=list(zip(names, names[1:], strict=False))
    )
    frames = [
        sio.LabeledFrame(
            video=video,
            frame_idx=i,
            instances=[sio.Instance.from_numpy(points[i], skeleton=skeleton)],
        )
        for i in range(n_frames)
    ]
    suggested = [
        sio.SuggestionFrame(video=video, frame_idx=i)
        for i in range(n_frames, n_frames + suggestions)
    ]
    return sio.Labels(
        labeled_frames=frames,
        videos=[video],
        skeletons=[skeleton],
        suggestions=suggested,
    )


def write_tiny_labels(
    path: Path,
    *,
    n_frames: int = 20,
    size: int = 64,
    n_nodes: int = 2,
    seed: int = 0,
    embed: bool = True,
    suggestions: int = 0,
) -> Path:
    """Write a tiny synthetic labeled dataset.

    Frame ``i`` shows one animal; frames ``0 .. n_frames-1`` carry one user
    instance each, and the ``suggestions`` frames after them are unlabeled
    suggestions (what post-training inference predicts on). The same ``seed``
    always gives the same frames and points.

    Args:
        path: Where to write the labels, conventionally ``*.pkg.slp`` when
            embedding. Parent folders are created.
        n_frames: Labeled frames (at least 2, so that a validation split exists).
        size: Frame width and height in pixels (a multiple of 16, >= 32).
        n_nodes: Skeleton nodes, 1 to 3 (see :data:`NODE_NAMES`).
        seed: Seed of the random positions, headings and noise.
        embed: Embed the images in the labels file (PNG inside the HDF5). When
            false, this is :func:`write_tiny_video_labels` with the video written
            next to the labels as ``<stem>.mp4``.
        suggestions: Unlabeled suggested frames to add after the labeled ones.

    Returns:
        ``path``.

    Raises:
        ValueError: A size or count out of range.
    """
    path = Path(path)
    if not embed:
        return write_tiny_video_labels(
            path,
            n_frames=n_frames,
            size=size,
            n_nodes=n_nodes,
            seed=seed,
            suggestions=suggestions,
        )[0]
    _check_shape(n_frames, size, n_nodes, suggestions)
    import imageio.v3 as iio
    import sleap_io as sio

    frames, points = _draw_frames(n_frames + suggestions, size, n_nodes, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    # sleap-io embeds frames read from a source video: a lossless PNG sequence in
    # a scratch folder serves, and is gone once the images sit in the file.
    with tempfile.TemporaryDirectory(prefix="sleap_rtc_tiny_") as scratch:
        files = []
        for i, frame in enumerate(frames):
            file = Path(scratch) / f"{i:05d}.png"
            iio.imwrite(file, frame)
            files.append(file.as_posix())
        video = sio.Video.from_filename(files, grayscale=True)
        labels = _build_labels(video, points, n_frames, suggestions)
        labels.save(path.as_posix(), embed=True, verbose=False)
        video.close()
    return path


def write_tiny_video_labels(
    path: Path,
    *,
    video_path: Path | None = None,
    n_frames: int = 20,
    size: int = 64,
    n_nodes: int = 2,
    seed: int = 0,
    suggestions: int = 0,
    fps: float = 30.0,
) -> tuple[Path, Path]:
    """Write a tiny ``.mp4`` and a ``.slp`` that references it by absolute path.

    The frames and points are those of :func:`write_tiny_labels` with the same
    arguments; only the storage differs. Move or delete the video afterwards to
    get labels whose video is missing.

    Args:
        path: Where to write the labels (``*.slp``). Parent folders are created.
        video_path: Where to write the video; default ``<stem>.mp4`` beside the
            labels. Parent folders are created.
        n_frames: Labeled frames (at least 2).
        size: Frame width and height in pixels (a multiple of 16, >= 32).
        n_nodes: Skeleton nodes, 1 to 3.
        seed: Seed of the random positions, headings and noise.
        suggestions: Unlabeled suggested frames after the labeled ones.
        fps: Frame rate written into the video.

    Returns:
        ``(labels_path, video_path)``, both absolute.

    Raises:
        ValueError: A size or count out of range.
    """
    _check_shape(n_frames, size, n_nodes, suggestions)
    import sleap_io as sio

    path = Path(path).absolute()
    if video_path is None:
        stem = path.name.removesuffix(".slp").removesuffix(".pkg")
        video_path = path.with_name(stem + ".mp4")
    video_path = Path(video_path).absolute()
    frames, points = _draw_frames(n_frames + suggestions, size, n_nodes, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    video_path.parent.mkdir(parents=True, exist_ok=True)
    # Nearly lossless H.264 keeps the blobs crisp; yuv420p plays everywhere.
    sio.save_video(frames, video_path.as_posix(), fps=fps, crf=1)
    video = sio.Video.from_filename(video_path.as_posix(), grayscale=True)
    labels = _build_labels(video, points, n_frames, suggestions)
    labels.save(path.as_posix(), embed=False, verbose=False)
    video.close()
    return path, video_path


def tiny_training_config(
    *,
    model_type: str = "single_instance",
    max_epochs: int = 2,
    train_labels: str | Path | Sequence[str | Path] | None = None,
    val_labels: str | Path | Sequence[str | Path] | None = None,
    ckpt_dir: str | Path | None = None,
    run_name: str | None = None,
    batch_size: int = 4,
    learning_rate: float = 1e-3,
    seed: int = 0,
    accelerator: str = "cpu",
    crop_size: int = 32,
) -> str:
    """sleap-nn 0.3.5 YAML for the smallest, fastest model that trains on tiny data.

    A UNet with 8 filters, max stride 8 and output stride 2; batch size 4; no
    loader workers, augmentation, progress bar, wandb, visualisation, LR
    schedule or early stopping; at least one step per epoch (sleap-nn's default
    of 200 steps per epoch would make an "epoch" of 20 frames take 50x longer);
    checkpoints on. Node names are left to sleap-nn (``part_names: null`` reads
    them from the labels), so the config fits any :data:`NODE_NAMES` skeleton.

    Args:
        model_type: ``single_instance``, ``centroid`` or ``centered_instance``
            (the last two are the two stages of a top-down pipeline).
        max_epochs: Epochs to train.
        train_labels: Labels file(s) to train on. ``None`` writes an empty list:
            the job's ``labels_path`` (a Hydra override) fills it in.
        val_labels: Validation labels; ``None`` splits 20 % off the training set.
        ckpt_dir: Folder that gets the ``<run_name>`` run folder; ``None`` leaves
            sleap-nn's default (the trainer's working directory).
        run_name: The run folder's name; ``None`` lets sleap-nn make one up.
        batch_size: Batch size of the train and validation loaders.
        learning_rate: Adam learning rate.
        seed: Trainer seed (also fixes the train/val split).
        accelerator: ``trainer_accelerator`` (``cpu``, ``gpu``, ``mps``, ``auto``).
        crop_size: Crop side in pixels for ``centered_instance``.

    Returns:
        YAML text, ready to be written to a file or sent as ``config_content``.

    Raises:
        ValueError: An unknown model type.
    """
    import yaml

    kind = TinyModelType(model_type)

    def paths(value: str | Path | Sequence[str | Path] | None) -> list[str] | None:
        if value is None:
            return None
        if isinstance(value, str | Path):
            return [Path(value).as_posix()]
        return [Path(v).as_posix() for v in value]

    confmaps: dict[str, Any] = {"sigma": 2.5, "output_stride": 2}
    if kind is TinyModelType.CENTROID:
        confmaps = {"anchor_part": None, **confmaps}
    else:
        confmaps = {"part_names": None, **confmaps}
    heads: dict[str, Any] = {t.value: None for t in TinyModelType}
    heads[kind.value] = {"confmaps": confmaps}

    config: dict[str, Any] = {
        "data_config": {
            "train_labels_path": paths(train_labels) or [],
            "val_labels_path": paths(val_labels),
            "validation_fraction": 0.2,
            "provider": "LabelsReader",
            "data_pipeline_fw": "torch_dataset",
            "user_instances_only": True,
            "preprocessing": {
                "ensure_rgb": False,
                "ensure_grayscale": False,
                "max_height": None,
                "max_width": None,
                "scale": 1.0,
                "crop_size": (
                    crop_size if kind is TinyModelType.CENTERED_INSTANCE else None
                ),
            },
            "use_augmentations_train": False,
        },
        "model_config": {
            "init_weights": "default",
            "backbone_config": {
                "unet": {
                    "in_channels": 1,
                    "kernel_size": 3,
                    "filters": 8,
                    "filters_rate": 1.5,
                    "max_stride": 8,
                    "output_stride": 2,
                }
            },
            "head_configs": heads,
        },
        "trainer_config": {
            "train_data_loader": {
                "batch_size": batch_size,
                "shuffle": True,
                "num_workers": 0,
            },
            "val_data_loader": {
                "batch_size": batch_size,
                "shuffle": False,
                "num_workers": 0,
            },
            "trainer_devices": 1,
            "trainer_accelerator": accelerator,
            "enable_progress_bar": False,
            "min_train_steps_per_epoch": 1,
            "visualize_preds_during_training": False,
            "max_epochs": max_epochs,
            "seed": seed,
            "use_wandb": False,
            "save_ckpt": True,
            "ckpt_dir": None if ckpt_dir is None else Path(ckpt_dir).as_posix(),
            "run_name": run_name,
            "resume_ckpt_path": None,
            "optimizer_name": "Adam",
            "optimizer": {"lr": learning_rate, "amsgrad": False},
            "lr_scheduler": None,
            "early_stopping": {"stop_training_on_plateau": False},
            "zmq": {"controller_port": None, "publish_port": None},
        },
    }
    if ckpt_dir is None:
        del config["trainer_config"]["ckpt_dir"]
    return str(yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=88))
