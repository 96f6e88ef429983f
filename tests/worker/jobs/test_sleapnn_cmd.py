"""Tests of :mod:`sleap_rtc_core.worker.jobs.sleapnn_cmd`: argv for sleap-nn.

Overrides are checked with Hydra's own parser and OmegaConf (what ``sleap-nn
train`` does with them), and track options with sleap-nn's own click command,
so a quoting mistake shows up here rather than in a training run.
"""

from __future__ import annotations

import dataclasses
import sys
from datetime import datetime
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import click
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hypothesis import given
from hypothesis import strategies as st
from omegaconf import OmegaConf

from sleap_rtc_core.errors import LocalProtocolError, PathNotAllowed
from sleap_rtc_core.protocol.jobspec import TrackJobSpec, TrainJobSpec
from sleap_rtc_core.worker.jobs.sleapnn_cmd import (
    SLEAP_NN_MODULE,
    ModelPlan,
    expected_run_dir,
    hydra_quote,
    hydra_value,
    reserve_run_dir,
    run_name_problem,
    run_names,
    sleap_nn_argv,
    sleap_nn_text_problem,
    sleap_run_name,
    track_argv,
    track_argv_for_spec,
    train_argv,
    train_argv_for_spec,
)

PREFIX = [sys.executable, "-m", SLEAP_NN_MODULE]


@cache
def _parser() -> OverridesParser:
    return OverridesParser.create()


def _apply(overrides: list[str]) -> dict[str, Any]:
    """Apply ``++key=value`` overrides as Hydra does; the resolved config."""
    cfg = OmegaConf.create({})
    for override in _parser().parse_overrides(overrides):
        assert override.is_force_add()
        OmegaConf.update(
            cfg, override.key_or_group, override.value(), merge=True, force_add=True
        )
    result: Any = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(result, dict)
    return result


def _roundtrip(value: object) -> object:
    return _apply([f"++k={hydra_value(value)}"])["k"]


@cache
def _track_command() -> click.Command:
    from sleap_nn.cli import cli

    command = cli.get_command(click.Context(cli), "track")
    assert command is not None
    return command


def _track_params(argv: list[str]) -> dict[str, Any]:
    assert argv[:4] == [*PREFIX, "track"]
    ctx = _track_command().make_context("track", argv[4:])
    return dict(ctx.params)


# ------------------------------------------------------------------ quoting

TRICKY = [
    "plain",
    "it's",
    'say "hi"',
    "a=b,c",
    "[1, 2]",
    "{a: 1}",
    "${oc.env:HOME}",
    "\\${x}",
    "\\\\${x}",
    "ends with \\",
    "\\'",
    " spaced ",
    "#hash",
    "true",
    "null",
    "123",
    "1e5",
    "ümlaut ✓",
    "two\nlines",
    "",
]


@pytest.mark.parametrize("text", TRICKY)
def test_hydra_quote_survives_hydra_and_omegaconf(text: str) -> None:
    assert _roundtrip(text) == text


@given(st.text(st.characters(codec="utf-8", exclude_characters="\0")))
def test_any_text_survives_hydra_and_omegaconf(text: str) -> None:
    assert _roundtrip(text) == text


@pytest.mark.parametrize(
    "value",
    [None, True, False, 0, -3, 1.5, 1e-10, ["a,b", "c'd"], ("x",), []],
)
def test_hydra_value_keeps_types(value: object) -> None:
    expected = list(value) if isinstance(value, tuple) else value
    assert _roundtrip(value) == expected


def test_paths_are_posix_strings() -> None:
    assert _roundtrip(PurePosixPath("/a b/c.slp")) == "/a b/c.slp"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {"a": 1}, b"x"])
def test_values_hydra_cannot_carry_are_refused(value: object) -> None:
    with pytest.raises(LocalProtocolError):
        hydra_value(value)


