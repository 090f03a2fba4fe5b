"""Permissions and hooks for the ``claude-code`` preset. ``preset = "claude-code"`` gives a Claude
Code agent a settings file, written outside its worktree (so it never dirties it), that asks
before pushes, ``rm -rf``, migrations and deploys, denies force-pushes, hard resets and edits of
the main checkout, routes every Edit/Write through ``cockpit guard`` (scope and worktree) and
every Stop through ``cockpit check`` (edits made through the shell), and registers the hook
recorder (:mod:`cockpit.core.hook_record`) on every hook event cockpit reads its status from.

The file is passed with ``--settings``, which Claude Code merges with the user's, the project's
and the local settings: hook lists from every source run together, so the user's own hooks keep
working. It does not set ``disableAllHooks``: a user who switched hooks off keeps them off (and
cockpit falls back to the screen and ``/proc`` for that agent), rather than cockpit turning the
user's and the project's hooks back on with its own (docs/presets.md).

``respawn --keep`` resumes the agent's conversation: :func:`prepare_command` with ``resume``
drops the task from the command (it is in the conversation already) and adds ``--resume <id>``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from typing import Any

from cockpit.core import hook_record, hook_state, worktrees
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


RECORD_TIMEOUT = 10
"""Seconds Claude Code gives the recorder (it takes a few tens of milliseconds)."""


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
    record = {"type": "command", "command": shlex.join(repo.recorder_command(spec.name)), "timeout": RECORD_TIMEOUT}
    hooks: dict[str, list[dict[str, Any]]] = {event: [{"hooks": [dict(record)]}] for event in hook_record.EVENTS}
    hooks["PreToolUse"].insert(0, {"matcher": "Edit|Write|MultiEdit|NotebookEdit",
                                   "hooks": [{"type": "command",
                                              "command": _cockpit(repo, "guard", "--agent", spec.name)}]})
    hooks["Stop"].insert(0, {"hooks": [{"type": "command", "command": _cockpit(repo, "check", "--agent", spec.name)}]})
    return {"permissions": {"ask": list(ASK), "deny": list(DENY) + deny_edits}, "hooks": hooks}


def settings_path(repo: Repository, name: str) -> Path:
    return repo.layout.agent_dir(name) / "claude-settings.json"


SESSION_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
"""A Claude Code session id (a UUID): nothing else is ever put on a resume command line."""
TASK_REFERENCES = ('"$COCKPIT_TASK"', '"${COCKPIT_TASK}"', "$COCKPIT_TASK", "${COCKPIT_TASK}")


def resume_command(command: str, session_id: str) -> str:
    """``command`` resuming the conversation ``session_id``: the task is dropped (the conversation
    has it; passing it again would send it as a new prompt) and ``--resume <id>`` added."""
    if not SESSION_ID.match(session_id):
        raise ValueError(f"not a session id: {session_id!r}")
    for reference in TASK_REFERENCES:
        command = command.replace(reference, "")
    return f"{command.rstrip()} --resume {session_id}"


def resumable(repo: Repository, spec: AgentSpec) -> str | None:
    """The conversation ``respawn --keep`` continues: the session the agent's hooks reported last,
    when it is a session id and its transcript is still there (``claude --resume`` of a missing
    one exits at once, which would count as a failure). None for other presets."""
    if spec.preset != "claude-code":
        return None
    state = hook_state.read(hook_state.hooks_file(repo.layout.agent_dir(spec.name)))
    if not state.session_id or not SESSION_ID.match(state.session_id):
        return None
    if not state.transcript or not Path(state.transcript).is_file():
        return None
    return state.session_id


def prepare_command(repo: Repository, spec: AgentSpec, resume: str | None = None) -> str:
    """Write the preset's files and return the shell command to run for ``spec``; ``resume``: the
    Claude Code session to continue (``respawn --keep``)."""
    if spec.preset != "claude-code":
        return spec.command
    path = settings_path(repo, spec.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(claude_settings(repo, spec), indent=2) + "\n")
    os.replace(tmp, path)
    command = resume_command(spec.command, resume) if resume else spec.command
    return f"{command} --settings {shlex.quote(str(path))}"
