"""``cockpit guard``: the PreToolUse hook that keeps a Claude Code agent's file edits inside its
own worktree and scope. It reads the hook's JSON (``tool_name``, ``tool_input.file_path`` or
``notebook_path``, ``cwd``) and answers with a deny decision, or nothing to let the normal
permission flow go on."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cockpit.core.repository import Repository
from cockpit.core.scope import in_scope


def _agent_from_cwd(repo: Repository, cwd: str) -> str | None:
    try:
        rel = Path(os.path.realpath(cwd)).relative_to(repo.layout.worktrees.resolve())
    except ValueError:
        return None
    return rel.parts[0] if rel.parts else None


def decide(repo: Repository, payload: dict[str, Any], agent: str | None = None) -> str | None:
    """The reason to deny this tool call, or None to let it through."""
    tool_input = payload.get("tool_input") or {}
    target = tool_input.get("file_path") or tool_input.get("notebook_path") or tool_input.get("path")
    if not target:
        return None
    cwd = payload.get("cwd") or os.getcwd()
    name = agent or _agent_from_cwd(repo, cwd)
    if name is None:
        return "cockpit guard: cannot tell which agent this is (run from its worktree or pass --agent)"
    worktree = repo.layout.worktree(name).resolve()
    path = Path(os.path.realpath(Path(cwd) / target))
    try:
        rel = path.relative_to(worktree).as_posix()
    except ValueError:
        return f"{path} is outside agent {name!r}'s worktree {worktree}: edit only files in your own worktree"
    record = repo.history().records.get(name)
    scope = list(record.spec.scope) if record else []
    if not in_scope(rel, scope):
        return f"{rel} is outside agent {name!r}'s scope ({', '.join(scope)}): leave it to the agent that owns it"
    return None


def deny_response(reason: str) -> dict[str, Any]:
    return {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
                                   "permissionDecisionReason": reason}}
