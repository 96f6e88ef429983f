"""Peer metadata: shape checks, deep-merge and the public view (PROTOCOL.md A.1).

Metadata is a JSON object, by convention ``{"tags": [str], "properties": {...}}``.
The reference server replaces the stored object with each update, which drops tags
and server-injected keys; we deep-merge instead:

* top-level keys absent from an update survive; a top-level ``null`` deletes a key;
* ``properties`` merge key by key, a ``null`` value deletes that property;
* ``tags``, when given, replace the tag list (a list, so tags can be removed);
* keys that start with ``_`` (at the top level and inside ``properties``) are
  server-owned: an update that names one is refused, and :func:`public_metadata`
  hides them from other peers.

Every function is pure: inputs are never mutated and results share no mutable
containers with them (except :func:`public_metadata`, see there).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from .json_text import dumps_bytes

__all__ = [
    "MAX_METADATA_BYTES",
    "PRIVATE_PREFIX",
    "is_private_key",
    "merge_metadata",
    "public_metadata",
    "validate_metadata",
]

MAX_METADATA_BYTES = 16 * 1024
"""Default bound on the compact JSON encoding of one peer's metadata."""

PRIVATE_PREFIX = "_"
"""Keys with this prefix are owned by the server."""


def is_private_key(key: object) -> bool:
    """Whether ``key`` names a server-owned metadata entry."""
    return isinstance(key, str) and key.startswith(PRIVATE_PREFIX)


def _invalid(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(message, code=ErrorCode.INVALID_MESSAGE)


def _copy(value: Any) -> Any:
    """Copy JSON containers so that the result shares none with the input."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value


def _check_tags(tags: object) -> list[str]:
    if not isinstance(tags, list | tuple) or not all(isinstance(t, str) for t in tags):
        raise _invalid("metadata.tags must be a list of strings")
    return list(tags)


def _check_properties(props: object) -> Mapping[str, Any]:
    if not isinstance(props, Mapping):
        raise _invalid("metadata.properties must be an object")
    if not all(isinstance(k, str) for k in props):
        raise _invalid("metadata.properties keys must be strings")
    return props


def validate_metadata(md: object, max_bytes: int = MAX_METADATA_BYTES) -> None:
    """Check that ``md`` is well-formed metadata within the size bound.

    Args:
        md: Decoded metadata.
        max_bytes: Largest allowed size of its compact JSON encoding.

    Raises:
        RemoteProtocolError: ``INVALID_MESSAGE`` when ``md`` is not an object with
            string keys, ``tags`` is not a list of strings, ``properties`` is not
            an object or something is not JSON; ``MESSAGE_TOO_LARGE`` past
            ``max_bytes``.
    """
    if not isinstance(md, Mapping):
        raise _invalid("metadata must be an object")
    if not all(isinstance(k, str) for k in md):
        raise _invalid("metadata keys must be strings")
    if "tags" in md:
        _check_tags(md["tags"])
    if "properties" in md:
        _check_properties(md["properties"])
    try:
        size = len(dumps_bytes(md))
    except (LocalProtocolError, RecursionError) as exc:
        raise _invalid(f"metadata is not JSON: {exc}") from None
    if size > max_bytes:
        raise RemoteProtocolError(
            f"metadata is {size} bytes, more than {max_bytes}",
            code=ErrorCode.MESSAGE_TOO_LARGE,
        )


def merge_metadata(
    stored: Mapping[str, Any],
    update: Mapping[str, Any],
    *,
    allow_private: bool = False,
) -> dict[str, Any]:
    """Deep-merge an ``update_metadata`` request into stored metadata.

    Args:
        stored: The metadata held now (not modified).
        update: The requested change (not modified).
        allow_private: Let the update write ``_`` keys (the server itself, e.g.
            to inject ``_worker_name``); never for peer input.

    Returns:
        The new metadata, sharing no containers with either input.

    Raises:
        RemoteProtocolError: ``INVALID_MESSAGE`` when ``update`` is not an object,
            names a server-owned key, or holds ``tags``/``properties`` of the
            wrong type (``null`` included).
    """
    if not isinstance(update, Mapping):
        raise _invalid("metadata must be an object")
    result: dict[str, Any] = {k: _copy(v) for k, v in stored.items()}
    for key, value in update.items():
        if not isinstance(key, str):
            raise _invalid("metadata keys must be strings")
        if not allow_private and is_private_key(key):
            raise _invalid(f"metadata key {key!r} is server-owned")
        if key == "tags":
            result["tags"] = _check_tags(value)
        elif key == "properties":
            props = _check_properties(value)
            old = result.get("properties")
            merged: dict[str, Any] = dict(old) if isinstance(old, dict) else {}
            for name, item in props.items():
                if not allow_private and is_private_key(name):
                    raise _invalid(f"property {name!r} is server-owned")
                if item is None:
                    merged.pop(name, None)
                else:
                    merged[name] = _copy(item)
            result["properties"] = merged
        elif value is None:
            result.pop(key, None)
        else:
            result[key] = _copy(value)
    return result


def public_metadata(md: Mapping[str, Any]) -> dict[str, Any]:
    """The view of ``md`` other peers may see: every ``_`` key stripped.

    Keys are stripped at the top level and inside ``properties``. The top-level
    dict and ``properties`` are new; deeper values are shared with ``md`` and meant
    to be serialized, not modified.
    """
    out: dict[str, Any] = {}
    for key, value in md.items():
        if is_private_key(key):
            continue
        if key == "properties" and isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if not is_private_key(k)}
        out[key] = value
    return out
