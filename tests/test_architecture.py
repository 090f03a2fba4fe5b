"""The engine's shape, checked on every ``make test``: the import layers (import-linter, contracts
in pyproject.toml), its types (mypy, config in pyproject.toml), no engine module reaching into
another's private names, and modules small enough to read in one sitting."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
CORE = PROJECT / "cockpit" / "core"
MAX_LINES = 500


def _tool(name: str) -> str:
    """A console script of the environment running the tests (the venv's), else from PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is not installed: it is in the test extras ('make setup' installs them)"
    return found


def test_import_layers_hold() -> None:
    """cli → ui → core, and inside core the commands over the parts over the repository context
    over the primitives; no engine module imports fleet.py (see [tool.importlinter])."""
    result = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=PROJECT, capture_output=True, text=True,
                            timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_engine_type_checks() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=PROJECT, capture_output=True, text=True,
                            timeout=600, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def _private_reaches(path: Path) -> list[str]:
    """``from cockpit... import _name`` and ``thing._name`` (other than on self or cls) in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cockpit"):
            found += [f"{path.name}:{node.lineno}: from {node.module} import {alias.name}"
                      for alias in node.names if alias.name.startswith("_") and not alias.name.startswith("__")]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_engine_module_uses_another_modules_private_names() -> None:
    modules = sorted(p for p in CORE.glob("*.py"))
    assert {"fleet.py", "lifecycle.py", "repository.py"} <= {p.name for p in modules}
    found = [reach for path in modules for reach in _private_reaches(path)]
    assert found == []


def test_the_private_name_check_sees_a_reach(tmp_path: Path) -> None:
    """The check above can fail: it finds both kinds of reach."""
    sample = tmp_path / "sample.py"
    sample.write_text("from cockpit.core.fleet import _crash_point\n\ndef f(fleet):\n    return fleet._archive\n")
    assert _private_reaches(sample) == ["sample.py:1: from cockpit.core.fleet import _crash_point",
                                        "sample.py:4: fleet._archive"]


def test_engine_modules_stay_readable_in_one_sitting() -> None:
    """One concern per module: none over 500 lines (split along a seam instead)."""
    sizes = {path.name: len(path.read_text().splitlines()) for path in CORE.glob("*.py")}
    assert sizes["fleet.py"] > 100
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_the_command_line_modules_stay_readable_in_one_sitting() -> None:
    """The same limit for the modules beside the engine and the UI (the CLI, its parts, the demo)."""
    sizes = {path.name: len(path.read_text().splitlines()) for path in (PROJECT / "cockpit").glob("*.py")}
    assert "cli.py" in sizes and "cli_parser.py" in sizes
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
