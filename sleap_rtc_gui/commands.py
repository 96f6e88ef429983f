"""CLI commands the GUI adds to ``sleap-rtc`` (entry point ``sleap_rtc.commands``).

* ``sleap-rtc gui LABELS.slp``: the standalone training dialog;
* ``sleap-rtc tray``: a worker with a tray icon (``sleap-rtc worker`` stays the
  headless way);
* ``sleap-rtc label``: SLEAP with **Run Remotely** in its training dialog.

Qt is imported inside the handlers, so registering the commands stays cheap.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from typing import Any

from sleap_rtc_core.commands._connect import (
    CredentialsError,
    add_connection_args,
    credentials_from_args,
    room_secret,
    server_url,
)
from sleap_rtc_core.commands.worker import add_worker_args, worker_service_from_args
from sleap_rtc_core.progress.zmq_bridge import (
    DEFAULT_CONTROLLER_PORT,
    DEFAULT_PUBLISH_PORT,
)

__all__ = [
    "RoomLink",
    "register",
    "run_gui",
    "run_label",
    "run_parts",
    "run_tray",
    "session_factory",
]

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``gui``, ``tray`` and ``label`` to the CLI."""
    gui = sub.add_parser(
        "gui",
        help="train a labels file remotely from a small dialog",
        description="Pick a room and a worker, set the training options, and "
        "run the job remotely; progress goes to SLEAP's LossViewer ports, or to "
        "a loss plot window when SLEAP is not installed.",
    )
    gui.add_argument("labels", help="the labels file (.slp / .pkg.slp)")
    add_connection_args(gui)
    gui.add_argument(
        "--publish-port",
        type=int,
        default=DEFAULT_PUBLISH_PORT,
        help="the loopback ZMQ port progress is published on, as SLEAP's "
        "LossViewer reads it (default %(default)s)",
    )
    gui.add_argument(
        "--controller-port",
        type=int,
        default=DEFAULT_CONTROLLER_PORT,
        help="the loopback ZMQ port SLEAP's stop and cancel buttons send to "
        "(default %(default)s)",
    )
    gui.add_argument(
        "--plot",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show our loss plot (default: when SLEAP is not installed)",
    )
    gui.set_defaults(handler=run_gui)

    tray = sub.add_parser(
        "tray",
        help="run a worker with a tray icon (pause, resume, quit)",
        description="Run `sleap-rtc worker` with a tray icon whose menu pauses "
        "and resumes taking jobs, opens the log and quits; the same settings "
        "as `sleap-rtc worker`.",
    )
    add_worker_args(tray)  # the same settings as `sleap-rtc worker`
    tray.add_argument("--log-file", help="the log the menu's Open log shows")
    tray.set_defaults(handler=run_tray)

    label = sub.add_parser(
        "label",
        help="start SLEAP with Run Remotely in its training dialog",
        description="Start SLEAP's labeling GUI with a Run Remotely button in "
        "its training dialog, connected to the room these flags name.",
    )
    add_connection_args(label)
    label.add_argument("labels", nargs="?", help="a labels file to open in SLEAP")
    label.add_argument(
        "--sleap-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="an option passed on to SLEAP itself, e.g. --sleap-arg=--reset "
        "(repeat for several)",
    )
    label.set_defaults(handler=run_label)


def _fail(message: str, status: int = 1) -> int:
    sys.stderr.write(f"sleap-rtc: error: {message}\n")
    return status


def sleap_installed() -> bool:
    """Whether SLEAP (and so its LossViewer) can be imported."""
    return importlib.util.find_spec("sleap") is not None


def run_gui(args: argparse.Namespace) -> int:
    """``sleap-rtc gui``: the dialog until it closes and the job ends."""
    from sleap_rtc_gui.app import run

    show_plot = not sleap_installed() if args.plot is None else bool(args.plot)
    return run(lambda: _gui_main(args, show_plot))


def _client_register(args: argparse.Namespace) -> Any:
    from sleap_rtc_core.protocol import signaling as sig

    return sig.Register(
        role="client",
        metadata={"tags": ["sleap-rtc", "client"], "properties": {}},
        subscribe={"roles": ["worker"]},  # the worker directory's updates
        **credentials_from_args(args),
    )


def _in_room(args: argparse.Namespace, room: str | None) -> argparse.Namespace:
    """A copy of ``args`` for ``room`` (the flags' room when ``None``)."""
    return argparse.Namespace(**{**vars(args), "room": room or args.room})


def session_factory(args: argparse.Namespace) -> Any:
    """The real session factory for the connection flags in ``args``.

    Each **Run Remotely** registers its own client-role signaling client in the
    chosen room and opens an authenticated data channel to the worker with that
    room's secret (``--room-secret``, ``$SLEAP_ROOM_SECRET`` or
    ``~/.sleap-rtc/room-secrets/ROOM``).
    """
    from sleap_rtc_core.signaling.client.session_io import SignalingClient
    from sleap_rtc_core.transport import ChannelAuth
    from sleap_rtc_gui.remote import ChannelSessionFactory

    url = server_url(args)

    async def signaling(room: str | None) -> SignalingClient:
        register = _client_register(_in_room(args, room))
        client = SignalingClient(url, register, give_up_after=30.0)
        await client.start()  # closes itself when it fails
        return client

    def auth(room: str | None) -> ChannelAuth:
        return ChannelAuth(secret=room_secret(_in_room(args, room)))

    return ChannelSessionFactory(signaling, auth)


