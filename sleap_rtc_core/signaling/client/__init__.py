"""The signaling client: a sans-I/O session and the one task that reads the socket.

- :mod:`.session`: what was asked and what is still owed (pure).
- :mod:`.session_io`: :class:`~.session_io.SignalingClient`, its asyncio loop.
"""
