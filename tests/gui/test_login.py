"""Tests of :mod:`sleap_rtc_gui.login`: the saved login the GUI checks before
it asks for the browser one (the credentials file is this test's own)."""

from __future__ import annotations

import base64
import json
import time

from sleap_rtc_core.client.credentials import save_credentials
from sleap_rtc_gui.login import GivenOrStoredLogin, StoredLogin, jwt_expiry


def _jwt(exp: float) -> str:
    body = base64.urlsafe_b64encode(json.dumps({"exp": exp}).encode()).rstrip(b"=")
    return f"e30.{body.decode()}.sig"


def test_stored_login_reads_the_saved_token() -> None:
    login = StoredLogin("ws://127.0.0.1:9")
    assert login.check() == (False, False)
    save_credentials(login.server, _jwt(time.time() + 600), {})
    assert login.check() == (True, False)
    save_credentials(login.server, _jwt(time.time() - 1), {})
    assert login.check() == (False, True)
    assert jwt_expiry("garbage") is None


def test_given_credentials_need_no_browser_login() -> None:
    stored = StoredLogin("ws://127.0.0.1:9")
    assert GivenOrStoredLogin(True, stored).check() == (True, False)
    assert GivenOrStoredLogin(False, stored).check() == (False, False)
    save_credentials(stored.server, _jwt(time.time() - 1), {})
    assert GivenOrStoredLogin(False, stored).check() == (False, True)


def test_jwt_expiry_reads_the_exp_claim_or_nothing() -> None:
    assert jwt_expiry(_jwt(1234.5)) == 1234.5
    assert jwt_expiry("e30.e30.sig") is None  # no exp claim
    assert jwt_expiry("a.!!!.c") is None
