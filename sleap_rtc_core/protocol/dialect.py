"""Which sleap-rtc a peer speaks: this one, or the 0.0.7 dialect (PROTOCOL.md B).

A lab moves one piece at a time, so our peers meet sleap-rtc 0.0.7 workers and
clients. 0.0.7 announces no version anywhere; ours do, in two places:

* a worker's registration ``properties`` carry ``sleap_rtc_version``;
* a client's ``offer`` carries a top-level ``sleap_rtc_version`` (extra keys of an
  offer are relayed verbatim, and 0.0.7 workers ignore them).

A peer without the marker is taken as 0.0.7, and what that means for a job is
decided here, without I/O: 0.0.7 workers never answer ``job_request`` when they
hold the room's admin slot, send one ``JOB_COMPLETE`` per model without
``output_path``, cannot send models back, and do not prove who they are on the
channel.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

__all__ = [
    "LEGACY_WORKER_LIMITS",
    "VERSION_KEY",
    "Dialect",
    "legacy_model_dir",
    "legacy_run_name",
    "newest_run",
    "offer_dialect",
    "worker_dialect",
]

VERSION_KEY = "sleap_rtc_version"
"""The marker: a worker property and a top-level offer key."""

LEGACY_WORKER_LIMITS = (
    "it runs sleap-rtc 0.0.7: the channel is authenticated one way only "
    "(the worker does not prove who it is), the job is placed without "
    "negotiation, and models stay on the worker"
)
"""What a client says once when it uses a 0.0.7 worker."""


class Dialect(StrEnum):
    """The protocol generation of a peer."""

    CURRENT = "current"
    LEGACY = "0.0.7"


def _dialect(value: object) -> Dialect:
    return Dialect.CURRENT if isinstance(value, str) and value else Dialect.LEGACY


def worker_dialect(peer: Mapping[str, Any]) -> Dialect:
    """The dialect of a ``peer_list`` entry (or of its ``metadata``).

    A 0.0.7 worker always registers its properties; an entry without any (the
    named worker of an old server that cannot discover) is taken as current.
    """
    metadata = peer.get("metadata", peer)
    props = metadata.get("properties") if isinstance(metadata, Mapping) else None
    if not isinstance(props, Mapping) or not props:
        return Dialect.CURRENT
    return _dialect(props.get(VERSION_KEY))


def offer_dialect(extra: Mapping[str, Any]) -> Dialect:
    """The dialect of the client that sent an offer (its extra keys)."""
    return _dialect(extra.get(VERSION_KEY))


def legacy_model_dir(working_dir: str, run_name: str, ckpt_dir: object = None) -> str:
    """Where a 0.0.7 worker's sleap-nn writes a model: ``{ckpt_dir or "."}/{run}``
    under the worker's working folder (its process's current folder)."""
    base = ckpt_dir if isinstance(ckpt_dir, str) and ckpt_dir else "."
    return posixpath.normpath(posixpath.join(working_dir, base, run_name))


def legacy_run_name(model_type: str | None, stamp: str) -> str:
    """The run name we give a one-model job on a 0.0.7 worker (it would pick
    ``{model_type}_{time}`` itself, a name we could only guess)."""
    return f"{model_type or 'model'}_{stamp}"


_STAMPED = re.compile(r"_\d{8}_\d{6}$")


def newest_run(names: Iterable[str], model_type: str) -> str | None:
    """The newest ``{model_type}_{YYYYmmdd_HHMMSS}`` folder name among ``names``:
    how a 0.0.7 worker names each model of a several-model job."""
    prefix = f"{model_type}_"
    runs = [
        n
        for n in names
        if n.startswith(prefix) and _STAMPED.search(n) and len(n) == len(prefix) + 15
    ]
    return max(runs, key=lambda n: n[-15:]) if runs else None
