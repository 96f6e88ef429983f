"""Generated configs: whatever a hostile member puts where, a config the worker
accepts names no file or folder outside its mounts.

Hypothesis builds sleap-nn configs from the tiny one by setting values at
dotted keys drawn from sleap-nn's path fields, fields that are not paths,
Hydra's keys and made-up keys, with values drawn from paths outside the mount
(plain, through ``..``, through a symlink in the mount), interpolations and
harmless paths inside. The real preparation (:func:`prepare_job`, real files
under ``tmp_path``) judges each; every accepted one is checked field by field.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sleap_rtc_core.protocol import config_policy
from sleap_rtc_core.protocol.jobspec import spec_from_dict
from sleap_rtc_core.worker.files.mounts import MountPolicy
from sleap_rtc_core.worker.jobs.prepare import PreparedJob, prepare_job
from tests.fixtures.data import tiny_config_with
from tests.worker.jobs.test_service import train_spec

KEYS = sorted(
    config_policy.READ_PATHS
    | config_policy.NEW_FOLDER_PATHS
    | {
        "data_config.train_labels_path",
        "data_config.val_labels_path",
        "trainer_config.ckpt_dir",
        "trainer_config.run_name",
        "data_config.validation_fraction",
        "model_config.backbone_config.unet.filters",
        "trainer_config.wandb.save_viz_imgs_wandb",
        "defaults",
        "hydra.searchpath",
        "searchpath",
        "extra_top_level",
    }
)
VALUES = [
    "OUTSIDE_FILE",
    "OUTSIDE_DIR",
    "OUTSIDE_NEW",
    "DOTDOT",
    "LINK_OUT",
    "INSIDE_FILE",
    "INSIDE_NEW",
    "${oc.env:SLEAP_RTC_API_KEY}",
    "relative/x.ckpt",
]


@pytest.fixture(scope="module")
def layout(
    tmp_path_factory: pytest.TempPathFactory, tiny_labels: Path
) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("trees")
    mount = base / "mount"
    (mount / "data").mkdir(parents=True)
    shutil.copy(tiny_labels, mount / "data" / "tiny.pkg.slp")
    (mount / "weights.ckpt").write_bytes(b"inside")
    outside = base / "outside"
    outside.mkdir()
    (outside / "evil.ckpt").write_bytes(b"pickle")
    os.symlink(outside / "evil.ckpt", mount / "link.ckpt")
    work = base / "work"
    work.mkdir()
    values = {
        "OUTSIDE_FILE": str(outside / "evil.ckpt"),
        "OUTSIDE_DIR": str(outside),
        "OUTSIDE_NEW": str(outside / "cache"),
        "DOTDOT": f"{mount}/../outside/evil.ckpt",
        "LINK_OUT": str(mount / "link.ckpt"),
        "INSIDE_FILE": str(mount / "weights.ckpt"),
        "INSIDE_NEW": str(mount / "new-cache"),
    }
    return {
        "mount": mount,
        "outside": outside,
        "work": work,
        "values": values,
        "policy": MountPolicy([mount.as_posix()]),
    }


def _inside(path: str, mount: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(mount))


def _as_sleap_nn_sees_it(model: Any) -> dict[str, Any]:
    """The job's config file with the overrides its command line gives
    (labels, run folder), as sleap-nn will use it."""
    cfg = yaml.safe_load(model.config_file.read_text())
    data = cfg.setdefault("data_config", {})
    trainer = cfg.setdefault("trainer_config", {})
    if model.train_labels is not None:
        data["train_labels_path"] = list(model.train_labels)
    if model.val_labels is not None:
        data["val_labels_path"] = list(model.val_labels)
    trainer["ckpt_dir"] = str(model.ckpt_dir)
    trainer["run_name"] = model.run_name
    return dict(cfg)


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


trees = st.dictionaries(
    st.sampled_from(KEYS),
    st.one_of(
        st.sampled_from(VALUES),
        st.lists(st.sampled_from(VALUES), min_size=1, max_size=3),
    ),
    min_size=1,
    max_size=5,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(patch=trees)
# Found by this test: a list where sleap-nn wants one cache folder was let by.
@example(patch={"data_config.cache_img_path": ["OUTSIDE_FILE"]})
@example(patch={"model_config.pretrained_backbone_weights": "LINK_OUT"})
@example(patch={"data_config.test_file_path": "DOTDOT"})
def test_no_accepted_config_names_a_path_outside_the_mounts(
    layout: dict[str, Any], patch: dict[str, Any]
) -> None:
    values = layout["values"]

    def real(value: Any) -> Any:
        if isinstance(value, list):
            return [values.get(v, v) for v in value]
        return values.get(value, value)

    config = tiny_config_with({k: real(v) for k, v in patch.items()})
    spec = spec_from_dict(train_spec(layout["mount"], config_content=config))
    outcome = prepare_job(spec, layout["policy"], private_parent=layout["work"])
    if not isinstance(outcome, PreparedJob):
        assert outcome  # refused, with the reasons
        return
    try:
        (model,) = outcome.models
        cfg = _as_sleap_nn_sees_it(model)
        assert set(cfg) <= config_policy.TOP_LEVEL_KEYS
        assert not any("${" in s for s in _strings(cfg))
        for dotted, value in config_policy.read_paths(cfg):
            assert isinstance(value, str)
            assert _inside(value, layout["mount"]), (dotted, value)
        for dotted in config_policy.NEW_FOLDER_PATHS:
            section, leaf = dotted.split(".")
            folder = (cfg.get(section) or {}).get(leaf)
            if folder:
                assert isinstance(folder, str)
                assert _inside(folder, layout["mount"]), (dotted, folder)
                assert not os.path.lexists(folder)
        for path in (model.ckpt_dir, *(model.train_labels or ())):
            assert _inside(str(path), layout["mount"])
        for key in ("train_labels_path", "val_labels_path"):
            for path in _strings(cfg["data_config"].get(key)):
                assert _inside(path, layout["mount"]), (key, path)
    finally:
        outcome.cleanup()
    assert list(layout["outside"].iterdir()) == [layout["outside"] / "evil.ckpt"]
