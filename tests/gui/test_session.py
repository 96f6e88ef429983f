"""Tests of :mod:`sleap_rtc_gui.session`: which presubmission event each
session failure stands for (what the labeler is then shown)."""

from __future__ import annotations

import pytest

from sleap_rtc_core.errors import (
    AuthError,
    ChannelClosed,
    ConnectionLost,
    IceFailed,
    JobRejected,
    NoWorkersAvailableError,
    PeerNotFound,
    TransportError,
)
from sleap_rtc_gui.presubmit import (
    ChannelLost,
    ConnectFailed,
    Event,
    LoginExpired,
    NoWorkerAvailable,
    TimedOut,
)
from sleap_rtc_gui.presubmit import JobRejected as JobRejectedEvent
from sleap_rtc_gui.session import classify_error, no_data_channel


@pytest.mark.parametrize(
    ("exc", "event"),
    [
        (TimeoutError("connect"), TimedOut("connect")),
        (AuthError("expired"), LoginExpired()),
        (PeerNotFound("gone"), NoWorkerAvailable("gone")),
        (NoWorkersAvailableError("none"), NoWorkerAvailable("none")),
        (ChannelClosed("closed"), ChannelLost("closed")),
        (ConnectionLost("down"), ChannelLost("down")),
        (IceFailed("ice"), ConnectFailed("ice")),
        (OSError("refused"), ConnectFailed("refused")),
    ],
)
def test_each_failure_becomes_its_event(exc: BaseException, event: Event) -> None:
    assert classify_error(exc) == event


def test_a_rejection_carries_the_workers_field_errors() -> None:
    errors = [{"field": "max_epochs", "message": "too many"}]
    assert classify_error(JobRejected("no", errors=errors)) == JobRejectedEvent(errors)
    bare = classify_error(JobRejected("refused"))
    assert bare == JobRejectedEvent([{"field": "job", "message": "refused"}])


def test_any_failure_while_submitting_is_a_lost_connection() -> None:
    assert classify_error(IceFailed("x"), submitting=True) == ChannelLost("x")
    assert classify_error(RuntimeError(), submitting=True) == ChannelLost(
        "RuntimeError"
    )


async def test_without_a_data_channel_client_connecting_fails() -> None:
    with pytest.raises(TransportError, match="no data-channel client"):
        await no_data_channel("worker-1", "lab")
