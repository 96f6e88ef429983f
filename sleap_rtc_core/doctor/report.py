"""A check's result and the one-screen report of them all."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["Check", "Verdict", "any_failed", "format_report"]


class Verdict(StrEnum):
    """What a check concluded."""

    OK = "OK"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True, slots=True)
class Check:
    """The result of one check.

    Attributes:
        name: Stable name (``websocket``, ``mount`` …) scripts can match on.
        ok: ``True`` passed, ``False`` failed, ``None`` skipped.
        detail: What was found, in one line.
        advice: What to do; empty when there is nothing to do.
    """

    name: str
    ok: bool | None
    detail: str
    advice: str = ""

    @property
    def verdict(self) -> Verdict:
        """``OK``, ``FAIL`` or ``SKIP``."""
        if self.ok is None:
            return Verdict.SKIP
        return Verdict.OK if self.ok else Verdict.FAIL

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready object: ``name``, ``verdict``, ``ok``, ``detail``,
        ``advice``."""
        return {
            "name": self.name,
            "verdict": self.verdict.value,
            "ok": self.ok,
            "detail": self.detail,
            "advice": self.advice,
        }

    def line(self) -> str:
        """One line: verdict, name, what was found and what to do."""
        text = f"{self.verdict.value:<4}  {self.name:<11}  {self.detail}"
        return f"{text}  -> {self.advice}" if self.advice else text


def any_failed(checks: Iterable[Check]) -> bool:
    """Whether any check failed (skipped ones do not count)."""
    return any(c.ok is False for c in checks)


def format_report(checks: Sequence[Check]) -> str:
    """The human report: one line per check and a summary line."""
    lines = [c.line() for c in checks]
    failed = sum(c.ok is False for c in checks)
    skipped = sum(c.ok is None for c in checks)
    tail = f" ({skipped} skipped)" if skipped else ""
    if failed:
        lines.append(f"{failed} of {len(checks)} checks failed{tail}")
    else:
        lines.append(f"all {len(checks) - skipped} checks passed{tail}")
    return "\n".join(lines) + "\n"
