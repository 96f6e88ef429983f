"""Fast, strict JSON for the wire (msgspec), with our error types.

Every parse of peer input in sleap-rtc goes through :func:`loads`, so that one place
decides what "malformed" means and which error it raises.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..errors import ErrorCode, LocalProtocolError, RemoteProtocolError

__all__ = ["dumps", "dumps_bytes", "loads", "loads_object", "peer_message_ends"]

_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


class _PeerMessageHead(msgspec.Struct, forbid_unknown_fields=True):
    """The routing fields of a ``peer_message``; the payload is only checked to
    be JSON, never built into objects."""

    type: str
    from_peer_id: str
    to_peer_id: str
    payload: msgspec.Raw


_head_decoder = msgspec.json.Decoder(_PeerMessageHead)
_BLANK_OR_CLOSE = frozenset(b" \t\r\n]}")


def loads(data: str | bytes | bytearray | memoryview) -> Any:
    """Parse JSON text.

    Raises:
        RemoteProtocolError: ``INVALID_JSON`` when the text is not JSON.
    """
    try:
        return _decoder.decode(data)
    except (ValueError, TypeError, RecursionError) as exc:  # DecodeError, UnicodeError
        raise RemoteProtocolError(
            f"invalid JSON: {exc}", code=ErrorCode.INVALID_JSON
        ) from None


def loads_object(data: str | bytes | bytearray | memoryview) -> dict[str, Any]:
    """Parse JSON text that must hold an object.

    Raises:
        RemoteProtocolError: ``INVALID_JSON`` for bad JSON, ``INVALID_MESSAGE`` for
            valid JSON that is not an object.
    """
    obj = loads(data)
    if not isinstance(obj, dict):
        raise RemoteProtocolError(
            f"expected a JSON object, got {type(obj).__name__}",
            code=ErrorCode.INVALID_MESSAGE,
        )
    return obj


def dumps_bytes(obj: Any) -> bytes:
    """Encode to compact UTF-8 JSON.

    Raises:
        LocalProtocolError: when ``obj`` holds something JSON cannot carry.
    """
    try:
        return _encoder.encode(obj)
    except (TypeError, ValueError, OverflowError) as exc:
        raise LocalProtocolError(f"cannot encode as JSON: {exc}") from None


def dumps(obj: Any) -> str:
    """Encode to compact JSON text (see :func:`dumps_bytes`)."""
    return dumps_bytes(obj).decode()


def peer_message_ends(data: str | bytes) -> tuple[str, str] | None:
    """``(from_peer_id, to_peer_id)`` of a well-formed ``peer_message``, read
    without decoding its payload (the relay's fast path).

    ``None`` when the frame is anything else, or when a closer look is needed
    (a bad field, a payload that might be empty such as ``{}``, ``0`` or
    ``null``): the full decoder then answers, with the same result it always
    gives, so this never accepts what the full decoder refuses.
    """
    try:
        head = _head_decoder.decode(data)
    except (ValueError, TypeError, RecursionError):
        return None
    if head.type != "peer_message" or not head.from_peer_id or not head.to_peer_id:
        return None
    raw = memoryview(head.payload)
    first = raw[0]
    if first in (0x7B, 0x5B):  # { or [: not empty when a value follows at once
        if len(raw) < 3 or raw[1] in _BLANK_OR_CLOSE:
            return None
    elif first == 0x22:  # a string: not empty beyond its quotes
        if len(raw) < 3:
            return None
    elif first != 0x74:  # true; numbers, false and null take the full path
        return None
    return head.from_peer_id, head.to_peer_id
