"""Test configuration: headless Qt, isolated config folders, shared fixtures."""

from __future__ import annotations

import os

# Qt without a screen; set before anything imports PySide6.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest

from tests.fixtures.data import *  # noqa: F403
from tests.fixtures.redis import *  # noqa: F403
from tests.fixtures.router import *  # noqa: F403
from tests.fixtures.signaling import *  # noqa: F403
from tests.fixtures.timing import *  # noqa: F403
from tests.fixtures.transport import *  # noqa: F403


@pytest.fixture(autouse=True)
def _isolated_config(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never read or write the user's real config, credentials or SLEAP settings."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    for name in list(os.environ):
        if name.startswith("SLEAP_RTC_") and name != "SLEAP_RTC_TESTS_TIMEOUT_FACTOR":
            monkeypatch.delenv(name, raising=False)
