"""The wire protocol of sleap-rtc, pure: no asyncio, no sockets, no Qt.

Signaling messages (:mod:`.signaling`, :mod:`.codec`), negotiation payloads
(:mod:`.negotiation`), data-channel framing (:mod:`.channel`), discovery filters
(:mod:`.filters`), metadata merge (:mod:`.metadata`), job specs (:mod:`.jobspec`)
and state tables (:mod:`.states`).
"""

from __future__ import annotations

from .codec import *  # noqa: F403
from .codec import __all__ as _codec_all
from .negotiation import *  # noqa: F403
from .negotiation import __all__ as _negotiation_all
from .signaling import *  # noqa: F403
from .signaling import __all__ as _signaling_all

__all__ = [*_codec_all, *_negotiation_all, *_signaling_all]
