"""``sleap-rtc train``, ``track`` and ``check``: remote jobs from the terminal.

Exit status: 0 success, 1 the job failed (or the connection was lost), 2 no
worker (or a usage error), 3 the worker rejected the job.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..client.job_size import epochs_of
from ..client.legacy_job import is_legacy_worker
from ..client.model_download import (
    download_models,
    download_predictions,
    models_dir_for,
)
from ..client.negotiator import FALLBACK_ENV
from ..client.path_check import (
    PathReport,
    check_mapped_videos,
    check_paths,
    propose_mappings,
    unmapped,
)
from ..client.progress_view import (
    TrainingProgress,
    TransferProgress,
    Waiting,
)
from ..client.remote_job import JobCallbacks, RemoteJob, claim_models
from ..client.session import run_remote_job
from ..client.upload import (
    UploadResult,
    is_package,
    labels_to_send,
    upload_file,
    upload_with_videos,
)
from ..errors import (
    ChannelClosed,
    JobError,
    JobRejected,
    NoWorkersAcceptedError,
    NoWorkersAvailableError,
    SleapRTCError,
)
from ..protocol.channel import ChannelMessage
from ..protocol.jobspec import JobSpec, TrackJobSpec, TrainJobSpec
from ..protocol.jobspec_check import NUMERIC_RANGES
from ..protocol.paths import map_path, predictions_path_for
from ..signaling.client.session_io import SignalingClient
from ..transport.channel import Channel
from ..transport.loopback import LOOPBACK_ENV
from ..transport.peer import open_channel
from ..worker.capabilities import accepts_uploads
from ._connect import (
    CredentialsError,
    add_connection_args,
    channel_auth,
    client_register,
    connected,
    find_worker,
)
from ._env_help import add_env_help
from ._job_view import JobView
from ._output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NO_WORKER,
    EXIT_REJECTED,
    add_quiet_arg,
    fail,
    fetch_command,
    say,
    say_result,
    set_quiet,
)
from ._progress import ProgressDisplay

__all__ = ["parse_map", "register"]

Finish = Callable[[Channel, JobSpec, dict[str, Any]], Awaitable[list[Path]]]
"""Brings a finished job's results here; returns the local paths it told."""


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train``, ``track`` and ``check`` to the CLI."""
    train = sub.add_parser(
        "train",
        help="train a model on a remote worker",
        description="Train on a worker of the room: the labels and their videos "
        "are checked on the worker first (missing ones are asked about, or "
        "mapped with --map), progress is shown here, and the trained model "
        "comes home next to the labels. Ctrl-C asks whether to stop (keep the "
        "model so far) or cancel.",
    )
    train.add_argument("labels", help="the labels file (.slp)")
    train.add_argument("--config", required=True, help="sleap-nn training config")
    train.add_argument(
        "--epochs",
        type=int,
        help=f"train this many epochs ({MIN_EPOCHS}-{MAX_EPOCHS}) instead of the "
        "config's trainer_config.max_epochs",
    )
    train.add_argument(
        "--min-gpu-memory",
        type=int,
        metavar="MB",
        help="only workers with at least this much GPU memory, in MiB (e.g. 8000)",
    )
    train.add_argument("--model-type", help="only workers supporting this model")
    train.add_argument(
        "--upload",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="when the worker cannot see the labels, send them (a .pkg.slp as "
        "it is, a .slp as a package of its labeled frames); sent once: the "
        "worker keeps it by content (default: ask on a terminal, else no)",
    )
    train.add_argument(
        "--upload-with-videos",
        action="store_true",
        help="with --upload (implied): send a .slp as it is and the videos it "
        "names, each stored by content (sent once), instead of a package of "
        "its labeled frames",
    )
    train.add_argument(
        "--download",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="copy the trained models into models/ next to the labels (default: "
        "only when the worker's output folder is not visible here)",
    )
    _job_args(train)
    train.set_defaults(handler=run_train)

    track = sub.add_parser(
        "track",
        help="run inference on a remote worker",
        description="Predict with trained models on a worker of the room; the "
        "predictions come home next to the data unless the worker's file is "
        "visible here.",
    )
    track.add_argument("data", help="labels (.slp) or video to predict on")
    track.add_argument(
        "--model", action="append", required=True, help="trained model folder"
    )
    track.add_argument("--output", help="predictions path (on the worker)")
    track.add_argument(
        "--upload",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="send the data to a worker that cannot see it: a package "
        "(.pkg.slp) when the worker cannot see it, a video always (the "
        "worker keeps it by content: sent once); the predictions come home "
        "(default: ask on a terminal for a package, else no)",
    )
    track.add_argument(
        "--download",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="copy the predictions next to the data as <stem>.predictions.slp "
        "(default: only when the worker's file is not visible here)",
    )
    _job_args(track)
    track.set_defaults(handler=run_track)

    check = sub.add_parser(
        "check",
        help="which files of a labels file a worker can see",
        description="Ask a worker whether it can read a labels file and each of "
        "its videos (where --map sends them), with its suggestions for the "
        "missing ones; exit 0 when everything is found, 1 otherwise.",
    )
    check.add_argument("labels", help="the labels file (.slp)")
    check.add_argument(
        "--worker", help="worker peer id or name (default: the first worker)"
    )
    _map_arg(check)
    check.add_argument("--json", action="store_true", help="print JSON")
    add_quiet_arg(check, "only the report (or the error)")
    add_connection_args(check)
    add_env_help(check, LOOPBACK_ENV)
    check.set_defaults(handler=run_check)


REFUSE_LEGACY_ENV = "SLEAP_RTC_REFUSE_LEGACY_WORKERS"

MIN_EPOCHS, MAX_EPOCHS = (int(b) for b in NUMERIC_RANGES["max_epochs"])
"""What ``--epochs`` may be: the job spec's bounds (a worker refuses others)."""