@pytest.mark.parametrize("value", ["a\0b", "x" * 100_001, 5])
def test_hydra_quote_refuses_nul_huge_and_non_text(value: Any) -> None:
    with pytest.raises(LocalProtocolError):
        hydra_quote(value)


# -------------------------------------------------------------------- train


def _overrides(argv: list[str]) -> dict[str, Any]:
    return _apply([a for a in argv if a.startswith("++")])


def test_train_argv_names_the_config_and_sets_overrides(tmp_path: Path) -> None:
    config = tmp_path / "my config.yaml"
    argv = train_argv(
        config,
        train_labels=["/d/a.slp", Path("/d/b.slp")],
        val_labels="/d/v.slp",
        max_epochs=3,
        batch_size=8,
        learning_rate=1e-4,
        run_name="run,1=x",
        ckpt_dir=tmp_path / "models",
        resume_ckpt_path="/m/best.ckpt",
        publish_port=5555,
        controller_port=5556,
        extra_overrides={"trainer_config.seed": 7},
    )
    assert argv[:8] == [
        *PREFIX,
        "train",
        "--config-name",
        "my config.yaml",
        "--config-dir",
        tmp_path.as_posix(),
    ]
    assert _overrides(argv) == {
        "data_config": {
            "train_labels_path": ["/d/a.slp", "/d/b.slp"],
            "val_labels_path": ["/d/v.slp"],
        },
        "trainer_config": {
            "max_epochs": 3,
            "train_data_loader": {"batch_size": 8},
            "val_data_loader": {"batch_size": 8},
            "optimizer": {"lr": 1e-4},
            "run_name": "run,1=x",
            "ckpt_dir": (tmp_path / "models").as_posix(),
            "resume_ckpt_path": "/m/best.ckpt",
            "zmq": {"publish_port": 5555, "controller_port": 5556},
            "seed": 7,
        },
    }


def test_train_argv_overrides_only_what_is_given(tmp_path: Path) -> None:
    argv = train_argv(Path("rel/cfg.yaml"), python="/opt/py")
    assert argv[:3] == ["/opt/py", "-m", SLEAP_NN_MODULE]
    assert argv[-1] == Path("rel").absolute().as_posix()
    assert not [a for a in argv if a.startswith("++")]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_epochs": 0},
        {"max_epochs": True},
        {"max_epochs": 2.0},
        {"batch_size": "4"},
        {"learning_rate": float("nan")},
        {"learning_rate": "0.1"},
        {"publish_port": 70000},
        {"controller_port": 0},
        {"train_labels": ["/a\0b"]},
        {"extra_overrides": {"a=b": 1}},
        {"extra_overrides": {"hydra.run.dir": object()}},
    ],
)
def test_train_argv_refuses_bad_values(tmp_path: Path, kwargs: Any) -> None:
    with pytest.raises(LocalProtocolError):
        train_argv(tmp_path / "c.yaml", **kwargs)


@pytest.mark.parametrize("name", ["a/b", "..", ".", "", "  ", "a\\b"])
def test_run_name_must_be_one_folder(tmp_path: Path, name: str) -> None:
    with pytest.raises(PathNotAllowed):
        train_argv(tmp_path / "c.yaml", run_name=name)


@cache
def _train_command() -> click.Command:
    from sleap_nn.cli import cli

    command = cli.get_command(click.Context(cli), "train")
    assert command is not None
    return command


def _sleap_nn_config(argv: list[str]) -> Any:
    """What ``sleap-nn train`` makes of ``argv``: its click command parses the
    arguments, Hydra composes the config with the overrides and sleap-nn's
    ``verify_training_cfg`` builds its structured config (where a ``${``
    quoted for Hydra is resolved again)."""
    import hydra
    from sleap_nn.config.training_job_config import verify_training_cfg

    assert argv[:4] == [*PREFIX, "train"]
    params = _train_command().make_context("train", argv[4:]).params
    assert not params["config"]
    overrides = list(params["overrides"])
    assert overrides
    assert not overrides[0].endswith((".yaml", ".yml"))  # never read as a config
    config_dir = Path(params["config_dir"]).resolve().as_posix()
    with hydra.initialize_config_dir(config_dir=config_dir, version_base=None):
        cfg = hydra.compose(config_name=params["config_name"], overrides=overrides)
    return verify_training_cfg(cfg)


