"""The dialogs and windows of the Qt side (each renders state, forwards intents).

``training_dialog`` is not re-exported here: it builds on
:mod:`sleap_rtc_gui.presubmit_io`, which builds on the dialogs below; import it
from its module.
"""

from __future__ import annotations

from .error_popup import *  # noqa: F403
from .error_popup import __all__ as _error_all
from .loss_plot import *  # noqa: F403
from .loss_plot import __all__ as _plot_all
from .path_resolution import *  # noqa: F403
from .path_resolution import __all__ as _path_all
from .upload_progress import *  # noqa: F403
from .upload_progress import __all__ as _upload_all
from .worker_panel import *  # noqa: F403
from .worker_panel import __all__ as _panel_all

__all__ = [*_error_all, *_plot_all, *_path_all, *_upload_all, *_panel_all]