def _map_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="OLD=NEW",
        help="rewrite a path prefix as the worker sees it (repeatable)",
    )


def _job_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--worker", help="use this worker, by peer id or name (skip negotiation)"
    )
    _map_arg(parser)
    parser.add_argument(
        "--accept-suggestions",
        action="store_true",
        help="for videos the worker cannot find, take the file it suggests "
        "(same name elsewhere in its mounts) without asking",
    )
    parser.add_argument(
        "--refuse-legacy-workers",
        action="store_true",
        default=os.environ.get(REFUSE_LEGACY_ENV, "") not in ("", "0", "false"),
        help="never use sleap-rtc 0.0.7 workers, which cannot prove who they are "
        f"and cannot send models back (env {REFUSE_LEGACY_ENV}=1)",
    )
    add_quiet_arg(parser, "only errors and where the result is (no progress)")
    add_connection_args(parser)
    add_env_help(parser, REFUSE_LEGACY_ENV, FALLBACK_ENV, LOOPBACK_ENV)


def parse_map(text: str) -> tuple[str, str]:
    """``OLD=NEW`` → ``(OLD, NEW)``.

    Raises:
        ValueError: no ``=`` or an empty side.
    """
    old, sep, new = text.partition("=")
    if not sep or not old or not new:
        raise ValueError(f"--map needs OLD=NEW, got {text!r}")
    return old, new


# --- path checks