TRICKY_NAMES = [
    "240506_070809.single_instance.n=20",
    "my run = ü 'x' \"y\"",
    "a,b=[c] {d} #e ✓ 日本",
    " leading and trailing ",
    "it's (1)",
]


@pytest.mark.parametrize("name", TRICKY_NAMES)
def test_sleap_nn_reads_tricky_run_names_and_paths(
    tmp_path: Path, tiny_config_file: Path, name: str
) -> None:
    folder = tmp_path / f"data {name.strip()}"
    config = folder / f"cfg {name.strip()}.yaml"
    config.parent.mkdir()
    config.write_text(tiny_config_file.read_text(encoding="utf-8"), encoding="utf-8")
    labels = folder / f"labels = {name.strip()} \\'.pkg.slp"  # a backslash too
    argv = train_argv(
        config,
        train_labels=[labels],
        val_labels=labels,
        run_name=name,
        ckpt_dir=folder / "models",
        resume_ckpt_path=folder / "best.ckpt",
    )
    cfg = _sleap_nn_config(argv)
    assert cfg.trainer_config.run_name == name
    assert cfg.trainer_config.ckpt_dir == (folder / "models").as_posix()
    assert cfg.trainer_config.resume_ckpt_path == (folder / "best.ckpt").as_posix()
    assert list(cfg.data_config.train_labels_path) == [labels.as_posix()]
    assert list(cfg.data_config.val_labels_path) == [labels.as_posix()]
    assert cfg.trainer_config.max_epochs == 2  # the YAML still decides the rest


def test_a_dollar_brace_is_refused_because_sleap_nn_resolves_it_again(
    tmp_path: Path, tiny_config_file: Path
) -> None:
    # Quoted for Hydra, it reads back right once...
    argv = train_argv(tiny_config_file, run_name="ok")
    argv[-1] = "++trainer_config.run_name=" + hydra_quote("x${y}")
    cfg = _sleap_nn_config(argv)
    assert cfg.trainer_config.run_name == "x${y}"
    # ...but sleap-nn's trainer writes the run name it read back into its
    # config (``_setup_ckpt_path``), where it is an interpolation again.
    cfg.trainer_config.run_name = cfg.trainer_config.run_name
    with pytest.raises(Exception, match="y"):
        _ = cfg.trainer_config.run_name
    # ...so train_argv refuses it in run names and paths, with the reason.
    for kwargs in (
        {"run_name": "x${y}"},
        {"train_labels": ["/d/${y}.slp"]},
        {"val_labels": "/d/${y}.slp"},
        {"ckpt_dir": "/d/${y}"},
        {"resume_ckpt_path": "/d/${y}/best.ckpt"},
    ):
        with pytest.raises(LocalProtocolError, match="interpolation"):
            train_argv(tiny_config_file, **kwargs)  # type: ignore[arg-type]
    assert sleap_nn_text_problem("/d/$y/{z}") is None


# -------------------------------------------------------------------- track


