"""Fast, strict JSON for the wire (msgspec), with our error types.

Every parse of peer input in sleap-rtc goes through :func:`loads`, so that one place
decides what "malformed" means and which error it raises.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..errors import ErrorCode, LocalProtocolError, RemoteProtocolError

__all__ = ["dumps", "dumps_bytes", "loads", "loads_object"]

_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


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
