"""``sleap-rtc room|token``: rooms and worker keys, in-process through
``cli.main`` and once as the installed ``sleap-rtc`` program (users, JWTs and
account keys are in ``test_users.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sleap_rtc_core.cli import main
from sleap_rtc_core.protocol.signaling import Register
from sleap_rtc_core.signaling.auth.authenticator import Authenticator, CredentialKind
from sleap_rtc_core.signaling.auth.jwt_keys import JwtKeys
from sleap_rtc_core.signaling.store.auth_store import (
    DB_FILENAME,
    RevocationWatcher,
    open_store,
)
from sleap_rtc_core.signaling.store.records import room_credential
from tests.commands.conftest import PASSWORD, Cli, help_of
from tests.fixtures.timing import scaled

# Each action: the start of its description and its flags, as users read them.
HELP = {
    ("room",): ("Rooms group a lab's workers and clients", ["ACTION"]),
    ("room", "create"): (
        "Create a room; print its id, its token and a fresh room secret",
        ["--name NAME", "--owner USER", "--expires-days N"],
    ),
    ("room", "list"): ("List the rooms, with their expiry.", []),
    ("room", "show"): ("Show a room: its token, its members", ["ROOM"]),
    ("room", "delete"): ("Delete a room with its memberships", ["ROOM"]),
    ("room", "add-member"): (
        "Make a user a member of a room",
        ["ROOM", "USER", "--role {owner,member}"],
    ),
    ("room", "remove-member"): ("End a user's membership", ["ROOM", "USER"]),
    ("token",): ("Worker keys (slp_…) let a worker join one room", ["ACTION"]),
    ("token", "create"): (
        "Make a worker key; it is shown once",
        ["--room ROOM", "--worker-name NAME", "--expires-days N"],
    ),
    ("token", "list"): ("List worker keys by id (wk_…)", ["--room ROOM", "--active"]),
    ("token", "revoke"): ("Revoke a worker key", ["TOKEN"]),
}
JSON_ACTIONS = {"create", "list", "show"}


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


@pytest.mark.parametrize("argv", list(HELP), ids=" ".join)
def test_help_shows_each_description_and_flag(argv: tuple[str, ...]) -> None:
    """Through the real CLI: the description ends with the data-folder note,
    each action's own options come before ``--data-dir`` (and ``--json``)."""
    description, flags = HELP[argv]
    text = help_of(*argv)
    assert description in text
    for shown in flags:
        assert shown in text, shown
    if len(argv) == 1:
        assert "Works on the server's data folder (--data-dir)" in text
        return
    assert "--data-dir DIR the server's data folder" in text
    assert "environment: SLEAP_RTC_DATA_DIR" in text
    assert ("--json print one JSON object on stdout" in text) == (
        argv[1] in JSON_ACTIONS
    )
    usage = text.split(" options: ")[0]
    for shown in (f for f in flags if f.startswith("--")):
        assert usage.index(shown.split()[0]) < usage.index("--data-dir"), shown
