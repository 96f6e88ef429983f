"""The signaling server: the sans-I/O router, its socket loop, and what they use.

- :mod:`.router`: every frame of a connection, as a pure state machine;
  :mod:`.relay` (its base) carries frames from peer to peer; :mod:`.session` is
  one connection's state and the steps handed back to the loop.
- :mod:`.router_io`: the asyncio loop that feeds it (WebSocket and HTTP on one port).
- :mod:`.registry`: rooms, peers and the discovery index.
- :mod:`.announce`: who hears of joins, leaves and updates.
- :mod:`.unresolved`: frames waiting for a peer another process may hold.
- :mod:`.limits`: the bounds and the per-peer budget; :mod:`.metrics`: ``/metrics``.
"""
