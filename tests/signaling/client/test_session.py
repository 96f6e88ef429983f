"""The sans-I/O client session: registration, request matching, reconnects."""

from __future__ import annotations

import json
from typing import Any

from sleap_rtc_core.errors import AuthError, ServerError
from sleap_rtc_core.protocol import signaling as sig
from sleap_rtc_core.signaling.client.session import (
    ClientSession,
    ClientState,
    Incoming,
    Registered,
    RegisterFailed,
    Replied,
    RequestFailed,
)


def sent(session: ClientSession) -> list[dict[str, Any]]:
    return [json.loads(f) for f in session.outgoing()]


def registered(session: ClientSession, peer_id: str = "w", echo: bool = True) -> None:
    reg = sent(session)[-1]
    assert reg["type"] == "register"
    reply: dict[str, Any] = {
        "type": "registered_auth",
        "room_id": "r",
        "peer_id": peer_id,
    }
    if echo:
        reply["request_id"] = reg["request_id"]
    session.receive(json.dumps(reply))


def make() -> ClientSession:
    return ClientSession(
        sig.Register(
            peer_id="w",
            role="worker",
            room_id="r",
            token="t",
            metadata={"tags": ["a"], "properties": {"status": "available"}},
        )
    )


def test_register_then_requests_flow() -> None:
    s = make()
    rid = s.request(sig.DiscoverPeers(filters={}))
    assert s.outgoing() == []  # held until registered
    s.connected()
    registered(s)
    (event,) = s.events()
    assert isinstance(event, Registered)
    assert not event.reconnect
    assert s.state is ClientState.REGISTERED
    (discover,) = sent(s)
    assert discover["type"] == "discover_peers"
    assert discover["request_id"] == rid
    s.receive(
        json.dumps(
            {
                "type": "peer_list",
                "to_peer_id": "w",
                "peers": [],
                "count": 0,
                "request_id": rid,
            }
        )
    )
    (reply,) = s.events()
    assert isinstance(reply, Replied)
    assert reply.request_id == rid


def test_replies_match_in_order_without_request_id_echo() -> None:
    s = make()
    s.connected()
    registered(s, echo=False)
    s.events()
    first = s.request(sig.DiscoverPeers(filters={}))
    second = s.request(sig.UpdateMetadata(metadata={"properties": {"status": "busy"}}))
    s.outgoing()
    s.receive(
        json.dumps(
            {
                "type": "metadata_updated",
                "peer_id": "w",
                "metadata": {"properties": {"status": "busy"}},
            }
        )
    )
    s.receive(json.dumps({"type": "error", "code": "INVALID_MESSAGE", "message": "x"}))
    events = s.events()
    assert isinstance(events[0], Replied)
    assert events[0].request_id == second
    assert isinstance(events[1], RequestFailed)
    assert events[1].request_id == first
    assert isinstance(events[1].error, ServerError)


def test_routing_errors_answer_no_request() -> None:
    s = make()
    s.connected()
    registered(s)
    s.events()
    s.request(sig.DiscoverPeers(filters={}))
    s.receive(json.dumps({"type": "error", "code": "PEER_NOT_IN_ROOM", "message": "x"}))
    (event,) = s.events()
    assert isinstance(event, Incoming)


def test_auth_failure_is_fatal_and_typed() -> None:
    s = make()
    s.connected()
    reg = sent(s)[0]
    s.receive(
        json.dumps(
            {
                "type": "error",
                "code": "AUTH_FAILED",
                "reason": "Invalid token",
                "request_id": reg["request_id"],
            }
        )
    )
    (event,) = s.events()
    assert isinstance(event, RegisterFailed)
    assert isinstance(event.error, AuthError)
    assert event.error.message == "Invalid token"


def test_reconnect_reregisters_with_current_metadata_and_resends() -> None:
    s = make()
    s.connected()
    registered(s, peer_id="w")
    s.events()
    upd = s.request(sig.UpdateMetadata(metadata={"properties": {"status": "busy"}}))
    s.outgoing()
    s.receive(
        json.dumps(
            {
                "type": "metadata_updated",
                "peer_id": "w",
                "request_id": upd,
                "metadata": {"tags": ["a"], "properties": {"status": "busy"}},
            }
        )
    )
    s.events()
    pending = s.request(sig.DiscoverPeers(filters={"role": "client"}))
    s.disconnected()
    assert s.state is ClientState.DISCONNECTED
    s.connected()
    (again,) = sent(s)
    assert again["type"] == "register"
    assert again["peer_id"] == "w"
    assert again["metadata"]["properties"]["status"] == "busy"
    s.receive(
        json.dumps(
            {
                "type": "registered_auth",
                "room_id": "r",
                "peer_id": "w",
                "request_id": again["request_id"],
            }
        )
    )
    events = s.events()
    assert isinstance(events[0], Registered)
    assert events[0].reconnect
    (resent,) = sent(s)
    assert resent["request_id"] == pending


def test_pings_and_relayed_messages() -> None:
    s = make()
    s.connected()
    registered(s)
    s.events()
    s.receive('{"type":"ping"}')
    s.receive('{"type":"peer_message","from_peer_id":"c","to_peer_id":"w","payload":1}')
    s.receive("garbage")
    (event,) = s.events()
    assert isinstance(event, Incoming)
    assert isinstance(event.message, sig.PeerMessage)


def test_close_returns_unanswered_requests() -> None:
    s = make()
    rid = s.request(sig.DiscoverPeers(filters={}))
    assert s.close() == [rid]
    assert s.state is ClientState.CLOSED
    s.connected()
    assert s.outgoing() == []


def test_requests_name_their_sender_as_the_reference_server_requires() -> None:
    """The reference server looks the room up by ``from_peer_id`` / ``peer_id``
    (PROTOCOL.md B §1.2); the id is the one the server gave at register."""
    s = make()
    s.request(sig.DiscoverPeers(filters={"role": "worker"}))
    s.connected()
    registered(s, peer_id="w-given")
    (discover,) = sent(s)
    assert discover["from_peer_id"] == "w-given"
    s.request(sig.UpdateMetadata(metadata={"properties": {"status": "busy"}}))
    (update,) = sent(s)
    assert update["peer_id"] == "w-given"


def test_an_update_repeats_the_tags_a_replacing_server_would_drop() -> None:
    """The reference server replaces the stored metadata with each update:
    unchanged top-level keys are sent again (never server-owned ``_`` keys, and
    never the properties, which it merges itself)."""
    s = ClientSession(
        sig.Register(
            peer_id="w",
            room_id="r",
            token="t",
            metadata={
                "tags": ["sleap-rtc", "training-worker"],
                "properties": {"status": "available", "gpu_model": "A40"},
                "site": "lab-a",
                "_worker_name": "server-owned",
            },
        )
    )
    s.connected()
    registered(s)
    s.events()
    s.request(sig.UpdateMetadata(metadata={"properties": {"status": "busy"}}))
    (update,) = sent(s)
    assert update["metadata"] == {
        "tags": ["sleap-rtc", "training-worker"],
        "site": "lab-a",
        "properties": {"status": "busy"},
    }
    s.request(sig.UpdateMetadata(metadata={"tags": ["sleap-rtc"]}))
    (retag,) = sent(s)
    assert retag["metadata"]["tags"] == ["sleap-rtc"]  # a change is never undone
