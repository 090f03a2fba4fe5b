"""An agent's setup, teardown and stop commands (``[worktree]`` / ``[agent.worktree]``).

**Setup** runs inside the agent's tmux session, before the agent's command, so its output is in
session.log and on the tile: cockpit writes the plan (commands, timeout, worktree) to
``.cockpit/agents/<name>/setup.json`` — outside the worktree — and the pane's wrapper runs
:mod:`cockpit.core.setup_runner` on it (under the write sandbox when the agent has one). The
wrapper writes ``running`` to ``setup-status`` first and the runner appends its outcome
(``ok``, or ``failed<TAB>reason``); the exit observer turns a failure into the agent's
``reason`` (``setup: uv sync exited 1``). A worktree whose last setup did not end ``ok`` is set
up again on its next ``respawn --keep``; one that did is not, unless asked.

**Teardown** (before a worktree is removed) and **stop** (when the agent is killed or the fleet
goes down) run from cockpit itself, in the worktree, with the agent's environment, their output
appended to its session.log; a failure is returned for the caller to record, never raised.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cockpit.core import setup_runner
from cockpit.core.layout import Layout
from cockpit.core.setup_runner import Outcome

PLAN_FILE = "setup.json"
STATUS_FILE = "setup-status"
RUNNING, OK, FAILED = "running", "ok", "failed"


def plan_file(layout: Layout, name: str) -> Path:
    return layout.agent_dir(name) / PLAN_FILE


def status_file(layout: Layout, name: str) -> Path:
    return layout.agent_dir(name) / STATUS_FILE


@dataclass(frozen=True)
class Status:
    """The last setup of the agent's current worktree: ``running``, ``ok``, ``failed`` or None
    (never set up: restored, or made before setup existed)."""

    state: str | None
    reason: str | None = None


def status(layout: Layout, name: str) -> Status:
    try:
        lines = [line for line in status_file(layout, name).read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return Status(None)
    if not lines:
        return Status(None)
    state, _, reason = lines[-1].partition("\t")
    if state not in (RUNNING, OK, FAILED):
        return Status(None)
    return Status(state, reason or None)


def running(layout: Layout, name: str) -> bool:
    """Whether the agent's pane is in its setup (the caller knows the pane is alive)."""
    return status(layout, name).state == RUNNING


def failure(layout: Layout, name: str, exit_code: int | None) -> str | None:
    """Why the agent's pane ended in its setup, or None when the setup is not why (it passed, or
    there was none): the runner's reason, or an interrupted setup's."""
    found = status(layout, name)
    if found.state == FAILED:
        return found.reason or "setup failed"
    if found.state == RUNNING:
        return f"setup: interrupted (exit {exit_code})" if exit_code is not None else "setup: interrupted"
    return None


def mark(layout: Layout, name: str, state: str | None) -> None:
    """Set the worktree's setup state by hand: ``ok`` for a worktree with nothing to set up,
    None to forget (a new or restored worktree)."""
    path = status_file(layout, name)
    if state is None:
        path.unlink(missing_ok=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{state}\n")


def prepare(layout: Layout, name: str, commands: Sequence[str], timeout: float) -> list[str] | None:
    """Write the setup plan and return the argv the wrapper runs for it (None: no setup, and the
    worktree counts as set up)."""
    if not commands:
        mark(layout, name, OK)
        plan_file(layout, name).unlink(missing_ok=True)
        return None
    path = plan_file(layout, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"commands": list(commands), "timeout": timeout,
                               "worktree": str(layout.worktree(name))}, indent=1))
    os.replace(tmp, path)
    mark(layout, name, None)
    return [sys.executable, "-I", str(Path(setup_runner.__file__).resolve()), str(path)]


def run(kind: str, commands: Sequence[str], timeout: float, worktree: Path, log: Path,
        env: Mapping[str, str], prefix: Sequence[str] = ()) -> Outcome:
    """Run ``teardown`` or ``stop`` commands in ``worktree``, their output appended to ``log``."""
    if not commands:
        return Outcome()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(b"\n")
        return setup_runner.run_commands(kind, commands, timeout, worktree, out, env=env, prefix=prefix)
