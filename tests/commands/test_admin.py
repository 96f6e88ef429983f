"""``sleap-rtc room|token|account-key|user|jwt``: the admin commands, in-process
through ``cli.main`` and once as the installed ``sleap-rtc`` program."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sleap_rtc_core.cli import main
from sleap_rtc_core.protocol.signaling import Register
from sleap_rtc_core.signaling.auth.authenticator import Authenticator, CredentialKind
from sleap_rtc_core.signaling.auth.jwt_keys import PRIVATE_KEY_FILENAME, JwtKeys
from sleap_rtc_core.signaling.auth.passwords import verify_password
from sleap_rtc_core.signaling.store.auth_store import (
    DB_FILENAME,
    RevocationWatcher,
    Store,
    open_store,
)
from sleap_rtc_core.signaling.store.records import room_credential
from tests.fixtures.timing import scaled

PASSWORD = "correct horse battery"


class Cli:
    """Runs ``sleap-rtc`` in-process on one data folder."""

    def __init__(
        self,
        data_dir: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        self.data_dir = data_dir
        self.capsys = capsys
        self.monkeypatch = monkeypatch

    def __call__(self, *argv: str, stdin: str = "") -> tuple[int, str, str]:
        self.capsys.readouterr()
        self.monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        rc = main([*argv, "--data-dir", str(self.data_dir)])
        out, err = self.capsys.readouterr()
        return rc, out, err

    def ok(self, *argv: str, stdin: str = "") -> str:
        rc, out, err = self(*argv, stdin=stdin)
        assert rc == 0, err
        return out

    def json(self, *argv: str, stdin: str = "") -> Any:
        return json.loads(self.ok(*argv, "--json", stdin=stdin))

    def fails(self, *argv: str, stdin: str = "") -> str:
        rc, out, err = self(*argv, stdin=stdin)
        assert rc == 1, (out, err)
        assert err.startswith("sleap-rtc: error: "), err
        return err

    def store(self) -> Store:
        return open_store(self.data_dir)


@pytest.fixture
def cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Cli:
    """The CLI on a fresh data folder, with no JWT key from the environment."""
    for name in list(os.environ):
        if name.startswith("SLEAP_JWT_"):
            monkeypatch.delenv(name)
    return Cli(tmp_path / "data", capsys, monkeypatch)


def test_room_create_prints_id_and_token(cli: Cli) -> None:
    out = cli.json("room", "create", "--name", "lab")
    assert set(out) >= {"room_id", "room_token", "room_secret"}
    assert len(out["room_secret"]) >= 43  # 32 random bytes, base64url
    store = cli.store()
    room = store.get_room(out["room_id"])
    assert room is not None
    assert room.token == out["room_token"]
    assert room.name == "lab"
    assert room.expires_at is None
    store.close()
    assert (cli.data_dir / DB_FILENAME).is_file()
    text = cli.ok("room", "create", "--name", "lab2")
    assert "room_id: " in text
    assert "room_token: " in text
    assert "room_secret: " in text
    assert out["room_secret"] not in (cli.data_dir / DB_FILENAME).read_bytes().decode(
        "latin-1"
    )  # the server never keeps it


def test_room_with_owner_lets_the_owner_register_with_a_jwt(cli: Cli) -> None:
    cli.ok("user", "add", "alice", stdin=PASSWORD + "\n")
    out = cli.json(
        "room", "create", "--name", "lab", "--owner", "alice", "--expires-days", "3"
    )
    assert out["owner"] == "alice"
    assert out["expires_at"] is not None
    jwt = cli.ok("jwt", "issue", "--user", "alice").strip().splitlines()[-1]
    store = cli.store()
    keys = JwtKeys.load(cli.data_dir, env={})
    ident = Authenticator(store, keys).authenticate(
        Register(peer_id="c1", jwt=jwt, room_id=out["room_id"])
    )
    assert ident.kind is CredentialKind.JWT
    assert ident.display_name == "alice"
    room = store.get_room(out["room_id"])
    assert room is not None
    assert room.expires_at is not None
    assert room.expires_at - room.created_at == pytest.approx(3 * 24 * 3600, abs=60)
    store.close()


def test_room_errors(cli: Cli) -> None:
    assert "no user 'ghost'" in cli.fails(
        "room", "create", "--name", "x", "--owner", "ghost"
    )
    assert "empty" in cli.fails("room", "create", "--name", "  ")
    with pytest.raises(SystemExit) as info:
        cli("room", "create", "--name", "x", "--expires-days", "0")
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        cli("room", "create")  # --name is required
    assert "no room" in cli.fails("room", "show", "nope")
    assert "no room" in cli.fails("room", "delete", "nope")


def test_room_list_show_members_delete(cli: Cli) -> None:
    cli.ok("user", "add", "alice", stdin=PASSWORD + "\n")
    cli.ok("user", "add", "bob", stdin=PASSWORD + "\n")
    lab = cli.json("room", "create", "--name", "lab", "--owner", "alice")
    cli.json("room", "create", "--name", "twin")
    cli.json("room", "create", "--name", "twin")
    listed = cli.json("room", "list")["rooms"]
    assert [r["name"] for r in listed] == ["lab", "twin", "twin"]
    assert listed[0]["members"] == 1
    assert "lab" in cli.ok("room", "list")
    assert "several rooms" in cli.fails("room", "show", "twin")
    cli.ok("room", "add-member", "lab", "bob")
    assert "already" in cli.ok("room", "add-member", "lab", "bob")
    shown = cli.json("room", "show", lab["room_id"])
    assert shown["room_token"] == lab["room_token"]
    assert [(m["username"], m["role"]) for m in shown["members"]] == [
        ("alice", "owner"),
        ("bob", "member"),
    ]
    assert "alice (owner)" in cli.ok("room", "show", "lab")
    cli.ok("room", "remove-member", "lab", "bob")
    assert "not a member" in cli.fails("room", "remove-member", "lab", "bob")
    cli.ok("room", "delete", "lab")
    assert [r["name"] for r in cli.json("room", "list")["rooms"]] == ["twin", "twin"]


def test_token_create_list_revoke(cli: Cli) -> None:
    room = cli.json("room", "create", "--name", "lab")
    out = cli.json(
        "token", "create", "--room", room["room_id"], "--worker-name", "gpu1"
    )
    assert out["token_id"].startswith("slp_")
    assert out["secret"] == out["token_id"]  # one name for the secret everywhere
    assert not out["token_id"].startswith("slp_acct_")
    assert out["id"].startswith("wk_")
    assert out["room_id"] == room["room_id"]
    assert out["worker_name"] == "gpu1"
    # The key registers a worker into its room.
    store = cli.store()
    ident = Authenticator(store, JwtKeys.generate()).authenticate(
        Register(peer_id="w1", api_key=out["token_id"])
    )
    assert ident.room_id == room["room_id"]
    assert ident.display_name == "gpu1"
    store.close()
    by_name = cli.json(
        "token",
        "create",
        "--room",
        "lab",
        "--worker-name",
        "gpu2",
        "--expires-days",
        "2",
    )
    assert by_name["expires_at"] is not None
    tokens = cli.json("token", "list")["tokens"]
    assert [t["id"] for t in tokens] == [out["id"], by_name["id"]]
    assert all(t["is_active"] for t in tokens)
    listing = cli.ok("token", "list", "--room", "lab")
    assert out["id"] in listing
    assert out["token_id"] not in listing
    cli.ok("token", "revoke", out["id"])
    assert "already revoked" in cli.fails("token", "revoke", out["token_id"])
    active = cli.json("token", "list", "--active")["tokens"]
    assert [t["id"] for t in active] == [by_name["id"]]
    assert "revoked" in cli.ok("token", "list")


def test_token_errors(cli: Cli) -> None:
    assert "no room with id or name 'nope'" in cli.fails(
        "token", "create", "--room", "nope", "--worker-name", "gpu"
    )
    cli.json("room", "create", "--name", "lab")
    assert "empty" in cli.fails(
        "token", "create", "--room", "lab", "--worker-name", " "
    )
    assert "no worker key" in cli.fails("token", "revoke", "wk_0000")
    with pytest.raises(SystemExit):
        cli("token", "create", "--room", "lab")  # --worker-name is required


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


def test_admin_commands_while_a_server_holds_the_store(cli: Cli) -> None:
    """The server's open store sees what the CLI does, revocations included."""
    room = cli.json("room", "create", "--name", "lab")
    server = cli.store()
    watcher = RevocationWatcher(server)
    token = cli.json("token", "create", "--room", "lab", "--worker-name", "gpu")
    found = server.find_worker_token(token["token_id"])
    assert found is not None
    assert found.room_id == room["room_id"]
    cli.ok("token", "revoke", token["id"])
    cli.ok("room", "delete", "lab")
    assert watcher.poll() == [token["id"], room_credential(room["room_id"])]
    server.close()


def test_default_data_dir_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLEAP_RTC_DATA_DIR", str(tmp_path / "env-data"))
    assert main(["room", "create", "--name", "lab", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    store = open_store(tmp_path / "env-data")
    assert store.get_room(out["room_id"]) is not None
    store.close()


def test_the_installed_program(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("sleap-rtc")
    if not exe.exists():
        exe = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "sleap-rtc"
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLEAP_")}
    proc = subprocess.run(
        [
            str(exe),
            "room",
            "create",
            "--name",
            "lab",
            "--data-dir",
            str(data),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=scaled(60),
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    store = open_store(data)
    room = store.get_room(out["room_id"])
    assert room is not None
    assert room.token == out["room_token"]
    store.close()
    bad = subprocess.run(
        [
            str(exe),
            "token",
            "create",
            "--room",
            "nope",
            "--worker-name",
            "w",
            "--data-dir",
            str(data),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=scaled(60),
        env=env,
        check=False,
    )
    assert bad.returncode == 1
    assert bad.stdout == ""
    assert "no room with id or name 'nope'" in bad.stderr
