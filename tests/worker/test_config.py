"""The worker config file: loading, refusing secrets, errors, env and flags.

Every file is written to ``tmp_path``; the default location is the isolated
``$XDG_CONFIG_HOME`` that ``conftest.py`` sets.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sleap_rtc_core.worker.config import (
    ConfigError,
    MountConfig,
    WorkerConfig,
    apply_env,
    default_config_path,
    load_worker_config,
    merge_flags,
    parse_mount_flag,
)
from sleap_rtc_core.worker.credential_source import (
    CredentialKind,
    CredentialOrigin,
    CredentialSource,
)
from sleap_rtc_core.worker.files.slp_write import SlpWriteQuota
from tests.fixtures.timing import scaled

FULL = """\
server = "wss://signal.lab.example.org"
room = "lab-room"
name = "gpu-box-1"
gpu = 1
max_concurrent_jobs = 2
token_file = "secrets/room-token"

[[mounts]]
path = "/data/sleap"
label = "data"

[[mounts]]
path = "scratch"
"""


def write(tmp_path: Path, text: str, name: str = "worker.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_full_file(tmp_path: Path) -> None:
    cfg = load_worker_config(write(tmp_path, FULL))
    assert cfg.server == "wss://signal.lab.example.org"
    assert cfg.room == "lab-room"
    assert cfg.name == "gpu-box-1"
    assert (cfg.gpu, cfg.max_concurrent_jobs) == ((1,), 2)
    assert cfg.credential == CredentialSource(
        CredentialKind.TOKEN,
        CredentialOrigin.FILE,
        str(tmp_path / "secrets" / "room-token"),
    )
    # Relative paths are relative to the file's folder; labels default to names.
    assert cfg.mounts == (
        MountConfig(Path("/data/sleap"), "data"),
        MountConfig(tmp_path / "scratch", "scratch"),
    )
    assert cfg.mount_dicts()[1] == {
        "path": str(tmp_path / "scratch"),
        "label": "scratch",
    }
    assert cfg.source == tmp_path / "worker.toml"


def test_empty_file_has_defaults(tmp_path: Path) -> None:
    cfg = load_worker_config(write(tmp_path, ""))
    assert cfg == WorkerConfig(source=tmp_path / "worker.toml")
    # GPU 0, and one job per GPU unless max_concurrent_jobs says otherwise.
    assert (cfg.gpu, cfg.max_concurrent_jobs, cfg.mounts) == ((0,), None, ())


def test_default_path_is_the_user_config_folder() -> None:
    expected = Path(os.environ["XDG_CONFIG_HOME"]) / "sleap-rtc" / "worker.toml"
    assert default_config_path() == expected
    assert load_worker_config() == WorkerConfig()  # absent: empty, no error
    expected.parent.mkdir(parents=True)
    expected.write_text('room = "r"\n', encoding="utf-8")
    assert load_worker_config().room == "r"


def test_mount_as_plain_string(tmp_path: Path) -> None:
    cfg = load_worker_config(write(tmp_path, 'mounts = ["/srv/data"]\n'))
    assert cfg.mounts == (MountConfig(Path("/srv/data"), "data"),)


def test_home_is_expanded(tmp_path: Path) -> None:
    cfg = load_worker_config(write(tmp_path, 'api_key_file = "~/key"\n'))
    assert cfg.credential is not None
    assert cfg.credential.where == str(Path.home() / "key")


@pytest.mark.parametrize("key", ["token", "api_key", "account_key", "jwt", "password"])
def test_inline_secret_is_refused(tmp_path: Path, key: str) -> None:
    path = write(tmp_path, f'{key} = "slp_abcdef"\n')
    with pytest.raises(ConfigError) as info:
        load_worker_config(path)
    message = str(info.value)
    assert str(path) in message
    assert key in message
    assert "_file" in message
    assert "_env" in message
    assert "slp_abcdef" not in message  # the secret is not echoed back
    assert info.value.key == key


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ('gpu = "first"\n', "gpu", "a GPU index is a whole number >= 0"),
        ("gpu = true\n", "gpu", "not a GPU index"),
        ("gpu = -1\n", "gpu", "whole number >= 0"),
        ("gpu = [0, 0]\n", "gpu", "listed twice"),
        ("gpu = []\n", "gpu", "no GPU given"),
        ("max_concurrent_jobs = 0\n", "max_concurrent_jobs", "at least 1"),
        ("max_concurrent_jobs = 1.5\n", "max_concurrent_jobs", "got a number"),
        ("slp_write_bytes_total = -1\n", "slp_write_bytes_total", "at least 0"),
        (
            'slp_write_bytes_per_peer = "2GiB"\n',
            "slp_write_bytes_per_peer",
            "expected an integer, got a string",
        ),
        ("slp_write_files_total = 2.5\n", "slp_write_files_total", "got a number"),
        ("slp_writes_files_total = 2\n", "slp_writes_files_total", "did you mean"),
        ("room = 7\n", "room", "expected a non-empty string"),
        ('room = "  "\n', "room", "expected a non-empty string"),
        ('server = "signal.lab:8080"\n', "server", "ws://"),
        ('server = ["ws://a:1", "b:2"]\n', "server", "ws://"),
        ("server = []\n", "server", "at least one URL"),
        ("server = [7]\n", "server", "expected a non-empty string"),
        ('mounts = "/data"\n', "mounts", "array of tables"),
        ("mounts = [3]\n", "mounts[0]", "expected a table"),
        ('[[mounts]]\nlabel = "x"\n', "mounts[0]", "needs a `path`"),
        ("[[mounts]]\npath = 5\n", "mounts[0].path", "non-empty string"),
        ('[[mounts]]\npath = "/d"\nlable = "x"\n', "mounts[0].lable", "`label`"),
        ('sever = "ws://x"\n', "sever", "did you mean `server`"),
        ('token_env = "slp_abc"\n', "token_env", "not the secret itself"),
        ('api_key_env = "MY KEY"\n', "api_key_env", "environment variable"),
        ('api_key_file = "slp_abc"\n', "api_key_file", "not the key itself"),
        (
            'token_file = "a"\napi_key_env = "B"\n',
            "api_key_env",
            "one credential source",
        ),
    ],
)
def test_bad_values_name_file_and_key(
    tmp_path: Path, text: str, key: str, fragment: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_worker_config(path)
    assert info.value.path == path
    assert info.value.key == key
    assert str(info.value).startswith(f"{path}: {key}: ")
    assert fragment in str(info.value)
    assert info.value.code == "INVALID_CONFIG"


def test_server_may_be_a_list_of_processes(tmp_path: Path) -> None:
    text = 'server = ["ws://127.0.0.1:8080", "ws://127.0.0.1:8081"]\n'
    cfg = load_worker_config(write(tmp_path, text))
    # Kept comma-separated, as --server and $SLEAP_RTC_SERVER give several.
    assert cfg.server == "ws://127.0.0.1:8080,ws://127.0.0.1:8081"


def test_not_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "server = \n")
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_worker_config(path)
    assert str(path) in str(info.value)


def test_missing_named_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_worker_config(tmp_path / "nope.toml")


def test_credentials_from_file(tmp_path: Path) -> None:
    (tmp_path / "room-token").write_text("tok-123\n", encoding="utf-8")
    cfg = load_worker_config(
        write(tmp_path, 'room = "r1"\ntoken_file = "room-token"\n')
    )
    assert cfg.register_credentials({}) == {"room_id": "r1", "token": "tok-123"}
    assert cfg.credential is not None
    assert "room-token" in cfg.credential.describe()


def test_credentials_from_env(tmp_path: Path) -> None:
    cfg = load_worker_config(write(tmp_path, 'api_key_env = "MY_KEY"\n'))
    assert cfg.register_credentials({"MY_KEY": " slp_worker "}) == {
        "api_key": "slp_worker"
    }
    with pytest.raises(ConfigError, match="MY_KEY is not set"):
        cfg.register_credentials({})


def test_account_key_and_token_need_a_room() -> None:
    env = {"K": "slp_acct_x", "T": "tok"}
    key = CredentialSource(CredentialKind.API_KEY, CredentialOrigin.ENV, "K")
    with pytest.raises(ConfigError, match="needs a room"):
        WorkerConfig(credential=key).register_credentials(env)
    assert WorkerConfig(room="r", credential=key).register_credentials(env) == {
        "api_key": "slp_acct_x",
        "room_id": "r",
    }
    token = CredentialSource(CredentialKind.TOKEN, CredentialOrigin.ENV, "T")
    with pytest.raises(ConfigError, match="needs a room"):
        WorkerConfig(credential=token).register_credentials(env)


def test_secret_env_fallback_without_a_source() -> None:
    cfg = WorkerConfig(room="r")
    assert cfg.register_credentials({}) is None
    assert cfg.register_credentials({"SLEAP_RTC_TOKEN": "t"}) == {
        "room_id": "r",
        "token": "t",
    }
    # A worker key wins over a room token when both are set.
    both = {"SLEAP_RTC_TOKEN": "t", "SLEAP_RTC_API_KEY": "slp_k"}
    assert cfg.register_credentials(both) == {"api_key": "slp_k", "room_id": "r"}


def test_value_is_never_in_repr() -> None:
    source = CredentialSource(
        CredentialKind.API_KEY, CredentialOrigin.VALUE, "command line", "slp_secret"
    )
    cfg = WorkerConfig(credential=source)
    assert "slp_secret" not in repr(cfg)
    assert "slp_secret" not in source.describe()


def test_env_overrides_file(tmp_path: Path) -> None:
    cfg = load_worker_config(write(tmp_path, FULL))
    env = {"SLEAP_RTC_ROOM": "other", "SLEAP_RTC_GPU": "3", "SLEAP_RTC_SERVER": ""}
    merged = apply_env(cfg, env)
    assert (merged.room, merged.gpu, merged.server) == ("other", (3,), cfg.server)
    assert apply_env(cfg, {}) is cfg
    with pytest.raises(ConfigError, match=r"\$SLEAP_RTC_MAX_CONCURRENT_JOBS"):
        apply_env(cfg, {"SLEAP_RTC_MAX_CONCURRENT_JOBS": "0"})
    with pytest.raises(ConfigError, match=r"\$SLEAP_RTC_GPU.*whole number"):
        apply_env(cfg, {"SLEAP_RTC_GPU": "x"})
    assert apply_env(cfg, {"SLEAP_RTC_GPU": "all"}).gpu == "all"


def flags(**given: object) -> argparse.Namespace:
    """What the worker command's parser gives: everything ``None`` unless set."""
    base: dict[str, object] = {
        "server": None,
        "room": None,
        "name": None,
        "gpu": None,
        "max_concurrent_jobs": None,
        "mount": [],
        "token": None,
        "api_key": None,
        "account_key": None,
    }
    base.update(given)
    return argparse.Namespace(**base)


