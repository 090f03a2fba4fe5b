"""The pre-spawn checklist: isolation verified before a batch of agents is dispatched.

Before ``up`` starts two or more agents, every one is checked the way it will be started: a new
agent for its own new worktree path and branch, a killed agent restarted in place (``respawn
--keep``) for its own existing worktree and its branch checked out nowhere else; each for its
own tmux session, a write sandbox that runs (when it asks for one) and a writable log directory
outside every worktree. Then a base that exists (when an agent is cut from it), a writable event
log and a failure limit, a usable ``.worktreeinclude`` and a free block of ports for each agent
that needs one; overlapping scopes and include patterns that match nothing are warnings. All
pass: the exact announcement ``All N dispatches use isolation: worktree — verified`` is printed
and logged; otherwise nothing of the batch starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cockpit.core import include, ports, sandbox, worktrees
from cockpit.core.errors import CockpitError
from cockpit.core.layout import branch_for
from cockpit.core.repository import Repository
from cockpit.core.scope import overlap
from cockpit.core.spec import AgentSpec
from cockpit.core.state import Record


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
    notes: list[str] = field(default_factory=list)
    """What was checked and found good, printed under the announcement (each host's state)."""
    remote: bool = False
    """Agents on hosts are in the batch: their hosts were checked (cockpit.core.host_checklist),
    and a failed host refuses the batch even when it is a batch of one."""

    @property
    def passed(self) -> bool:
        return all(item.ok for item in self.items)

    @property
    def failures(self) -> list[Item]:
        return [item for item in self.items if not item.ok]

    @property
    def applies(self) -> bool:
        """Whether the checklist runs at all: for a batch of two or more, or of one that starts
        an agent on a host."""
        return self.n >= 2 or (self.remote and self.n >= 1)

    @property
    def announcement(self) -> str:
        if not self.applies:
            return f"Not applicable because N={self.n}"
        if self.passed:
            return f"All {self.n} dispatches use isolation: worktree — verified"
        return f"Refusing to dispatch {self.n} agents: {len(self.failures)} isolation check(s) failed"

    def lines(self) -> list[str]:
        """What to print: the announcement, then each failure and warning. A batch of one is
        not checked, so it shows why (and no item: nothing was refused)."""
        if not self.applies:
            return [f"{self.announcement} {NOT_APPLICABLE_NOTE}"]
        out = [self.announcement]
        out += [f"  {note}" for note in self.notes]
        out += [f"  FAILED {i.agent}: {i.check}: {i.detail}" for i in self.failures]
        out += [f"  warning: {w}" for w in self.warnings]
        return out


NOT_APPLICABLE_NOTE = "(the pre-spawn checklist runs for batches of two or more)"


def _creatable(path: Path) -> bool:
    """Whether a directory at ``path`` exists and is writable, or can be created."""
    probe = path
    while not probe.exists():
        probe = probe.parent
    return probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)


def _appendable(path: Path) -> bool:
    """Whether the file ``path`` can be appended to: an existing regular file that is writable,
    or a new one in a directory that is (or can be) created."""
    if path.exists() or path.is_symlink():
        return path.is_file() and os.access(path, os.W_OK)
    return _creatable(path.parent)


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


def announce(repo: Repository, checklist: Checklist) -> None:
    """Log the result as an event; raise :class:`ChecklistFailed` if an item failed."""
    repo.events.append("checklist", None, n=checklist.n, passed=checklist.passed, message=checklist.announcement,
                        failures=[f"{i.agent}: {i.check}: {i.detail}" for i in checklist.failures],
                        warnings=checklist.warnings)
    if not checklist.passed:
        raise ChecklistFailed(checklist)


