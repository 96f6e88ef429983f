"""The job-config allow-list: every sleap-nn field classified, hostile configs
refused with the field's name (pure; the mount check is a test seam)."""

from __future__ import annotations

import typing
from typing import Any

import attrs
import pytest
import yaml

from sleap_rtc_core.protocol import config_policy
from sleap_rtc_core.protocol.jobspec import TrainJobSpec
from sleap_rtc_core.protocol.jobspec_check import (
    FieldError,
    SpecErrorCode,
    validate_spec,
)
from sleap_rtc_core.sample_data import tiny_training_config
from tests.fixtures.data import tiny_config_with


def _schema_fields(cls: type, prefix: str = "") -> typing.Iterator[tuple[str, Any]]:
    hints = typing.get_type_hints(cls)
    for f in attrs.fields(cls):
        hint = hints.get(f.name, f.type)
        inner = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
        nested = [a for a in inner if isinstance(a, type) and attrs.has(a)]
        if nested:
            for sub in nested:
                yield from _schema_fields(sub, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", hint


def _can_hold_text(hint: Any) -> bool:
    if hint in (int, float, bool, type(None)):
        return False
    args = typing.get_args(hint)
    if args:
        return any(_can_hold_text(a) for a in args)
    return True  # str, Any, list, dict: could name a file


def test_every_text_field_of_sleap_nns_schema_is_classified() -> None:
    """Fails when a sleap-nn upgrade adds a field that could name a file and
    that we have not declared a path (checked) or not a path."""
    schema = pytest.importorskip("sleap_nn.config.training_job_config")
    fields = dict(_schema_fields(schema.TrainingJobConfig))
    texty = sorted(k for k, hint in fields.items() if _can_hold_text(hint))
    assert len(texty) > 50
    unclassified = [k for k in texty if not config_policy.is_classified(k)]
    assert unclassified == []
    top = {k.split(".")[0] for k in fields}
    assert top == set(config_policy.TOP_LEVEL_KEYS)
    for path_field in config_policy.READ_PATHS | config_policy.NEW_FOLDER_PATHS:
        assert path_field in fields, path_field


def errors_for(text: str, allowed: str = "/mnt/lab") -> list[FieldError]:
    def inside(field: str, path: str) -> FieldError | None:
        if path.startswith(allowed + "/"):
            return None
        return FieldError(field, "outside the mounts", SpecErrorCode.NOT_ALLOWED, path)

    spec = TrainJobSpec(config_content=text, labels_path="/mnt/lab/labels.slp")
    return validate_spec(spec, check_path=inside)


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        (
            {"model_config.pretrained_backbone_weights": "/home/w/evil.ckpt"},
            "config.model_config.pretrained_backbone_weights",
        ),
        (
            {"model_config.pretrained_head_weights": "../../etc/x.ckpt"},
            "config.model_config.pretrained_head_weights",
        ),
        (
            {"trainer_config.resume_ckpt_path": "/root/.ssh/id_rsa"},
            "config.trainer_config.resume_ckpt_path",
        ),
        (
            {"data_config.test_file_path": "/etc/passwd"},
            "config.data_config.test_file_path",
        ),
        (
            {"data_config.test_file_path": ["/mnt/lab/a.slp", "/etc/shadow"]},
            "config.data_config.test_file_path[1]",
        ),
    ],
)
def test_files_sleap_nn_reads_must_be_inside_the_mounts(
    patch: dict[str, Any], field: str
) -> None:
    errors = errors_for(tiny_config_with(patch))
    assert [e.field for e in errors] == [field]
    assert errors[0].code == SpecErrorCode.NOT_ALLOWED


def test_files_inside_the_mounts_are_accepted() -> None:
    text = tiny_config_with(
        {
            "model_config.pretrained_backbone_weights": "/mnt/lab/models/a/best.ckpt",
            "data_config.test_file_path": "/mnt/lab/test.slp",
        }
    )
    assert errors_for(text) == []


@pytest.mark.parametrize(
    "patch",
    [
        {"data_config.validation_fraction": "${oc.env:SLEAP_RTC_API_KEY}"},
        {"trainer_config.wandb.name": "run-${oc.env:SLEAP_ROOM_SECRET}"},
        {"model_config.head_configs.single_instance.confmaps.part_names": ["${x}"]},
        {"description": "${now:%Y}"},
    ],
)
def test_interpolation_anywhere_is_refused(patch: dict[str, Any]) -> None:
    errors = errors_for(tiny_config_with(patch))
    [dotted] = patch
    assert [e.field for e in errors] == [f"config.{dotted}"]
    assert "interpolations" in errors[0].message


def test_an_interpolating_key_is_refused() -> None:
    cfg = yaml.safe_load(tiny_training_config())
    cfg["trainer_config"]["${oc.env:HOME}"] = 1
    assert [e.field for e in errors_for(yaml.safe_dump(cfg))] == [
        "config.trainer_config.${oc.env:HOME}"
    ]


@pytest.mark.parametrize("key", ["defaults", "hydra", "searchpath", "other"])
def test_hydra_and_unknown_top_level_keys_are_refused(key: str) -> None:
    cfg = yaml.safe_load(tiny_training_config())
    cfg[key] = ["/etc"] if key != "hydra" else {"searchpath": ["file:///etc"]}
    errors = errors_for(yaml.safe_dump(cfg))
    assert [e.field for e in errors] == [f"config.{key}"]
    assert errors[0].code == SpecErrorCode.NOT_ALLOWED


def test_a_yaml_alias_bomb_is_refused_before_it_expands() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev = chr(ord("a") + i - 1)
        cur = chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [{', '.join(['*' + prev] * 9)}]")
    errors = errors_for("\n".join(lines))
    assert [e.code for e in errors] == [SpecErrorCode.CONFIG_PARSE_ERROR]
    assert "anchors and aliases" in errors[0].message


def test_too_many_nodes_are_refused() -> None:
    big = "items: [" + ", ".join("1" for _ in range(25_000)) + "]"
    [error] = errors_for(big)
    assert "YAML nodes" in error.message


def test_a_real_sleap_config_passes() -> None:
    """SLEAP's own form output (sleap-nn's full schema, every key present)."""
    pytest.importorskip("sleap_nn")
    from sleap_rtc_gui.job_config import standard_config

    assert errors_for(standard_config("centered_instance", 2, 4, 1.0)) == []
