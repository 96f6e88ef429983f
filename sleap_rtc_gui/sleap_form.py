"""SLEAP's own training form, as the sleap-nn configs of a remote job.

A remote run must train what the labeler set in SLEAP's ``LearningDialog``
(pipeline, backbone, epochs, batch size, augmentation…), not a config of ours.
SLEAP turns its form into sleap-nn YAML in ``LearningDialog.copy()``: the
pipeline form, then ``get_every_head_config_data`` (one config per head of the
pipeline: two for top-down and bottom-up ID pipelines), ``filter_cfg`` (drops the
GUI-only ``_`` keys), ``verify_training_cfg`` and the labels file as
``train_labels_path``. :func:`sleap_configs` does exactly that, and
:func:`remote_configs` then leaves out what only makes sense on the labeler's
machine and what the worker decides (:func:`~sleap_rtc_gui.job_config.to_remote`).

Needs SLEAP and sleap-nn (``pip install "sleap-rtc[sleap]"``); no widgets of ours.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from sleap_rtc_gui.job_config import to_remote
from sleap_rtc_gui.presubmit_io import TrainingConfigs

__all__ = [
    "InferencePlan",
    "frame_ranges",
    "inference_plan",
    "remote_configs",
    "sleap_configs",
    "trained_model_paths",
]


def _form_data(dialog: Any) -> dict[str, Any]:
    """The pipeline form, as SLEAP's ``copy()`` reads it."""
    data = dialog.pipeline_form_widget.get_form_data()
    return dict(data)


def sleap_configs(dialog: Any) -> list[tuple[str, Any]]:
    """``(head name, sleap-nn config)`` per model, as ``LearningDialog.copy()``
    builds them from the dialog's form.

    Raises:
        ValueError: A head would reuse an already trained local model (a remote
            job cannot read it), the form is not a valid sleap-nn config, or
            sleap-nn is not installed here.
    """
    from sleap.gui.config_utils import filter_cfg

    try:
        from sleap_nn.config.training_job_config import verify_training_cfg
    except ImportError:
        raise ValueError(
            "SLEAP's training settings need sleap-nn to become a config: "
            'pip install "sleap-rtc[sleap]" (SLEAP with its nn extra)'
        ) from None

    infos = dialog.get_every_head_config_data(_form_data(dialog))
    out: list[tuple[str, Any]] = []
    for info in infos:
        if getattr(info, "dont_retrain", False):
            raise ValueError(
                f"the {info.head_name} model is set to use an already trained "
                "model; uncheck that to train it remotely"
            )
        try:
            cfg = verify_training_cfg(filter_cfg(copy.deepcopy(info.config)))
        except Exception as exc:  # sleap-nn's own message says which field
            raise ValueError(f"the {info.head_name} settings: {exc}") from exc
        cfg.data_config.train_labels_path = [dialog.labels_filename]
        out.append((str(info.head_name), cfg))
    if not out:
        raise ValueError("the pipeline has no model to train")
    return out


def remote_configs(dialog: Any) -> TrainingConfigs:
    """The job's configs from SLEAP's dialog, one per model, in pipeline order.

    Raises:
        ValueError: See :func:`sleap_configs`.
    """
    heads = sleap_configs(dialog)
    return TrainingConfigs(
        configs=tuple(to_remote(cfg) for _, cfg in heads),
        model_types=tuple(name for name, _ in heads),
    )


@dataclass(frozen=True, slots=True)
class InferencePlan:
    """What SLEAP's local run would predict after training, as track jobs.

    Attributes:
        specs: ``TrackJobSpec`` fields per item (``video_index`` and ``frames``,
            or a ``frame_filter``); ``data_path``, ``model_paths`` and the
            mappings are added once the models exist.
        params: SLEAP's form data, for merging the predictions as SLEAP does
            (``_prediction_mode``, ``_clear_all_first``, ``_predict_target``).
    """

    specs: tuple[dict[str, Any], ...] = ()
    params: dict[str, Any] = field(default_factory=dict)


def frame_ranges(frames: list[int]) -> str:
    """``[0, 1, 2, 5]`` → ``"0-2,5"`` (the ``frames`` syntax of a track spec)."""
    ordered = sorted(set(frames))
    parts: list[str] = []
    start = prev = None
    for i in ordered:
        if start is None:
            start = prev = i
        elif prev is not None and i == prev + 1:
            prev = i
        else:
            parts.append(f"{start}-{prev}" if start != prev else f"{start}")
            start = prev = i
    if start is not None:
        parts.append(f"{start}-{prev}" if start != prev else f"{start}")
    return ",".join(parts)


def inference_plan(dialog: Any) -> InferencePlan:
    """The frames the form's *Inference Target* asks for after training.

    Read from the same ``get_items_for_inference`` that SLEAP's ``run()`` uses:
    whole-dataset targets (user-labeled, suggested, predicted frames) become a
    ``frame_filter``; frame, clip, video and random targets become a
    ``video_index`` with its ``frames``.
    """
    from sleap.gui.learning.runners import DatasetItemForInference

    selection = dialog.frame_target_selector.get_selection()
    params = _form_data(dialog)
    params["_prediction_mode"] = selection.prediction_mode
    if selection.target_key == "nothing":
        return InferencePlan((), params)
    exclude = bool(params.get("_exclude_user_labeled", False))
    specs: list[dict[str, Any]] = []
    for item in dialog.get_items_for_inference(params).items:
        spec: dict[str, Any] = {"exclude_user_labeled": exclude}
        if isinstance(item, DatasetItemForInference):
            spec["frame_filter"] = item.frame_filter
        else:
            spec["video_index"] = int(item.video_idx)
            if item.frames:
                spec["frames"] = frame_ranges([int(i) for i in item.frames])
        specs.append(spec)
    return InferencePlan(tuple(specs), params)


def trained_model_paths(dialog: Any) -> tuple[str, ...]:
    """The model folders chosen in SLEAP's *inference* dialog, as the worker
    knows them: a model that came home from a worker names the worker's run
    folder (``.sleap-rtc-origin``); any other is sent as it is, for the
    worker to map (``path_mappings``) or refuse.

    Raises:
        ValueError: A head has no trained model selected.
    """
    from sleap_rtc_core.client.model_download import worker_model_path

    paths: list[str] = []
    for info in dialog.get_every_head_config_data(_form_data(dialog)):
        folder = info.path_dir if getattr(info, "path", None) else None
        if not folder or not info.has_trained_model:
            raise ValueError(f"no trained {info.head_name} model is selected")
        paths.append(worker_model_path(folder) or folder)
    if not paths:
        raise ValueError("no trained model is selected")
    return tuple(paths)
