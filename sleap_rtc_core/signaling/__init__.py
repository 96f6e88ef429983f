"""Signaling: the server, its registry and auth, and the client."""
