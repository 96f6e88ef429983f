"""CLI commands the GUI adds to ``sleap-rtc`` (entry point ``sleap_rtc.commands``)."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the GUI commands (none yet: gui, tray and label come with the Qt side)."""
