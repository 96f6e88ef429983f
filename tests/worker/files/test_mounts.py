"""Tests of the mount policy: parsing ``--mount`` and confining paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sleap_rtc_core.errors import PathNotAllowed
from sleap_rtc_core.worker.files.mounts import Mount, MountPolicy, parse_mount


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``tmp_path/data`` (the mount) with a file, a sibling ``data2`` and an
    ``outside`` folder with a secret."""
    (tmp_path / "data" / "sub").mkdir(parents=True)
    (tmp_path / "data" / "sub" / "a.slp").write_bytes(b"x")
    (tmp_path / "data2").mkdir()
    (tmp_path / "data2" / "b.slp").write_bytes(b"x")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_bytes(b"s")
    return tmp_path


@pytest.mark.parametrize(
    ("spec", "path", "label"),
    [
        ("/data", "/data", "data"),
        ("/data:lab", "/data", "lab"),
        ("/srv/my data:Shared Lab", "/srv/my data", "Shared Lab"),
        ("/data/a:b/c", "/data/a:b/c", "c"),
        ("/data:", "/data", "data"),
        ("/", "/", "/"),
    ],
)
def test_parse(spec: str, path: str, label: str) -> None:
    mount = Mount.parse(spec)
    assert (mount.path, mount.label) == (path, label)
    assert parse_mount(spec) == mount


def test_relative_mount_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert Mount("rel").path == str(tmp_path / "rel")


def test_bad_mounts() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        Mount("")
    with pytest.raises(ValueError, match="unique"):
        MountPolicy(["/a:x", "/b:x"])


def test_entries_and_labels(tree: Path) -> None:
    policy = MountPolicy([f"{tree / 'data'}:lab", str(tree / "data2")])
    assert policy.entries() == [
        {"path": str(tree / "data"), "label": "lab"},
        {"path": str(tree / "data2"), "label": "data2"},
    ]
    assert policy.by_label("lab") == policy.mounts[0]
    assert policy.by_label("nope") is None


def test_resolve_inside(tree: Path) -> None:
    policy = MountPolicy([str(tree / "data")])
    target = tree / "data" / "sub" / "a.slp"
    assert policy.resolve(str(target)) == target.resolve()
    assert policy.resolve(tree / "data") == (tree / "data").resolve()
    # A file that does not exist yet is still confined (an output path).
    assert policy.allows(str(tree / "data" / "new" / "out.slp"))
    # ".." that stays inside is fine.
    assert policy.allows(str(tree / "data" / "sub" / ".." / "sub" / "a.slp"))


@pytest.mark.parametrize(
    "path",
    [
        "{t}/data/../outside/secret.txt",
        "{t}/data/sub/../../outside/secret.txt",
        "{t}/outside/secret.txt",
        "{t}/data2/b.slp",  # a sibling that shares the prefix "data"
        "{t}",
        "/etc/passwd",
        "data/sub/a.slp",  # relative
        "",
        "{t}/data/\0/a",
    ],
)
def test_traversal_refused(tree: Path, path: str) -> None:
    policy = MountPolicy([str(tree / "data")])
    with pytest.raises(PathNotAllowed) as info:
        policy.resolve(path.format(t=tree))
    assert info.value.code == "ACCESS_DENIED"
    assert not policy.allows(path.format(t=tree))


def test_symlink_pointing_out_refused(tree: Path) -> None:
    policy = MountPolicy([str(tree / "data")])
    os.symlink(tree / "outside", tree / "data" / "escape")
    os.symlink(tree / "outside" / "secret.txt", tree / "data" / "secret.txt")
    for path in (tree / "data" / "escape" / "secret.txt", tree / "data" / "secret.txt"):
        with pytest.raises(PathNotAllowed) as info:
            policy.resolve(str(path))
        assert info.value.code == "ACCESS_DENIED"
        # The message names only what the client sent, never the target.
        assert info.value.message == f"outside the worker's mounts: {path}"


def test_symlink_inside_allowed(tree: Path) -> None:
    policy = MountPolicy([str(tree / "data")])
    os.symlink(tree / "data" / "sub", tree / "data" / "alias")
    assert (
        policy.resolve(str(tree / "data" / "alias" / "a.slp"))
        == (tree / "data" / "sub" / "a.slp").resolve()
    )


def test_mount_that_is_a_symlink(tree: Path) -> None:
    os.symlink(tree / "data", tree / "link")
    policy = MountPolicy([str(tree / "link")])
    assert policy.mounts[0].path == str(tree / "link")
    assert policy.roots == ((tree / "data").resolve(),)
    assert policy.allows(str(tree / "link" / "sub" / "a.slp"))
    assert policy.allows(str(tree / "data" / "sub" / "a.slp"))  # same real file
    with pytest.raises(PathNotAllowed):
        policy.resolve(str(tree / "link" / ".." / "outside" / "secret.txt"))
    assert not policy.allows(str(tree / "outside" / "secret.txt"))


def test_no_mounts_allows_nothing(tree: Path) -> None:
    policy = MountPolicy()
    assert not policy.allows(str(tree / "data" / "sub" / "a.slp"))
    assert not policy.allows("/")


def test_mount_of_is_innermost(tree: Path) -> None:
    policy = MountPolicy([f"{tree}:all", f"{tree / 'data'}:data"])
    assert policy.mount_of(str(tree / "data" / "sub" / "a.slp")) == policy.mounts[1]
    assert policy.mount_of(str(tree / "outside")) == policy.mounts[0]
    assert policy.mount_of("/etc/passwd") is None
