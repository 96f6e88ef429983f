"""The signaling messages themselves (:mod:`~sleap_rtc_core.protocol.signaling`):
``type`` first, subscriptions checked on construction and on decoding, and the
legacy peer that subscribes to nothing in particular. Every type's round trip
through the codec, relayed extras included, is in ``test_codec.py``."""

from __future__ import annotations

import pytest

from sleap_rtc_core.errors import RemoteProtocolError
from sleap_rtc_core.protocol.signaling import (
    MAX_SUBSCRIBED_ROLES,
    Message,
    MessageType,
    Register,
    Subscribe,
    subscription_roles,
)


def test_every_message_names_its_type_first() -> None:
    out = Register(peer_id="w1", role="worker", room_id="r", token="t").to_dict()
    assert next(iter(out)) == "type"
    assert out["type"] == MessageType.REGISTER.value == "register"
    kinds = {cls.TYPE for cls in Message.__subclasses__() if hasattr(cls, "TYPE")}
    assert MessageType.REGISTER in kinds
    assert MessageType.SUBSCRIBE in kinds


def test_subscription_roles_are_a_short_list_of_names() -> None:
    assert subscription_roles({"roles": ["worker", "*"]}) == {"worker", "*"}
    assert subscription_roles({}) == frozenset()
    for bad in (
        {"roles": "worker"},
        {"roles": [""]},
        {"roles": [1]},
        {"roles": ["r"] * (MAX_SUBSCRIBED_ROLES + 1)},
    ):
        with pytest.raises(ValueError, match="subscribe.roles must be a list"):
            subscription_roles(bad)
    with pytest.raises(ValueError, match="unknown key 'tags'"):
        subscription_roles({"roles": [], "tags": []})


def test_a_register_without_subscribe_is_a_legacy_peer_hearing_everyone() -> None:
    assert Register(peer_id="p").subscribed_roles is None
    workers = Register(peer_id="p", subscribe={"roles": ["worker"]})
    assert workers.subscribed_roles == {"worker"}
    assert Register(peer_id="p", subscribe={"roles": []}).subscribed_roles == set()
    with pytest.raises(ValueError, match="subscribe.roles"):
        Register(peer_id="p", subscribe={"roles": "worker"})


def test_a_malformed_subscription_from_a_peer_is_its_error() -> None:
    with pytest.raises(RemoteProtocolError, match="subscribe.roles"):
        Register.from_dict({"peer_id": "p", "subscribe": {"roles": [""]}})
    with pytest.raises(RemoteProtocolError, match="subscribe.roles"):
        Subscribe.from_dict({"roles": ["x"] * (MAX_SUBSCRIBED_ROLES + 1)})
    assert Subscribe.from_dict({"roles": ["*"]}).roles == ["*"]