def run_checklist(repo: Repository, specs: list[AgentSpec], base: str | None = None,
                  kept: Mapping[str, Record] | None = None) -> Checklist:
    """Check every agent in ``specs`` against each other and against what already exists, the
    way it will be started: cut anew from ``base`` (attempt 1), or — for a name in ``kept`` —
    restarted in its own existing worktree and branch (``respawn --keep``)."""
    kept = kept or {}
    layout = repo.layout
    result = Checklist(n=len(specs))
    existing = worktrees.list_worktrees(repo.root)
    worktree_paths = [e.path for e in existing] + [layout.worktree(s.name) for s in specs]
    panes = repo.tmux.panes()
    try:
        sandbox_default = repo.config.sandbox
    except CockpitError:  # reported below, as the max_failures item
        sandbox_default = None
    seen_paths: dict[Path, str] = {}
    for spec in specs:
        name = spec.name
        add = result.items.append
        path = layout.worktree(name)
        clash = seen_paths.get(path)
        seen_paths[path] = name
        record = kept.get(name)
        if record is None:
            occupied = os.path.lexists(path)  # (a dangling symlink too: the spawn refuses it)
            distinct = clash is None and path.resolve() != repo.root.resolve() and not occupied
            add(Item(name, "own worktree path", distinct,
                     f"{path} " + ("is shared with " + clash if clash else "already exists" if occupied else "")))
            branch = branch_for(name, 1)
            at = next((e.path for e in existing if e.branch == branch), None)
            taken = worktrees.branch_exists(repo.root, branch)
            add(Item(name, "own branch", at is None and not taken,
                     f"{branch} is checked out at {at}" if at else f"{branch} already exists" if taken else branch))
        else:
            registered = path.is_dir() and any(e.path.resolve() == path.resolve() for e in existing)
            add(Item(name, "own worktree path", clash is None and registered,
                     f"{path} is shared with {clash}" if clash else
                     f"{path} (kept)" if registered else
                     f"{path} is not a git worktree" if path.is_dir() else f"{path} is missing"))
            branch = record.branch
            at = next((e.path for e in existing if e.branch == branch and e.path.resolve() != path.resolve()), None)
            there = bool(branch) and worktrees.branch_exists(repo.root, branch)
            add(Item(name, "own branch", there and at is None,
                     f"{branch} is checked out at {at}" if at else f"{branch} (kept)" if there
                     else f"{branch or 'its branch'} no longer exists"))
        pane = panes.get(name)
        # A dead pane is a restarted agent's own leftover (respawn replaces it); a live one is not.
        stale = pane is not None and (record is None or not pane.dead)
        add(Item(name, "own tmux session", not stale,
                 f"session {name!r} already exists on the fleet's tmux server ({repo.tmux.socket})" if stale
                 else name))
        if sandbox.enabled(sandbox.with_default(spec, sandbox_default)):
            try:
                add(Item(name, "write sandbox runs", True, sandbox.require()))
            except CockpitError as exc:
                add(Item(name, "write sandbox runs", False, str(exc)))
        log_dir = layout.agent_dir(name)
        in_worktree = [str(w) for w in worktree_paths if w.resolve() != repo.root.resolve() and _inside(log_dir, w)]
        add(Item(name, "log directory writable and outside every worktree", _creatable(log_dir) and not in_worktree,
                 f"{log_dir} is inside {in_worktree[0]}" if in_worktree else
                 f"{log_dir}" + ("" if _creatable(log_dir) else " is not writable")))
    if any(spec.name not in kept for spec in specs):  # only a new agent is cut from base
        try:
            base_ok, base_detail = True, repo.resolve_base(base)[0]
        except CockpitError as exc:  # reported as a failed item, not raised
            base_ok, base_detail = False, str(exc)
        result.items.append(Item("*", "base ref exists", base_ok, base_detail))
    events = layout.events
    result.items.append(Item("*", "event log writable", _appendable(events),
                             str(events) + ("" if _appendable(events) else " is not a writable file")))
    try:
        limit = repo.config.max_failures
        result.items.append(Item("*", "max_failures set", limit >= 1, f"max_failures = {limit}"))
    except CockpitError as exc:
        result.items.append(Item("*", "max_failures set", False, str(exc)))
    _environment_items(repo, specs, kept, result)
    tracked = worktrees.run(repo.root, "ls-files").splitlines()
    for i, a in enumerate(specs):
        for b in specs[i + 1:]:
            shared = overlap(a.scope, b.scope, tracked)
            if shared:
                result.warnings.append(f"scopes of {a.name} and {b.name} overlap: {'; '.join(shared)}")
    return result


def _environment_items(repo: Repository, specs: list[AgentSpec], kept: Mapping[str, Record], result: Checklist) -> None:
    """What makes each new worktree a working environment: ``.worktreeinclude`` usable (a
    pattern that matches nothing is a warning) and a free block of ports for every agent that
    does not hold one of its size yet."""
    if (repo.root / include.INCLUDE_FILE).exists():
        try:
            files = include.matching(repo.root)
            result.items.append(Item("*", include.INCLUDE_FILE, True,
                                     f"{len(files)} ignored file(s) copied into each new worktree"))
            for pattern in include.unmatched(repo.root):
                result.warnings.append(f"{include.INCLUDE_FILE}:{pattern.line}: {pattern.text!r} matches no ignored "
                                       "file of the main checkout")
        except CockpitError as exc:
            result.items.append(Item("*", include.INCLUDE_FILE, False, str(exc)))
    try:
        wanted = {spec.name: repo.config.worktree_for(spec).ports for spec in specs}
    except CockpitError:  # reported as the max_failures item
        return
    new = [count for name, count in wanted.items()
           if count and not (name in kept and len(kept[name].ports) == count)]
    if new:
        free = ports.available(new)
        result.items.append(Item("*", "free TCP ports", free,
                                 f"{len(new)} block(s) of {'/'.join(sorted({str(n) for n in new}))} port(s)"
                                 + ("" if free else f": not enough free in {ports.PORT_RANGE[0]}-{ports.PORT_RANGE[1]} "
                                                    f"(see {ports.registry_path()})")))
