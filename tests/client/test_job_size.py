"""The job size a client tells the workers for their estimates."""

from __future__ import annotations

from pathlib import Path

from sleap_rtc_core.client.job_size import epochs_of, frame_count
from sleap_rtc_core.protocol.jobspec import TrainJobSpec
from sleap_rtc_core.sample_data import tiny_training_config, write_tiny_labels


def test_epochs_from_the_flag_else_the_config() -> None:
    config = tiny_training_config(max_epochs=7)
    assert epochs_of(TrainJobSpec(config_content=config)) == 7
    assert epochs_of(TrainJobSpec(config_content=config, max_epochs=0)) == 0
    assert epochs_of(TrainJobSpec(config_content="not: [yaml")) is None
    both = TrainJobSpec(config_contents=(config, tiny_training_config(max_epochs=3)))
    assert epochs_of(both) == 7


def test_frames_of_a_local_labels_file(tmp_path: Path) -> None:
    labels = write_tiny_labels(tmp_path / "t.pkg.slp")
    import sleap_io as sio

    expected = len(sio.load_slp(str(labels)).labeled_frames)
    assert frame_count(str(labels), labeled=True) == expected
    assert frame_count(str(tmp_path / "elsewhere.slp"), labeled=True) is None
    (tmp_path / "bad.slp").write_text("no hdf5")
    assert frame_count(str(tmp_path / "bad.slp"), labeled=True) is None
