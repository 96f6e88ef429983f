"""The job secrets this user holds: what lets a new client process reattach.

A worker answers a current client's ``JOB_SUBMIT`` with
``JOB_ACCEPTED::{job_id}::{job_secret}``; the secret is the job's one
capability (attach, stop, cancel, download). :class:`RemoteJob` keeps it here
as soon as the job is accepted, so that after a crash or a closed laptop
``RemoteJob.attach(channel, job_id)`` finds it without being told.

The file is ``$XDG_STATE_HOME/sleap-rtc/job-secrets.json`` on Linux (the
platform's state folder elsewhere), mode 0600: ``{"<worker>/<job>": {"secret",
"saved_at", "models"?}}`` (``models``: the run folders on the worker of a
finished job, which prove a later job may name them), the newest
:data:`KEEP` entries. Blocking file I/O: call it from a thread in a
coroutine.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import platformdirs

from .credentials import write_private_json

__all__ = [
    "KEEP",
    "job_for_model",
    "job_secrets_path",
    "load_job_secret",
    "save_job_models",
    "save_job_secret",
]

KEEP = 500
"""Entries kept; older ones are forgotten (their jobs are long finished)."""


def job_secrets_path() -> Path:
    """Where the secrets live: the platform's state folder for ``sleap-rtc``."""
    return Path(platformdirs.user_state_dir("sleap-rtc")) / "job-secrets.json"


def _key(worker_id: str, job_id: str) -> str:
    return f"{worker_id}/{job_id}"


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_job_secret(
    worker_id: str, job_id: str, secret: str, path: Path | None = None
) -> Path:
    """Keep the secret of ``job_id`` on ``worker_id``; the file's path."""
    path = path or job_secrets_path()
    data = _load(path)
    data[_key(worker_id, job_id)] = {"secret": secret, "saved_at": time.time()}
    newest = sorted(
        data.items(),
        key=lambda kv: kv[1].get("saved_at", 0) if isinstance(kv[1], dict) else 0,
    )[-KEEP:]
    write_private_json(path, dict(newest))
    return path


def load_job_secret(
    worker_id: str, job_id: str, path: Path | None = None
) -> str | None:
    """The kept secret of ``job_id`` on ``worker_id``, if any."""
    entry = _load(path or job_secrets_path()).get(_key(worker_id, job_id))
    secret = entry.get("secret") if isinstance(entry, dict) else None
    return secret if isinstance(secret, str) and secret else None


def save_job_models(
    worker_id: str, job_id: str, run_dirs: list[str], path: Path | None = None
) -> bool:
    """Note the run folders of a finished job whose secret is kept (so that a
    later job, from any process, can show the secret to name them); whether
    the secret was there to note them by."""
    path = path or job_secrets_path()
    data = _load(path)
    entry = data.get(_key(worker_id, job_id))
    if not isinstance(entry, dict) or not entry.get("secret"):
        return False
    entry["models"] = [str(d) for d in run_dirs]
    write_private_json(path, data)
    return True


def job_for_model(
    worker_id: str, model_path: str, path: Path | None = None
) -> tuple[str, str] | None:
    """``(job_id, secret)`` of the kept job on ``worker_id`` whose run folder
    is ``model_path`` or holds it (a worker path), if any."""
    prefix = f"{worker_id}/"
    wanted = model_path.rstrip("/")
    for key, entry in _load(path or job_secrets_path()).items():
        if not key.startswith(prefix) or not isinstance(entry, dict):
            continue
        secret, models = entry.get("secret"), entry.get("models")
        if not isinstance(secret, str) or not isinstance(models, list):
            continue
        for run in models:
            run = str(run).rstrip("/")
            if wanted == run or wanted.startswith(run + "/"):
                return key[len(prefix) :], secret
    return None
