"""Render the main dialogs offscreen into PNGs for the README (QWidget.grab).

    QT_QPA_PLATFORM=offscreen python scripts/make_gui_screenshots.py [OUT_DIR]

Writes ``training_dialog.png``, ``path_resolution.png``, ``error_popup.png`` and
``loss_plot.png`` (default folder: ``docs/images``), and, when SLEAP is
installed, ``sleap_run_remotely.png`` / ``sleap_run_remotely_panel.png`` (SLEAP's
real training dialog with the plugin's button, and our panel over it) and
``sleap_loss_viewer.png`` (SLEAP's LossViewer fed over loopback ZMQ with epochs
in the trainer's format). The widgets are filled with plain data (workers as
discovery would list them, a path report as a worker would send it); nothing
connects anywhere beyond loopback ZMQ.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("_SLEAP_LD_FIXED", "1")

from sleap_rtc_core.sample_data import write_tiny_labels  # noqa: E402
from sleap_rtc_gui.app import application  # noqa: E402
from sleap_rtc_gui.dialogs.error_popup import ErrorPopup  # noqa: E402
from sleap_rtc_gui.dialogs.loss_plot import LossPlotWindow  # noqa: E402
from sleap_rtc_gui.dialogs.path_resolution import PathResolutionDialog  # noqa: E402
from sleap_rtc_gui.dialogs.training_dialog import TrainingDialog  # noqa: E402
from sleap_rtc_gui.presubmit import (  # noqa: E402
    PathReport,
    ShowError,
    VideoCheck,
    VideoStatus,
    messages,
)
from sleap_rtc_gui.presubmit_io import FeedOptions  # noqa: E402
from sleap_rtc_gui.session import no_data_channel  # noqa: E402
from sleap_rtc_gui.workers import WorkerInfo  # noqa: E402

__all__ = ["main", "render", "render_sleap"]


class _NoLogin:
    def check(self) -> tuple[bool, bool]:
        return True, False

    async def login(self) -> bool:
        return True


def _worker(peer: str, name: str, gpu: str, mb: int, status: str) -> WorkerInfo:
    return WorkerInfo.from_metadata(
        peer,
        {
            "properties": {
                "worker_name": name,
                "gpu_model": gpu,
                "gpu_memory_mb": mb,
                "status": status,
            }
        },
    )


def render(out: Path) -> list[Path]:
    """Render every screenshot into ``out``; the files written."""
    application()
    out.mkdir(parents=True, exist_ok=True)
    written = []

    dialog = TrainingDialog(
        "/home/me/flies/labels.v001.slp",
        no_data_channel,
        _NoLogin(),
        rooms=["vision-lab"],
        feed=FeedOptions(None, None),
    )
    dialog.worker_panel.set_workers(
        [
            _worker("w1", "gpu-box-1", "NVIDIA RTX A5000", 24576, "available"),
            _worker("w2", "gpu-box-2", "NVIDIA A100-SXM4-80GB", 81920, "busy"),
            _worker("w3", "lab-desktop", "NVIDIA RTX 3090", 24576, "maintenance"),
        ]
    )
    dialog.worker_panel.select_worker("w1")
    dialog.resize(620, 560)
    written.append(out / "training_dialog.png")
    dialog.grab().save(str(written[-1]))

    report = PathReport(
        "/home/me/flies/labels.v001.slp",
        True,
        (
            VideoCheck("/home/me/flies/session1.mp4", VideoStatus.FOUND),
            VideoCheck(
                "/Volumes/lab/flies/session2.mp4",
                VideoStatus.MISSING,
                ("/mnt/lab/flies/session2.mp4",),
            ),
            VideoCheck("/Volumes/lab/flies/session3.mp4", VideoStatus.MISSING),
        ),
    )
    paths = PathResolutionDialog(report)
    paths.prefix_from.setText("/Volumes/lab")
    paths.prefix_to.setText("/mnt/lab")
    written.append(out / "path_resolution.png")
    paths.grab().save(str(written[-1]))

    popup = ErrorPopup(
        ShowError(
            messages.JOB_REJECTED_TITLE,
            messages.job_rejected(
                [{"field": "labels_path", "message": "outside the worker's mounts"}]
            ),
        )
    )
    popup.adjustSize()
    written.append(out / "error_popup.png")
    popup.grab().save(str(written[-1]))

    plot = LossPlotWindow()
    for epoch, (loss, val) in enumerate(
        [(0.9, 0.95), (0.55, 0.62), (0.38, 0.45), (0.3, 0.37), (0.26, 0.35)]
    ):
        plot.add_event(
            {
                "what": "",
                "event": "epoch_end",
                "logs": {"train/loss": loss, "val/loss": val},
                "epoch": epoch,
            }
        )
    plot.resize(560, 340)
    written.append(out / "loss_plot.png")
    plot.grab().save(str(written[-1]))
    if importlib.util.find_spec("sleap") is not None:
        written += render_sleap(out)
    return written


def _pump(seconds: float) -> None:
    app = application()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def render_sleap(out: Path) -> list[Path]:
    """Render SLEAP's dialog with Run Remotely and SLEAP's LossViewer into
    ``out`` (needs SLEAP); the files written."""
    import zmq
    from sleap.gui.learning.dialog import LearningDialog
    from sleap.gui.widgets.monitor import LossViewer

    from sleap_rtc_gui import plugin
    from sleap_rtc_gui.session import no_data_channel
    from sleap_rtc_gui.sleap_run import RunParts, SleapRemoteRun

    written: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        labels = write_tiny_labels(Path(tmp) / "flies" / "labels.pkg.slp")
        runs: list[SleapRemoteRun] = []
        parts = RunParts(no_data_channel, _NoLogin(), None, ["vision-lab"])
        plugin.install(lambda d: runs.append(SleapRemoteRun(d, parts)))
        dialog = LearningDialog("training", str(labels))
        dialog.show()
        _pump(0.5)
        dialog.findChild(type(dialog.run_button), plugin.BUTTON_NAME).click()
        run = runs[-1]
        run.panel.worker_panel.set_workers(
            [
                _worker("w1", "gpu-box-1", "NVIDIA RTX A5000", 24576, "available"),
                _worker("w2", "gpu-box-2", "NVIDIA A100-SXM4-80GB", 81920, "busy"),
            ]
        )
        run.panel.worker_panel.select_worker("w1")
        run.panel.show()
        _pump(0.3)
        written.append(out / "sleap_run_remotely.png")
        dialog.grab().save(str(written[-1]))
        written.append(out / "sleap_run_remotely_panel.png")
        run.panel.grab().save(str(written[-1]))
        plugin.uninstall()

    viewer = LossViewer(zmq_ports={"publish_port": 9001, "controller_port": 9000})
    viewer.setWindowTitle("Training Model - remote on gpu-box-1")
    viewer.resize(600, 400)
    viewer.show()
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.connect(f"tcp://127.0.0.1:{viewer.zmq_ports['publish_port']}")
    _pump(0.5)
    events = [{"what": "", "event": "train_begin", "logs": {}}]
    for epoch, (loss, val) in enumerate(
        [(0.011, 0.012), (0.006, 0.0072), (0.0041, 0.0052), (0.0033, 0.0046)]
    ):
        events.append({"what": "", "event": "epoch_begin", "epoch": epoch})
        for batch in range(5):
            logs = {"loss": loss * (1.2 - 0.05 * batch)}
            events.append(
                {"what": "", "event": "batch_end", "batch": batch, "logs": logs}
            )
        logs = {"train/loss": loss, "val/loss": val}
        events.append({"what": "", "event": "epoch_end", "epoch": epoch, "logs": logs})
    for event in events:
        pub.send_string(json.dumps(event))
        _pump(0.12)
    _pump(1.0)
    written.append(out / "sleap_loss_viewer.png")
    viewer.grab().save(str(written[-1]))
    viewer.close()
    pub.close(0)
    return written


def main(argv: list[str]) -> int:
    """Render into ``argv[1]`` (default ``docs/images``)."""
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).parents[1] / "docs/images"
    for path in render(out):
        sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
