"""Job specs: their JSON form, decoding and path mappings
(sleap_rtc_core.protocol.jobspec)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sleap_rtc_core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from sleap_rtc_core.protocol.jobspec import (
    FrameFilter,
    TrackJobSpec,
    TrainJobSpec,
    apply_path_mappings,
    spec_from_dict,
)
from tests.fixtures.jobspecs import TRACK_SPECS, TRAIN_SPECS


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


def test_model_paths_map_by_folder_prefix_longest_first() -> None:
    spec = TrackJobSpec(
        data_path="/Volumes/lab/labels.slp",
        model_paths=("/Volumes/lab/models/a", "/elsewhere/b"),
        path_mappings={"/Volumes/lab": "/mnt/lab"},
    )
    mapped = apply_path_mappings(spec)
    assert isinstance(mapped, TrackJobSpec)
    assert mapped.model_paths == ("/mnt/lab/models/a", "/elsewhere/b")
