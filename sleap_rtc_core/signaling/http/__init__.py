"""The server's HTTP side, on the WebSocket's port.

* :mod:`.wire`: HTTP/1.1 heads and responses (sans-I/O);
* :mod:`.base`: the request context (store, keys, limits, caller), errors,
  bodies and the route table;
* :mod:`.api`: the application the server mounts (health, metrics, CORS);
* :mod:`.auth_routes` and :mod:`.room_routes`: logins and keys, rooms and
  their members (PROTOCOL.md A.3).
"""
