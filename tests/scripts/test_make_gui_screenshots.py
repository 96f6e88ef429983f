"""``scripts/make_gui_screenshots.py`` renders the README's images."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def test_screenshots_script_writes_the_readme_images(tmp_path: Path) -> None:
    script = Path(__file__).parents[2] / "scripts" / "make_gui_screenshots.py"
    spec = importlib.util.spec_from_file_location("make_gui_screenshots", script)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = module.render(tmp_path)
    sleap = [  # SLEAP is installed by the test set-up
        "sleap_run_remotely.png",
        "sleap_run_remotely_panel.png",
        "sleap_loss_viewer.png",
    ]
    assert [p.name for p in written] == [
        "training_dialog.png",
        "path_resolution.png",
        "error_popup.png",
        "loss_plot.png",
        *sleap,
    ]
    assert all(p.stat().st_size > 1000 for p in written)
