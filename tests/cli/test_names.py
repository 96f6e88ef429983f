"""Names that work, secrets a lab picks, what admin commands print (issue 20,
cases 4, 10 and 11), with a real server, room and worker."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

from sleap_rtc_core.sample_data import write_tiny_video_labels
from tests.fixtures.timing import scaled, wait_until

from .conftest import Lab, interrupt


def _labels(lab: Lab, shared: Path) -> Path:
    labels, _video = write_tiny_video_labels(shared / "proj" / "labels.slp")
    return labels


def test_a_passphrase_is_a_room_secret_and_a_mismatch_says_they_differ(
    lab: Lab,
) -> None:
    shared = lab.root / "shared"
    lab.worker("gpu-a", shared)  # its secret: the passphrase "s3cret"
    labels = _labels(lab, shared)
    ok = lab.run("check", str(labels), *lab.flags())
    assert ok.returncode == 0, ok.stdout + ok.stderr
    wrong = lab.run("check", str(labels), *lab.flags(secret="not-it"))
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    assert "room secret" in wrong.stderr, wrong.stderr
    assert "differ" in wrong.stderr, wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_doctor_fails_without_or_with_a_wrong_room_secret(lab: Lab) -> None:
    lab.worker("gpu-a", lab.root / "shared")
    base = ["doctor", "--server", lab.url, "--room", lab.room_id]
    base += ["--token", lab.token]
    good = lab.run(*base, "--room-secret", lab.secret)
    assert good.returncode == 0, good.stdout + good.stderr
    wrong = lab.run(*base, "--room-secret", "not-it")
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    assert "not the worker's" in wrong.stdout + wrong.stderr
    none = lab.run(*base)
    assert none.returncode == 1, none.stdout + none.stderr


def test_the_room_and_the_worker_are_named_by_name(lab: Lab) -> None:
    shared = lab.root / "shared"
    lab.worker("gpu-a", shared, "--peer-id", "p-1")
    labels = _labels(lab, shared)
    by_name = ["--worker", "gpu-a"]
    result = lab.run("check", str(labels), *lab.flags(room="Lab A"), *by_name)
    assert result.returncode == 0, result.stdout + result.stderr
    # A worker started with the room's name joins the same room.
    lab.spawn("worker", *lab.flags(room="Lab A"), "--mount", str(shared),
              "--name", "gpu-b", "--peer-id", "p-2")  # fmt: skip
    wait_until(lambda: "ready" in lab.procs[-1].stdout, timeout=scaled(60))
    listed = lab.run("workers", *lab.flags(room="Lab A"), "--json")
    assert listed.returncode == 0, listed.stderr
    assert sorted(p["peer_id"] for p in json.loads(listed.stdout)) == ["p-1", "p-2"]
    # doctor by the room's name: the credentials and the room secret (a data
    # channel to a worker of that room) both pass.
    doctor = lab.run("doctor", *lab.flags(room="Lab A"), "--json")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    checks = {c["name"]: c for c in json.loads(doctor.stdout)}
    assert checks["credentials"]["ok"] is True, checks["credentials"]
    assert checks["room secret"]["ok"] is True, checks["room secret"]


def test_a_worker_keeps_its_peer_id_across_a_restart(lab: Lab) -> None:
    mount = lab.root / "shared"
    mount.mkdir()
    ids = []
    for _ in range(2):
        worker = lab.spawn(*_worker_args(lab, mount))
        wait_until(lambda w=worker: "ready" in w.stdout, timeout=scaled(60))
        (line,) = [x for x in worker.stdout.splitlines() if " ready" in x]
        ids.append(line.split()[1])
        assert interrupt(worker, signal.SIGTERM) == 0, worker.output
    assert ids[0] == ids[1], ids
    assert ids[0].startswith("gpu-stable-")


def _worker_args(lab: Lab, mount: Path) -> list[str]:
    return ["worker", *lab.flags(), "--mount", str(mount), "--name", "gpu-stable"]


def test_readme_order_room_owner_before_the_user_exists(tmp_path: Path) -> None:
    """README: ``room create --owner alice`` before ``user add alice``: it
    works, or says what to do first."""
    from .conftest import start_lab

    lab = start_lab(tmp_path / "lab")
    try:
        data = ["--data-dir", str(lab.data)]
        room = lab.run("room", "create", "--name", "Lab B", "--owner", "alice", *data)
        if room.returncode != 0:
            assert "user add alice" in room.stderr, room.stderr
            assert "Traceback" not in room.stderr
        added = lab.run(
            "user", "add", "alice", *data, "--json", input="a long password\n"
        )
        assert added.returncode == 0, added.stdout + added.stderr
        if room.returncode != 0:
            room = lab.run("room", "create", "--name", "Lab B", "--owner", "alice",
                           *data)  # fmt: skip
            assert room.returncode == 0, room.stderr
    finally:
        lab.stop_all()


def test_token_and_account_key_both_print_their_secret(lab: Lab) -> None:
    data = ["--data-dir", str(lab.data)]
    assert (
        lab.run(
            "user", "add", "bob", *data, "--json", input="a long password\n"
        ).returncode
        == 0
    )
    made = {
        "token": ["token", "create", "--room", "Lab A", "--worker-name", "w", *data],
        "account-key": ["account-key", "create", "--user", "bob", "--name", "pc",
                        *data],
    }  # fmt: skip
    for what, args in made.items():
        plain = lab.run(*args)
        assert plain.returncode == 0, (what, plain.stderr)
        # The secret itself, and a word saying it is one (shown once).
        assert re.search(r"secret\)?: slp_\S+", plain.stdout), (what, plain.stdout)
        as_json = lab.run(*args, "--json")
        assert as_json.returncode == 0, (what, as_json.stderr)
        assert json.loads(as_json.stdout)["secret"].startswith("slp_"), what


def test_the_readmes_admin_commands_work_in_the_readmes_order(tmp_path: Path) -> None:
    """The README's admin block, run literally (its data dir here): a new lab
    admin following it top to bottom meets no "add it first"."""
    import shlex
    import subprocess

    from tests.fixtures.cli import CLI_ENV, SLEAP_RTC

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in readme.split("```bash\n")[1:]]
    (block,) = [b for b in blocks if "room create --name" in b and "--owner" in b]
    lines = [ln for ln in block.splitlines() if ln and not ln.startswith("#")]
    assert any("user add alice" in ln for ln in lines), lines
    room = ""
    for line in lines:
        command = line.split("   #", 1)[0].replace("/srv/sleap-rtc", str(tmp_path))
        command = command.replace("sleap-rtc ", f"{shlex.quote(SLEAP_RTC)} ")
        command = command.replace("ROOM", room)
        done = subprocess.run(
            command, shell=True, capture_output=True, text=True,
            env={**os.environ, **CLI_ENV}, timeout=scaled(60),
        )  # fmt: skip
        assert done.returncode == 0, (line, done.stdout, done.stderr)
        if " room create " in command:
            room = json.loads(done.stdout)["room_id"]
