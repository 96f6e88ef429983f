"""The headless worker's configuration file (TOML) and how flags override it.

A worker that runs as a service (systemd, Docker) reads its settings from a file
instead of a long command line, by default ``$XDG_CONFIG_HOME/sleap-rtc/worker.toml``
(the platform's config folder), or the file ``--config FILE`` names::

    server = "wss://signaling.example.org"   # or a list of processes, tried in turn
    room = "lab-room"
    name = "gpu-box-1"              # shown by `sleap-rtc workers`
    gpu = 0                         # CUDA device(s): 0, [0, 1] or "all"
    # max_concurrent_jobs = 2       # default: one job per GPU
    accept_legacy_clients = true    # false: refuse sleap-rtc 0.0.7 clients

    # What FS_WRITE_SLP (labels copies with remapped videos) may write per
    # worker process: per client peer id, and all peers together (bytes).
    slp_write_files_per_peer = 20
    slp_write_bytes_per_peer = 2147483648     # 2 GiB
    slp_write_files_total = 200
    slp_write_bytes_total = 21474836480       # 20 GiB

    # Exactly one credential source; the secret itself never goes in this file.
    api_key_file = "/etc/sleap-rtc/api-key"   # a worker key slp_… or an
                                              # account key slp_acct_… (needs room)
    # token_file = "room-token"     # a room token (needs room)
    # api_key_env = "SLEAP_RTC_API_KEY"   # or: the variable that holds it
    # token_env = "SLEAP_RTC_TOKEN"

    [[mounts]]
    path = "/data/sleap"
    label = "data"

    [[mounts]]
    path = "/scratch"               # label defaults to the folder's name

    # Where clients without shared storage may send their labels: a folder
    # inside a mount (made if missing), hidden from every other request.
    [uploads]
    path = "/scratch/sleap-rtc-uploads"
    quota_gb_per_uploader = 20      # stored + partial uploads of one client
    quota_gb_total = 200            # all uploads together
    expire_days = 30                # unused this long: removed

Relative paths (credential files, mounts) are relative to the config file's
folder and ``~`` is expanded. A secret written inline (``token = …``,
``api_key = …``) is refused: unit files and config files are read by backup
tools, shown in ``systemctl cat`` and copied between machines, so the file only
says *where* the secret is. Unknown keys and wrong types are errors that name
the file and the key.

Precedence (DESIGN.md "Configuration"): the file, overridden by ``SLEAP_RTC_*``
environment variables (:func:`apply_env`), overridden by flags
(:func:`merge_flags`). Nothing here does I/O except reading the config file and,
in :meth:`~.credential_source.CredentialSource.read`, the credential file.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import platformdirs

from ..errors import ConfigError
from .capabilities import GpuSelection, parse_gpu_selection
from .credential_source import CredentialKind, CredentialOrigin, CredentialSource
from .files.slp_write import SlpWriteQuota

__all__ = [
    "CONFIG_FILENAME",
    "ENV_OVERRIDES",
    "ConfigError",
    "MountConfig",
    "SLP_WRITE_KEYS",
    "UploadConfig",
    "WorkerConfig",
    "apply_env",
    "default_config_path",
    "load_worker_config",
    "merge_flags",
    "parse_mount_flag",
]

CONFIG_FILENAME = "worker.toml"
"""The config file's name inside the platform's config folder."""

ACCOUNT_KEY_PREFIX = "slp_acct_"
"""Account keys (need a room); other ``slp_`` keys are worker keys."""

ENV_OVERRIDES: Mapping[str, str] = {
    "SLEAP_RTC_SERVER": "server",
    "SLEAP_RTC_ROOM": "room",
    "SLEAP_RTC_WORKER_NAME": "name",
    "SLEAP_RTC_GPU": "gpu",
    "SLEAP_RTC_MAX_CONCURRENT_JOBS": "max_concurrent_jobs",
    "SLEAP_RTC_ACCEPT_LEGACY_CLIENTS": "accept_legacy_clients",
}
"""Environment variables :func:`apply_env` reads, and the setting each overrides."""

_SECRET_ENV: tuple[tuple[str, str], ...] = (
    ("SLEAP_RTC_API_KEY", "api_key"),
    ("SLEAP_RTC_ACCOUNT_KEY", "api_key"),
    ("SLEAP_RTC_TOKEN", "token"),
)

_INLINE_SECRETS = frozenset(
    {"token", "api_key", "account_key", "jwt", "password", "secret", "key"}
)
_SOURCE_KEYS = ("token_file", "api_key_file", "token_env", "api_key_env")

SLP_WRITE_KEYS: Mapping[str, str] = {
    "slp_write_files_per_peer": "max_files_per_peer",
    "slp_write_bytes_per_peer": "max_bytes_per_peer",
    "slp_write_files_total": "max_files_total",
    "slp_write_bytes_total": "max_bytes_total",
}
"""The config keys (and, dashed, the flags) of the ``FS_WRITE_SLP`` quota,
and the :class:`~.files.slp_write.SlpWriteQuota` field each sets; sizes are
plain bytes."""
_KNOWN_KEYS = frozenset(
    {
        "server",
        "room",
        "name",
        "gpu",
        "max_concurrent_jobs",
        "accept_legacy_clients",
        "mounts",
        "uploads",
        *_SOURCE_KEYS,
        *SLP_WRITE_KEYS,
    }
)
_MOUNT_KEYS = frozenset({"path", "label"})
_UPLOAD_KEYS = frozenset(
    {"path", "quota_gb_per_uploader", "quota_gb_total", "expire_days"}
)
_GB = 1024**3
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SERVER_SCHEMES = ("ws://", "wss://", "http://", "https://")


@dataclass(frozen=True, slots=True)
class MountConfig:
    """A folder the worker exposes to jobs.

    Attributes:
        path: The folder (absolute once loaded from a file or flag).
        label: The name clients show; defaults to the folder's name.
    """

    path: Path
    label: str

    def as_dict(self) -> dict[str, str]:
        """``{"path", "label"}`` as registration metadata carries mounts."""
        return {"path": str(self.path), "label": self.label}


@dataclass(frozen=True, slots=True)
class UploadConfig:
    """The upload area: where clients without shared storage send files.

    Attributes:
        path: The folder (absolute; must lie inside a mount).
        quota_gb_per_uploader: GiB one uploader may keep there.
        quota_gb_total: GiB all uploads together may take.
        expire_days: Days a file may go unused before it is removed.
    """

    path: Path
    quota_gb_per_uploader: float = 20.0
    quota_gb_total: float = 200.0
    expire_days: float = 30.0

    @property
    def max_bytes_per_uploader(self) -> int:
        """:attr:`quota_gb_per_uploader` in bytes."""
        return int(self.quota_gb_per_uploader * _GB)

    @property
    def max_bytes_total(self) -> int:
        """:attr:`quota_gb_total` in bytes."""
        return int(self.quota_gb_total * _GB)


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Everything a headless worker needs to start, from file, env and flags.

    ``None`` means "not configured" so that a later layer (flags) can tell
    what it overrides; the worker command picks its own defaults for those.

    Attributes:
        server: Signaling server URL (``ws(s)://`` or ``http(s)://``), or
            several processes of one deployment, comma-separated (the file
            may give a list).
        room: Room id (needed for room tokens, account keys and JWTs).
        credential: Where the secret is; ``None`` falls back to the
            ``SLEAP_RTC_*`` secrets or the JWT of ``sleap-rtc login``.
        mounts: Folders jobs may read and write.
        gpu: The CUDA devices the worker owns (indices, or ``"all"``).
        max_concurrent_jobs: Job slots; ``None``: one per GPU.
        name: Worker name shown by ``sleap-rtc workers``.
        accept_legacy_clients: Whether sleap-rtc 0.0.7 clients may connect
            (they cannot check who the worker is).
        slp_write_quota: What ``FS_WRITE_SLP`` may write per peer and in all
            (the ``slp_write_*`` keys, :data:`SLP_WRITE_KEYS`).
        uploads: The upload area, if uploads are served.
        source: The file this came from, if any.
    """

    server: str | None = None
    room: str | None = None
    credential: CredentialSource | None = None
    mounts: tuple[MountConfig, ...] = ()
    gpu: GpuSelection = (0,)
    max_concurrent_jobs: int | None = None
    name: str | None = None
    accept_legacy_clients: bool = True
    slp_write_quota: SlpWriteQuota = field(default_factory=SlpWriteQuota)
    uploads: UploadConfig | None = None
    source: Path | None = None

    def mount_dicts(self) -> list[dict[str, str]]:
        """The mounts as ``[{"path", "label"}]`` (what the worker advertises)."""
        return [m.as_dict() for m in self.mounts]

    def credential_source(
        self, environ: Mapping[str, str] | None = None
    ) -> CredentialSource | None:
        """The configured source, else the first of ``SLEAP_RTC_API_KEY``,
        ``SLEAP_RTC_ACCOUNT_KEY``, ``SLEAP_RTC_TOKEN`` that is set, else ``None``.
        """
        if self.credential is not None:
            return self.credential
        env = os.environ if environ is None else environ
        for var, kind in _SECRET_ENV:
            if env.get(var):
                return CredentialSource(CredentialKind(kind), CredentialOrigin.ENV, var)
        return None

    def register_credentials(
        self, environ: Mapping[str, str] | None = None
    ) -> dict[str, Any] | None:
        """The credential fields of the worker's ``register`` message.

        The configured source wins; without one, ``SLEAP_RTC_API_KEY``,
        ``SLEAP_RTC_ACCOUNT_KEY`` or ``SLEAP_RTC_TOKEN`` is used. ``None`` when
        there is no secret at all (the caller may fall back to a saved login).

        Args:
            environ: The environment (default ``os.environ``).

        Raises:
            ConfigError: the secret cannot be read, or it needs a room and
                none is configured.
        """
        env = os.environ if environ is None else environ
        source = self.credential_source(env)
        if source is None:
            return None
        secret = source.read(env)
        room = {"room_id": self.room} if self.room else {}
        if source.kind is CredentialKind.API_KEY:
            if secret.startswith(ACCOUNT_KEY_PREFIX) and not self.room:
                raise ConfigError(
                    "an account key (slp_acct_…) needs a room: set `room`",
                    path=self.source,
                )
            return {"api_key": secret, **room}
        if not self.room:
            raise ConfigError("a room token needs a room: set `room`", path=self.source)
        return {"token": secret, **room}


