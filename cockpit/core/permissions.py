"""Permissions for the ``claude-code`` preset. ``preset = "claude-code"`` gives a Claude Code agent a settings file,
written outside its worktree (so it never dirties it), that asks before pushes, ``rm -rf``,
migrations and deploys, denies force-pushes, hard resets and edits of the main checkout, and
routes every Edit/Write through ``cockpit guard`` (scope and worktree) and every Stop through
``cockpit check`` (edits made through the shell).
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

from cockpit.core import worktrees
from cockpit.core.repository import Repository
from cockpit.core.spec import AgentSpec

ASK = [
    "Bash(git push:*)",
    "Bash(rm -rf:*)", "Bash(rm -fr:*)", "Bash(rm -r -f:*)",
    "Bash(*migrate*)", "Bash(*migration*)",
    "Bash(*deploy*)",
]
DENY = [
    "Bash(git push --force:*)", "Bash(git push -f:*)", "Bash(git push --force-with-lease:*)",
    "Bash(git push * --force*)", "Bash(git push * -f*)",
    "Bash(git reset --hard:*)",
]


def _cockpit(repo: Repository, *args: str) -> str:
    return shlex.join(repo.cockpit_command(*args))


def claude_settings(repo: Repository, spec: AgentSpec) -> dict[str, Any]:
    """The Claude Code settings for one agent (``claude --settings <file>``)."""
    root = repo.root
    # Edit rules cannot say "outside this directory", and deny beats allow: deny each top-level
    # entry of the main checkout (the worktree lives under .cockpit/, which is not listed), and
    # leave everything else to the guard hook.
    tops = sorted({p.split("/", 1)[0] for p in worktrees.run(root, "ls-files").splitlines() if p})
    deny_edits = [f"Edit(/{root}/.git/**)"]
    for top in tops:
        target = root / top
        deny_edits.append(f"Edit(/{target}/**)" if target.is_dir() else f"Edit(/{target})")
    return {
        "permissions": {"ask": list(ASK), "deny": list(DENY) + deny_edits},
        "hooks": {
            "PreToolUse": [{"matcher": "Edit|Write|MultiEdit|NotebookEdit",
                            "hooks": [{"type": "command", "command": _cockpit(repo, "guard", "--agent", spec.name)}]}],
            "Stop": [{"hooks": [{"type": "command", "command": _cockpit(repo, "check", "--agent", spec.name)}]}],
        },
    }


def settings_path(repo: Repository, name: str) -> Path:
    return repo.layout.agent_dir(name) / "claude-settings.json"


def prepare_command(repo: Repository, spec: AgentSpec) -> str:
    """Write the preset's files and return the shell command to run for ``spec``."""
    if spec.preset != "claude-code":
        return spec.command
    path = settings_path(repo, spec.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(claude_settings(repo, spec), indent=2) + "\n")
    os.replace(tmp, path)
    return f"{spec.command} --settings {shlex.quote(str(path))}"
