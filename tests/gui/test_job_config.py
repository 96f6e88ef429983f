"""Tests of :mod:`sleap_rtc_gui.job_config`: what of a config leaves the
labeler's machine, and the standalone GUI's real training config."""

from __future__ import annotations

import pytest
import yaml
from omegaconf import OmegaConf

from sleap_rtc_gui.job_config import (
    LOCAL_ONLY,
    SLEAP_PROFILES,
    WORKER_OWNED,
    standard_config,
    to_remote,
)


def _get(tree: dict, dotted: str) -> object:
    node: object = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _tree_with(keys: tuple[str, ...]) -> dict:
    tree: dict = {"trainer_config": {"max_epochs": 7}}
    for key in keys:
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = "/home/me/somewhere"
    return tree


def test_worker_owned_and_local_keys_stay_home_and_the_rest_goes() -> None:
    cfg = OmegaConf.create(_tree_with(WORKER_OWNED + LOCAL_ONLY))
    sent = yaml.safe_load(to_remote(cfg))
    assert all(_get(sent, key) is None for key in WORKER_OWNED + LOCAL_ONLY)
    assert sent["trainer_config"]["max_epochs"] == 7


def test_a_config_without_those_keys_goes_unchanged() -> None:
    tree = {"data_config": {"preprocessing": {"scale": 0.5}}, "trainer_config": {}}
    assert yaml.safe_load(to_remote(OmegaConf.create(tree))) == tree


@pytest.mark.parametrize("model_type", sorted(SLEAP_PROFILES))
def test_the_standard_config_carries_the_dialogs_settings(model_type: str) -> None:
    pytest.importorskip("sleap_nn")
    sent = yaml.safe_load(standard_config(model_type, 3, 2, 0.5))
    assert sent["trainer_config"]["max_epochs"] == 3
    assert sent["data_config"]["preprocessing"]["scale"] == 0.5
    assert model_type in sent["model_config"]["head_configs"]
    assert all(_get(sent, key) is None for key in WORKER_OWNED)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("single_instance", 0, 1, 1.0), "at least 1"),
        (("single_instance", 1, 1, 0.0), "input scale"),
        (("nonsense", 1, 1, 1.0), "unknown model type"),
    ],
)
def test_the_standard_config_refuses_bad_settings(
    args: tuple[str, int, int, float], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        standard_config(*args)