def test_flags_override_file(tmp_path: Path) -> None:
    cfg = load_worker_config(write(tmp_path, FULL))
    assert merge_flags(cfg, flags()) == cfg
    merged = merge_flags(
        cfg,
        flags(room="r2", gpu=0, max_concurrent_jobs=4, mount=["/x/y:why", "/z"]),
    )
    assert (merged.room, merged.gpu, merged.max_concurrent_jobs) == ("r2", (0,), 4)
    assert merged.server == cfg.server  # not given: kept
    assert merged.mounts == (
        MountConfig(Path("/x/y"), "why"),
        MountConfig(Path("/z"), "z"),
    )
    assert merged.credential == cfg.credential


def test_flag_credential_replaces_the_file_source(tmp_path: Path) -> None:
    cfg = load_worker_config(write(tmp_path, FULL))
    merged = merge_flags(cfg, flags(account_key="slp_acct_k"))
    assert merged.credential is not None
    assert merged.credential.origin is CredentialOrigin.VALUE
    assert merged.register_credentials({}) == {
        "api_key": "slp_acct_k",
        "room_id": "lab-room",
    }
    with pytest.raises(ConfigError, match="one credential"):
        merge_flags(cfg, flags(token="t", api_key="slp_k"))
    with pytest.raises(ConfigError, match="--gpu"):
        merge_flags(cfg, flags(gpu=-2))


