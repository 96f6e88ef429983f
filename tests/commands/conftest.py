"""The admin commands run in-process on a fresh data folder (:class:`Cli`)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from sleap_rtc_core.cli import main
from sleap_rtc_core.signaling.store.auth_store import Store, open_store

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


def help_of(*argv: str) -> str:
    """What the real CLI prints for ``sleap-rtc ARGV --help`` (exit status 0)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    assert exited.value.code == 0
    return " ".join(out.getvalue().split())  # argparse wraps to the terminal
