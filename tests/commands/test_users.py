"""``sleap-rtc user|jwt|account-key``: users' credentials, in-process through
``cli.main`` on a real store in a temporary data folder."""

from __future__ import annotations

import io
import sys

import pytest

from sleap_rtc_core.commands.users import read_password
from sleap_rtc_core.errors import AdminError
from sleap_rtc_core.protocol.signaling import Register
from sleap_rtc_core.signaling.auth.authenticator import Authenticator, CredentialKind
from sleap_rtc_core.signaling.auth.jwt_keys import PRIVATE_KEY_FILENAME, JwtKeys
from sleap_rtc_core.signaling.auth.passwords import verify_password
from tests.commands.conftest import PASSWORD, Cli, help_of

HELP = {
    ("user",): ("Local users, who log in with a password", ["ACTION"]),
    ("user", "add"): ("Add a user; the password is read from stdin", ["NAME"]),
    ("user", "list"): ("List the users, with their ids.", []),
    ("user", "passwd"): ("Set a user's password, read from stdin.", ["NAME"]),
    ("user", "delete"): ("Delete a user with their memberships", ["NAME"]),
    ("jwt",): ("JWTs signed with the server's key", ["ACTION"]),
    ("jwt", "issue"): (
        "Print a JWT for a user, signed with the key in the data folder",
        ["--user USER", "--days N"],
    ),
    ("account-key",): ("Account keys (slp_acct_…) let a user's scripts", ["ACTION"]),
    ("account-key", "create"): (
        "Make an account key; it is shown once",
        ["--user USER", "--name NAME"],
    ),
    ("account-key", "list"): ("List account keys by id (ak_…)", ["--user USER"]),
    ("account-key", "revoke"): ("Revoke an account key", ["KEY"]),
}
JSON_ACTIONS = {("user", "add"), ("user", "list"), ("account-key", "create")}
JSON_ACTIONS |= {("account-key", "list")}


def test_user_add_list_passwd_delete(cli: Cli) -> None:
    out = cli.json("user", "add", "alice", stdin=PASSWORD + "\r\n")
    assert out["username"] == "alice"
    store = cli.store()
    user = store.get_user_by_name("alice")
    assert user is not None
    assert user.password_hash is not None
    assert verify_password(user.password_hash, PASSWORD)
    store.close()
    users = cli.json("user", "list")["users"]
    assert [(u["username"], u["password"]) for u in users] == [("alice", True)]
    assert "alice" in cli.ok("user", "list")
    cli.ok("user", "passwd", "alice", stdin="another password\n")
    store = cli.store()
    user = store.get_user_by_name("alice")
    assert user is not None
    assert user.password_hash is not None
    assert verify_password(user.password_hash, "another password")
    store.close()
    cli.ok("user", "delete", "alice")
    assert cli.json("user", "list")["users"] == []


def test_user_errors(cli: Cli) -> None:
    cli.ok("user", "add", "alice", stdin=PASSWORD + "\n")
    assert "already exists" in cli.fails("user", "add", "Alice", stdin=PASSWORD)
    assert "empty password" in cli.fails("user", "add", "bob", stdin="")
    assert "empty password" in cli.fails("user", "add", "bob", stdin="\n")
    assert "at least" in cli.fails("user", "add", "bob", stdin="short\n")
    assert "spaces" in cli.fails("user", "add", "bo b", stdin=PASSWORD)
    assert "no user" in cli.fails("user", "passwd", "ghost", stdin=PASSWORD)
    assert "no user" in cli.fails("user", "delete", "ghost")
    assert [u["username"] for u in cli.json("user", "list")["users"]] == ["alice"]


def test_jwt_issue(cli: Cli) -> None:
    cli.ok("user", "add", "alice", stdin=PASSWORD + "\n")
    token = cli.ok("jwt", "issue", "--user", "alice", "--days", "1").splitlines()[-1]
    key_file = cli.data_dir / PRIVATE_KEY_FILENAME
    assert key_file.stat().st_mode & 0o077 == 0
    claims = JwtKeys.load(cli.data_dir, env={}).verify(token)
    assert claims["username"] == "alice"
    assert claims["exp"] - claims["iat"] == 24 * 3600
    assert "no user" in cli.fails("jwt", "issue", "--user", "ghost")


def test_account_keys(cli: Cli) -> None:
    cli.ok("user", "add", "alice", stdin=PASSWORD + "\n")
    room = cli.json("room", "create", "--name", "lab", "--owner", "alice")
    out = cli.json("account-key", "create", "--user", "alice", "--name", "laptop")
    assert out["key_id"].startswith("slp_acct_")
    assert out["secret"] == out["key_id"]
    assert out["id"].startswith("ak_")
    store = cli.store()
    ident = Authenticator(store, JwtKeys.generate()).authenticate(
        Register(peer_id="c", api_key=out["key_id"], room_id=room["room_id"])
    )
    assert ident.kind is CredentialKind.ACCOUNT_KEY
    store.close()
    keys = cli.json("account-key", "list", "--user", "alice")["keys"]
    assert [(k["id"], k["name"], k["revoked_at"]) for k in keys] == [
        (out["id"], "laptop", None)
    ]
    assert out["key_id"] not in cli.ok("account-key", "list")
    cli.ok("account-key", "revoke", out["id"])
    assert "already revoked" in cli.fails("account-key", "revoke", out["id"])
    assert "no account key" in cli.fails("account-key", "revoke", "ak_nope")
    assert "no user" in cli.fails(
        "account-key", "create", "--user", "ghost", "--name", "x"
    )


@pytest.mark.parametrize("argv", list(HELP), ids=" ".join)
def test_help_shows_each_description_and_flag(argv: tuple[str, ...]) -> None:
    """Through the real CLI, as ``test_admin`` checks ``room`` and ``token``."""
    description, flags = HELP[argv]
    text = help_of(*argv)
    assert description in text
    for shown in flags:
        assert shown in text, shown
    if len(argv) == 1:
        assert "Works on the server's data folder (--data-dir)" in text
        return
    assert "--data-dir DIR the server's data folder" in text
    assert ("--json print one JSON object on stdout" in text) == (argv in JSON_ACTIONS)
    usage = text.split(" options: ")[0]
    for shown in (f for f in flags if f.startswith("--")):
        assert usage.index(shown.split()[0]) < usage.index("--data-dir"), shown


def test_jwt_issue_lists_where_the_key_may_come_from() -> None:
    text = help_of("jwt", "issue")
    assert "environment: SLEAP_RTC_DATA_DIR" in text
    assert text.index("SLEAP_RTC_DATA_DIR") < text.index("SLEAP_JWT_PRIVATE_KEY")
    assert "SLEAP_JWT_PUBLIC_KEY_FILE" in text


def test_a_password_is_one_line_of_stdin_and_keeps_the_policy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\r\nignored\n"))
    assert read_password() == PASSWORD
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    with pytest.raises(AdminError, match="at least"):
        read_password()
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    with pytest.raises(AdminError, match="empty password"):
        read_password()