def test_merge_accepts_mount_mappings_and_partial_namespaces() -> None:
    merged = merge_flags(
        WorkerConfig(), argparse.Namespace(mount=[{"path": "/d", "label": ""}])
    )
    assert merged.mounts == (MountConfig(Path("/d"), "d"),)


@pytest.mark.parametrize(
    ("text", "path", "label"),
    [
        ("/data", "/data", "data"),
        ("/data:lab", "/data", "lab"),
        ("/a:b/c", "/a:b/c", "c"),  # what follows ":" has a slash: no label
        ("/d/C:\\data", "/d/C:\\data", "C:\\data"),  # nor a backslash
    ],
)
def test_parse_mount_flag(text: str, path: str, label: str) -> None:
    assert parse_mount_flag(text) == MountConfig(Path(path), label)


def test_parse_mount_flag_relative_and_empty(tmp_path: Path) -> None:
    assert parse_mount_flag("sub:x", tmp_path) == MountConfig(tmp_path / "sub", "x")
    with pytest.raises(ConfigError, match="needs a folder"):
        parse_mount_flag("  ")


# --- the shipped resources that use this file

RESOURCES = Path(__file__).resolve().parents[2] / "resources"
UNIT = RESOURCES / "systemd" / "sleap-rtc-worker.service"


