"""Who may register: credentials, tokens, passwords and GitHub login.

- :mod:`.authenticator`: the precedence of credentials at ``register``.
- :mod:`.jwt_keys`: RS256 tokens; :mod:`.passwords`: argon2id; :mod:`.github`: OAuth.
"""
