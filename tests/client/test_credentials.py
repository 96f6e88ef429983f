"""Tests of :mod:`sleap_rtc_core.client.credentials`: the saved logins file
(the browser login itself runs against a real server in
``tests/commands/test_login.py``)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from sleap_rtc_core.client.credentials import (
    load_credentials,
    save_credentials,
    write_private_json,
)


def test_a_login_is_saved_privately_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "config" / "credentials.json"
    save_credentials("http://a:1", "jwt-a", {"username": "ann"}, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    data = load_credentials(path)
    assert (data["server"], data["jwt"], data["user"]) == (
        "http://a:1",
        "jwt-a",
        {"username": "ann"},
    )


def test_other_servers_logins_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    save_credentials("http://a:1", "jwt-a", {}, path)
    save_credentials("http://b:2", "jwt-b", {}, path)
    data = load_credentials(path)
    assert data["server"] == "http://b:2"
    assert {s: e["jwt"] for s, e in data["servers"].items()} == {
        "http://a:1": "jwt-a",
        "http://b:2": "jwt-b",
    }


def test_a_missing_or_unreadable_file_reads_as_no_credentials(tmp_path: Path) -> None:
    assert load_credentials(tmp_path / "none.json") == {}
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    assert load_credentials(garbage) == {}
    listed = tmp_path / "list.json"
    listed.write_text("[1]")
    assert load_credentials(listed) == {}


def test_a_private_write_replaces_the_whole_file_and_leaves_no_temporary(
    tmp_path: Path,
) -> None:
    path = tmp_path / "secret.json"
    path.write_text("old and longer than the new text")
    write_private_json(path, {"k": 1})
    assert json.loads(path.read_text()) == {"k": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["secret.json"]
