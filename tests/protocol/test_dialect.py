"""Telling sleap-rtc 0.0.7 peers from ours, and where a 0.0.7 worker's models are."""

from __future__ import annotations

from sleap_rtc_core.protocol.dialect import (
    VERSION_KEY,
    Dialect,
    legacy_model_dir,
    legacy_run_name,
    newest_run,
    offer_dialect,
    worker_dialect,
)

LEGACY_PROPS = {"gpu_model": "CPU", "status": "available", "worker_name": "old"}


def test_a_worker_is_ours_when_it_states_its_version() -> None:
    ours = {"peer_id": "w", "metadata": {"properties": {VERSION_KEY: "0.1.0"}}}
    assert worker_dialect(ours) is Dialect.CURRENT
    assert worker_dialect(ours["metadata"]) is Dialect.CURRENT


def test_a_worker_with_properties_but_no_version_is_0_0_7() -> None:
    assert worker_dialect({"metadata": {"properties": LEGACY_PROPS}}) is (
        Dialect.LEGACY
    )
    empty_version = {"metadata": {"properties": {**LEGACY_PROPS, VERSION_KEY: ""}}}
    assert worker_dialect(empty_version) is Dialect.LEGACY


def test_a_worker_the_server_could_not_describe_is_taken_as_ours() -> None:
    """The named worker of an old server without discovery has no metadata."""
    assert worker_dialect({"peer_id": "w", "metadata": {}}) is Dialect.CURRENT
    assert worker_dialect({"peer_id": "w", "metadata": None}) is Dialect.CURRENT


def test_an_offer_is_ours_only_with_the_marker() -> None:
    assert offer_dialect({VERSION_KEY: "0.1.0"}) is Dialect.CURRENT
    assert offer_dialect({}) is Dialect.LEGACY
    assert offer_dialect({"role": "client"}) is Dialect.LEGACY
    assert offer_dialect({VERSION_KEY: 7}) is Dialect.LEGACY


def test_model_folders_follow_ckpt_dir_under_the_working_folder() -> None:
    assert legacy_model_dir("/data/work", "run1") == "/data/work/run1"
    assert legacy_model_dir("/data/work", "run1", ".") == "/data/work/run1"
    assert legacy_model_dir("/data/work", "run1", "models") == "/data/work/models/run1"
    assert legacy_model_dir("/data/work", "run1", "/scratch/m") == "/scratch/m/run1"
    assert legacy_model_dir("/data/work", "run1", 3) == "/data/work/run1"


def test_run_names() -> None:
    assert legacy_run_name("centroid", "20261202_101010") == "centroid_20261202_101010"
    assert legacy_run_name(None, "20261202_101010") == "model_20261202_101010"


def test_the_newest_stamped_run_of_a_model_type() -> None:
    names = [
        "centroid_20261201_235959",
        "centroid_20261202_080000",
        "centered_instance_20261202_080000",
        "centroid_best",
        "centroid_20261202_0800",
        "labels.slp",
    ]
    assert newest_run(names, "centroid") == "centroid_20261202_080000"
    assert newest_run(names, "centered_instance") == (
        "centered_instance_20261202_080000"
    )
    assert newest_run(names, "bottomup") is None
