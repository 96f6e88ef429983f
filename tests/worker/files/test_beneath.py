"""Tests of the walk beneath a mount, on real files and symlinks in ``tmp_path``."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from sleap_rtc_core.errors import PathNotAllowed
from sleap_rtc_core.worker.files.beneath import (
    MAX_SYMLINKS,
    create_exclusive,
    fd_path,
    is_file_beneath,
    link_noreplace,
    list_dir_beneath,
    open_beneath,
    open_relative,
    same_file,
    stat_beneath,
)
from sleap_rtc_core.worker.files.mounts import MountPolicy


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``mount/`` (the mount) with ``a/file.txt``, ``b/``, links inside it
    (relative, absolute, to a folder), links out of it, a loop; and
    ``outside/secret.txt`` beside it."""
    mount = tmp_path / "mount"
    (mount / "a").mkdir(parents=True)
    (mount / "b").mkdir()
    (mount / "a" / "file.txt").write_bytes(b"inside")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_bytes(b"secret")
    os.symlink("a/file.txt", mount / "rel_link")
    os.symlink(mount / "a" / "file.txt", mount / "abs_link")
    os.symlink("../a", mount / "b" / "to_a")
    os.symlink(tmp_path / "outside", mount / "out_dir")
    os.symlink(tmp_path / "outside" / "secret.txt", mount / "out_file")
    os.symlink("../outside/secret.txt", mount / "out_rel")
    os.symlink("loop2", mount / "loop1")
    os.symlink("loop1", mount / "loop2")
    return tmp_path


@pytest.fixture
def policy(tree: Path) -> MountPolicy:
    return MountPolicy([str(tree / "mount")])


def test_files_and_folders_inside(policy: MountPolicy, tree: Path) -> None:
    mount = tree / "mount"
    with open_beneath(policy, str(mount / "a" / "file.txt"), read=True) as f:
        assert f.is_file
        assert f.real == str(mount / "a" / "file.txt")
        assert os.read(f.fd, 100) == b"inside"
    with open_beneath(policy, str(mount)) as root:
        assert root.is_dir
        assert root.real == str(mount)
    assert stat_beneath(policy, str(mount / "a" / ".." / "b")).st_ino == (
        os.stat(mount / "b").st_ino
    )


@pytest.mark.parametrize("link", ["rel_link", "abs_link", "b/to_a/file.txt"])
def test_links_inside_are_followed(policy: MountPolicy, tree: Path, link: str) -> None:
    with open_beneath(policy, str(tree / "mount" / link), read=True) as f:
        assert f.real == str(tree / "mount" / "a" / "file.txt")
        assert os.read(f.fd, 100) == b"inside"


@pytest.mark.parametrize(
    "path",
    [
        "mount/..",
        "mount/../outside/secret.txt",
        "mount/a/../../outside/secret.txt",
        "mount/out_dir",
        "mount/out_dir/secret.txt",
        "mount/out_file",
        "mount/out_rel",
        "outside/secret.txt",
    ],
)
def test_every_way_out_is_refused(policy: MountPolicy, tree: Path, path: str) -> None:
    with pytest.raises(PathNotAllowed):
        open_beneath(policy, str(tree / path))
    assert not is_file_beneath(policy, str(tree / path))


@pytest.mark.parametrize("path", ["/etc/passwd", "relative/a", "", "/x\0y", "/"])
def test_paths_that_name_no_mount(policy: MountPolicy, path: str) -> None:
    with pytest.raises(PathNotAllowed):
        open_beneath(policy, path)


def test_missing_loops_and_files_as_folders(policy: MountPolicy, tree: Path) -> None:
    mount = tree / "mount"
    for path, code in [
        (mount / "nope", errno.ENOENT),
        (mount / "a" / "file.txt" / "x", errno.ENOTDIR),
        (mount / "loop1", errno.ELOOP),
    ]:
        with pytest.raises(FileNotFoundError) as info:
            open_beneath(policy, str(path))
        assert info.value.errno == code
        assert info.value.strerror == f"not found: {path}"


def test_symlink_chains_are_bounded(policy: MountPolicy, tree: Path) -> None:
    mount = tree / "mount"
    os.symlink("a/file.txt", mount / "chain0")
    for i in range(1, MAX_SYMLINKS + 1):
        os.symlink(f"chain{i - 1}", mount / f"chain{i}")
    assert is_file_beneath(policy, str(mount / f"chain{MAX_SYMLINKS - 1}"))
    with pytest.raises(FileNotFoundError):
        open_beneath(policy, str(mount / f"chain{MAX_SYMLINKS}"))


