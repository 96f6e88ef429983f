"""The presubmission events and effects: complete type lists, validation at
construction, copies of what the caller may still edit, secrets kept out of
``repr`` (pure and fast)."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

from sleap_rtc_gui.presubmit.events import (
    EFFECT_TYPES,
    EVENT_TYPES,
    ConfigBuilt,
    Effect,
    Event,
    JobAccepted,
    JobCompleted,
    JobFailed,
    JobRejected,
    LabelsPathEntered,
    LoginFinished,
    PathReport,
    PathsChecked,
    PathsResolved,
    RunRequested,
    SubmitJob,
    UploadFinished,
)

YAML = "data_config:\n  train_labels_path: /home/me/proj/labels.slp\n"
VIDEO_1 = "/home/me/proj/cam1.mp4"
VIDEO_2 = "/home/me/proj/cam2.mp4"
WORKER_VIDEO_1 = "/mnt/lab/proj/cam1.mp4"


def test_event_and_effect_type_lists_are_complete() -> None:
    module = importlib.import_module("sleap_rtc_gui.presubmit.events")
    classes = [v for v in vars(module).values() if isinstance(v, type)]
    assert set(EVENT_TYPES) == {c for c in classes if issubclass(c, Event)} - {Event}
    assert set(EFFECT_TYPES) == {c for c in classes if issubclass(c, Effect)} - {Effect}


def test_event_validation() -> None:
    with pytest.raises(ValueError, match="path"):
        LabelsPathEntered("")
    with pytest.raises(TypeError, match="errors"):
        JobRejected({"field": "x"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="report"):
        PathsChecked({"labels_found": True})  # type: ignore[arg-type]
    mappings = {VIDEO_1: WORKER_VIDEO_1}
    event = PathsResolved(mappings)
    mappings[VIDEO_2] = "elsewhere"
    assert event.mappings == {VIDEO_1: WORKER_VIDEO_1}


def test_every_kind_is_a_frozen_slotted_dataclass() -> None:
    for kind in (*EVENT_TYPES, *EFFECT_TYPES):
        assert dataclasses.is_dataclass(kind), kind
        assert kind.__dataclass_params__.frozen, kind  # type: ignore[attr-defined]
        assert "__slots__" in vars(kind), kind
    with pytest.raises(dataclasses.FrozenInstanceError):
        JobAccepted("job_0123abcd").job_id = "job_other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: LabelsPathEntered(3), TypeError, "path must be a string, not int"),
        (lambda: JobAccepted(""), ValueError, "job_id must not be empty"),
        (lambda: UploadFinished(""), ValueError, "worker_path must not be empty"),
        (lambda: JobRejected("oops"), TypeError, "errors must be a sequence"),
        (lambda: JobRejected([["x"]]), TypeError, "each error must be a mapping"),
        (lambda: PathsResolved([("a", "b")]), TypeError, "mappings must be a mapping"),
        (lambda: JobFailed("boom"), TypeError, "details must be a mapping"),
        (lambda: JobCompleted(None), TypeError, "result must be a mapping"),
        (lambda: ConfigBuilt(""), ValueError, "config_yaml must not be empty"),
        (lambda: ConfigBuilt(YAML, ("",)), ValueError, "more_configs must not be"),
        (
            lambda: ConfigBuilt(YAML, (YAML,), ("centroid",)),
            ValueError,
            "one type per config",
        ),
    ],
)
def test_malformed_events_are_refused_on_construction(
    make: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        make()  # type: ignore[operator]


def test_a_prediction_job_needs_no_training_config() -> None:
    event = ConfigBuilt("", track={"models": ["/m"]})
    assert event.track == {"models": ["/m"]}
    pipeline = ConfigBuilt(YAML, (YAML,), ("centroid", "centered_instance"))
    assert pipeline.model_types == ("centroid", "centered_instance")


def test_what_the_caller_passed_is_copied_not_shared() -> None:
    details = {"message": "CUDA out of memory"}
    failed = JobFailed(details)
    details["message"] = "edited"
    assert failed.details == {"message": "CUDA out of memory"}
    errors = [{"field": "max_epochs", "message": "too many"}]
    rejected = JobRejected(errors)
    errors[0]["message"] = "edited"
    errors.append({"field": "x", "message": "y"})
    assert rejected.errors == ({"field": "max_epochs", "message": "too many"},)
    result = {"job_id": "job_0123abcd"}
    completed = JobCompleted(result)
    result.clear()
    assert completed.result == {"job_id": "job_0123abcd"}


def test_secrets_and_large_texts_stay_out_of_reprs() -> None:
    assert "a.b.c" not in repr(LoginFinished(ok=True, jwt="a.b.c"))
    assert YAML not in repr(RunRequested(YAML, "/home/me/l.slp", "w-1"))
    assert YAML not in repr(ConfigBuilt(YAML, (YAML,)))
    assert YAML not in repr(SubmitJob({"config_content": YAML}))
    assert "/home/me/l.slp" in repr(RunRequested(YAML, "/home/me/l.slp", "w-1"))


def test_the_path_report_is_the_core_clients() -> None:
    from sleap_rtc_core.client import path_check

    assert PathReport is path_check.PathReport
    assert PathsChecked(PathReport("/l.slp", True)).report.labels_found
