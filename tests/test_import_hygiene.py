"""The engine must not know the UI exists: importing every core module loads no Textual or Rich."""

import pkgutil
import subprocess
import sys
from pathlib import Path

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


def test_importing_any_module_writes_nothing_and_returns(tmp_path) -> None:
    """Doc tools, test collectors and IDE indexers import modules: each must return at once and
    write nothing, the demo agents included (they used to run, rewriting README.md)."""
    import cockpit
    modules = [m.name for m in pkgutil.walk_packages(cockpit.__path__, prefix="cockpit.")]
    assert "cockpit.core.demo_agents.rogue" in modules and "cockpit.ui.app" in modules
    (tmp_path / "README.md").write_text("mine\n")
    code = (f"import importlib\nfor name in {modules!r}: importlib.import_module(name)\n"
            f"print('imported', {len(modules)})\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"imported {len(modules)}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]
    assert (tmp_path / "README.md").read_text() == "mine\n"


def test_a_demo_agent_run_by_hand_refuses_outside_its_worktree(tmp_path) -> None:
    import cockpit.core.demo_agents as agents
    (tmp_path / "README.md").write_text("mine\n")
    for script in ("rogue.py", "builder.py", "asker.py", "tester.py", "setup_env.py"):
        for env in ({}, {"COCKPIT_WORKTREE": "/somewhere/else"}):
            result = subprocess.run([sys.executable, str(Path(agents.__file__).parent / script)], cwd=tmp_path,
                                    capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
                                    env={"PATH": "/usr/bin:/bin", **env})
            assert result.returncode == 2 and "only inside its own cockpit worktree" in result.stderr, (script, result)
            assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]
    assert (tmp_path / "README.md").read_text() == "mine\n"
