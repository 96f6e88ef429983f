"""The wire protocol of sleap-rtc, pure: no asyncio, no sockets, no Qt.

Signaling messages (:mod:`.signaling`, :mod:`.codec`), negotiation payloads
(:mod:`.negotiation`), data-channel framing and messages (:mod:`.channel` and
its ``channel_*`` siblings), discovery filters (:mod:`.filters`), metadata merge
(:mod:`.metadata`), job specs (:mod:`.jobspec`) and state tables
(:mod:`.states`). Every public name of those modules is importable from here.
"""

from __future__ import annotations

from . import (
    channel,
    channel_auth,
    channel_fs,
    channel_legacy,
    channel_messages,
    channel_transfer,
    codec,
    filters,
    jobspec,
    jobspec_check,
    metadata,
    negotiation,
    signaling,
    states,
)
from .channel import *  # noqa: F403
from .channel_auth import *  # noqa: F403
from .channel_fs import *  # noqa: F403
from .channel_legacy import *  # noqa: F403
from .channel_messages import *  # noqa: F403
from .channel_transfer import *  # noqa: F403
from .codec import *  # noqa: F403
from .filters import *  # noqa: F403
from .jobspec import *  # noqa: F403
from .jobspec_check import *  # noqa: F403
from .metadata import *  # noqa: F403
from .negotiation import *  # noqa: F403
from .signaling import *  # noqa: F403
from .states import *  # noqa: F403

PUBLIC_MODULES = (
    channel,
    channel_auth,
    channel_fs,
    channel_legacy,
    channel_messages,
    channel_transfer,
    codec,
    filters,
    jobspec,
    jobspec_check,
    metadata,
    negotiation,
    signaling,
    states,
)

__all__ = [name for module in PUBLIC_MODULES for name in module.__all__]