def default_config_path() -> Path:
    """``$XDG_CONFIG_HOME/sleap-rtc/worker.toml`` (the platform's config folder)."""
    return Path(platformdirs.user_config_dir("sleap-rtc")) / CONFIG_FILENAME


def load_worker_config(path: str | os.PathLike[str] | None = None) -> WorkerConfig:
    """Read a worker config file.

    Args:
        path: The file; ``None`` reads :func:`default_config_path` if it exists
            and otherwise returns an empty :class:`WorkerConfig`.

    Raises:
        ConfigError: the file named is missing or unreadable, is not TOML, has
            unknown keys, values of the wrong type, an inline secret, or more
            than one credential source. The message names the file and the key.
    """
    if path is None:
        file = default_config_path()
        if not file.exists():
            return WorkerConfig()
    else:
        file = Path(path).expanduser()
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path=file) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=file) from None
    return _from_mapping(data, file)


def _from_mapping(data: Mapping[str, Any], file: Path) -> WorkerConfig:
    base = file.parent.absolute()
    for key in data:
        if key in _INLINE_SECRETS:
            raise ConfigError(
                "a secret may not be written in the config file; put it in a file "
                f"only the worker can read and set `{_source_key(key)}_file`, or "
                f"name an environment variable with `{_source_key(key)}_env`",
                path=file,
                key=key,
            )
        if key not in _KNOWN_KEYS:
            raise ConfigError(_unknown(key, _KNOWN_KEYS), path=file, key=key)
    server = _servers(data, file)
    gpu = _gpus(data.get("gpu", 0), key="gpu", path=file)
    jobs = (
        _int(data, "max_concurrent_jobs", file, minimum=1, default=1)
        if "max_concurrent_jobs" in data
        else None
    )
    legacy = data.get("accept_legacy_clients", True)
    if not isinstance(legacy, bool):
        raise ConfigError(
            f"expected true or false, got {_type_name(legacy)} ({legacy!r})",
            path=file,
            key="accept_legacy_clients",
        )
    return WorkerConfig(
        server=server,
        room=_opt_str(data, "room", file),
        credential=_credential(data, file, base),
        mounts=_mounts(data.get("mounts", []), file, base),
        gpu=gpu,
        max_concurrent_jobs=jobs,
        name=_opt_str(data, "name", file),
        accept_legacy_clients=legacy,
        slp_write_quota=_slp_write_quota(data, file),
        uploads=_uploads(data.get("uploads"), file, base),
        source=file,
    )


