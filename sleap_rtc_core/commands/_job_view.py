"""One job's progress as ``train``, ``track`` and ``demo`` show it.

:class:`JobView` feeds the pure views of :mod:`~..client.progress_view` and
draws them on one :class:`~._progress.ProgressDisplay`: the waits before the
job is accepted, sleap-nn starting, training (epoch, batch, loss, ETA), the
inference (frames), the copy home (bytes, rate). The lines to keep (one per
epoch, a summary) go to stdout through ``say``; the demo uses the same view,
so it shows what a user of ``train`` sees.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..client.progress_view import (
    InferenceProgress,
    TrainingProgress,
    TransferProgress,
    Waiting,
)
from ..protocol.channel_messages import (
    InferenceBeginMsg,
    InferenceCompleteMsg,
    InferenceFailedMsg,
    InferenceProgressMsg,
)
from ._output import is_quiet, say
from ._progress import ProgressDisplay

__all__ = ["JobView"]


class JobView:
    """The display and the views of one job.

    Args:
        training: The training view (``None``: an inference job).
        say: Where the lines to keep go (default: stdout, none with
            ``--quiet``).
        display: The display (default: stderr's, drawing nothing with
            ``--quiet``).

    Attributes:
        display: The one progress display of the command.
        training: The training view, or ``None``.
        inference: The inference view (training jobs may run one after).
    """

    def __init__(
        self,
        training: TrainingProgress | None = None,
        *,
        say: Callable[[str], None] = say,
        display: ProgressDisplay | None = None,
    ) -> None:
        self.display = display or ProgressDisplay(enabled=not is_quiet())
        self.training = training
        self.inference = InferenceProgress()
        self._say = say

    def wait(self, what: str | None) -> None:
        """A wait before the job is accepted (``None``: over)."""
        self.display.wait(what)

    def accepted(self) -> None:
        """The worker took the job: show what it waits for."""
        if self.training is not None:
            self.display.show(self.training.status)
        else:
            self.display.show(self.inference.status)

    def on_progress(self, event: Any) -> None:
        """A sleap-nn training event."""
        if self.training is None or not isinstance(event, dict):
            return
        line = self.training.feed(event)
        if line:
            self._say(f"  {line}")
        self.display.show(self.training.status)

    def on_message(self, msg: Any) -> None:
        """The inference frames (``INFERENCE_*``)."""
        if isinstance(msg, InferenceBeginMsg):
            self.inference.begin()
            self.display.show(self.inference.status)
        elif isinstance(msg, InferenceProgressMsg):
            data = msg.data
            if isinstance(data, dict):
                self.inference.feed(data)
                self.display.refresh()
        elif isinstance(msg, InferenceCompleteMsg | InferenceFailedMsg):
            if self.inference.frames_done:
                self._say(f"  {self.inference.summary()}")
            self.display.show(
                Waiting("finishing", "waiting for the worker to finish the job").status
            )

    def downloading(self) -> Callable[[int, int], None]:
        """Show a copy home; its progress callback."""
        progress = TransferProgress("download")
        self.display.show(progress.status)
        return progress.feed
