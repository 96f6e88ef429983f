"""Tests of :mod:`sleap_rtc_core.commands._admin_util`: what every admin
command shares (a real SQLite store in a temporary data folder)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from sleap_rtc_core.commands._admin_util import (
    DATA_DIR_NOTE,
    AdminError,
    add_action,
    add_group,
    emit_listing,
    emit_table,
    flag,
    positive_int,
    resolve_room,
    resolve_user,
    short_time,
    with_store,
)
from sleap_rtc_core.signaling.store.auth_store import Store, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(tmp_path / "data")
    yield opened
    opened.close()


def test_rooms_resolve_by_id_or_by_a_unique_name(store: Store) -> None:
    lab = store.create_room("lab")
    assert resolve_room(store, lab.room_id).room_id == lab.room_id
    assert resolve_room(store, "lab").room_id == lab.room_id
    store.create_room("lab")
    with pytest.raises(AdminError, match="several rooms are named 'lab'"):
        resolve_room(store, "lab")
    with pytest.raises(AdminError, match="no room"):
        resolve_room(store, "nowhere")


def test_users_resolve_by_name_in_any_case_or_by_id(store: Store) -> None:
    ann = store.add_user("Ann")
    assert resolve_user(store, "ann").user_id == ann.user_id
    assert resolve_user(store, ann.user_id).username == "Ann"
    with pytest.raises(AdminError, match="no user 'bob'"):
        resolve_user(store, "bob")


def test_with_store_turns_expected_failures_into_one_line_and_status_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def failing(args: argparse.Namespace, store: Store) -> int:
        resolve_user(store, "nobody")
        return 0

    def working(args: argparse.Namespace, store: Store) -> int:
        store.add_user("ann")
        return 0

    args = argparse.Namespace(data_dir=str(tmp_path / "data"))
    assert with_store(failing)(args) == 1
    assert capsys.readouterr().err == (
        "sleap-rtc: error: no user 'nobody': add it first (sleap-rtc user add nobody)"
        " or see 'sleap-rtc user list'\n"
    )
    assert with_store(working)(args) == 0
    assert with_store(working)(args) == 1  # the store kept the first "ann"
    assert "sleap-rtc: error:" in capsys.readouterr().err


def test_positive_int() -> None:
    assert positive_int("3") == 3
    for bad in ("0", "-1", "x", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError):
            positive_int(bad)


def test_tables_align_and_say_when_empty(capsys: pytest.CaptureFixture[str]) -> None:
    emit_table(["NAME", "ID"], [["a", "room_1"], ["longer", "r2"]])
    assert capsys.readouterr().out.splitlines() == [
        "NAME    ID",
        "a       room_1",
        "longer  r2",
    ]
    emit_table(["NAME"], [])
    assert capsys.readouterr().out == "(none)\n"


def test_short_time_is_utc_or_never() -> None:
    assert short_time(0) == "1970-01-01 00:00"
    assert short_time(None) == "never"
    assert short_time(None, never="-") == "-"


def test_an_action_gets_its_flags_then_the_data_folder_and_runs_on_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def add(args: argparse.Namespace, store: Store) -> int:
        store.add_user(args.name)
        return 0

    parser = argparse.ArgumentParser(prog="sleap-rtc")
    actions = add_group(
        parser.add_subparsers(), "user", help="users", description="Users."
    )
    made = add_action(
        actions,
        "add",
        add,
        help="add one",
        description="Add a user.",
        flags=[flag("name", metavar="NAME", help="username")],
        json=True,
        env=["SLEAP_JWT_PRIVATE_KEY"],
    )
    assert [a.dest for a in made._actions] == ["help", "name", "data_dir", "json"]
    assert made.epilog is not None
    assert made.epilog.startswith("environment: SLEAP_RTC_DATA_DIR (")
    assert "SLEAP_JWT_PRIVATE_KEY (" in made.epilog
    args = parser.parse_args(["user", "add", "ann", "--data-dir", str(tmp_path)])
    assert (args.action, args.name, args.json) == ("add", "ann", False)
    assert args.handler(args) == 0
    store = open_store(tmp_path)
    assert store.get_user_by_name("ann") is not None
    store.close()
    with pytest.raises(SystemExit):
        parser.parse_args(["user"])  # an action is required
    assert "the following arguments are required: ACTION" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["user", "--help"])
    assert f"Users. {DATA_DIR_NOTE}" in " ".join(capsys.readouterr().out.split())


def test_a_listing_is_one_json_object_or_a_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    items = [("a", 1), ("bb", 2)]

    def listing(json: bool) -> int:
        return emit_listing(
            argparse.Namespace(json=json),
            "things",
            iter(items),  # read once
            as_json=lambda t: {"name": t[0], "n": t[1]},
            headers=["NAME", "N"],
            as_row=lambda t: [t[0], str(t[1])],
        )

    assert listing(json=True) == 0
    assert capsys.readouterr().out == (
        '{"things": [{"name": "a", "n": 1}, {"name": "bb", "n": 2}]}\n'
    )
    assert listing(json=False) == 0
    assert capsys.readouterr().out.splitlines() == ["NAME  N", "a     1", "bb    2"]
