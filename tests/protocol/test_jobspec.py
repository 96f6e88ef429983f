"""Tests of job specs, their JSON form and validation
(sleap_rtc_core.protocol.jobspec)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sleap_rtc_core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from sleap_rtc_core.protocol.jobspec import (
    MAX_CONFIG_DEPTH,
    FieldError,
    FrameFilter,
    SpecErrorCode,
    TrackJobSpec,
    TrainJobSpec,
    apply_path_mappings,
    check_spec,
    parse_frame_ranges,
    spec_from_dict,
    validate_spec,
)

CONFIG = """\
data_config:
  train_labels_path:
    - /mnt/data/labels.slp
  val_labels_path: /mnt/data/val.slp
trainer_config:
  max_epochs: 5
"""


class FakeMounts:
    """A ``check_path`` seam: ``/mnt/`` is the only mount; ``missing`` lists paths
    inside it that do not exist. Records every call."""

    def __init__(self, *missing: str) -> None:
        self.missing = set(missing)
        self.calls: list[tuple[str, str]] = []

    def __call__(self, field: str, path: str) -> FieldError | None:
        self.calls.append((field, path))
        if not path.startswith("/mnt/"):
            return FieldError(field, "outside mounts", SpecErrorCode.NOT_ALLOWED, path)
        if path in self.missing:
            return FieldError(field, "not found", SpecErrorCode.PATH_NOT_FOUND, path)
        return None


def codes(errors: list[FieldError]) -> dict[str, str | None]:
    return {e.field: e.code for e in errors}


# ---------------------------------------------------------------- JSON round trip

TRAIN_SPECS = [
    TrainJobSpec(config_path="/mnt/cfg.yaml"),
    TrainJobSpec(config_content=CONFIG, labels_path="/mnt/l.slp", max_epochs=3),
    TrainJobSpec(
        config_contents=(CONFIG, CONFIG),
        model_types=("centroid", "centered_instance"),
        val_labels_path="/mnt/v.slp",
        batch_size=4,
        learning_rate=1e-4,
        run_name="run_1",
        resume_ckpt_path="/mnt/ckpt",
        path_mappings={"C:/data/l.slp": "/mnt/l.slp"},
        run_inference=True,
    ),
]
TRACK_SPECS = [
    TrackJobSpec(data_path="/mnt/l.slp", model_paths=("/mnt/m1",)),
    TrackJobSpec(
        data_path="/mnt/v.mp4",
        model_paths=("/mnt/m1", "/mnt/m2"),
        output_path="/mnt/out/p.slp",
        batch_size=8,
        peak_threshold=0.2,
        exclude_user_labeled=True,
        frames="0-100,200-300",
        frame_filter=FrameFilter.USER,
        video_index=0,
        path_mappings={"a": "b"},
    ),
    TrackJobSpec(data_path="/mnt/l.slp", only_suggested_frames=True),
]


@pytest.mark.parametrize("spec", TRAIN_SPECS + TRACK_SPECS)
def test_json_round_trip(spec: TrainJobSpec | TrackJobSpec) -> None:
    wire = json.loads(json.dumps(spec.to_dict()))
    assert spec_from_dict(wire) == spec
    assert spec_from_dict(json.loads(spec.to_json())) == spec
    assert type(spec).from_dict(wire) == spec
    assert wire["type"] == spec.TYPE


def test_serializer_drops_null_false_and_empty() -> None:
    assert TrainJobSpec(config_path="/c.yaml").to_dict() == {
        "type": "train",
        "config_path": "/c.yaml",
        "config_paths": ["/c.yaml"],
    }
    assert TrackJobSpec(data_path="/d.slp").to_dict() == {
        "type": "track",
        "data_path": "/d.slp",
        "model_paths": [],  # always present, as the reference sends it
    }


def test_config_normalisation() -> None:
    spec = TrainJobSpec(config_content="a: 1")
    assert spec.config_contents == ("a: 1",)
    spec = TrainJobSpec(config_path="/a.yaml", config_paths=["/b.yaml"])
    assert spec.config_paths == ("/b.yaml",)
    spec = TrainJobSpec.from_dict({"config_path": "/a.yaml"})
    assert spec.config_paths == ("/a.yaml",)


def test_only_suggested_frames_migrates_to_frame_filter() -> None:
    spec = TrackJobSpec(data_path="/d", only_suggested_frames=True)
    assert spec.frame_filter is FrameFilter.SUGGESTED
    spec = TrackJobSpec(data_path="/d", only_suggested_frames=True, frame_filter="user")
    assert spec.frame_filter is FrameFilter.USER  # an explicit filter wins
    assert TrackJobSpec(data_path="/d").frame_filter is None


def test_specs_are_frozen_and_hashable() -> None:
    spec = TRAIN_SPECS[2]
    with pytest.raises(AttributeError):
        spec.max_epochs = 3  # type: ignore[misc]
    assert hash(spec) == hash(TrainJobSpec.from_dict(spec.to_dict()))
    assert isinstance(spec.config_contents, tuple)


def test_train_ignores_unknown_keys_track_refuses_them() -> None:
    spec = spec_from_dict({"type": "train", "config_path": "/c", "future": 1})
    assert spec == TrainJobSpec(config_path="/c")
    with pytest.raises(RemoteProtocolError) as info:
        spec_from_dict({"type": "track", "data_path": "/d", "future": 1})
    assert info.value.code == ErrorCode.INVALID_MESSAGE
    assert "future" in info.value.message


@pytest.mark.parametrize(
    "obj",
    [
        [],
        "train",
        None,
        {},
        {"type": "predict"},
        {"type": None, "config_path": "/c"},
        {"type": ["train"]},
        {"type": "track"},  # data_path is required
        {"type": "track", "data_path": None},
        {"type": "track", "data_path": 3},
        {"type": "track", "data_path": "/d", "model_paths": "/m"},
        {"type": "track", "data_path": "/d", "model_paths": [1]},
        {"type": "track", "data_path": "/d", "frame_filter": "all"},
        {"type": "track", "data_path": "/d", "frame_filter": 1},
        {"type": "track", "data_path": "/d", "batch_size": 1.5},
        {"type": "track", "data_path": "/d", "video_index": True},
        {"type": "track", "data_path": "/d", "peak_threshold": "0.2"},
        {"type": "track", "data_path": "/d", "exclude_user_labeled": 1},
        {"type": "track", "data_path": "/d", "frames": [0, 1]},
        {"type": "train", "max_epochs": "10"},
        {"type": "train", "max_epochs": True},
        {"type": "train", "learning_rate": "fast"},
        {"type": "train", "config_paths": "/c"},
        {"type": "train", "config_contents": [1]},
        {"type": "train", "model_types": {"a": 1}},
        {"type": "train", "path_mappings": [["a", "b"]]},
        {"type": "train", "run_inference": "yes"},
        {"type": "train", "labels_path": 7},
    ],
)
def test_malformed_specs_raise_remote_protocol_error(obj: Any) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        spec_from_dict(obj)
    assert info.value.code == ErrorCode.INVALID_MESSAGE


def test_class_from_dict_checks_the_type_tag() -> None:
    with pytest.raises(RemoteProtocolError):
        TrainJobSpec.from_dict({"type": "track", "data_path": "/d"})
    with pytest.raises(RemoteProtocolError):
        TrackJobSpec.from_dict({"type": "train", "data_path": "/d"})
    with pytest.raises(RemoteProtocolError):
        TrainJobSpec.from_dict([])  # type: ignore[arg-type]
    assert TrackJobSpec.from_dict({"data_path": "/d"}) == TrackJobSpec(data_path="/d")


def test_local_construction_errors_are_local() -> None:
    with pytest.raises(LocalProtocolError) as info:
        TrainJobSpec(max_epochs="10")  # type: ignore[arg-type]
    assert not isinstance(info.value, RemoteProtocolError)
    with pytest.raises(LocalProtocolError):
        TrackJobSpec(data_path=None)  # type: ignore[arg-type]


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


# -------------------------------------------------------------------- mappings


def test_apply_path_mappings_train() -> None:
    spec = TrainJobSpec(
        config_content="data_config:\n  train_labels_path: C:/l.slp\n",
        labels_path="C:/l.slp",
        val_labels_path="C:/v.slp",
        path_mappings={"C:/l.slp": "/mnt/l.slp"},
    )
    mapped = apply_path_mappings(spec)
    assert isinstance(mapped, TrainJobSpec)
    assert mapped.labels_path == "/mnt/l.slp"
    assert mapped.val_labels_path == "C:/v.slp"
    assert mapped.config_contents == (
        "data_config:\n  train_labels_path: /mnt/l.slp\n",
    )
    assert mapped.config_content == mapped.config_contents[0]
    assert spec.labels_path == "C:/l.slp"  # the original is untouched
    assert apply_path_mappings(TRAIN_SPECS[0]) is TRAIN_SPECS[0]


def test_apply_path_mappings_track() -> None:
    spec = TrackJobSpec(data_path="C:/l.slp", path_mappings={"C:/l.slp": "/mnt/l.slp"})
    assert apply_path_mappings(spec).data_path == "/mnt/l.slp"


def test_one_folder_mapping_moves_every_path_of_a_spec_alike() -> None:
    folder = {"C:\\lab": "/mnt/lab"}
    train = apply_path_mappings(
        TrainJobSpec(
            config_content="data_config:\n  train_labels_path: C:\\lab\\l.slp\n",
            labels_path="C:\\lab\\l.slp",
            val_labels_path="C:/lab/v.slp",
            path_mappings=folder,
        )
    )
    assert isinstance(train, TrainJobSpec)
    assert (train.labels_path, train.val_labels_path) == (
        "/mnt/lab/l.slp",
        "/mnt/lab/v.slp",
    )
    assert "train_labels_path: /mnt/lab/l.slp" in train.config_contents[0]
    track = apply_path_mappings(
        TrackJobSpec(
            data_path="C:\\lab\\l.slp",
            model_paths=("C:\\lab\\models\\a",),
            path_mappings=folder,
        )
    )
    assert isinstance(track, TrackJobSpec)
    assert (track.data_path, track.model_paths) == (
        "/mnt/lab/l.slp",
        ("/mnt/lab/models/a",),
    )


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


def test_model_paths_map_by_folder_prefix_longest_first() -> None:
    spec = TrackJobSpec(
        data_path="/Volumes/lab/labels.slp",
        model_paths=("/Volumes/lab/models/a", "/elsewhere/b"),
        path_mappings={"/Volumes/lab": "/mnt/lab"},
    )
    mapped = apply_path_mappings(spec)
    assert isinstance(mapped, TrackJobSpec)
    assert mapped.model_paths == ("/mnt/lab/models/a", "/elsewhere/b")


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
