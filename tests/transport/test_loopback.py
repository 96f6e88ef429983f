"""ICE on 127.0.0.1 only (:mod:`sleap_rtc_core.transport.loopback`), checked on
aioice's real host-address lookup."""

from __future__ import annotations

import aioice.ice
import pytest

from sleap_rtc_core.transport.loopback import LOOPBACK_ENV, apply_env, loopback_only


def test_within_the_block_only_loopback_is_offered() -> None:
    original = aioice.ice.get_host_addresses
    with loopback_only():
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == [
            "127.0.0.1"
        ]
        assert aioice.ice.get_host_addresses(use_ipv4=False, use_ipv6=True) == []
    assert aioice.ice.get_host_addresses is original


def test_the_block_restores_the_lookup_after_an_error() -> None:
    original = aioice.ice.get_host_addresses
    with pytest.raises(RuntimeError), loopback_only():
        raise RuntimeError("boom")
    assert aioice.ice.get_host_addresses is original


def test_the_environment_switch_applies_for_good_only_when_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = aioice.ice.get_host_addresses
    monkeypatch.setattr(aioice.ice, "get_host_addresses", original)  # restored after
    monkeypatch.delenv(LOOPBACK_ENV, raising=False)
    apply_env()
    assert aioice.ice.get_host_addresses is original
    monkeypatch.setenv(LOOPBACK_ENV, "0")
    apply_env()
    assert aioice.ice.get_host_addresses is original
    monkeypatch.setenv(LOOPBACK_ENV, "1")
    apply_env()
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
