"""A test double of the reference signaling server's two strict rules.

The reference server (PROTOCOL.md B §1) differs from ours where our peers could
rely on our leniency; this double keeps exactly those differences and relays
the rest as plainly as the reference does (a fake at a boundary we cannot run
here: the reference server needs AWS):

* ``discover_peers`` and ``update_metadata`` name their sender
  (``from_peer_id`` / ``peer_id``); without it the answer is ``NOT_IN_ROOM`` /
  ``INVALID_MESSAGE``, as there;
* ``update_metadata`` **replaces** the stored metadata with the update (tags
  united with the old ones, properties shallow-merged), so a top-level key the
  update leaves out is gone (B §1.5);
* no ``request_id`` is echoed, and nothing is sent that the reference does not
  send (no ``ping``, no room announcements).

One room, joined with its token; ``offer``/``answer``/``candidate`` and a
worker's ``error`` with a ``target`` are forwarded verbatim.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve

from sleap_rtc_core.errors import SleapRTCError
from sleap_rtc_core.protocol.filters import matches

__all__ = ["ReferenceDouble"]


@dataclass
class _Peer:
    peer_id: str
    role: str
    metadata: dict[str, Any]
    ws: ServerConnection


@dataclass
class ReferenceDouble:
    """Serve on 127.0.0.1; ``url`` once started (``async with``)."""

    room_id: str = "ref-room"
    token: str = "ref-token"
    peers: dict[str, _Peer] = field(default_factory=dict)
    refused: list[dict[str, Any]] = field(default_factory=list)
    _server: Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = next(iter(self._server.sockets)).getsockname()[:2]
        return f"ws://{host}:{port}"

    async def __aenter__(self) -> ReferenceDouble:
        self._server = await serve(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        me: str | None = None
        try:
            async for raw in ws:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    await self._error(ws, "INVALID_JSON", "Invalid JSON")
                    continue
                me = await self._dispatch(ws, msg, me)
        finally:
            peer = self.peers.get(me) if me is not None else None
            if peer is not None and peer.ws is ws:
                del self.peers[peer.peer_id]

    async def _dispatch(
        self, ws: ServerConnection, msg: dict[str, Any], me: str | None
    ) -> str | None:
        kind = msg.get("type")
        if kind == "register":
            return await self._register(ws, msg)
        if kind == "discover_peers":
            await self._discover(ws, msg)
        elif kind == "update_metadata":
            await self._update(ws, msg)
        elif kind == "peer_message":
            await self._forward(msg.get("to_peer_id"), msg)
        elif kind in ("offer", "answer", "candidate"):
            if msg.get("sender") and msg.get("target"):
                await self._forward(msg["target"], msg)
        elif kind == "error" and msg.get("target"):
            await self._forward(msg["target"], msg)
        else:
            await self._error(ws, "UNKNOWN_MESSAGE_TYPE", f"Unknown type {kind}")
        return me

    async def _register(self, ws: ServerConnection, msg: dict[str, Any]) -> str | None:
        if msg.get("room_id") != self.room_id or msg.get("token") != self.token:
            await ws.send(json.dumps({"type": "error", "reason": "Invalid token"}))
            return None
        peer_id = str(msg["peer_id"])
        others = [p for p in self.peers if p != peer_id]
        self.peers[peer_id] = _Peer(
            peer_id, str(msg.get("role", "peer")), dict(msg.get("metadata") or {}), ws
        )
        reply = {
            "type": "registered_auth",
            "room_id": self.room_id,
            "token": self.token,
            "peer_id": peer_id,
            "admin_peer_id": None,
            "peer_list": others,
            "peer_metadata": {p: self.peers[p].metadata for p in others},
            "ice_servers": [],
            "mesh_ice_servers": [],
        }
        await ws.send(json.dumps(reply))
        return peer_id

    async def _discover(self, ws: ServerConnection, msg: dict[str, Any]) -> None:
        sender = msg.get("from_peer_id")
        if sender not in self.peers:
            self.refused.append(msg)
            await self._error(ws, "NOT_IN_ROOM", "Sender not in a room")
            return
        found = []
        for p in self.peers.values():
            peer = {"peer_id": p.peer_id, "role": p.role, "metadata": p.metadata}
            with contextlib.suppress(SleapRTCError):
                if p.peer_id != sender and matches(msg.get("filters") or {}, peer):
                    found.append({**peer, "connected_at": 0})
        await ws.send(
            json.dumps(
                {
                    "type": "peer_list",
                    "to_peer_id": sender,
                    "peers": found,
                    "count": len(found),
                }
            )
        )

    async def _update(self, ws: ServerConnection, msg: dict[str, Any]) -> None:
        peer_id, update = msg.get("peer_id"), msg.get("metadata")
        if not peer_id or not isinstance(update, dict) or not update:
            self.refused.append(msg)
            await self._error(ws, "INVALID_MESSAGE", "peer_id and metadata required")
            return
        peer = self.peers.get(peer_id)
        if peer is None:
            await self._error(ws, "PEER_NOT_FOUND", "Peer not found")
            return
        stored = dict(update)  # the reference's rule: the update replaces
        if "tags" in update:
            stored["tags"] = sorted(
                set(peer.metadata.get("tags", [])) | set(update["tags"])
            )
        if "properties" in update:
            stored["properties"] = {
                **peer.metadata.get("properties", {}),
                **update["properties"],
            }
        peer.metadata = stored
        await ws.send(
            json.dumps(
                {"type": "metadata_updated", "peer_id": peer_id, "metadata": stored}
            )
        )

    async def _forward(self, target: Any, msg: dict[str, Any]) -> None:
        peer = self.peers.get(target) if isinstance(target, str) else None
        if peer is not None:
            with contextlib.suppress(Exception):
                await peer.ws.send(json.dumps(msg))

    @staticmethod
    async def _error(ws: ServerConnection, code: str, message: str) -> None:
        await ws.send(json.dumps({"type": "error", "code": code, "message": message}))
