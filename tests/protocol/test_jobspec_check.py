"""Every reason a worker refuses a job spec, all at once
(sleap_rtc_core.protocol.jobspec_check)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sleap_rtc_core.errors import ErrorCode, RemoteProtocolError
from sleap_rtc_core.protocol.jobspec import (
    TrackJobSpec,
    TrainJobSpec,
    apply_path_mappings,
    spec_from_dict,
)
from sleap_rtc_core.protocol.jobspec_check import (
    MAX_CONFIG_DEPTH,
    FieldError,
    SpecErrorCode,
    check_spec,
    parse_frame_ranges,
    validate_spec,
)
from tests.fixtures.jobspecs import CONFIG, TRACK_SPECS, FakeMounts


def codes(errors: list[FieldError]) -> dict[str, str | None]:
    return {e.field: e.code for e in errors}


# -------------------------------------------------------------------- validation


def test_valid_train_spec_checks_every_path() -> None:
    mounts = FakeMounts()
    spec = TrainJobSpec(
        config_content=CONFIG, resume_ckpt_path="/mnt/ckpt", max_epochs=10
    )
    assert validate_spec(spec, check_path=mounts) == []
    assert mounts.calls == [
        ("config.data_config.train_labels_path[0]", "/mnt/data/labels.slp"),
        ("config.data_config.val_labels_path", "/mnt/data/val.slp"),
        ("resume_ckpt_path", "/mnt/ckpt"),
    ]


def test_spec_paths_override_the_config_paths() -> None:
    mounts = FakeMounts()
    spec = TrainJobSpec(
        config_contents=(CONFIG, "data_config:\n  train_labels_path: /x.slp\n"),
        labels_path="/mnt/l.slp",
        val_labels_path="/mnt/v.slp",
    )
    assert validate_spec(spec, check_path=mounts) == []
    assert mounts.calls == [
        ("labels_path", "/mnt/l.slp"),
        ("val_labels_path", "/mnt/v.slp"),
    ]


def test_config_paths_without_contents() -> None:
    mounts = FakeMounts("/mnt/b.yaml")
    one = TrainJobSpec(config_path="/etc/passwd")
    assert codes(validate_spec(one, check_path=mounts)) == {
        "config_path": "NOT_ALLOWED"
    }
    two = TrainJobSpec(config_paths=("/mnt/a.yaml", "/mnt/b.yaml"))
    assert codes(validate_spec(two, check_path=mounts)) == {
        "config_path[1]": "PATH_NOT_FOUND"
    }


def test_every_train_error_at_once() -> None:
    mounts = FakeMounts("/mnt/missing.slp")
    bad_cfg = (
        "data_config:\n  train_labels_path: [/etc/x.slp, 3]\n  val_labels_path: 5\n"
    )
    spec = TrainJobSpec(
        config_contents=(bad_cfg, "a: [unclosed", "- a list"),
        model_types=("centroid",),
        labels_path=None,
        val_labels_path="/mnt/missing.slp",
        resume_ckpt_path="",
        max_epochs=0,
        batch_size=257,
        learning_rate=2.0,
        run_name="../escape",
        path_mappings={"/a": 1, "": "/b"},  # type: ignore[dict-item]
    )
    errors = validate_spec(spec, check_path=mounts)
    assert codes(errors) == {
        "config[0].data_config.train_labels_path[0]": "NOT_ALLOWED",
        "config[0].data_config.train_labels_path[1]": "INVALID_VALUE",
        "config[1]": "CONFIG_PARSE_ERROR",
        "config[2]": "CONFIG_PARSE_ERROR",
        "model_types": "INVALID_VALUE",
        "val_labels_path": "PATH_NOT_FOUND",
        "resume_ckpt_path": "INVALID_PATH",
        "max_epochs": "OUT_OF_RANGE",
        "batch_size": "OUT_OF_RANGE",
        "learning_rate": "OUT_OF_RANGE",
        "run_name": "INVALID_VALUE",
        "path_mappings": "INVALID_VALUE",
    }
    assert sum(e.field == "path_mappings" for e in errors) == 2
    assert all(isinstance(e.message, str) and e.message for e in errors)
    not_allowed = errors[0]
    assert not_allowed.path == "/etc/x.slp"


def test_missing_config() -> None:
    errors = validate_spec(TrainJobSpec(labels_path="/mnt/l.slp"))
    assert codes(errors) == {"config": "MISSING_CONFIG"}
    assert codes(validate_spec(TrainJobSpec.from_dict({}))) == {
        "config": "MISSING_CONFIG"
    }


@pytest.mark.parametrize(
    "text",
    [
        "a: [unclosed",
        "just a string",
        "- a\n- b\n",
        "",
        "42",
        "a: !!python/object:os.system {}",
        "{[1]: 2}",
        "a: \x00",
        "[" * 200_000,  # libyaml's composer would crash the process on this
        "- " * 100_000 + "x",
        "a: " + "[" * (MAX_CONFIG_DEPTH + 1) + "]" * (MAX_CONFIG_DEPTH + 1),
        "\ud800: 1",
    ],
)
def test_config_parse_errors(text: str) -> None:
    errors = validate_spec(TrainJobSpec(config_contents=(text,)))
    assert codes(errors) == {"config": "CONFIG_PARSE_ERROR"}


def test_config_size_bound_and_nesting_within_limit() -> None:
    text = "name: " + "x" * 100
    assert codes(
        validate_spec(TrainJobSpec(config_content=text), max_config_bytes=50)
    ) == {"config": "CONFIG_TOO_LARGE"}
    assert validate_spec(TrainJobSpec(config_content=text), max_config_bytes=200) == []
    inner = MAX_CONFIG_DEPTH - 1  # plus the top-level mapping
    nested = "name: " + "[" * inner + "]" * inner
    assert validate_spec(TrainJobSpec(config_content=nested)) == []


def test_data_config_shapes() -> None:
    def errs(cfg: str) -> dict[str, str | None]:
        spec = TrainJobSpec(config_content=cfg)
        return codes(validate_spec(spec, check_path=FakeMounts()))

    assert errs("data_config: 3") == {"config.data_config": "INVALID_VALUE"}
    assert errs("data_config:\n  train_labels_path: {a: 1}") == {
        "config.data_config.train_labels_path": "INVALID_VALUE"
    }
    assert errs("data_config:\n  train_labels_path: []\n  val_labels_path:") == {}
    assert errs("data_config:\n  train_labels_path: ''") == {}
    assert errs("trainer_config: {}") == {}
    assert errs("data_config:\n  train_labels_path: /srv/x.slp") == {
        "config.data_config.train_labels_path": "NOT_ALLOWED"
    }


@pytest.mark.parametrize(
    ("field", "value", "ok"),
    [
        ("max_epochs", 0, False),
        ("max_epochs", 1, True),
        ("max_epochs", 10000, True),
        ("max_epochs", 10001, False),
        ("batch_size", 0, False),
        ("batch_size", 1, True),
        ("batch_size", 256, True),
        ("batch_size", 257, False),
        ("learning_rate", 0.0, False),
        ("learning_rate", 1e-10, True),
        ("learning_rate", 1, True),
        ("learning_rate", 1.0000001, False),
        ("learning_rate", float("nan"), False),
        ("learning_rate", float("inf"), False),
    ],
)
def test_train_numeric_ranges(field: str, value: float, ok: bool) -> None:
    spec = TrainJobSpec(config_content="name: a", **{field: value})
    expected = {} if ok else {field: "OUT_OF_RANGE"}
    assert codes(validate_spec(spec)) == expected


@pytest.mark.parametrize(
    ("field", "value", "ok"),
    [
        ("peak_threshold", -0.01, False),
        ("peak_threshold", 0, True),
        ("peak_threshold", 1.0, True),
        ("peak_threshold", 1.01, False),
        ("batch_size", 0, False),
        ("batch_size", 256, True),
        ("video_index", -1, False),
        ("video_index", 0, True),
    ],
)
def test_track_numeric_ranges(field: str, value: float, ok: bool) -> None:
    spec = TrackJobSpec(data_path="/mnt/d", model_paths=("/mnt/m",), **{field: value})
    expected = {} if ok else {field: "OUT_OF_RANGE"}
    assert codes(validate_spec(spec)) == expected


@pytest.mark.parametrize("name", ["run1", "centroid_2024-01-01.a", "A"])
def test_good_run_names(name: str) -> None:
    assert validate_spec(TrainJobSpec(config_content="name: a", run_name=name)) == []


@pytest.mark.parametrize(
    "name", ["", ".", "..", "../x", "a/b", "a\\b", "a,b", "a]", "x."]
)
def test_bad_run_names(name: str) -> None:
    spec = TrainJobSpec(config_content="name: a", run_name=name)
    assert codes(validate_spec(spec)) == {"run_name": "INVALID_VALUE"}


def test_valid_track_spec_checks_every_path() -> None:
    mounts = FakeMounts()
    spec = TRACK_SPECS[1]
    assert validate_spec(spec, check_path=mounts) == []
    assert mounts.calls == [
        ("data_path", "/mnt/v.mp4"),
        ("model_paths[0]", "/mnt/m1"),
        ("model_paths[1]", "/mnt/m2"),
        ("output_path", "/mnt/out"),
    ]


def test_every_track_error_at_once() -> None:
    mounts = FakeMounts("/mnt/gone")
    spec = TrackJobSpec(
        data_path="/home/user/l.slp",
        model_paths=("/mnt/gone", "bad\x00path"),
        output_path="/elsewhere/p.slp",
        batch_size=0,
        peak_threshold=3,
        frames="10-1",
        frame_filter="random",
        video_index=-2,
        path_mappings={"/a": ""},
    )
    assert codes(validate_spec(spec, check_path=mounts)) == {
        "data_path": "NOT_ALLOWED",
        "model_paths[0]": "PATH_NOT_FOUND",
        "model_paths[1]": "INVALID_PATH",
        "output_path": "NOT_ALLOWED",
        "batch_size": "OUT_OF_RANGE",
        "peak_threshold": "OUT_OF_RANGE",
        "video_index": "OUT_OF_RANGE",
        "frames": "INVALID_VALUE",
        "frame_filter": "INVALID_VALUE",
        "path_mappings": "INVALID_VALUE",
    }
    assert ("output_path", "/elsewhere") in mounts.calls


def test_track_without_models_and_relative_output() -> None:
    mounts = FakeMounts()
    spec = TrackJobSpec(data_path="/mnt/d", output_path="p.slp")
    assert codes(validate_spec(spec, check_path=mounts)) == {
        "model_paths": "INVALID_VALUE",
        "output_path": "NOT_ALLOWED",
    }
    assert ("output_path", ".") in mounts.calls
    assert codes(validate_spec(TrackJobSpec(data_path="/mnt/d", output_path=" "))) == {
        "model_paths": "INVALID_VALUE",
        "output_path": "INVALID_PATH",
    }


def test_without_check_path_only_pure_checks_run() -> None:
    spec = TrackJobSpec(data_path="/anywhere", model_paths=("/m",), output_path="/o/p")
    assert validate_spec(spec) == []


def test_not_a_spec() -> None:
    errors = validate_spec("spec")  # type: ignore[arg-type]
    assert codes(errors) == {"type": "INVALID_VALUE"}


# ---------------------------------------------------------------------- frames


@pytest.mark.parametrize(
    ("text", "ranges"),
    [
        ("0-100,200-300", [(0, 100), (200, 300)]),
        ("7", [(7, 7)]),
        (" 1 - 2 , 5 ", [(1, 2), (5, 5)]),
        ("3-3", [(3, 3)]),
    ],
)
def test_parse_frame_ranges(text: str, ranges: list[tuple[int, int]]) -> None:
    assert parse_frame_ranges(text) == ranges
    spec = TrackJobSpec(data_path="/d", model_paths=("/m",), frames=text)
    assert validate_spec(spec) == []


@pytest.mark.parametrize(
    "text", ["", "a", "1-", "-1", "1,,2", "1-2-3", "5-1", "1;2", "1.5"]
)
def test_bad_frame_ranges(text: str) -> None:
    with pytest.raises(ValueError, match="frame"):
        parse_frame_ranges(text)


# ------------------------------------------------------------------ field errors


def test_field_error_wire_form() -> None:
    e = FieldError("data_path", "nope", SpecErrorCode.NOT_ALLOWED, "/x")
    assert e.to_dict() == {
        "field": "data_path",
        "message": "nope",
        "code": "NOT_ALLOWED",
        "path": "/x",
    }
    assert FieldError.from_dict(e.to_dict()) == e
    old = FieldError.from_dict({"field": "batch_size", "message": "too big"})
    assert old.code is None
    assert old.to_dict() == {
        "field": "batch_size",
        "message": "too big",
    }
    with pytest.raises(RemoteProtocolError):
        FieldError.from_dict({"message": "no field"})


# -------------------------------------------------------------------- hypothesis

values = st.sampled_from(
    [None, True, False, 0, 1, 300, -1, 0.5, 1e-3, "", "/mnt/a", "a: 1", "0-5", "user"]
) | st.lists(st.sampled_from(["/mnt/a", "a: [", "a: 1", 1]), max_size=2)
spec_keys = st.sampled_from(
    sorted(
        {
            "type",
            "config_path",
            "config_paths",
            "config_content",
            "config_contents",
            "model_types",
            "labels_path",
            "max_epochs",
            "batch_size",
            "learning_rate",
            "run_name",
            "run_inference",
            "data_path",
            "model_paths",
            "output_path",
            "peak_threshold",
            "only_suggested_frames",
            "frames",
            "frame_filter",
            "video_index",
            "path_mappings",
            "unknown",
        }
    )
)
random_specs = st.dictionaries(
    spec_keys, values | st.dictionaries(st.sampled_from(["/a", ""]), values, max_size=2)
).map(lambda d: {**d, "type": d.get("type", "train")}) | st.fixed_dictionaries(
    {"type": st.sampled_from(["train", "track"]), "data_path": st.just("/mnt/d")},
    optional={"model_paths": st.lists(st.sampled_from(["/mnt/m", "/x"]), max_size=2)},
)


@settings(max_examples=100, deadline=None)
@given(obj=random_specs)
def test_random_dicts_give_a_spec_or_a_typed_error(obj: dict[str, Any]) -> None:
    try:
        spec = spec_from_dict(obj)
    except RemoteProtocolError as exc:
        assert exc.code == ErrorCode.INVALID_MESSAGE
        return
    assert spec_from_dict(json.loads(spec.to_json())) == spec
    errors = validate_spec(apply_path_mappings(spec), check_path=FakeMounts())
    known = {c.value for c in SpecErrorCode}
    assert all(isinstance(e, FieldError) and e.code in known for e in errors)


def test_check_spec_hands_on_the_configs_it_parsed() -> None:
    """The worker plans from these: a config is parsed once, and a refused one
    (here an alias, the start of a YAML bomb) is never parsed at all."""
    spec = TrainJobSpec(
        config_contents=(
            "trainer_config:\n  max_epochs: 3\n",
            "a: &x [1]\nb: *x\n",
        ),
        labels_path="/d/l.slp",
    )
    checked = check_spec(spec)
    assert checked.configs == ({"trainer_config": {"max_epochs": 3}}, None)
    assert [e.field for e in checked.errors] == ["config[1]"]
    assert checked.errors == validate_spec(spec)
