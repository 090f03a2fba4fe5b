"""``cockpit demo``: a throw-away repository with four scripted agents, spawned and running; the
builder's worktree is set up first (a ``.env`` copied by ``.worktreeinclude``, a setup step, a port).

Needs nothing but git, tmux and Python. The agents are small stdlib scripts shipped in
``cockpit/core/demo_agents`` and committed into the demo repository. It drives the engine
through the public :class:`~cockpit.core.fleet.Fleet`, as the CLI does, so it lives beside the
CLI rather than inside the engine.
"""

from __future__ import annotations

import shlex
import sys
import tempfile
from importlib import resources
from pathlib import Path

from cockpit.core import worktrees
from cockpit.core.errors import CockpitError
from cockpit.core.fleet import Fleet

AGENTS = {
    "builder": ("builder.py", "Build the app, continuously", ["src/app/**"]),
    "tester": ("tester.py", "Run the auth test-suite", ["tests/**"]),
    "asker": ("asker.py", "Plan the schema migration (asks before applying)", ["db/**"]),
    "rogue": ("rogue.py", "Add the rogue feature under src/rogue", ["src/rogue/**"]),
}


SET_UP = "builder"
"""The agent whose worktree is set up: a copied .env (.worktreeinclude), a setup step, a port."""


def _config(python: str) -> str:
    lines = ["# cockpit demo fleet: four scripted agents.", "[cockpit]", 'base = "main"', "max_failures = 2", ""]
    for name, (script, task, scope) in AGENTS.items():
        command = f"{shlex.quote(python)} -u demo_agents/{script}"
        lines += ["[[agent]]", f'name = "{name}"', f"command = {_toml_str(command)}", f"task = {_toml_str(task)}",
                  "scope = [" + ", ".join(_toml_str(s) for s in scope) + "]", ""]
        if name == SET_UP:  # see docs/worktree-environment.md
            setup = f"{shlex.quote(python)} -u demo_agents/setup_env.py"
            lines += ["[agent.worktree]", f"setup = [{_toml_str(setup)}]", "ports = 1", ""]
    return "\n".join(lines)


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def create_demo(directory: Path | None = None, spawn: bool = True) -> Fleet:
    """Create the demo repository (in a new temp directory by default) and start its agents."""
    root = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="cockpit-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise CockpitError(f"{root} is not empty: give an empty or new directory")
    worktrees.run(root, "init", "--quiet", "--initial-branch=main")
    worktrees.run(root, "config", "user.name", "cockpit demo")
    worktrees.run(root, "config", "user.email", "demo@cockpit.invalid")
    agents_dir = root / "demo_agents"
    agents_dir.mkdir()
    package = resources.files("cockpit.core.demo_agents")
    for script in [*(script for script, _, _ in AGENTS.values()), "_guard.py", "setup_env.py"]:
        (agents_dir / script).write_text(package.joinpath(script).read_text())
    (root / "README.md").write_text("# demo\n\nA throw-away repository made by 'cockpit demo'.\n")
    (root / "src" / "app").mkdir(parents=True)
    (root / "src" / "app" / "config.py").write_text("DEBUG = False\n")
    (root / "cockpit.toml").write_text(_config(sys.executable))
    (root / ".gitignore").write_text(".env\n.demo-deps/\n__pycache__/\n")  # (the agents import _guard)
    (root / ".worktreeinclude").write_text("# ignored files every new worktree gets from the main checkout\n.env\n")
    worktrees.run(root, "add", "--all")
    worktrees.run(root, "commit", "--quiet", "-m", "demo: initial commit")
    (root / ".env").write_text("DEMO_API_URL=http://localhost:8080\nDEMO_TOKEN=not-a-real-secret\n")  # ignored
    fleet = Fleet(root)
    if spawn:
        fleet.up()
    return fleet
