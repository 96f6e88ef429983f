"""The ``sleap-rtc`` parser as users meet it in ``--help``: every sub-command
described, every flag explained, every variable a command reads listed."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import sleap_rtc_core
from sleap_rtc_core.cli import build_parser
from sleap_rtc_core.commands._env_help import ENV_VARS, env_names
from sleap_rtc_core.worker.config import ENV_OVERRIDES

_NO_HELP_NEEDED = (argparse._HelpAction, argparse._VersionAction)


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every sub-command parser below ``parser``, with its words."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from commands(sub, (*path, name))


PARSER = build_parser()
COMMANDS = dict(commands(PARSER))


def test_every_sub_command_has_a_description() -> None:
    missing = [" ".join(p) for p, sub in COMMANDS.items() if not sub.description]
    assert missing == []


def test_every_flag_and_argument_has_a_help_text() -> None:
    missing = [
        f"{' '.join(path)} {'/'.join(action.option_strings) or action.dest}"
        for path, sub in [((), PARSER), *COMMANDS.items()]
        for action in sub._actions
        if not isinstance(action, (*_NO_HELP_NEEDED, argparse._SubParsersAction))
        and (not action.help or action.help == argparse.SUPPRESS)
    ]
    assert missing == []


@pytest.mark.parametrize(
    ("command", "names"),
    [
        (
            "train",
            {
                "SLEAP_RTC_SERVER",
                "SLEAP_RTC_TOKEN",
                "SLEAP_RTC_API_KEY",
                "SLEAP_RTC_ACCOUNT_KEY",
                "SLEAP_ROOM_SECRET",
                "SLEAP_RTC_REFUSE_LEGACY_WORKERS",
                "SLEAP_RTC_WORKER_PEER_ID",
            },
        ),
        ("track", {"SLEAP_RTC_SERVER", "SLEAP_RTC_REFUSE_LEGACY_WORKERS"}),
        ("check", {"SLEAP_RTC_SERVER", "SLEAP_ROOM_SECRET"}),
        ("workers", {"SLEAP_RTC_SERVER", "SLEAP_RTC_TOKEN"}),
        ("fetch", {"SLEAP_RTC_SERVER", "SLEAP_ROOM_SECRET"}),
        ("login", {"SLEAP_RTC_SERVER", "SLEAP_RTC_SIGNALING_HTTP"}),
        ("worker", {*ENV_OVERRIDES, "SLEAP_RTC_API_KEY", "SLEAP_ROOM_SECRET"}),
        ("server", {"SLEAP_RTC_DATA_DIR", "SLEAP_RTC_REDIS_URL"}),
        ("room create", {"SLEAP_RTC_DATA_DIR"}),
        ("jwt issue", {"SLEAP_RTC_DATA_DIR", "SLEAP_JWT_PRIVATE_KEY"}),
    ],
)
def test_help_lists_the_variables_a_command_reads(
    command: str, names: set[str]
) -> None:
    sub = COMMANDS[tuple(command.split())]
    assert names <= set(env_names(sub))
    shown = sub.format_help()
    assert "environment:" in shown
    for name in names:
        assert name in shown


def test_every_variable_the_commands_read_is_listed_somewhere() -> None:
    """A variable read in ``commands/`` (or by the worker's config) that no
    ``--help`` lists fails here: add it to ``_env_help.ENV_VARS`` and to the
    commands that read it."""
    root = Path(sleap_rtc_core.__file__).parent
    sources = [
        *(p for p in (root / "commands").glob("*.py") if p.name != "_env_help.py"),
        root / "worker" / "config.py",
    ]
    read = {
        name
        for path in sources
        for name in re.findall(r"\"(SLEAP_[A-Z_]+)\"", path.read_text("utf-8"))
        if not name.endswith("_")
    }
    listed = {name for sub in COMMANDS.values() for name in env_names(sub)}
    assert read - listed == set()
    assert listed <= set(ENV_VARS)
