"""The layering promises: the core never imports Qt, the protocol never does I/O."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = ROOT / "sleap_rtc_core" / "protocol"
IO_MODULES = {"asyncio", "websockets", "aiortc", "zmq", "socket", "selectors"}


def _protocol_files() -> list[Path]:
    return sorted(PROTOCOL.rglob("*.py"))


@pytest.mark.parametrize("path", _protocol_files(), ids=lambda p: p.name)
def test_protocol_has_no_async_and_no_io_imports(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        assert not isinstance(node, ast.AsyncFunctionDef | ast.Await), (
            f"{path.name}:{node.lineno} uses async"
        )
        if isinstance(node, ast.Import):
            names = {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = {node.module.split(".")[0]}
        else:
            continue
        assert not names & IO_MODULES, f"{path.name}:{node.lineno} imports {names}"


def test_import_linter_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_protocol_imports_without_qt_or_torch() -> None:
    code = (
        "import sys, sleap_rtc_core.protocol, sleap_rtc_core.errors;"
        "bad = [m for m in ('PySide6', 'torch', 'qasync', 'asyncio', 'sleap_nn')"
        " if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _exception_classes() -> list[tuple[Path, str, list[str]]]:
    """Every class in the packages whose bases look like exceptions."""
    found = []
    for package in ("sleap_rtc_core", "sleap_rtc_gui"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.ClassDef):
                    continue
                bases = [ast.unparse(b) for b in node.bases]
                if any(b.endswith(("Error", "Exception")) for b in bases) or (
                    node.name.endswith(("Error", "Refusal", "Failure"))
                    and bases
                    and "Event" not in bases
                ):
                    found.append((path, node.name, bases))
    return found


def test_every_exception_is_in_the_tree_of_errors_py() -> None:
    """A newcomer finds every public error in ``errors.py``'s drawn tree; the
    private ones a module raises for itself still derive from the root."""
    from sleap_rtc_core import errors

    tree = errors.__doc__ or ""
    for path, name, _bases in _exception_classes():
        module = path.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
        cls = getattr(__import__(module, fromlist=[name]), name)
        if not isinstance(cls, type) or not issubclass(cls, BaseException):
            continue  # a message or an event named ...Error
        assert issubclass(cls, errors.SleapRTCError), f"{module}.{name}"
        if not name.startswith("_"):
            assert path.name == "errors.py", f"{module}.{name} lives outside errors.py"
            assert name in tree or name == "SleapRTCError", f"{name} not drawn"
