"""The protocol package re-exports every public name once, from the right module."""

from __future__ import annotations

from collections import Counter

import sleap_rtc_core.protocol as protocol


def test_every_public_name_is_exported_once() -> None:
    duplicates = [n for n, k in Counter(protocol.__all__).items() if k > 1]
    assert duplicates == []
    for module in protocol.PUBLIC_MODULES:
        for name in module.__all__:
            assert getattr(protocol, name) is getattr(module, name), name
