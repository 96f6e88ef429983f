"""``--server`` and ``$SLEAP_RTC_SERVER`` naming one or several processes."""

from __future__ import annotations

import argparse

import pytest

from sleap_rtc_core.commands._connect import (
    DEFAULT_SERVER,
    add_connection_args,
    server_url,
    server_urls,
)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_connection_args(parser)
    return parser.parse_args(argv)


def test_one_server_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLEAP_RTC_SERVER", raising=False)
    assert server_urls(parse()) == [DEFAULT_SERVER]
    args = parse("--server", "http://127.0.0.1:8080")
    assert args.server == "http://127.0.0.1:8080"
    assert server_url(args) == "ws://127.0.0.1:8080"


def test_several_servers_comma_separated_or_repeated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLEAP_RTC_SERVER", "ws://127.0.0.1:1, ws://127.0.0.1:2")
    assert server_urls(parse()) == ["ws://127.0.0.1:1", "ws://127.0.0.1:2"]
    # A flag replaces the environment's list; repeating it adds to it.
    args = parse(
        "--server", "ws://127.0.0.1:3,https://h", "--server", "ws://127.0.0.1:4"
    )
    assert server_urls(args) == ["ws://127.0.0.1:3", "wss://h", "ws://127.0.0.1:4"]
    assert server_url(args) == "ws://127.0.0.1:3"  # what saved logins are keyed by