def test_track_argv_parses_with_sleap_nn_click() -> None:
    argv = track_argv(
        "-looks-like-an-option.slp",
        [Path("/m/centroid"), "/m/centered instance"],
        output_path="/out/p.slp",
        batch_size=2,
        peak_threshold=0.25,
        frame_filter="suggested",
        exclude_user_labeled=True,
        video_index=1,
        frames="0-3,7",
        device="cpu",
        json_progress=True,
    )
    params = _track_params(argv)
    assert params["data_path"] == "-looks-like-an-option.slp"
    assert params["model_paths"] == ("/m/centroid", "/m/centered instance")
    assert params["output_path"] == "/out/p.slp"
    assert params["batch_size"] == 2
    assert params["peak_threshold"] == 0.25
    assert params["only_suggested_frames"] is True
    assert params["exclude_user_labeled"] is True
    assert params["video_index"] == 1
    assert params["frames"] == "0,1,2,3,7"  # sleap-nn cannot read a mix
    assert params["device"] == "cpu"
    assert params["gui"] is True


@pytest.mark.parametrize(
    ("frame_filter", "flag"),
    [
        ("suggested", "only_suggested_frames"),
        ("user", "only_labeled_frames"),
        ("predicted", "only_predicted_frames"),
    ],
)
def test_frame_filters(frame_filter: str, flag: str) -> None:
    params = _track_params(track_argv("d.slp", ["m"], frame_filter=frame_filter))
    flags = {"only_suggested_frames", "only_labeled_frames", "only_predicted_frames"}
    assert {f for f in flags if params[f]} == {flag}


def test_track_defaults_add_nothing() -> None:
    assert track_argv("d.slp", ["m"]) == [
        *PREFIX,
        "track",
        "--data_path=d.slp",
        "--model_paths=m",
    ]


@pytest.mark.parametrize(
    ("frames", "arg"), [("5", "5-5"), (" 2 - 4 ", "2-4"), ("1,3", "1,3")]
)
def test_frames_syntax(frames: str, arg: str) -> None:
    assert track_argv("d", ["m"], frames=frames)[-1] == f"--frames={arg}"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"frame_filter": "random"},
        {"frame_filter": "all"},
        {"frames": "a-b"},
        {"frames": "9-3"},
        {"frames": "0-999999,1000000-2000000"},
        {"peak_threshold": 1.5},
        {"peak_threshold": True},
        {"batch_size": 0},
        {"video_index": -1},
        {"device": "cuda; rm -rf /"},
        {"output_path": "a\0b"},
    ],
)
def test_track_argv_refuses_bad_values(kwargs: Any) -> None:
    with pytest.raises(LocalProtocolError):
        track_argv("d.slp", ["m"], **kwargs)


def test_track_needs_a_model() -> None:
    with pytest.raises(LocalProtocolError, match="model"):
        track_argv("d.slp", [])


# ---------------------------------------------------------------- run dirs


def test_expected_run_dir_skips_finished_runs(tmp_path: Path) -> None:
    assert expected_run_dir("r", ckpt_dir="models", cwd=tmp_path) == (
        tmp_path / "models" / "r"
    )
    first = tmp_path / "models" / "r"
    first.mkdir(parents=True)
    assert expected_run_dir("r", ckpt_dir="models", cwd=tmp_path) == first
    (first / "best.ckpt").touch()
    assert expected_run_dir("r", ckpt_dir="models", cwd=tmp_path) == (
        tmp_path / "models" / "r-1"
    )
    (tmp_path / "models" / "r-1").mkdir()
    assert expected_run_dir("r", ckpt_dir="models", cwd=tmp_path) == (
        tmp_path / "models" / "r-2"
    )
    assert expected_run_dir("x", cwd=tmp_path) == tmp_path / "x"
    with pytest.raises(PathNotAllowed):
        expected_run_dir("../x", cwd=tmp_path)


# ------------------------------------------------------------------- specs

NOW = datetime(2024, 5, 6, 7, 8, 9)


def _train_spec(**fields: Any) -> TrainJobSpec:
    return TrainJobSpec.from_dict({"type": "train", "config_content": "a: 1", **fields})


def test_sleap_run_name_follows_sleaps_pattern() -> None:
    assert sleap_run_name("centroid", 120, now=NOW) == "240506_070809.centroid.n=120"
    assert sleap_run_name("bottomup", None, now=NOW) == "240506_070809.bottomup"
    assert sleap_run_name("../x", 3, now=NOW) == "240506_070809.model.n=3"
    assert sleap_run_name(None, 0, now=NOW) == "240506_070809.model.n=0"


