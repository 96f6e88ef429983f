"""A bare WebSocket relay: the baseline of the signaling throughput bench.

What a first attempt at a signaling relay looks like with plain asyncio and the
``websockets`` library: no authentication, no validation, no limits, no metrics,
the default asyncio event loop and ``websockets``' default settings. On
``register`` it remembers ``peer_id`` → socket (and answers, so that a client
knows it is registered); on ``peer_message`` it parses the frame with the
standard ``json`` module and sends ``json.dumps`` of the delivered message to the
target. Everything else is ignored.

``bench/signaling.py`` starts it in its own process (``_server_child.py``) and
drives it with the same load generator as our server, so that the ratio of the
two is meaningful on this machine. Run by hand::

    .venv/bin/python bench/bare_relay.py --port 8765

It prints ``PORT <n>`` once it listens and runs until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

__all__ = ["main", "relay"]

_peers: dict[str, ServerConnection] = {}


async def _handler(ws: ServerConnection) -> None:
    peer_id: str | None = None
    try:
        async for raw in ws:
            msg: dict[str, Any] = json.loads(raw)
            kind = msg.get("type")
            if kind == "peer_message":
                target = _peers.get(msg["to_peer_id"])
                if target is not None:
                    try:
                        # The delivered message has the same fields as the sent one.
                        await target.send(json.dumps(msg))
                    except ConnectionClosed:
                        pass
            elif kind == "register":
                peer_id = str(msg["peer_id"])
                _peers[peer_id] = ws
                await ws.send(
                    json.dumps(
                        {
                            "type": "registered_auth",
                            "peer_id": peer_id,
                            "room_id": msg.get("room_id"),
                        }
                    )
                )
    except ConnectionClosed:
        pass
    finally:
        if peer_id is not None and _peers.get(peer_id) is ws:
            del _peers[peer_id]


async def relay(host: str, port: int) -> None:
    """Serve until SIGTERM/SIGINT; print ``PORT <n>`` once listening."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with serve(_handler, host, port) as server:
        bound = next(iter(server.sockets)).getsockname()[1]
        print(f"PORT {bound}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    asyncio.run(relay(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
