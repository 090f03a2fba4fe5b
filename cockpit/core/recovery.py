"""Noticing what happened while nobody watched, and finishing what a crash interrupted.

Called on every read of the fleet. It writes only under the repository lock and only when it
can take the lock at once: an operation holding the lock is alive, and its ``*.started``
event is not a crash.
"""

from __future__ import annotations

from typing import Any

from cockpit.core import archive, lifecycle, pending, provision, sandbox, workspace, worktrees
from cockpit.core.agent import halt_reason
from cockpit.core.errors import CockpitError, LockBusy
from cockpit.core.repository import Repository
from cockpit.core.sessions import PaneState
from cockpit.core.state import LIVE, PENDING


def _needs_attention(repo: Repository, panes: dict[str, PaneState]) -> bool:
    history = repo.history()
    if history.pending:
        return True
    for record in history.records.values():
        if record.discarded or record.state not in LIVE:
            continue
        pane = panes.get(record.name)
        if pane is None or pane.dead:
            return True
    return False


def observe(repo: Repository, panes: dict[str, PaneState], wait: float = 0) -> bool:
    """Record exits and apply the failure rule; recover interrupted operations.

    ``wait`` is how long to wait for the lock (0: skip if another process holds it — it will
    look itself). Returns True when it changed something (the caller then re-reads tmux).
    """
    if not _needs_attention(repo, panes):
        return False
    try:
        with repo.locked(timeout=wait):
            history = repo.history()
            for name, started in list(history.pending.items()):
                _recover(repo, name, started.type, started.data)
            panes = repo.tmux.panes()
            for record in list(repo.history().records.values()):
                if record.discarded or record.state not in LIVE:
                    continue
                pane = panes.get(record.name)
                if pane is None:
                    repo.events.append("killed", record.name,
                                       reason="tmux session ended while cockpit was not watching")
                elif pane.dead:
                    code = repo.exit_status(record.name, pane)
                    setup = provision.failure(repo.layout, record.name, code)
                    if setup is not None:  # its setup failed: the agent never started
                        code = code or 1
                        repo.events.append("exited", record.name, exit_code=code, reason=setup, setup="failed")
                    else:
                        repo.events.append("exited", record.name, exit_code=code)
                    if code != 0:
                        apply_failure_rule(repo, record.name)
            return True
    except LockBusy:
        return False


def apply_failure_rule(repo: Repository, name: str) -> None:
    """Halt ``name`` once it has failed ``max_failures`` times, and every agent that depends on
    it (``after``, transitively). Independent agents are untouched. Caller holds the lock."""
    record = repo.history().records.get(name)
    if record is None or record.failures < repo.max_failures or record.state == "halted":
        return
    # Dependents first, furthest downstream first, and ``name`` itself last: whoever reads the
    # log and sees ``name`` halted also sees every agent that waited on it halted, never running.
    for dependent in reversed(dependents(repo, name)):
        _halt(repo, dependent, reason=halt_reason(0, repo.max_failures, name), blocked_by=name)
    _halt(repo, name, reason=f"failed {record.failures} time(s) (max_failures = {repo.max_failures})")


def dependents(repo: Repository, name: str) -> list[str]:
    """Live (not discarded) agents that list ``name`` in ``after``, directly or transitively."""
    records = {n: r for n, r in repo.history().records.items() if not r.discarded}
    found: list[str] = []
    frontier = [name]
    while frontier:
        upstream = frontier.pop()
        for other, record in records.items():
            if upstream in record.spec.after and other not in found and other != name:
                found.append(other)
                frontier.append(other)
    return found


def _halt(repo: Repository, name: str, reason: str, blocked_by: str | None = None) -> None:
    record = repo.history().records.get(name)
    if record is None or record.state == "halted":
        return
    lifecycle.end_session(repo, name)
    if record.state == PENDING:
        pending.release_environment(repo, name)
    repo.events.append("halted", name, reason=reason, blocked_by=blocked_by, previous=record.state)


def release_dependents(repo: Repository, name: str) -> None:
    """After a halted agent is respawned, its halted dependents may be respawned again."""
    for other, record in repo.history().records.items():
        if not record.discarded and record.state == "halted" and record.blocked_by == name:
            repo.events.append("killed", other, reason=f"released: {name!r} was respawned")


def _recover(repo: Repository, name: str, kind: str, data: dict[str, Any]) -> None:
    """Finish (discard) or roll back (spawn, respawn, restore) an operation a crash interrupted."""
    layout = repo.layout
    worktree = layout.worktree(name)
    record = repo.history().records.get(name)
    try:
        if kind == "discard.started":
            if record is not None and not record.discarded:
                if not _archived_since_start(repo, name):
                    archive.write(repo, name, record, "discard")
                lifecycle.teardown(repo, name, record.branch)
                workspace.close_ports(repo, name)
            repo.events.append("discarded", name, recovered=True)
        elif kind in ("spawn.started", "respawn.started", "restore.started"):
            new_branch = data.get("branch")
            at = worktrees.branch_checked_out_at(repo.root, new_branch) if new_branch else None
            at = at or sandbox.detached_checkout(layout, name, new_branch)
            old_branch = record.branch if record is not None and not record.discarded else None
            if kind == "respawn.started" and data.get("keep"):
                # The process restart was interrupted: the worktree and branch are untouched.
                repo.events.append("respawn.failed", name, error="interrupted", removed_agent=False)
                return
            if old_branch is None or new_branch != old_branch:
                lifecycle.end_session(repo, name)
            if at is not None and at.resolve() == worktree.resolve() and new_branch != old_branch:
                worktrees.remove_worktree(repo.root, worktree)
                sandbox.after_teardown(repo, name)
            if new_branch and new_branch != old_branch and worktrees.branch_exists(repo.root, new_branch):
                if worktrees.branch_checked_out_at(repo.root, new_branch) is None:
                    worktrees.delete_branch(repo.root, new_branch)
            if kind == "respawn.started" and old_branch and worktree.is_dir():
                repo.events.append("respawn.failed", name, error="interrupted", removed_agent=False)
                repo.events.append("killed", name, reason="respawn was interrupted")
            else:
                workspace.close_ports(repo, name)
                repo.events.append(kind.replace(".started", ".failed"), name, error="interrupted", removed_agent=True)
        else:
            repo.events.append(kind.replace(".started", ".failed"), name, error="interrupted")
    except CockpitError as exc:
        repo.events.append("recovery.failed", name, operation=kind, error=str(exc))


def _archived_since_start(repo: Repository, name: str) -> bool:
    """Whether the interrupted discard got as far as recording its archive."""
    for event in reversed(repo.events.all()):
        if event.agent != name:
            continue
        if event.type == "archived":
            return True
        if event.type == "discard.started":
            return False
    return False