def test_run_names_of_one_config() -> None:
    assert run_names(_train_spec(), now=NOW) == ["240506_070809.model"]
    spec = _train_spec(model_types=["single_instance"])
    assert run_names(spec, now=NOW, labeled_frames=20) == [
        "240506_070809.single_instance.n=20"
    ]
    # The type read from the config when the spec names none.
    assert run_names(_train_spec(), now=NOW, model_types=["bottomup"]) == [
        "240506_070809.bottomup"
    ]
    assert run_names(_train_spec(run_name="mine"), now=NOW) == ["mine"]
    # The YAML's own run name (what SLEAP's dialog writes) is kept as it is.
    tricky = "my run = ü 'x' \"y\""
    assert run_names(_train_spec(), now=NOW, config_run_names=[tricky]) == [tricky]
    assert run_names(_train_spec(run_name="m"), config_run_names=[tricky]) == ["m"]


def test_run_names_of_a_pipeline() -> None:
    two = {"config_contents": ["a: 1", "b: 2"]}
    types = {"model_types": ["centroid", "centered_instance"]}
    assert run_names(_train_spec(**two, **types), now=NOW, labeled_frames=7) == [
        "240506_070809.centroid.n=7",
        "240506_070809.centered_instance.n=7",
    ]
    assert run_names(_train_spec(**two), now=NOW, labeled_frames=[7, None]) == [
        "240506_070809.model.n=7",
        "240506_070809.model",
    ]
    assert run_names(_train_spec(**two, **types, run_name="m"), now=NOW) == [
        "m.centroid",
        "m.centered_instance",
    ]
    assert run_names(_train_spec(**two, model_types=["../x", "a"]), now=NOW) == [
        "240506_070809.model",
        "240506_070809.a",
    ]
    assert run_names(_train_spec(**two, model_types=["c", "c"]), now=NOW) == [
        "240506_070809.c",
        "240506_070809.c-1",
    ]
    assert run_names(_train_spec(**two), config_run_names=["r", "r"]) == ["r", "r-1"]


def test_run_names_need_a_config_and_a_safe_name() -> None:
    with pytest.raises(LocalProtocolError):
        run_names(TrainJobSpec.from_dict({"type": "train"}))
    with pytest.raises(PathNotAllowed):
        run_names(_train_spec(run_name="a/b"))
    with pytest.raises(PathNotAllowed):
        run_names(_train_spec(), config_run_names=["a\nb"])
    with pytest.raises(LocalProtocolError, match="interpolation"):
        run_names(_train_spec(), config_run_names=["${oc.env:HOME}"])


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("240506_070809.centroid.n=20", None),
        ("my run = ü 'x' \"y\" [1,2] {a} #h", None),
        ("a/b", "one folder name"),
        ("..", "one folder name"),
        ("tab\there", "control character"),
        ("é" * 128, "255 bytes"),
        ("x${y}", "interpolation"),
    ],
)
def test_run_name_problem(name: str, problem: str | None) -> None:
    found = run_name_problem(name)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


def test_reserve_run_dir_never_shares_a_folder(tmp_path: Path) -> None:
    name = "240506_070809.centroid.n=20 ü"
    first = reserve_run_dir(tmp_path / "models", name)
    assert first == tmp_path / "models" / name
    assert first.is_dir()
    assert list(first.iterdir()) == []
    # Same second, same type, same frames: the next job gets its own folder.
    assert reserve_run_dir(tmp_path / "models", name).name == f"{name}-1"
    assert reserve_run_dir(tmp_path / "models", name).name == f"{name}-2"
    # sleap-nn trains into an existing folder without best.ckpt, so the folder
    # reserved is the folder it writes.
    assert expected_run_dir(f"{name}-2", ckpt_dir=tmp_path / "models") == (
        tmp_path / "models" / f"{name}-2"
    )
    with pytest.raises(PathNotAllowed):
        reserve_run_dir(tmp_path, "../x")