def test_a_mount_that_is_a_link_and_nested_mounts(tree: Path) -> None:
    os.symlink(tree / "mount", tree / "alias")
    (tree / "outside" / "inner").mkdir()
    policy = MountPolicy([str(tree / "alias"), str(tree / "outside" / "inner")])
    with open_beneath(policy, str(tree / "alias" / "a" / "file.txt")) as f:
        assert f.real == str(tree / "mount" / "a" / "file.txt")
    # A link from one mount into another is inside the mounts.
    os.symlink(tree / "outside" / "inner", tree / "mount" / "to_inner")
    assert stat_beneath(policy, str(tree / "alias" / "to_inner"))
    # ... but ".." from the inner mount leads to a folder that is none.
    with pytest.raises(PathNotAllowed):
        open_beneath(policy, str(tree / "outside" / "inner" / ".." / "secret.txt"))
    outer = MountPolicy([str(tree / "outside"), str(tree / "outside" / "inner")])
    assert is_file_beneath(outer, str(tree / "outside" / "inner" / ".." / "secret.txt"))


def test_a_mount_whose_parent_became_a_link(tmp_path: Path) -> None:
    (tmp_path / "p" / "m").mkdir(parents=True)
    (tmp_path / "p" / "m" / "f").write_bytes(b"f")
    policy = MountPolicy([str(tmp_path / "p" / "m")])
    assert is_file_beneath(policy, str(tmp_path / "p" / "m" / "f"))
    (tmp_path / "p").rename(tmp_path / "q")
    os.symlink(tmp_path / "q", tmp_path / "p")
    with pytest.raises(PathNotAllowed):
        open_beneath(policy, str(tmp_path / "p" / "m" / "f"))


def test_listing_hides_links_out(policy: MountPolicy, tree: Path) -> None:
    with open_beneath(policy, str(tree / "mount"), read=True) as folder:
        listed = dict(list_dir_beneath(policy, folder))
    assert sorted(listed) == ["a", "abs_link", "b", "rel_link"]
    assert listed["rel_link"].st_size == len(b"inside")


def test_relative_opens_follow_no_link_at_all(policy: MountPolicy, tree: Path) -> None:
    mount = tree / "mount"
    with open_beneath(policy, str(mount)) as root:
        with open_relative(root, ["a", "file.txt"], read=True) as f:
            assert f.real == str(mount / "a" / "file.txt")
            assert os.read(f.fd, 100) == b"inside"
        with open_relative(root, [], read=True) as again:
            assert again.is_dir
            assert same_file(again.stat, root.stat)
            assert "a" in os.listdir(again.fd)
        # Links inside the mount too: a walk that found plain names expects them.
        for names in (["rel_link"], ["b", "to_a", "file.txt"], ["out_dir"]):
            with pytest.raises(FileNotFoundError) as info:
                open_relative(root, names, read=True)
            assert info.value.errno in (errno.ELOOP, errno.ENOENT)
        with pytest.raises(FileNotFoundError):
            open_relative(root, ["a", "file.txt", "x"])
        for bad in ("..", "a/file.txt", ""):
            with pytest.raises(ValueError, match="plain name"):
                open_relative(root, [bad])


def test_a_fifo_is_opened_without_blocking(policy: MountPolicy, tree: Path) -> None:
    os.mkfifo(tree / "mount" / "fifo")
    with open_beneath(policy, str(tree / "mount" / "fifo"), read=True) as f:
        assert not f.is_file
        assert not f.is_dir


def test_make_dirs_stays_inside(policy: MountPolicy, tree: Path) -> None:
    mount = tree / "mount"
    with open_beneath(policy, str(mount / "new" / "deeper"), make_dirs=True) as d:
        assert d.is_dir
    assert (mount / "new" / "deeper").is_dir()
    with pytest.raises(PathNotAllowed):
        open_beneath(policy, str(mount / "out_dir" / "made"), make_dirs=True)
    assert sorted(os.listdir(tree / "outside")) == ["secret.txt"]


def test_exclusive_create_and_link(policy: MountPolicy, tree: Path) -> None:
    mount = tree / "mount"
    os.symlink(tree / "outside" / "planted", mount / "b" / "dangling")
    with open_beneath(policy, str(mount / "b")) as folder:
        for name in ("to_a", "dangling"):
            with pytest.raises(FileExistsError):
                create_exclusive(folder, name)
        with pytest.raises(ValueError, match="plain file name"):
            create_exclusive(folder, "../x")
        fd = create_exclusive(folder, "part")
        os.write(fd, b"new")
        os.close(fd)
        (mount / "b" / "taken").write_bytes(b"old")
        with pytest.raises(FileExistsError):
            link_noreplace(folder, "part", "taken")
        link_noreplace(folder, "part", "fresh")
    assert not (tree / "outside" / "planted").exists()
    assert (mount / "b" / "taken").read_bytes() == b"old"
    assert (mount / "b" / "fresh").read_bytes() == b"new"
    assert not (mount / "b" / "part").exists()


def test_fd_path_reads_the_file_that_was_checked(
    policy: MountPolicy, tree: Path
) -> None:
    mount = tree / "mount"
    with open_beneath(policy, str(mount / "abs_link"), read=True) as f:
        os.replace(mount / "out_file", mount / "abs_link")  # swapped after the walk
        assert Path(fd_path(f)).read_bytes() == b"inside"