def _slp_write_quota(data: Mapping[str, Any], file: Path) -> SlpWriteQuota:
    """The ``slp_write_*`` keys given, over the quota's defaults."""
    default = SlpWriteQuota()
    given = {
        field_name: _int(
            data, key, file, minimum=0, default=getattr(default, field_name)
        )
        for key, field_name in SLP_WRITE_KEYS.items()
        if key in data
    }
    return replace(default, **given) if given else default


def _source_key(secret_key: str) -> str:
    return "token" if secret_key in ("token", "password", "secret") else "api_key"


def _unknown(key: str, known: frozenset[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f" (did you mean `{close[0]}`?)" if close else ""
    return f"unknown setting{hint}; known: {', '.join(sorted(known))}"


def _type_name(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _servers(data: Mapping[str, Any], file: Path) -> str | None:
    """``server``: one URL or a list of them (processes of one deployment),
    kept comma-separated as ``--server`` and ``$SLEAP_RTC_SERVER`` give them."""
    value = data.get("server")
    if isinstance(value, list):
        urls = [_opt_str({"server": v}, "server", file) for v in value]
        if not urls:
            raise ConfigError("expected at least one URL", path=file, key="server")
    else:
        urls = [_opt_str(data, "server", file)]
    for url in urls:
        if url is not None and (not url.startswith(_SERVER_SCHEMES) or "," in url):
            raise ConfigError(
                f"expected a ws://, wss://, http:// or https:// URL, got {url!r}",
                path=file,
                key="server",
            )
    return ",".join(u for u in urls if u is not None) or None


def _opt_str(
    data: Mapping[str, Any], key: str, file: Path, *, where: str | None = None
) -> str | None:
    """``data[key]`` as a stripped non-empty string, ``None`` when absent;
    ``where`` is the key's full name for errors (``mounts[0].path``)."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"expected a non-empty string, got {_type_name(value)} ({value!r})",
            path=file,
            key=where or key,
        )
    return value.strip()


def _gpus(value: object, *, key: str, path: Path | None = None) -> GpuSelection:
    try:
        return parse_gpu_selection(value)
    except ValueError as exc:
        raise ConfigError(
            f'{exc} (give an index, a list of them or "all")', path=path, key=key
        ) from None


def _int(
    data: Mapping[str, Any], key: str, file: Path, *, minimum: int, default: int
) -> int:
    value = data.get(key, default)
    # bool is an int in Python but never what a person meant here.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(
            f"expected an integer, got {_type_name(value)} ({value!r})",
            path=file,
            key=key,
        )
    if value < minimum:
        raise ConfigError(
            f"must be at least {minimum}, got {value}", path=file, key=key
        )
    return value


def _credential(
    data: Mapping[str, Any], file: Path, base: Path
) -> CredentialSource | None:
    given = [k for k in _SOURCE_KEYS if k in data]
    if len(given) > 1:
        raise ConfigError(
            f"give one credential source, not {len(given)} ({', '.join(given)})",
            path=file,
            key=given[1],
        )
    if not given:
        return None
    key = given[0]
    value = _opt_str(data, key, file) or ""
    kind = CredentialKind.TOKEN if key.startswith("token") else CredentialKind.API_KEY
    if key.endswith("_env"):
        if value.startswith("slp_") or not _ENV_NAME.match(value):
            raise ConfigError(
                "expected the name of an environment variable (like "
                f"SLEAP_RTC_{kind.value.upper()}), not "
                + ("the secret itself" if value.startswith("slp_") else repr(value)),
                path=file,
                key=key,
            )
        return CredentialSource(kind, CredentialOrigin.ENV, value)
    if value.startswith("slp_"):
        raise ConfigError(
            "expected the path of a file holding the key, not the key itself",
            path=file,
            key=key,
        )
    return CredentialSource(kind, CredentialOrigin.FILE, str(_path(value, base)))


def _path(text: str, base: Path) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def _mounts(value: Any, file: Path, base: Path) -> tuple[MountConfig, ...]:
    if not isinstance(value, list):
        raise ConfigError(
            f"expected an array of tables ([[mounts]]), got {_type_name(value)}",
            path=file,
            key="mounts",
        )
    mounts: list[MountConfig] = []
    for i, entry in enumerate(value):
        key = f"mounts[{i}]"
        if isinstance(entry, str):
            entry = {"path": entry}
        if not isinstance(entry, dict):
            raise ConfigError(
                f"expected a table with `path` (and `label`), got {_type_name(entry)}",
                path=file,
                key=key,
            )
        for sub in entry:
            if sub not in _MOUNT_KEYS:
                raise ConfigError(
                    _unknown(sub, _MOUNT_KEYS), path=file, key=f"{key}.{sub}"
                )
        if "path" not in entry:
            raise ConfigError("a mount needs a `path`", path=file, key=key)
        path_text = _opt_str(entry, "path", file, where=f"{key}.path") or ""
        label = _opt_str(entry, "label", file, where=f"{key}.label")
        path = _path(path_text, base)
        mounts.append(MountConfig(path, label or path.name or str(path)))
    return tuple(mounts)


def _uploads(value: Any, file: Path, base: Path) -> UploadConfig | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(
            f"expected a table ([uploads]), got {_type_name(value)}",
            path=file,
            key="uploads",
        )
    for sub in value:
        if sub not in _UPLOAD_KEYS:
            raise ConfigError(
                _unknown(sub, _UPLOAD_KEYS), path=file, key=f"uploads.{sub}"
            )
    path_text = _opt_str(value, "path", file, where="uploads.path")
    if path_text is None:
        raise ConfigError("the upload area needs a `path`", path=file, key="uploads")
    numbers: dict[str, float] = {}
    for key in ("quota_gb_per_uploader", "quota_gb_total", "expire_days"):
        if key not in value:
            continue
        number = value[key]
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise ConfigError(
                f"expected a number, got {_type_name(number)} ({number!r})",
                path=file,
                key=f"uploads.{key}",
            )
        if number <= 0:
            raise ConfigError(
                f"must be positive, got {number}", path=file, key=f"uploads.{key}"
            )
        numbers[key] = float(number)
    return UploadConfig(_path(path_text, base), **numbers)


def parse_mount_flag(text: str, base: Path | None = None) -> MountConfig:
    """``PATH[:LABEL]`` (the ``--mount`` flag) as a :class:`MountConfig`.

    The label is what follows the last ``:`` when it has no ``/`` (so that a
    Windows drive or a path with colons stays whole); it defaults to the
    folder's name. A relative path is relative to ``base`` (the current folder).

    Raises:
        ConfigError: the path is empty.
    """
    path_text, sep, label = text.rpartition(":")
    if not sep or not path_text or "/" in label or "\\" in label:
        path_text, label = text, ""
    if not path_text.strip():
        raise ConfigError(f"--mount needs a folder, got {text!r}")
    path = _path(path_text, base or Path.cwd())
    return MountConfig(path, label or path.name or str(path))


def apply_env(
    config: WorkerConfig, environ: Mapping[str, str] | None = None
) -> WorkerConfig:
    """Override ``config`` with the :data:`ENV_OVERRIDES` variables that are set.

    Secrets from the environment are not handled here but by
    :meth:`WorkerConfig.register_credentials` (only when no source is
    configured).

    Raises:
        ConfigError: a variable holds a value of the wrong type.
    """
    env = os.environ if environ is None else environ
    changes: dict[str, Any] = {}
    for var, attr in ENV_OVERRIDES.items():
        text = env.get(var, "").strip()
        if not text:
            continue
        if attr == "gpu":
            changes[attr] = _gpus(text, key=f"${var}")
        elif attr == "max_concurrent_jobs":
            minimum = 1
            try:
                number = int(text)
            except ValueError:
                raise ConfigError(
                    f"expected an integer, got {text!r}", key=f"${var}"
                ) from None
            if number < minimum:
                raise ConfigError(
                    f"must be at least {minimum}, got {number}", key=f"${var}"
                )
            changes[attr] = number
        elif attr == "accept_legacy_clients":
            changes[attr] = _env_bool(text, var)
        else:
            changes[attr] = text
    return replace(config, **changes) if changes else config


def _env_bool(text: str, var: str) -> bool:
    value = text.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"expected true or false, got {text!r}", key=f"${var}")


def merge_flags(config: WorkerConfig, args: Any) -> WorkerConfig:
    """``config`` with every flag the user gave taking precedence.

    ``args`` is an ``argparse.Namespace`` (or anything with these attributes);
    a missing attribute, ``None`` or an empty list means "not given", so the
    worker command must give these flags ``default=None`` (``[]`` for
    ``--mount``) and apply its own defaults after merging:

    ``server``, ``room``, ``name``, ``gpu``, ``max_concurrent_jobs``,
    ``mount`` (list of ``PATH[:LABEL]`` strings or ``{"path", "label"}``
    mappings; when given they replace the file's mounts), ``token``,
    ``api_key``, ``account_key`` (a secret given directly), ``token_file``,
    ``api_key_file`` (a file holding it), ``refuse_legacy_clients``,
    ``upload_dir`` (the upload area's folder; the file's quotas stay), and
    the :data:`SLP_WRITE_KEYS` (each replaces that one limit of the quota).

    Raises:
        ConfigError: more than one credential flag, or a bad value.
    """
    changes: dict[str, Any] = {}
    for attr in ("server", "room", "name"):
        value = getattr(args, attr, None)
        if value is not None:
            changes[attr] = str(value)
    gpu = getattr(args, "gpu", None)
    if gpu is not None:
        changes["gpu"] = _gpus(gpu, key="--gpu")
    for attr, minimum in (("max_concurrent_jobs", 1),):
        value = getattr(args, attr, None)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            flag = "--" + attr.replace("_", "-")
            raise ConfigError(f"{flag} must be an integer >= {minimum}, got {value!r}")
        changes[attr] = value
    if getattr(args, "refuse_legacy_clients", False) is True:
        changes["accept_legacy_clients"] = False
    quota = _flag_quota(config.slp_write_quota, args)
    if quota is not config.slp_write_quota:
        changes["slp_write_quota"] = quota
    mounts = getattr(args, "mount", None) or getattr(args, "mounts", None)
    if mounts:
        changes["mounts"] = tuple(_flag_mount(m) for m in mounts)
    upload_dir = getattr(args, "upload_dir", None)
    if upload_dir:
        path = _path(str(upload_dir), Path.cwd())
        changes["uploads"] = (
            replace(config.uploads, path=path)
            if config.uploads is not None
            else UploadConfig(path)
        )
    credential = _flag_credential(args)
    if credential is not None:
        changes["credential"] = credential
    return replace(config, **changes) if changes else config


def _flag_quota(quota: SlpWriteQuota, args: Any) -> SlpWriteQuota:
    given: dict[str, int] = {}
    for key, field_name in SLP_WRITE_KEYS.items():
        value = getattr(args, key, None)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            flag = "--" + key.replace("_", "-")
            raise ConfigError(f"{flag} must be an integer >= 0, got {value!r}")
        given[field_name] = value
    return replace(quota, **given) if given else quota


def _flag_mount(value: Any) -> MountConfig:
    if isinstance(value, MountConfig):
        return value
    if isinstance(value, Mapping):
        path = _path(str(value.get("path", "")), Path.cwd())
        label = value.get("label") or path.name or str(path)
        return MountConfig(path, str(label))
    return parse_mount_flag(str(value))


def _flag_credential(args: Any) -> CredentialSource | None:
    flags: Sequence[tuple[str, CredentialKind, CredentialOrigin]] = (
        ("token", CredentialKind.TOKEN, CredentialOrigin.VALUE),
        ("api_key", CredentialKind.API_KEY, CredentialOrigin.VALUE),
        ("account_key", CredentialKind.API_KEY, CredentialOrigin.VALUE),
        ("token_file", CredentialKind.TOKEN, CredentialOrigin.FILE),
        ("api_key_file", CredentialKind.API_KEY, CredentialOrigin.FILE),
    )
    given = [(a, k, o) for a, k, o in flags if getattr(args, a, None)]
    if len(given) > 1:
        names = ", ".join("--" + a.replace("_", "-") for a, _, _ in given)
        raise ConfigError(f"give one credential, not {len(given)} ({names})")
    if not given:
        return None
    attr, kind, origin = given[0]
    value = str(getattr(args, attr))
    if origin is CredentialOrigin.FILE:
        return CredentialSource(kind, origin, str(_path(value, Path.cwd())))
    return CredentialSource(kind, origin, "command line", value)