def test_train_argv_for_spec_carries_the_plan_and_the_spec_overrides(
    tmp_path: Path,
) -> None:
    """What the worker runs for one model: the plan's files and folders, the
    spec's training overrides."""
    spec = _train_spec(
        labels_path="/w/l.slp",
        max_epochs=4,
        batch_size=2,
        learning_rate=0.5,
        run_name="from_spec",
        resume_ckpt_path="/w/best.ckpt",
    )
    plan = ModelPlan(
        index=0,
        model_type="centroid",
        config_file=tmp_path / "rtc_config_0.yaml",
        run_name="planned",
        ckpt_dir=Path("/w/models"),
        train_labels=("/w/private/remapped_l.slp",),
        val_labels=("/w/v.slp",),
    )
    argv = train_argv_for_spec(
        spec, plan, publish_port=7001, controller_port=7002, python="py"
    )
    assert argv[:3] == ["py", "-m", SLEAP_NN_MODULE]
    assert argv[argv.index("--config-name") + 1] == plan.config_file.name
    trainer = _overrides(argv)["trainer_config"]
    assert _overrides(argv)["data_config"] == {
        "train_labels_path": ["/w/private/remapped_l.slp"],  # the plan's copy
        "val_labels_path": ["/w/v.slp"],
    }
    assert trainer["max_epochs"] == 4
    assert trainer["optimizer"] == {"lr": 0.5}
    assert trainer["run_name"] == "planned"  # the reserved folder, not the wish
    assert trainer["ckpt_dir"] == "/w/models"
    assert trainer["resume_ckpt_path"] == "/w/best.ckpt"
    assert trainer["zmq"] == {"publish_port": 7001, "controller_port": 7002}
    keep_yaml = dataclasses.replace(plan, train_labels=None, val_labels=None)
    assert "data_config" not in _overrides(
        train_argv_for_spec(_train_spec(), keep_yaml)
    )


def test_track_argv_for_spec() -> None:
    spec = TrackJobSpec.from_dict(
        {
            "type": "track",
            "data_path": "/w/l.slp",
            "model_paths": ["/w/m"],
            "output_path": "/w/p.slp",
            "only_suggested_frames": True,
            "frames": "1-2",
            "peak_threshold": 0.1,
            "batch_size": 3,
            "video_index": 0,
            "exclude_user_labeled": True,
        }
    )
    params = _track_params(track_argv_for_spec(spec, device="cpu"))
    assert params["data_path"] == "/w/l.slp"
    moved = _track_params(
        track_argv_for_spec(spec, data_path="/w/copy.slp", output_path="/w/o.slp")
    )
    assert (moved["data_path"], moved["output_path"]) == ("/w/copy.slp", "/w/o.slp")
    assert params["model_paths"] == ("/w/m",)
    assert params["output_path"] == "/w/p.slp"
    assert params["only_suggested_frames"] is True
    assert params["frames"] == "1-2"
    assert params["peak_threshold"] == 0.1
    assert params["batch_size"] == 3
    assert params["video_index"] == 0
    assert params["exclude_user_labeled"] is True
    assert params["device"] == "cpu"


def test_track_argv_for_spec_refuses_random_frames() -> None:
    spec = TrackJobSpec.from_dict(
        {"data_path": "d", "model_paths": ["m"], "frame_filter": "random"}
    )
    with pytest.raises(LocalProtocolError, match="random"):
        track_argv_for_spec(spec)


def test_sleap_nn_argv() -> None:
    assert sleap_nn_argv() == PREFIX
    assert sleap_nn_argv("/x/python") == ["/x/python", "-m", SLEAP_NN_MODULE]
