"""``sleap-rtc doctor``'s checks: why a set-up does not work, in one screen.

Each check is a function that returns a :class:`Check` (a verdict, what was
found, and what to do about it), so that the command, a test or the GUI can run
any of them alone. Checks never raise for the condition they look at: a refused
connection or an unwritable folder is a ``FAIL`` with advice, not a traceback.

Blocking probes (importing torch, touching mounts, binding ZMQ sockets, an
HTTP request) run in threads through :func:`asyncio.to_thread`; importing
``sleap-nn`` (slow, and it may crash on a broken torchvision) runs in a child
process with a timeout. :func:`run_checks` runs them all concurrently and
returns them in a fixed order::

    checks = asyncio.run(run_checks(DoctorOptions(server="ws://127.0.0.1:8080")))
    sys.stdout.write(format_report(checks))
    exit_code = 1 if any_failed(checks) else 0

- :mod:`.report`: :class:`Check` and the report.
- :mod:`.machine`: this machine (Python, packages, torch, sleap-nn, mounts, disk, ZMQ).
- :mod:`.server`: the signaling server (WebSocket, HTTP, credentials, room secret).
- :mod:`.run`: :func:`run_checks`, all of them.
"""

from __future__ import annotations

from .report import Check, Verdict, any_failed, format_report
from .run import CHECK_GROUPS, DoctorOptions, run_checks

__all__ = [
    "CHECK_GROUPS",
    "Check",
    "DoctorOptions",
    "Verdict",
    "any_failed",
    "format_report",
    "run_checks",
]
