"""SLEAP's form read as a remote job: the real SLEAP 1.6 ``LearningDialog``, its
``copy()``, its pipelines and its inference targets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from sleap_rtc_core.protocol.jobspec_check import parse_frame_ranges
from sleap_rtc_gui.job_config import LOCAL_ONLY, WORKER_OWNED
from sleap_rtc_gui.sleap_form import (
    frame_ranges,
    inference_plan,
    remote_configs,
)
from tests.gui.learning import learning_dialog, set_epochs, target


def without(tree: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """``tree`` without the dotted ``keys``."""
    out = yaml.safe_load(yaml.safe_dump(tree))
    for key in keys:
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return out


def test_the_job_is_what_sleaps_copy_produces(qtbot: QtBot, labels: Path) -> None:

    dialog = learning_dialog(qtbot, labels)
    assert dialog.current_pipeline == "top-down"
    set_epochs(dialog, 3)
    dialog.copy()
    copied = QApplication.clipboard().text()
    built = remote_configs(dialog)
    assert built.model_types == ("centroid", "centered_instance")
    ours = [yaml.safe_load(text) for text in built.configs]
    # copy() joins one YAML document per head; the heads are top-level blocks.
    sleaps = [yaml.safe_load(doc) for doc in _split_documents(copied)]
    assert len(sleaps) == 2
    for mine, theirs in zip(ours, sleaps, strict=True):
        assert mine["trainer_config"]["max_epochs"] == 3
        assert without(mine, WORKER_OWNED + LOCAL_ONLY) == without(
            theirs, WORKER_OWNED + LOCAL_ONLY
        )
        for key in WORKER_OWNED:  # the worker decides these
            section, _, leaf = key.rpartition(".")
            node = mine
            for part in section.split("."):
                node = node.get(part) or {}
            assert leaf not in node, key


def _split_documents(text: str) -> list[str]:
    """copy()'s text: each head's YAML starts again at ``data_config:``."""
    docs: list[str] = []
    for line in text.splitlines(keepends=True):
        if line.startswith("data_config:"):
            docs.append("")
        if docs:
            docs[-1] += line
    return docs


def test_a_head_reusing_a_local_model_is_refused_clearly(
    qtbot: QtBot, labels: Path
) -> None:

    dialog = learning_dialog(qtbot, labels)

    class Reused:
        head_name = "centroid"
        dont_retrain = True

    dialog.get_every_head_config_data = lambda form: [Reused()]
    with pytest.raises(ValueError, match="already trained"):
        remote_configs(dialog)


def test_frame_lists_become_the_ranges_of_a_track_spec() -> None:

    assert frame_ranges([7, 1, 2, 3, 3]) == "1-3,7"
    assert frame_ranges([0]) == "0"
    assert frame_ranges([]) == ""
    assert parse_frame_ranges(frame_ranges([5, 9, 10, 11])) == [(5, 5), (9, 11)]


def test_the_inference_target_becomes_track_specs(qtbot: QtBot, labels: Path) -> None:

    dialog = learning_dialog(qtbot, labels)
    target(dialog, "nothing")
    assert inference_plan(dialog).specs == ()
    target(dialog, "suggestions")
    [spec] = inference_plan(dialog).specs
    assert spec["frame_filter"] == "suggested"
    video = dialog.labels.videos[0]
    dialog.frame_selection = {"clip": {video: [1, 2, 3, 7]}}
    target(dialog, "clip")
    plan = inference_plan(dialog)
    assert plan.specs == (
        {"exclude_user_labeled": False, "video_index": 0, "frames": "1-3,7"},
    )
    assert plan.params["_prediction_mode"] in ("replace", "add")
