"""Render the main dialogs offscreen into PNGs for the README (QWidget.grab).

    QT_QPA_PLATFORM=offscreen python scripts/make_gui_screenshots.py [OUT_DIR]

Writes ``training_dialog.png``, ``path_resolution.png``, ``error_popup.png`` and
``loss_plot.png`` (default folder: ``docs/images``). The widgets are filled with
plain data (workers as discovery would list them, a path report as a worker
would send it); nothing connects anywhere.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from sleap_rtc_gui.app import application  # noqa: E402
from sleap_rtc_gui.controller import FeedOptions  # noqa: E402
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
from sleap_rtc_gui.session import no_data_channel  # noqa: E402
from sleap_rtc_gui.workers import WorkerInfo  # noqa: E402

__all__ = ["main", "render"]


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
    return written


def main(argv: list[str]) -> int:
    """Render into ``argv[1]`` (default ``docs/images``)."""
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).parents[1] / "docs/images"
    for path in render(out):
        sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
