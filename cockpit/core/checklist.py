"""The pre-spawn checklist: isolation verified before a batch of agents is dispatched.

Before ``up``, or any batch of two or more spawns, every agent is checked for its own worktree
path, its own branch, a writable log directory outside every worktree, a base that exists, a
writable event log and a failure limit; overlapping scopes are warnings. All pass: the exact
announcement ``All N dispatches use isolation: worktree — verified`` is printed and logged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cockpit.core import worktrees
from cockpit.core.errors import CockpitError
from cockpit.core.layout import branch_for
from cockpit.core.scope import overlap
from cockpit.core.spec import AgentSpec

if TYPE_CHECKING:
    from cockpit.core.fleet import Fleet


@dataclass(frozen=True)
class Item:
    agent: str
    check: str
    ok: bool
    detail: str = ""


@dataclass
class Checklist:
    n: int
    items: list[Item] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(item.ok for item in self.items)

    @property
    def failures(self) -> list[Item]:
        return [item for item in self.items if not item.ok]

    @property
    def announcement(self) -> str:
        if self.n < 2:
            return f"Not applicable because N={self.n}"
        if self.passed:
            return f"All {self.n} dispatches use isolation: worktree — verified"
        return f"Refusing to dispatch {self.n} agents: {len(self.failures)} isolation check(s) failed"

    def lines(self) -> list[str]:
        out = [self.announcement]
        out += [f"  FAILED {i.agent}: {i.check}: {i.detail}" for i in self.failures]
        out += [f"  warning: {w}" for w in self.warnings]
        return out


def _writable(path: Path) -> bool:
    probe = path
    while not probe.exists():
        probe = probe.parent
    return probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)


def _inside(path: Path, parent: Path) -> bool:
    try:
        path.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


class ChecklistFailed(CockpitError):
    """A batch was refused; ``checklist`` says which items failed."""

    def __init__(self, checklist: Checklist) -> None:
        super().__init__(checklist.announcement)
        self.checklist = checklist


def announce(fleet: "Fleet", checklist: Checklist) -> None:
    """Log the result as an event; raise :class:`ChecklistFailed` if an item failed."""
    fleet.events.append("checklist", None, n=checklist.n, passed=checklist.passed, message=checklist.announcement,
                        failures=[f"{i.agent}: {i.check}: {i.detail}" for i in checklist.failures],
                        warnings=checklist.warnings)
    if not checklist.passed:
        raise ChecklistFailed(checklist)


def run_checklist(fleet: "Fleet", specs: list[AgentSpec], base: str | None = None) -> Checklist:
    """Check every agent in ``specs`` against each other and against what already exists."""
    layout = fleet.layout
    result = Checklist(n=len(specs))
    existing = worktrees.list_worktrees(fleet.root)
    worktree_paths = [e.path for e in existing] + [layout.worktree(s.name) for s in specs]
    seen_paths: dict[Path, str] = {}
    for spec in specs:
        name = spec.name
        add = result.items.append
        path = layout.worktree(name)
        clash = seen_paths.get(path)
        distinct = clash is None and path.resolve() != fleet.root.resolve() and not path.exists()
        add(Item(name, "own worktree path", distinct,
                 f"{path} " + ("is shared with " + clash if clash else "already exists" if path.exists() else "")))
        seen_paths[path] = name
        branch = branch_for(name, 1)
        at = next((e.path for e in existing if e.branch == branch), None)
        taken = worktrees.branch_exists(fleet.root, branch)
        add(Item(name, "own branch", at is None and not taken,
                 f"{branch} is checked out at {at}" if at else f"{branch} already exists" if taken else branch))
        stale = fleet.tmux.has_session(name)
        add(Item(name, "own tmux session", not stale,
                 f"session {name!r} already exists on socket {fleet.tmux.socket_name}" if stale else name))
        log_dir = layout.agent_dir(name)
        in_worktree = [str(w) for w in worktree_paths if w.resolve() != fleet.root.resolve() and _inside(log_dir, w)]
        add(Item(name, "log directory writable and outside every worktree", _writable(log_dir) and not in_worktree,
                 f"{log_dir} is inside {in_worktree[0]}" if in_worktree else
                 f"{log_dir}" + ("" if _writable(log_dir) else " is not writable")))
    try:
        base_ok, base_detail = True, fleet._resolve_base(base)[0]
    except CockpitError as exc:  # reported as a failed item, not raised
        base_ok, base_detail = False, str(exc)
    result.items.append(Item("*", "base ref exists", base_ok, base_detail))
    events = layout.events
    result.items.append(Item("*", "event log writable", _writable(events) and (not events.exists() or os.access(events, os.W_OK)),
                             str(events)))
    try:
        limit = fleet.config.max_failures
        result.items.append(Item("*", "max_failures set", limit >= 1, f"max_failures = {limit}"))
    except CockpitError as exc:
        result.items.append(Item("*", "max_failures set", False, str(exc)))
    tracked = worktrees.run(fleet.root, "ls-files").splitlines()
    for i, a in enumerate(specs):
        for b in specs[i + 1:]:
            shared = overlap(a.scope, b.scope, tracked)
            if shared:
                result.warnings.append(f"scopes of {a.name} and {b.name} overlap: {'; '.join(shared)}")
    return result
