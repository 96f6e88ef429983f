"""The one path-mapping rule (sleap_rtc_core.protocol.paths)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sleap_rtc_core.protocol.paths import (
    map_path,
    map_paths_in_text,
    prefix_swap,
    replace_prefix,
    usable_mappings,
)

LAB = {"/Volumes/lab": "/mnt/lab", "/Volumes/lab/models": "/srv/models"}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/Volumes/lab/models/run1", "/srv/models/run1"),  # the longest key wins
        ("/Volumes/lab/x.slp", "/mnt/lab/x.slp"),
        ("/Volumes/lab", "/mnt/lab"),  # the key itself (an exact mapping)
        ("/Volumes/lab/", "/mnt/lab/"),
        ("/Volumes/labels/x", "/Volumes/labels/x"),  # whole folders only
        ("/elsewhere/x", "/elsewhere/x"),
    ],
)
def test_longest_folder_prefix(path: str, expected: str) -> None:
    assert map_path(path, LAB) == expected


def test_separators_count_alike_and_follow_the_worker_side() -> None:
    assert map_path("C:\\lab\\v\\a.mp4", {"C:\\lab": "/mnt/lab"}) == (
        "/mnt/lab/v/a.mp4"
    )
    assert map_path("C:/lab/v/a.mp4", {"C:\\lab\\": "/mnt/lab/"}) == (
        "/mnt/lab/v/a.mp4"
    )
    assert map_path("/data/v/a.mp4", {"/data": "D:\\lab"}) == "D:\\lab\\v\\a.mp4"


def test_unusable_entries_are_ignored() -> None:
    mappings = {"": "/y", "/": "/z", "/x": 3, 4: "/w", "/a": ""}
    assert usable_mappings(mappings) == {}  # type: ignore[arg-type]
    assert map_path("/x/y", mappings) == "/x/y"  # type: ignore[arg-type]


def test_replace_prefix() -> None:
    assert replace_prefix("/Volumes/lab/a/b.mp4", "/Volumes/lab", "/mnt/lab") == (
        "/mnt/lab/a/b.mp4"
    )
    assert replace_prefix("C:\\lab\\v.mp4", "C:/lab/", "/data") == "/data/v.mp4"
    assert replace_prefix("/data2/v.mp4", "/data", "/x") is None
    assert replace_prefix("/data/v.mp4", "", "/x") is None
    assert replace_prefix("/data/v.mp4", "/data", "/") == "/v.mp4"


def test_prefix_swap() -> None:
    assert prefix_swap("C:\\lab\\v\\a.mp4", "/data/v/a.mp4") == ("C:/lab", "/data")
    assert prefix_swap("/home/me/a.mp4", "/data/x/a.mp4") == ("/home/me", "/data/x")
    assert prefix_swap("/a/b.mp4", "/c/d.mp4") == ("/a/b.mp4", "/c/d.mp4")


def test_paths_in_a_config_text_follow_the_same_rule() -> None:
    text = (
        "train_labels_path: /Volumes/lab/l.slp\n"
        "val: ['/Volumes/lab/v.slp', /Volumes/labels/x.slp]\n"
        "ckpt_dir: /Volumes/lab/models/runs  # comment\n"
        "win: C:\\lab\\v.mp4\n"
        "other: /home/Volumes/lab/x\n"
        "bare: /Volumes/lab\n"
    )
    mappings = {**LAB, "C:/lab": "/mnt/c"}
    assert map_paths_in_text(text, mappings) == (
        "train_labels_path: /mnt/lab/l.slp\n"
        "val: ['/mnt/lab/v.slp', /Volumes/labels/x.slp]\n"
        "ckpt_dir: /srv/models/runs  # comment\n"
        "win: /mnt/c/v.mp4\n"
        "other: /home/Volumes/lab/x\n"
        "bare: /mnt/lab\n"
    )


def test_text_mapping_is_one_pass_and_literal() -> None:
    assert map_paths_in_text("a: /a/x\nb: /b/y\n", {"/a": "/b", "/b": "/c"}) == (
        "a: /b/x\nb: /c/y\n"
    )
    assert map_paths_in_text("p: (a.b)/x", {"(a.b)": "/y"}) == "p: /y/x"
    assert map_paths_in_text("p: aab/x", {"a.b": "/y"}) == "p: aab/x"
    assert map_paths_in_text("x", {}) == "x"


_part = st.text(alphabet="abc._-", min_size=1, max_size=4)
_paths = st.lists(_part, min_size=1, max_size=4).map(lambda p: "/" + "/".join(p))


@given(path=_paths, key=_paths, value=_paths)
def test_text_and_path_mapping_agree(path: str, key: str, value: str) -> None:
    """A path alone in a config line maps as :func:`map_path` maps it."""
    mappings = {key: value}
    assert map_paths_in_text(f"p: {path}\n", mappings) == (
        f"p: {map_path(path, mappings)}\n"
    )