def _credentials_given(args: argparse.Namespace) -> bool:
    """Whether the flags or the environment give a credential (no browser)."""
    import os

    flags = (args.token, args.api_key, args.account_key)
    env = ("SLEAP_RTC_TOKEN", "SLEAP_RTC_API_KEY", "SLEAP_RTC_ACCOUNT_KEY")
    return any(flags) or any(os.environ.get(name) for name in env)


class RoomLink:
    """The labeler's one signaling client for the live worker list.

    Joining another room replaces (and closes) the previous client; the
    sessions of **Run Remotely** open their own clients (``session_factory``).
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.clients: list[Any] = []

    async def connect(self, room: str) -> Any:
        """A started client-role signaling client of ``room``."""
        from sleap_rtc_core.signaling.client.session_io import SignalingClient

        self.args.room = room
        register = _client_register(self.args)
        client = SignalingClient(server_url(self.args), register, give_up_after=30.0)
        await client.start()
        await self.aclose()
        self.clients[:] = [client]
        return client

    async def aclose(self) -> None:
        """Close the current client."""
        clients, self.clients = self.clients, []
        for client in clients:
            await client.close()


def run_parts(args: argparse.Namespace, link: RoomLink) -> Any:
    """Session factory, login check, room connector and rooms for the flags."""
    from sleap_rtc_gui.login import GivenOrStoredLogin, StoredLogin
    from sleap_rtc_gui.sleap_run import RunParts

    auth = GivenOrStoredLogin(_credentials_given(args), StoredLogin(server_url(args)))
    rooms = [args.room] if args.room else []
    return RunParts(session_factory(args), auth, link.connect, rooms)


async def _gui_main(args: argparse.Namespace, show_plot: bool) -> int:
    from sleap_rtc_gui.bridge import wait_signal
    from sleap_rtc_gui.dialogs.training_dialog import TrainingDialog
    from sleap_rtc_gui.presubmit_io import FeedOptions

    link = RoomLink(args)
    parts = run_parts(args, link)
    dialog = TrainingDialog(
        args.labels,
        parts.session_factory,
        parts.auth,
        rooms=parts.rooms,
        connect_room=parts.connect_room,
        feed=FeedOptions(args.publish_port, args.controller_port, show_plot),
    )
    dialog.show()
    dialog.join_room(dialog.worker_panel.room)
    try:
        (result,) = await wait_signal(dialog.finished)
        if result and not dialog.controller.machine.finished:
            await wait_signal(dialog.controller.finished)
        return 0
    finally:
        await dialog.controller.aclose()
        await dialog.worker_panel.bridge.aclose()
        await link.aclose()


def run_tray(args: argparse.Namespace) -> int:
    """``sleap-rtc tray``: serve jobs until Quit.

    The worker is the one ``sleap-rtc worker`` runs headless, from the same
    settings (``--config``, the environment, the flags).
    """
    from sleap_rtc_core.errors import SleapRTCError
    from sleap_rtc_gui.app import run

    try:
        service = worker_service_from_args(args)
    except (CredentialsError, ValueError, SleapRTCError) as exc:
        return _fail(str(exc), 2)

    async def main() -> int:
        from pathlib import Path

        from sleap_rtc_gui.tray import WorkerTray

        try:
            await service.start()
        except SleapRTCError as exc:
            await service.close()
            return _fail(exc.message)
        tray = WorkerTray(
            service.worker, log_path=Path(args.log_file) if args.log_file else None
        )
        tray.show()
        try:
            await tray.stopped.wait()
        finally:
            await tray.bridge.aclose()
            await service.close()
        return 0

    return run(main)


def run_label(args: argparse.Namespace) -> int:
    """``sleap-rtc label``: SLEAP with **Run Remotely** in its training dialog."""
    if not sleap_installed():
        return _fail('SLEAP is not installed (pip install "sleap-rtc[sleap]")', 2)
    import os

    os.environ.setdefault("_SLEAP_LD_FIXED", "1")  # SLEAP would re-exec itself
    from sleap_rtc_gui.plugin import install

    link = RoomLink(args)
    runs: list[Any] = []

    def opener(sleap_dialog: Any) -> None:
        from sleap_rtc_gui.app import shared_loop
        from sleap_rtc_gui.sleap_run import SleapRemoteRun

        shared_loop(already_running=True)  # SLEAP's app.exec() runs Qt
        run = SleapRemoteRun(sleap_dialog, run_parts(args, link))
        runs[:] = [r for r in runs if not r.controller.machine.finished] + [run]
        run.show()

    if not install(opener):
        return _fail("could not hook into SLEAP's training dialog")
    from sleap.gui.app import main as sleap_main

    sleap_main([*args.sleap_arg, *([args.labels] if args.labels else [])])
    return 0
