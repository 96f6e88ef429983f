"""The server's persistent auth state, in SQLite.

- :mod:`.auth_store`: :class:`~.auth_store.Store`, the one entry point.
- :mod:`.rooms` and :mod:`.keys`: its room and key tables.
- :mod:`.database`: the connection and the secret helpers; :mod:`.records`: the rows.
"""
