"""The presubmission state machine: pure, no Qt.

What happens between **Run Remotely** and a job the worker accepted, as a table of
states and transitions fed by events and emitting effects. The Qt adapter performs
the effects and feeds their results back as events.
"""

from __future__ import annotations

from .events import *  # noqa: F403
from .events import __all__ as _events_all
from .machine import *  # noqa: F403
from .machine import __all__ as _machine_all
from .messages import *  # noqa: F403
from .messages import __all__ as _messages_all
from .states import *  # noqa: F403
from .states import __all__ as _states_all

__all__ = [*_events_all, *_machine_all, *_messages_all, *_states_all]
