"""Acknowledged delivery between server processes: the pure half.

A frame for a peer on another process is written to that process's inbox
*stream* and announced on its inbox channel in one step
(:data:`~.wire.SEND_SCRIPT`); the channel message carries the entry's id. The
owner hands the frames to its peers' websockets and acknowledges the id only
once every socket it wrote to has taken the bytes (:class:`AckWindow`), by
trimming the stream up to it. What a process had taken from Redis but not
written when it was killed is therefore still in its stream: each surviving
process takes back the entries it wrote itself (:data:`~.wire.CLAIM_SCRIPT`)
and holds them for their targets, ahead of what it held since.

Also here: the typed ``PEER_NOT_FOUND`` a process answers for a relayed frame
whose target left before it arrived (:func:`undelivered_reply`). No I/O.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from ...errors import ErrorCode, SleapRTCError
from ...protocol.codec import encode
from ...protocol.json_text import loads_object
from ...protocol.signaling import ErrorMessage

__all__ = ["AckWindow", "after", "undelivered_reply", "split_inbox"]

C = TypeVar("C")
"""A connection, as the caller names it."""


def split_inbox(data: bytes) -> tuple[str, str, bytes]:
    """The stream id, the sending process and the message of an inbox
    channel message (``<id> <node>\\n<message>``).

    Raises:
        ValueError: It is not one.
    """
    head, sep, message = data.partition(b"\n")
    entry, space, node = head.partition(b" ")
    if not sep or not space or not entry or not node:
        raise ValueError("inbox message without '<id> <node>' line")
    return entry.decode("ascii"), node.decode(errors="replace"), message


def after(entry_id: str) -> str:
    """The smallest stream id greater than ``entry_id`` (``XTRIM MINID``
    keeps ids from it on, so trimming to it drops ``entry_id`` and older).

    Raises:
        ValueError: ``entry_id`` is not ``<ms>-<seq>``.
    """
    ms, sep, seq = entry_id.partition("-")
    if not sep or not ms.isdigit() or not seq.isdigit():
        raise ValueError(f"not a stream id: {entry_id!r}")
    return f"{ms}-{int(seq) + 1}"


class AckWindow(Generic[C]):
    """Read inbox entries not yet acknowledged, oldest first.

    An entry is acknowledged once every connection it was written to has
    drained (its bytes are with the kernel) or closed; acknowledging one
    acknowledges all older ones, so the window only ever moves forward and an
    undrained connection holds back the entries after it (they are kept in
    Redis a little longer, never lost). Bounded by ``limit``: past it the
    oldest are acknowledged undrained (their sockets are backed up so far that
    the server closes them anyway).

    Args:
        limit: Entries kept at most.
    """

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._pending: deque[tuple[str, tuple[C, ...]]] = deque()
        self._forced: str | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def read(self, entry_id: str, written: Iterable[C]) -> None:
        """Note an entry whose frames were written to ``written``."""
        self._pending.append((entry_id, tuple(written)))
        if len(self._pending) > self.limit:
            self._forced = self._pending.popleft()[0]

    def ready(self, drained: Callable[[C], bool]) -> str | None:
        """Remove and return the newest entry id that may be acknowledged
        (``None``: none yet); ``drained`` tells whether a connection has."""
        done, self._forced = self._forced, None
        pending = self._pending
        while pending and all(drained(c) for c in pending[0][1]):
            done = pending.popleft()[0]
        return done


def undelivered_reply(
    target: str, frame: bytes, *, code: ErrorCode = ErrorCode.PEER_NOT_FOUND
) -> tuple[str, bytes] | None:
    """The sender of a relayed ``frame`` that could not be handed to
    ``target`` on this process, and the typed error it gets (``None``: no
    answer; an ICE candidate is dropped silently, as in one process).

    ``PEER_NOT_FOUND`` (the target left before the frame arrived) names the
    target as ``target_peer_id`` (as a ``mesh_connect`` to an absent peer
    does); every reply echoes the frame's ``request_id``.
    """
    try:
        obj = loads_object(frame)
    except SleapRTCError:
        return None
    if obj.get("type") == "ice_candidate":
        return None
    sender = obj.get("from_peer_id") or obj.get("sender")
    if not isinstance(sender, str) or not sender:
        return None
    request_id = obj.get("request_id")
    gone = code is ErrorCode.PEER_NOT_FOUND
    reply = ErrorMessage(
        code=code.value,
        message=(
            f"peer {target!r} left before the message reached it"
            if gone
            else f"could not deliver to {target!r}"
        ),
        reason="peer_not_found" if gone else None,
        request_id=request_id if isinstance(request_id, str) else None,
        extra={"target_peer_id": target},
    )
    return sender, encode(reply).encode()
