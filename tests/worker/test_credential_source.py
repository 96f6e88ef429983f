"""A worker's secret read from a real file, an environment or a flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from sleap_rtc_core.errors import ConfigError
from sleap_rtc_core.worker.credential_source import (
    CredentialKind,
    CredentialOrigin,
    CredentialSource,
)


def test_unreadable_or_empty_credential_file(tmp_path: Path) -> None:
    missing = CredentialSource(
        CredentialKind.TOKEN, CredentialOrigin.FILE, str(tmp_path / "missing")
    )
    with pytest.raises(ConfigError, match="cannot read the credential file"):
        missing.read()
    (tmp_path / "empty").write_text("\n", encoding="utf-8")
    empty = CredentialSource(
        CredentialKind.TOKEN, CredentialOrigin.FILE, str(tmp_path / "empty")
    )
    with pytest.raises(ConfigError, match="is empty"):
        empty.read()


def test_secrets_are_read_stripped_from_each_origin(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("  slp_k\n", encoding="utf-8")
    (tmp_path / "key").chmod(0o600)
    from_file = CredentialSource(
        CredentialKind.API_KEY, CredentialOrigin.FILE, str(tmp_path / "key")
    )
    assert from_file.read() == "slp_k"
    assert from_file.describe() == f"API key from file {tmp_path / 'key'}"
    from_env = CredentialSource(CredentialKind.TOKEN, CredentialOrigin.ENV, "T")
    assert from_env.read({"T": " t "}) == "t"
    assert from_env.describe() == "room token from $T"
    with pytest.raises(ConfigError, match="is not set"):
        from_env.read({})
    given = CredentialSource(
        CredentialKind.API_KEY, CredentialOrigin.VALUE, "command line", "slp_v"
    )
    assert given.read() == "slp_v"
    assert "slp_v" not in repr(given)
