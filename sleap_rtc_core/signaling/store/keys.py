"""Worker keys, account keys and public keys: the key tables of the store.

A key is returned in clear exactly once, by the call that creates it; the table
keeps its SHA-256 digest (looked up by digest, so the comparison never depends on
how much of a guess matched) and a public id derived from the digest.
"""

from __future__ import annotations

from .database import Database, hash_secret, new_secret, public_id
from .records import AccountKey, PublicKey, WorkerToken

__all__ = ["ACCOUNT_KEY_PREFIX", "WORKER_KEY_PREFIX", "KeyTables"]

WORKER_KEY_PREFIX = "slp_"
"""Worker keys are ``slp_`` + base64url(24 random bytes)."""
ACCOUNT_KEY_PREFIX = "slp_acct_"
"""Account keys are ``slp_acct_`` + base64url(24 random bytes)."""


class KeyTables(Database):
    """The key half of :class:`~sleap_rtc_core.signaling.store.auth_store.Store`."""

    # --- worker keys

    def create_worker_token(
        self,
        room_id: str,
        worker_name: str,
        *,
        created_by: str | None = None,
        expires_at: float | None = None,
    ) -> tuple[WorkerToken, str]:
        """Make a worker key for ``room_id``.

        Returns:
            The record and the key itself (``slp_…``), which is never stored.

        Raises:
            KeyError: The room does not exist.
        """
        secret = new_secret(WORKER_KEY_PREFIX)
        token = WorkerToken(
            token_id=public_id("wk_", secret),
            room_id=room_id,
            worker_name=worker_name,
            created_by=created_by,
            created_at=self.clock(),
            expires_at=expires_at,
            revoked_at=None,
        )
        with self.transaction() as cur:
            self.require_room(cur, room_id)
            cur.execute(
                "INSERT INTO worker_tokens (token_id, key_hash, room_id, worker_name,"
                " created_by, created_at, expires_at, revoked_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                (
                    token.token_id,
                    hash_secret(secret),
                    room_id,
                    worker_name,
                    created_by,
                    token.created_at,
                    expires_at,
                ),
            )
        return token, secret

    def find_worker_token(self, secret: str) -> WorkerToken | None:
        """The worker key whose clear text is ``secret`` (any state), or ``None``."""
        row = self.query_one(
            "SELECT * FROM worker_tokens WHERE key_hash = ?", (hash_secret(secret),)
        )
        return WorkerToken.from_row(row) if row else None

    def get_worker_token(self, token_id: str) -> WorkerToken | None:
        """A worker key by public id (``wk_…``) or by its clear text (``slp_…``)."""
        if token_id.startswith(WORKER_KEY_PREFIX):
            return self.find_worker_token(token_id)
        row = self.query_one(
            "SELECT * FROM worker_tokens WHERE token_id = ?", (token_id,)
        )
        return WorkerToken.from_row(row) if row else None

    def list_worker_tokens(
        self, *, room_id: str | None = None, created_by: str | None = None
    ) -> list[WorkerToken]:
        """Worker keys, optionally of one room and/or one creator, oldest first."""
        sql = "SELECT * FROM worker_tokens WHERE 1 = 1"
        params: list[str] = []
        if room_id is not None:
            sql += " AND room_id = ?"
            params.append(room_id)
        if created_by is not None:
            sql += " AND created_by = ?"
            params.append(created_by)
        rows = self.query(sql + " ORDER BY created_at, token_id", params)
        return [WorkerToken.from_row(r) for r in rows]

    def revoke_worker_token(self, token_id: str) -> bool:
        """Revoke a worker key (logged for disconnection); ``False`` if unknown
        or already revoked."""
        now = self.clock()
        with self.transaction() as cur:
            cur.execute(
                "UPDATE worker_tokens SET revoked_at = ?"
                " WHERE token_id = ? AND revoked_at IS NULL",
                (now, token_id),
            )
            if cur.rowcount == 0:
                return False
            self.record_revocation(cur, token_id, now)
            return True

    def delete_worker_token(self, token_id: str) -> bool:
        """Forget a worker key (also logged, in case it was still active)."""
        with self.transaction() as cur:
            cur.execute("DELETE FROM worker_tokens WHERE token_id = ?", (token_id,))
            if cur.rowcount == 0:
                return False
            self.record_revocation(cur, token_id, self.clock())
            return True

    # --- account keys

    def create_account_key(self, user_id: str, name: str) -> tuple[AccountKey, str]:
        """Make an account key for ``user_id``.

        Returns:
            The record and the key itself (``slp_acct_…``), never stored.

        Raises:
            KeyError: The user does not exist.
        """
        secret = new_secret(ACCOUNT_KEY_PREFIX)
        key = AccountKey(
            key_id=public_id("ak_", secret),
            user_id=user_id,
            name=name,
            created_at=self.clock(),
            revoked_at=None,
        )
        with self.transaction() as cur:
            if (
                cur.execute(
                    "SELECT 1 FROM users WHERE user_id = ?", (user_id,)
                ).fetchone()
                is None
            ):
                raise KeyError(user_id)
            cur.execute(
                "INSERT INTO account_keys (key_id, key_hash, user_id, name,"
                " created_at, revoked_at) VALUES (?, ?, ?, ?, ?, NULL)",
                (key.key_id, hash_secret(secret), user_id, name, key.created_at),
            )
        return key, secret

    def find_account_key(self, secret: str) -> AccountKey | None:
        """The account key whose clear text is ``secret`` (any state), or ``None``."""
        row = self.query_one(
            "SELECT * FROM account_keys WHERE key_hash = ?", (hash_secret(secret),)
        )
        return AccountKey.from_row(row) if row else None

    def get_account_key(self, key_id: str) -> AccountKey | None:
        """An account key by public id (``ak_…``) or clear text (``slp_acct_…``)."""
        if key_id.startswith(ACCOUNT_KEY_PREFIX):
            return self.find_account_key(key_id)
        row = self.query_one("SELECT * FROM account_keys WHERE key_id = ?", (key_id,))
        return AccountKey.from_row(row) if row else None

    def list_account_keys(self, user_id: str | None = None) -> list[AccountKey]:
        """Account keys of one user (or all), oldest first."""
        if user_id is None:
            rows = self.query("SELECT * FROM account_keys ORDER BY created_at")
        else:
            rows = self.query(
                "SELECT * FROM account_keys WHERE user_id = ? ORDER BY created_at",
                (user_id,),
            )
        return [AccountKey.from_row(r) for r in rows]

    def revoke_account_key(self, key_id: str) -> bool:
        """Revoke an account key (logged); ``False`` if unknown or revoked."""
        now = self.clock()
        with self.transaction() as cur:
            cur.execute(
                "UPDATE account_keys SET revoked_at = ?"
                " WHERE key_id = ? AND revoked_at IS NULL",
                (now, key_id),
            )
            if cur.rowcount == 0:
                return False
            self.record_revocation(cur, key_id, now)
            return True

    # --- public keys (peer-to-peer auth)

    def add_public_key(
        self, user_id: str, public_key: str, device_name: str
    ) -> PublicKey:
        """Register (or rename) a user's Ed25519 public key."""
        record = PublicKey(user_id, public_key, device_name, self.clock())
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO public_keys (user_id, public_key, device_name, created_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (user_id, public_key)"
                " DO UPDATE SET device_name = excluded.device_name",
                (user_id, public_key, device_name, record.created_at),
            )
        return record

    def list_public_keys(self, user_id: str) -> list[PublicKey]:
        """A user's public keys, oldest first."""
        rows = self.query(
            "SELECT * FROM public_keys WHERE user_id = ? ORDER BY created_at",
            (user_id,),
        )
        return [PublicKey.from_row(r) for r in rows]

    def delete_public_key(self, user_id: str, public_key: str) -> bool:
        """Remove one of a user's public keys."""
        return (
            self.execute(
                "DELETE FROM public_keys WHERE user_id = ? AND public_key = ?",
                (user_id, public_key),
            )
            > 0
        )

    def room_public_keys(self, room_id: str) -> list[tuple[PublicKey, str]]:
        """Public keys of every member of ``room_id``, with their usernames."""
        rows = self.query(
            "SELECT p.*, u.username FROM public_keys p"
            " JOIN memberships m ON m.user_id = p.user_id"
            " JOIN users u ON u.user_id = p.user_id"
            " WHERE m.room_id = ? ORDER BY u.username, p.created_at",
            (room_id,),
        )
        return [(PublicKey.from_row(r), r["username"]) for r in rows]
