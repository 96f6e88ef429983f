"""The ``environment:`` paragraph of ``--help`` (:func:`add_env_help`)."""

from __future__ import annotations

import argparse

import pytest

from sleap_rtc_core.commands._env_help import (
    CONNECTION_ENV,
    DATA_DIR_ENV,
    ENV_VARS,
    JWT_KEY_ENV,
    WORKER_ENV,
    add_env_help,
    env_names,
)


def test_the_variables_are_listed_once_in_order_with_what_each_means() -> None:
    parser = argparse.ArgumentParser()
    assert env_names(parser) == ()
    add_env_help(parser, "SLEAP_RTC_DATA_DIR")
    add_env_help(parser, "SLEAP_JWT_PRIVATE_KEY", "SLEAP_RTC_DATA_DIR")
    assert env_names(parser) == ("SLEAP_RTC_DATA_DIR", "SLEAP_JWT_PRIVATE_KEY")
    assert parser.epilog == (
        "environment: SLEAP_RTC_DATA_DIR (the server's data folder, as "
        "--data-dir); SLEAP_JWT_PRIVATE_KEY (the JWT signing key (PEM) instead "
        "of the data folder's)"
    )
    assert "environment: SLEAP_RTC_DATA_DIR" in parser.format_help()


def test_an_undescribed_variable_is_refused() -> None:
    parser = argparse.ArgumentParser()
    with pytest.raises(KeyError):
        add_env_help(parser, "SLEAP_RTC_NOT_A_THING")
    assert parser.epilog is None


def test_every_group_names_described_variables() -> None:
    for group in (CONNECTION_ENV, DATA_DIR_ENV, JWT_KEY_ENV, WORKER_ENV):
        assert set(group) <= set(ENV_VARS)
        assert len(set(group)) == len(group)