async def _checked_paths(
    channel: Channel,
    labels: str,
    maps: Mapping[str, str],
    interactive: bool,
    take_suggestions: bool = False,
    display: ProgressDisplay | None = None,
) -> tuple[PathReport, dict[str, str]]:
    """Check the labels and videos on the worker, where ``--map`` sends them;
    returns the report and the ``path_mappings`` (client path → worker path)
    to send. A video ``--map`` sends where the worker cannot read it stays
    missing and unmapped (the user's word is not overruled by a suggestion).
    The ``display`` shows the wait for the worker's answers (not the
    questions)."""

    async def request(
        msg: ChannelMessage, types: tuple[type, ...], timeout: float
    ) -> ChannelMessage:
        return await channel.request(msg, types, timeout)

    worker_labels = map_path(labels, maps)
    shown = display or ProgressDisplay(enabled=False)
    shown.wait(f"checking the labels and videos on {channel.peer_id}")
    try:
        report = await check_paths(request, worker_labels)
        report = await check_mapped_videos(request, report, maps)
    finally:
        shown.wait(None)
    choices = {v.path: v.worker_path for v in report.videos if v.worker_path}
    for video in report.missing:
        if (
            map_path(video.path, maps) == video.path
            and interactive
            and video.suggestions
        ):
            choices[video.path] = await _ask_video(video.path, video.suggestions)
    mappings = propose_mappings(report, choices, take_suggestions=take_suggestions)
    for video in report.missing:
        if map_path(video.path, maps) != video.path:
            mappings.pop(video.path, None)
    for video in report.missing:
        chosen = mappings.get(video.path)
        if chosen and chosen in video.suggestions and video.path not in choices:
            say(f"video {video.path}: using the worker's {chosen}")
    if worker_labels != labels:
        mappings[labels] = worker_labels
    return report, mappings


UPLOAD_ATTEMPTS = 3
"""Connections one upload may take (a dropped one resumes where it stopped)."""


NO_UPLOAD_AREA = (
    "the worker cannot see {path} and has no upload area to send it to (its "
    "owner can give it one: [uploads] path in worker.toml, or --upload-dir); "
    "use --map OLD=NEW to say where it is on the worker, or --worker to "
    "choose one with an upload area"
)


async def _has_upload_area(client: SignalingClient, worker_id: str) -> bool | None:
    """Whether ``worker_id`` publishes an upload area (``None``: unknown, e.g.
    a server without discovery)."""
    try:
        peers = await client.discover({"role": "worker"})
    except (SleapRTCError, TimeoutError):
        return None
    for peer in peers:
        if peer.get("peer_id") == worker_id:
            metadata = peer.get("metadata")
            return accepts_uploads(metadata if isinstance(metadata, dict) else {})
    return None


async def _agree_to_upload(
    path: str, upload: bool | None, interactive: bool, area: bool | None
) -> bool:
    """``--upload``, or the user's yes on a terminal, asked only of a worker
    that has an upload area (``area``: what it publishes).

    Raises:
        JobRejected: the worker says it has no upload area.
    """
    if area is False and upload is not False:
        raise JobRejected(NO_UPLOAD_AREA.format(path=path))
    if upload:
        return True
    if upload is False or not interactive or area is not True:
        return False
    size = (await asyncio.to_thread(os.stat, path)).st_size
    answer = await _ask(
        f"the worker cannot see {path}; it has an upload area: send it there "
        f"({size / 1e6:.1f} MB, once: it is kept by content)? [Y/n] "
    )
    return answer.strip().lower() in ("", "y", "yes")


async def _upload(
    channel: Channel, local: Path, display: ProgressDisplay, with_videos: bool = False
) -> tuple[UploadResult, dict[str, str]]:
    """Send ``local``, its progress on the display (``with_videos``: a ``.slp``
    as it is and its videos); its upload and the job's mappings."""
    progress = TransferProgress("upload")
    display.show(progress.status)
    extra: dict[str, str] = {}
    try:
        if with_videos and local.suffix.lower() == ".slp" and not is_package(local):
            sent, extra = await upload_with_videos(
                channel, local, on_progress=progress.feed
            )
        else:
            sent = await upload_file(channel, local, on_progress=progress.feed)
    finally:
        display.show(None)
    for source, stored in extra.items():
        if source != str(local):
            say(f"video {source}: on the worker at {stored}")
    if sent.cached:
        say(f"the worker has {local.name} already ({sent.size} bytes): not sent")
    elif sent.resumed_at:
        say(f"upload resumed at byte {sent.resumed_at}: {sent.path}")
    else:
        say(f"uploaded {local.name} ({sent.size} bytes): {sent.path}")
    return sent, extra


