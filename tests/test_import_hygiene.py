"""The engine must not know the UI exists: importing every core module loads no Textual or Rich."""

import pkgutil
import subprocess
import sys

import cockpit.core


def test_core_imports_no_ui() -> None:
    modules = [f"cockpit.core.{m.name}" for m in pkgutil.walk_packages(cockpit.core.__path__)]
    assert "cockpit.core.fleet" in modules and "cockpit.core.session_log" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich') or m.startswith('cockpit.ui'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"core pulled in UI modules: {result.stdout}"


def test_cli_module_imports_no_ui_until_needed() -> None:
    code = "import sys, cockpit.cli; print([m for m in sys.modules if m.startswith(('textual', 'rich'))])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
