"""The reference's package flow and pipeline markers."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sleap_rtc_core.errors import LocalProtocolError
from sleap_rtc_core.protocol import channel_legacy as lg
from sleap_rtc_core.protocol.channel import decode_text, encode_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PACKAGE_TYPE::train", lg.PackageTypeMsg("train")),
        ("OUTPUT_DIR::", lg.OutputDirMsg("")),
        ("TRAIN_JOB_START::centroid", lg.TrainJobStartMsg("centroid")),
        ("INFERENCE_JOB_END::a::b", lg.InferenceJobEndMsg("a::b")),
        ("INFERENCE_JOB_ERROR::a::b::-11", lg.InferenceJobErrorMsg("a::b", -11)),
        ("INFERENCE_ERROR::x", lg.InferenceErrorMsg("x")),
        ("TRACK_LOG:line", lg.TrackLogMsg("line")),
        ("TRAINING_JOBS_DONE", lg.TrainingJobsDoneMsg()),
        ("INFERENCE_JOBS_DONE", lg.InferenceJobsDoneMsg()),
    ],
)
def test_markers(text: str, expected: object) -> None:
    assert decode_text(text) == expected
    assert encode_text(expected) == text  # type: ignore[arg-type]


def test_marker_classes_are_distinct() -> None:
    assert lg.TrainJobStartMsg("a") != lg.TrainJobEndMsg("a")
    assert lg.TrainJobErrorMsg("a", 1) != lg.InferenceJobErrorMsg("a", 1)


def test_error_marker_checks_the_code() -> None:
    with pytest.raises(LocalProtocolError):
        lg.TrainJobErrorMsg("a", "1")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        lg.TrainJobErrorMsg("a", 10**20)
    with pytest.raises(LocalProtocolError):
        lg.TrainJobErrorMsg("a", ":b")  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab:9-"), max_size=10), st.integers(-999, 999))
def test_error_marker_round_trips(name: str, code: int) -> None:
    try:
        msg = lg.TrainJobErrorMsg(name, code)
    except LocalProtocolError:
        assume(False)
        return
    assert decode_text(encode_text(msg)) == msg
