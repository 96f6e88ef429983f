"""Tests of :mod:`sleap_rtc_core.commands._admin_util`: what every admin
command shares (a real SQLite store in a temporary data folder)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from sleap_rtc_core.commands._admin_util import (
    AdminError,
    emit_table,
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