def test_readme_example_config_loads(tmp_path: Path) -> None:
    readme = (RESOURCES / "README.md").read_text(encoding="utf-8")
    example = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    cfg = load_worker_config(write(tmp_path, example))
    assert cfg.credential is not None
    assert cfg.credential.origin is CredentialOrigin.ENV
    assert cfg.register_credentials({"SLEAP_RTC_API_KEY": "slp_k"}) == {
        "api_key": "slp_k",
        "room_id": "lab-room",
    }


def unit_settings() -> dict[str, list[str]]:
    """``Key=value`` lines of the unit (comments dropped), values per key."""
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_unit_is_hardened_and_holds_no_secret() -> None:
    settings = unit_settings()
    assert settings["User"] == ["sleap-rtc"]
    assert settings["EnvironmentFile"] == ["/etc/sleap-rtc/worker.env"]
    assert settings["Restart"] == ["on-failure"]
    assert settings["KillSignal"] == ["SIGTERM"]
    assert settings["KillMode"] == ["mixed"]
    assert settings["TimeoutStopSec"]
    assert settings["NoNewPrivileges"] == ["yes"]
    assert settings["ProtectSystem"] == ["strict"]
    assert "PrivateDevices" not in settings  # GPUs need /dev/nvidia*
    (exec_start,) = settings["ExecStart"]
    assert "--config /etc/sleap-rtc/worker.toml" in exec_start
    values = " ".join(v for vs in settings.values() for v in vs)
    assert "slp_" not in values
    assert "--token" not in values
    assert "--api-key" not in values


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed"
)
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify insists that ExecStart exists: point it at this venv's script.
    script = Path(sys.executable).with_name("sleap-rtc")
    if not script.exists():
        pytest.skip("the sleap-rtc console script is not installed in this venv")
    unit = tmp_path / UNIT.name
    unit.write_text(
        UNIT.read_text(encoding="utf-8").replace(
            "/opt/sleap-rtc/bin/sleap-rtc", str(script)
        ),
        encoding="utf-8",
    )
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=scaled(60),
        check=False,
    )
    # Warnings (unknown keys, bad values) do not change the exit status: fail
    # on any line about our unit too.
    ours = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if UNIT.name in line
    ]
    assert result.returncode == 0, result.stderr
    assert ours == []


