"""Ctrl-C while a trained model comes home (issue 20, case 7): the copy
stops at once (nothing is asked: the job is over), exit 130, and the
``.partial`` folder it keeps comes with the ``sleap-rtc fetch`` line that
finishes the copy, which is run here to show that it does."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from sleap_rtc_core.sample_data import tiny_training_config, write_tiny_labels
from tests.fixtures.timing import scaled, wait_until

from .conftest import Lab, interrupt

BIG = 120 * 1024 * 1024
"""Bytes of the extra file written into the job's run folder on the worker:
the tiny model alone copies in a blink, this takes seconds over the channel."""


def _run_folder(models: Path) -> Path | None:
    found = [p for p in models.glob("*") if p.is_dir()] if models.is_dir() else []
    return found[0] if len(found) == 1 else None


@pytest.mark.slow
def test_ctrl_c_during_the_download_stops_the_copy_and_says_how_to_go_on(
    lab: Lab,
) -> None:
    shared, laptop = lab.root / "shared", lab.root / "laptop"
    lab.worker("gpu-a", shared)
    labels = write_tiny_labels(shared / "proj" / "labels.pkg.slp")
    here = laptop / "proj" / "labels.pkg.slp"  # the client's copy: another path
    here.parent.mkdir(parents=True)
    shutil.copy(labels, here)
    config = lab.root / "cfg.yaml"
    config.write_text(tiny_training_config(max_epochs=3))
    train = lab.spawn(
        "train", str(here), "--config", str(config), "--download",
        "--map", f"{laptop}={shared}", *lab.flags(), tty=True,
    )  # fmt: skip
    # After the first epoch the run folder is on the worker: make the model
    # big (a real file of the run, so the worker's manifest lists it).
    wait_until(lambda: "epoch 1/3" in train.stdout, timeout=scaled(120), interval=0.1)
    run = _run_folder(shared / "proj" / "models")
    assert run is not None, list((shared / "proj").rglob("*"))
    with (run / "big.bin").open("wb") as f:
        f.truncate(BIG)
    wait_until(
        lambda: (
            re.search(r"download\s+\d.* of ", train.stderr) is not None
            or train.popen.poll() is not None
        ),
        timeout=scaled(120),
        interval=0.05,
    )
    assert train.popen.poll() is None, train.output  # the copy is under way
    assert interrupt(train) == 130, train.output
    out = train.output
    assert "stop (keep the model) or cancel" not in out  # the job is over
    assert "copy stopped" in out, out
    assert "Traceback" not in out
    (fetch_line,) = [ln for ln in out.splitlines() if "sleap-rtc fetch" in ln]
    partial = list((laptop / "proj" / "models").glob("*.partial"))
    assert len(partial) == 1, out  # what arrived is kept ...
    lab.assert_clean(out)  # ... with its resume line; no sleap-nn, no temp folder

    # The printed command, with the connection flags the lab's shell would
    # hold in $SLEAP_RTC_SERVER and friends, finishes the copy.
    command = shlex.split(fetch_line[fetch_line.index("sleap-rtc fetch") :])
    fetched = lab.run(*command[1:], *lab.flags(), "--quiet", timeout=300)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    assert fetched.stderr == ""  # --quiet: no progress, no waits
    final = partial[0].with_name(partial[0].name.removesuffix(".partial"))
    assert fetched.stdout.splitlines() == [f"here: {final}"]
    assert (final / "big.bin").stat().st_size == BIG
    assert list(final.glob("*.ckpt"))
    assert not list(lab.root.rglob("*.partial"))
    lab.assert_clean(fetched.stdout)