def _missing_videos(
    report: PathReport, missing: Sequence[str], maps: Mapping[str, str]
) -> str:
    """Why the job cannot go: each missing video, where ``--map`` sent it or
    what the worker suggests for it, and how to say where it is."""
    by_path = {v.path: v for v in report.missing}
    parts = []
    for path in missing:
        suggestions = by_path[path].suggestions if path in by_path else ()
        moved = map_path(path, maps)
        if moved != path:
            hint = f" (--map sends it to {moved}, which the worker cannot read)"
        elif suggestions:
            hint = f" (the worker suggests {suggestions[0]})"
        else:
            hint = ""
        parts.append(f"{path}{hint}")
    fix = "use --map OLD=NEW"
    if any(by_path[p].suggestions for p in missing if p in by_path):
        fix += ", or --accept-suggestions to take the suggested files"
    return "videos the worker cannot find: " + "; ".join(parts) + f" ({fix})"


def _ask(prompt: str) -> asyncio.Future[str]:
    """A terminal answer to ``prompt``, read by the event loop itself (no
    thread): a Ctrl-C that ends the command never waits for Enter, as a thread
    blocked in ``input()`` would make it."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()
    fd = sys.stdin.fileno()
    typed = bytearray()

    def readable() -> None:
        error: OSError | None = None
        try:
            chunk = os.read(fd, 1024)
        except OSError as exc:
            chunk, error = b"", exc
        typed.extend(chunk)
        if chunk and b"\n" not in chunk:
            return  # a line is not finished yet
        loop.remove_reader(fd)
        if not answer.done():
            if error is not None or not typed:
                answer.set_exception(error or EOFError("no answer"))
            else:
                line = typed.split(b"\n", 1)[0]
                answer.set_result(line.decode(errors="replace"))

    sys.stdout.write(prompt)
    sys.stdout.flush()
    try:
        loop.add_reader(fd, readable)
    except NotImplementedError:  # a loop without readers (Windows)
        return asyncio.ensure_future(asyncio.to_thread(input))
    answer.add_done_callback(lambda _f: loop.remove_reader(fd))
    return answer


async def _ask_video(path: str, suggestions: tuple[str, ...]) -> str:
    say(f"video not found on the worker: {path}")
    for i, candidate in enumerate(suggestions, 1):
        say(f"  {i}) {candidate}")
    answer = await _ask("use which (number, or a path)? [1] ")
    answer = answer.strip() or "1"
    if answer.isdigit() and 1 <= int(answer) <= len(suggestions):
        return suggestions[int(answer) - 1]
    return answer


def _print_report(report: PathReport) -> None:
    found = "found" if report.labels_found else f"NOT FOUND ({report.error})"
    say_result(f"labels: {report.labels_path}: {found}")
    for video in report.videos:
        moved = f"  (as {video.worker_path})" if video.worker_path else ""
        say_result(f"  {video.status.value:8}  {video.path}{moved}")
        for suggestion in video.suggestions:
            say_result(f"            suggestion: {suggestion}")


# --- commands


def run_check(args: argparse.Namespace) -> int:
    """Print what the worker can see of a labels file."""
    set_quiet(args.quiet)
    try:
        maps = dict(parse_map(m) for m in args.map)
        register = client_register(args)
    except (ValueError, CredentialsError) as exc:
        return fail(f"error: {exc}", 2)

    display = ProgressDisplay(enabled=not args.quiet)

    async def main() -> PathReport:
        async with display, connected(args, register, display.wait) as client:
            display.wait("discovering the room's workers")
            worker = await find_worker(client, args.worker)
            display.wait(None)
            if args.worker is None and not args.quiet:  # --json keeps stdout clean
                sys.stderr.write(f"asking worker {worker}\n")
            legacy = await is_legacy_worker(client, worker)
            display.wait(f"opening an authenticated data channel to {worker}")
            channel = await open_channel(
                client, worker, auth=channel_auth(args), legacy_worker=legacy
            )
            display.wait(None)
            async with channel:
                report, _ = await _checked_paths(
                    channel, _absolute(args.labels), maps, False, display=display
                )
                return report

    try:
        report = asyncio.run(main())
    except NoWorkersAvailableError as exc:
        return fail(f"error: {exc}", EXIT_NO_WORKER)
    except (SleapRTCError, TimeoutError) as exc:
        return fail(f"error: {exc}", EXIT_FAILED)
    if args.json:
        import json

        say_result(json.dumps(report.to_json(), indent=2))
    else:
        _print_report(report)
    return 0 if report.ok else EXIT_FAILED


def _absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def run_train(args: argparse.Namespace) -> int:
    """Train remotely, with progress; Ctrl-C asks stop or cancel."""
    set_quiet(args.quiet)
    if args.epochs is not None and not MIN_EPOCHS <= args.epochs <= MAX_EPOCHS:
        return fail(
            f"error: --epochs must be {MIN_EPOCHS} to {MAX_EPOCHS}, not "
            f"{args.epochs} (leave it out to train the config's "
            "trainer_config.max_epochs)",
            2,
        )
    try:
        config = Path(args.config).read_text(encoding="utf-8")
    except OSError as exc:
        return fail(f"error: cannot read --config: {exc}", 2)
    labels = _absolute(args.labels)
    uploaded: list[str] = []  # the worker paths of what was sent
    epochs = epochs_of(TrainJobSpec(config_content=config, max_epochs=args.epochs))
    view = JobView(TrainingProgress(total_epochs=epochs))

    def spec(mappings: dict[str, str]) -> JobSpec:
        return TrainJobSpec(
            config_content=config,
            labels_path=labels,
            max_epochs=args.epochs,
            path_mappings=mappings,
        )

    async def bring_home(
        channel: Channel, sent: JobSpec, result: dict[str, Any]
    ) -> list[Path]:
        try:
            folders = await download_models(
                channel,
                result,
                models_dir_for(labels),
                path_mappings=sent.path_mappings,
                # Sent: the models lie in the worker's (hidden, swept) upload area.
                download=True if uploaded and args.download is None else args.download,
                on_progress=view.downloading(),
            )
        finally:
            view.display.show(None)
        for folder in folders:
            say_result(f"model here: {folder}")
        return folders

    callbacks = JobCallbacks(on_progress=view.on_progress, on_message=view.on_message)
    return _run_job(
        args, labels, spec, callbacks, view, finish=bring_home, uploaded=uploaded
    )


def run_track(args: argparse.Namespace) -> int:
    """Run inference remotely, with its frames as progress."""
    set_quiet(args.quiet)
    data = _absolute(args.data)
    view = JobView()

    def spec(mappings: dict[str, str]) -> JobSpec:
        return TrackJobSpec(
            data_path=data,
            model_paths=tuple(args.model),
            output_path=args.output,
            path_mappings=mappings,
        )

    async def bring_home(
        channel: Channel, sent: JobSpec, result: dict[str, Any]
    ) -> list[Path]:
        try:
            local = await download_predictions(
                channel,
                result,
                predictions_path_for(data),
                path_mappings=sent.path_mappings,
                download=args.download,
                on_progress=view.downloading(),
            )
        finally:
            view.display.show(None)
        say_result(f"predictions here: {local}")
        return [Path(local)]

    return _run_job(
        args,
        data,
        spec,
        JobCallbacks(on_log=lambda line: None, on_message=view.on_message),
        view,
        finish=bring_home,
        to_send=_data_to_send,
    )


def _data_to_send(path: str) -> Path:
    """What ``track --upload`` sends for ``path``: a video or a package as it
    is. A ``.slp`` whose videos are outside it is refused: a package of its
    labeled frames would predict on those frames only (blocking: sleap-io).

    Raises:
        JobRejected: a ``.slp`` without its frames.
        LabelsUnreadable: sleap-io cannot read it.
    """
    if path.lower().endswith(".slp") and not is_package(path):
        raise JobRejected(
            f"{path} names videos the worker cannot see; send a video "
            "(sleap-rtc track VIDEO --upload) or a .pkg.slp"
        )
    return Path(path)


def _run_job(
    args: argparse.Namespace,
    path: str,
    make_spec: Callable[[dict[str, str]], JobSpec],
    callbacks: JobCallbacks,
    view: JobView,
    finish: Finish | None = None,
    to_send: Callable[[str], Path] = labels_to_send,
    uploaded: list[str] | None = None,
) -> int:
    """Place and run the job, then say where its result is (once: not again
    when ``finish`` already said it is here); ``uploaded`` gets the worker
    path of each file sent."""
    try:
        maps = dict(parse_map(m) for m in args.map)
        register = client_register(args)
    except (ValueError, CredentialsError) as exc:
        return fail(f"error: {exc}", 2)
    interactive = sys.stdin.isatty()
    accept_suggestions = bool(getattr(args, "accept_suggestions", False))
    min_memory = getattr(args, "min_gpu_memory", None)
    model_type = getattr(args, "model_type", None)

    with_videos = bool(getattr(args, "upload_with_videos", False))
    upload = True if with_videos else getattr(args, "upload", False)
    signaling: list[SignalingClient] = []  # the one client of main()
    dropped: list[str] = []  # the channel dropped during an upload: resume
    copying: list[str] = []  # while the results come home: how to resume
    uploading: list[str] = []  # while the data goes out: how to resume
    shown: list[Path] = []  # the local paths finish told

    async def bring_home(
        channel: Channel, sent: JobSpec, result: dict[str, Any]
    ) -> None:
        if finish is None:
            return
        into = (
            predictions_path_for(path)
            if isinstance(sent, TrackJobSpec)
            else (models_dir_for(path))
        )
        copying[:] = [fetch_command(str(result.get("job_id")), channel.peer_id, into)]
        try:
            shown[:] = await finish(channel, sent, result)
        finally:
            copying.clear()

    async def send(channel: Channel) -> JobSpec:
        area = await _has_upload_area(signaling[0], channel.peer_id)
        if not await _agree_to_upload(path, upload, interactive, area):
            offer = " or --upload to send it" if area else ""
            raise JobRejected(
                f"the worker cannot see {path}; use --map OLD=NEW to say where "
                f"it is on the worker{offer}"
            )
        preparing = Waiting("packing", f"preparing {Path(path).name} to send")
        view.display.show(preparing.status)
        try:
            local = (
                Path(path) if with_videos else await asyncio.to_thread(to_send, path)
            )
        finally:
            view.display.show(None)
        # not the command line itself: it may hold a token or the room secret
        uploading[:] = [f"sleap-rtc {getattr(args, 'command', None) or 'train'}"]
        try:
            sent, sent_maps = await _upload(channel, local, view.display, with_videos)
        except ChannelClosed:
            dropped.append(path)
            raise
        finally:
            uploading.clear()
        if uploaded is not None:
            uploaded.append(sent.path)
        return make_spec({**maps, path: sent.path, **sent_maps})

    async def prepare(channel: Channel) -> JobSpec:
        # Models trained from an upload: show their jobs' kept secrets.
        models = [map_path(m, maps) for m in getattr(args, "model", None) or ()]
        if models and await claim_models(channel, models):
            say("showed the worker the secrets of the jobs that trained the models")
        if not path.lower().endswith(".slp"):
            if upload and path not in maps:
                return await send(channel)  # a video: no check says it is there
            return make_spec(dict(maps))  # the worker maps it by the same rule
        report, mappings = await _checked_paths(
            channel, path, maps, interactive, accept_suggestions, view.display
        )
        if not report.labels_found and upload is not False and path not in maps:
            return await send(channel)
        if not report.labels_found:
            hint = " or --upload to send it" if upload is None else ""
            raise JobRejected(
                f"the worker cannot see {report.labels_path}: {report.error}; "
                f"use --map OLD=NEW to say where it is on the worker{hint}"
            )
        missing = unmapped(report, mappings)
        if missing:
            raise JobRejected(_missing_videos(report, missing, maps))
        return make_spec(mappings)

    def accepted(keep: Callable[[RemoteJob], None], job: RemoteJob) -> None:
        keep(job)
        view.accepted()

    async def main() -> dict[str, Any]:
        async with view.display, connected(args, register, view.wait) as client:
            signaling[:] = [client]
            worker = None
            if args.worker is not None:
                view.wait(f"looking for the worker {args.worker}")
                worker = await find_worker(client, args.worker)
                view.wait(None)
            for attempt in range(1, UPLOAD_ATTEMPTS + 1):
                dropped.clear()
                try:
                    return await _with_interrupts(
                        lambda on_job: run_remote_job(
                            client,
                            make_spec(dict(maps)),  # the choice sees --map
                            auth=channel_auth(args),
                            worker_id=worker,
                            min_gpu_memory_mb=min_memory,
                            model_type=model_type,
                            callbacks=callbacks,
                            say=say,
                            on_job=functools.partial(accepted, on_job),
                            prepare=prepare,
                            finish=bring_home,
                            accept_legacy=not args.refuse_legacy_workers,
                            can_send_data=upload is True,
                            on_wait=view.wait,
                        ),
                        interactive,
                        copying,
                        uploading,
                        view.display,
                    )
                except ChannelClosed:
                    if not dropped or attempt == UPLOAD_ATTEMPTS:
                        raise
                    say("the connection dropped during the upload; resuming")
            raise AssertionError("unreachable")  # the loop returns or raises

    try:
        result = asyncio.run(main())
    except (NoWorkersAvailableError, NoWorkersAcceptedError) as exc:
        return fail(f"no worker: {exc}", EXIT_NO_WORKER)
    except JobRejected as exc:
        return fail(f"rejected: {exc}", EXIT_REJECTED)
    except (JobError, SleapRTCError, TimeoutError) as exc:
        return fail(f"failed: {exc}", EXIT_FAILED)
    except asyncio.CancelledError:
        return fail("cancelled", EXIT_INTERRUPTED)
    duration = result.get("duration_seconds")
    if duration is not None:
        say(f"duration: {float(duration):.1f} s")
    where = result.get("output_path") or result.get("predictions_path")
    if where and Path(str(where)) not in shown:  # the worker's own path
        say_result(f"result: {where}")
    return 0


async def _with_interrupts(
    run: Callable[[Callable[[RemoteJob], None]], Awaitable[dict[str, Any]]],
    interactive: bool,
    copying: list[str] | None = None,
    uploading: list[str] | None = None,
    display: ProgressDisplay | None = None,
) -> dict[str, Any]:
    """Run the job; Ctrl-C asks "stop (keep model) or cancel?" on a terminal,
    cancels otherwise; a second Ctrl-C cancels at once. Once the job is done
    and its results come home (``copying`` holds the command that resumes
    the copy), Ctrl-C stops the copy and says how to go on; during an upload
    (``uploading`` holds the command that sends the rest) likewise. The
    ``display`` is hidden while the question is asked."""
    shown = display or ProgressDisplay(live=False)
    jobs: list[RemoteJob] = []
    task = asyncio.ensure_future(run(jobs.append))
    interrupts = asyncio.Queue[None]()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGINT, interrupts.put_nowait, None)

    async def watch() -> None:
        await interrupts.get()
        if not jobs:
            if uploading:
                shown.show(None)
                say_result(
                    "\nupload stopped; the worker keeps what it verified. To go "
                    f"on where it stopped, run the same {uploading[0]} command "
                    "again (with --upload)"
                )
            task.cancel()
            return
        if copying:
            shown.show(None)
            say_result(f"\ncopy stopped; what arrived is kept. To go on: {copying[0]}")
            task.cancel()
            return
        if interactive:
            with shown.hidden():
                answer = _ask("\nstop (keep the model) or cancel? [s/c] ")
                again: asyncio.Future[None] = asyncio.ensure_future(interrupts.get())
                waits: set[asyncio.Future[Any]] = {answer, again}
                done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                again.cancel()
                if not answer.done():
                    answer.cancel()  # stops reading the terminal
            if answer in done and answer.result().strip().lower().startswith("s"):
                say("stopping: the model so far is kept")
                await jobs[0].stop()
                return
        shown.show(None)
        say("cancelling")
        task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return await task
    finally:
        watcher.cancel()
        with contextlib.suppress(NotImplementedError):
            loop.remove_signal_handler(signal.SIGINT)