def test_legacy_clients_are_accepted_unless_the_lab_says_no(tmp_path: Path) -> None:
    """``accept_legacy_clients`` in the file, ``$SLEAP_RTC_ACCEPT_LEGACY_CLIENTS``
    and ``--refuse-legacy-clients``; a non-boolean is an error naming the key."""
    assert load_worker_config(write(tmp_path, "")).accept_legacy_clients is True
    cfg = load_worker_config(write(tmp_path, "accept_legacy_clients = false\n"))
    assert cfg.accept_legacy_clients is False
    path = write(tmp_path, 'accept_legacy_clients = "no"\n')
    with pytest.raises(ConfigError) as info:
        load_worker_config(path)
    assert info.value.key == "accept_legacy_clients"
    env = apply_env(cfg, {"SLEAP_RTC_ACCEPT_LEGACY_CLIENTS": "yes"})
    assert env.accept_legacy_clients is True
    with pytest.raises(ConfigError, match=r"\$SLEAP_RTC_ACCEPT_LEGACY_CLIENTS"):
        apply_env(cfg, {"SLEAP_RTC_ACCEPT_LEGACY_CLIENTS": "maybe"})
    refused = merge_flags(env, flags(refuse_legacy_clients=True))
    assert refused.accept_legacy_clients is False
    assert merge_flags(cfg, flags(refuse_legacy_clients=False)) == cfg


def test_slp_write_quota_from_the_file_then_the_flags(tmp_path: Path) -> None:
    """The ``slp_write_*`` keys set the FS_WRITE_SLP quota limit by limit (the
    others keep their defaults); a flag replaces one limit; 0 is allowed (no
    copies at all), a negative flag is an error naming it."""
    assert load_worker_config(write(tmp_path, "")).slp_write_quota == SlpWriteQuota()
    cfg = load_worker_config(
        write(tmp_path, "slp_write_files_per_peer = 0\nslp_write_bytes_total = 4096\n")
    )
    assert cfg.slp_write_quota == SlpWriteQuota(
        max_files_per_peer=0, max_bytes_total=4096
    )
    assert merge_flags(cfg, flags()) == cfg
    merged = merge_flags(
        cfg, flags(slp_write_bytes_per_peer=100, slp_write_files_total=3)
    )
    assert merged.slp_write_quota == SlpWriteQuota(
        max_files_per_peer=0,
        max_bytes_per_peer=100,
        max_files_total=3,
        max_bytes_total=4096,
    )
    for bad in (-1, True):
        with pytest.raises(ConfigError, match="--slp-write-files-per-peer"):
            merge_flags(cfg, flags(slp_write_files_per_peer=bad))


@pytest.mark.parametrize(
    ("text", "gpus"),
    [("gpu = [0, 2]\n", (0, 2)), ('gpu = "all"\n', "all"), ('gpu = "1,3"\n', (1, 3))],
)
def test_a_worker_owns_several_gpus_or_all(
    tmp_path: Path, text: str, gpus: object
) -> None:
    path = tmp_path / "worker.toml"
    path.write_text(text)
    assert load_worker_config(path).gpu == gpus


def test_upload_area_from_file_and_flag(tmp_path: Path) -> None:
    text = '[uploads]\npath = "up"\nquota_gb_per_uploader = 1.5\nexpire_days = 7\n'
    cfg = load_worker_config(write(tmp_path, text))
    assert cfg.uploads is not None
    assert cfg.uploads.path == tmp_path / "up"
    assert cfg.uploads.max_bytes_per_uploader == int(1.5 * 1024**3)
    assert cfg.uploads.quota_gb_total == 200.0
    assert cfg.uploads.expire_days == 7.0
    merged = merge_flags(cfg, argparse.Namespace(upload_dir="/srv/up"))
    assert merged.uploads is not None
    assert merged.uploads.path == Path("/srv/up")
    assert merged.uploads.expire_days == 7.0  # the file's limits stay


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[uploads]\nquota_gb_total = 1\n", "uploads"),
        ('[uploads]\npath = "u"\nexpire_days = 0\n', "uploads.expire_days"),
        ('[uploads]\npath = "u"\nquota = 1\n', "uploads.quota"),
        ('uploads = "u"\n', "uploads"),
    ],
)
def test_bad_upload_settings_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_worker_config(write(tmp_path, text))
    assert error.value.key == key
