"""Encode and decode signaling messages (pure functions).

``decode`` never raises anything but :class:`RemoteProtocolError`, whose ``code``
is the wire error to answer with: ``INVALID_JSON`` (not JSON),
``INVALID_MESSAGE`` (not an object, missing or mistyped field, unknown field),
``UNKNOWN_MESSAGE_TYPE`` (``type`` names nothing we know).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ErrorCode, RemoteProtocolError, SleapRTCError
from . import signaling
from .json_text import dumps, loads_object
from .signaling import ErrorMessage, Message, MessageType

__all__ = [
    "MESSAGE_CLASSES",
    "decode",
    "decode_object",
    "encode",
    "error_for",
    "message_class",
]

MESSAGE_CLASSES: dict[str, type[Message]] = {
    cls.TYPE.value: cls
    for name in signaling.__all__
    if isinstance(cls := getattr(signaling, name), type)
    and issubclass(cls, Message)
    and cls is not Message
}
"""Wire ``type`` → message class, for every :class:`MessageType`."""

assert set(MESSAGE_CLASSES) == {t.value for t in MessageType}, "a type lacks a class"


def message_class(type_name: object) -> type[Message]:
    """The class for a wire ``type``.

    Raises:
        RemoteProtocolError: ``INVALID_MESSAGE`` when ``type`` is missing or not a
            string, ``UNKNOWN_MESSAGE_TYPE`` when it names nothing we know.
    """
    if not isinstance(type_name, str):
        raise RemoteProtocolError(
            "message has no string 'type'", code=ErrorCode.INVALID_MESSAGE
        )
    try:
        return MESSAGE_CLASSES[type_name]
    except KeyError:
        raise RemoteProtocolError(
            f"unknown message type {type_name[:64]!r}",
            code=ErrorCode.UNKNOWN_MESSAGE_TYPE,
        ) from None


def decode_object(obj: Mapping[str, Any]) -> Message:
    """Build the typed message for an already parsed JSON object.

    Raises:
        RemoteProtocolError: see the module docstring.
    """
    cls = message_class(obj.get("type"))
    return cls.from_dict(obj, what=cls.TYPE.value)


def decode(text: str | bytes) -> Message:
    """Parse one signaling frame into its typed message.

    Raises:
        RemoteProtocolError: see the module docstring.
    """
    return decode_object(loads_object(text))


def encode(message: Message) -> str:
    """The JSON text of a message.

    Raises:
        LocalProtocolError: when a field holds something JSON cannot carry.
    """
    return dumps(message.to_dict())


def error_for(
    exc: SleapRTCError, *, reason: bool = False, request_id: str | None = None
) -> ErrorMessage:
    """The ``error`` message that answers ``exc`` on the wire.

    Args:
        exc: The error to report; its ``code`` and ``message`` are used.
        reason: Also fill ``reason`` (``register`` failures; reference clients read
            ``reason``).
        request_id: The ``request_id`` of the request that failed, echoed.
    """
    return ErrorMessage(
        code=exc.code,
        message=exc.message,
        reason=exc.message if reason else None,
        request_id=request_id,
    )
