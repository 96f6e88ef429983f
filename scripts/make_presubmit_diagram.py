"""Regenerate the state diagram in ``docs/presubmit.md`` from the transition table.

Usage: ``python scripts/make_presubmit_diagram.py`` (from the repository root or
anywhere). Only the text between the two ``presubmit-diagram`` markers is
replaced; the prose around it is hand-written. ``tests/gui/presubmit`` fails when
the committed diagram differs from the table. Anchor: h11's
``docs/source/make-state-diagrams.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sleap_rtc_gui.presubmit.states import render_mermaid  # noqa: E402

__all__ = ["BEGIN", "DOC", "END", "main", "render_block"]

DOC = ROOT / "docs" / "presubmit.md"
BEGIN = "<!-- BEGIN presubmit-diagram (generated; do not edit) -->"
END = "<!-- END presubmit-diagram -->"


def render_block() -> str:
    """The generated part of the document, markers included."""
    return f"{BEGIN}\n```mermaid\n{render_mermaid()}```\n{END}"


def main() -> int:
    """Rewrite the diagram in :data:`DOC`; return a process exit status."""
    text = DOC.read_text(encoding="utf-8")
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        sys.stderr.write(f"{DOC}: markers {BEGIN!r} / {END!r} not found\n")
        return 1
    updated = text[:start] + render_block() + text[end + len(END) :]
    if updated != text:
        DOC.write_text(updated, encoding="utf-8")
        sys.stderr.write(f"updated {DOC}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
