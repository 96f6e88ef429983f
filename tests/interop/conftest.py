"""A :class:`~tests.interop.legacy.Lab` per test: our real server with its HTTP
API (as ``sleap-rtc server`` runs it), one room."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sleap_rtc_core.signaling.auth.jwt_keys import JwtKeys
from sleap_rtc_core.signaling.http.api import http_api_factory
from sleap_rtc_core.signaling.server.router_io import ServerConfig
from sleap_rtc_core.signaling.service import build_service
from sleap_rtc_core.signaling.store.auth_store import Store

from .legacy import Lab, legacy_installed


@pytest.fixture
async def lab(jwt_keys: JwtKeys, tmp_path: Path) -> AsyncIterator[Lab]:
    legacy_installed()
    store = Store(":memory:")
    config = ServerConfig(host="127.0.0.1", port=0)
    service = build_service(config, store, jwt_keys, http=http_api_factory())
    await service.server.start()
    the_lab = Lab(service, store, jwt_keys, tmp_path)
    try:
        yield the_lab
    finally:
        await the_lab.close()
        await service.server.stop()
