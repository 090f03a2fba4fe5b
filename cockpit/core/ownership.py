"""Ownership and collisions: which agent changed which files.

For each agent, the paths its worktree changed against its base — committed, uncommitted and
untracked — cost one ``git diff`` and one ``git ls-files`` in that worktree, and nothing outside
it. ``out_of_scope`` are the changed paths its ``scope`` globs do not cover; ``collisions`` are
changed paths another agent (not discarded) changed too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from cockpit.core import worktrees
from cockpit.core.agent import Agent
from cockpit.core.errors import CockpitError
from cockpit.core.repository import Repository
from cockpit.core.scope import in_scope


@dataclass(frozen=True)
class Ownership:
    out_of_scope: list[str] = field(default_factory=list)
    collisions: list[dict] = field(default_factory=list)  # [{"path": p, "agents": [other, ...]}]

    @property
    def clean(self) -> bool:
        return not self.out_of_scope and not self.collisions


class OwnershipTracker:
    """Changed paths per agent, cached: recomputed when told the worktree changed
    (:meth:`invalidate`, e.g. from a file watcher) or when older than ``max_age`` seconds."""

    def __init__(self, max_age: float = 30.0, paths_only: bool = False) -> None:
        self.max_age = max_age
        self.paths_only = paths_only
        """Only the paths are wanted (``cockpit ls``): one git call per unchanged-HEAD worktree
        instead of two, and :meth:`summary` knows nothing."""
        self._cache: dict[str, tuple[float, str, worktrees.Changes | None]] = {}
        self.pause: Callable[[], None] | None = None
        """Called before each git call (a UI sets it to give way to the user's keys)."""

    def invalidate(self, name: str | None = None) -> None:
        if name is None:
            self._cache.clear()
        else:
            self._cache.pop(name, None)

    def changed(self, agent: Agent) -> set[str]:
        found = self._changes(agent)
        return set(found.paths) if found else set()

    def summary(self, name: str, base_sha: str | None) -> tuple[int, int, int] | None:
        """The diff summary (files, insertions, deletions) the last :meth:`compute` found for
        ``name`` cut from ``base_sha``, if it is still fresh: None means ask git."""
        cached = self._cache.get(name)
        if (not self.paths_only and cached and cached[2] is not None and cached[1] == base_sha
                and time.monotonic() - cached[0] < self.max_age):
            return cached[2].summary
        return None

    def _fresh(self, agent: Agent) -> bool:
        cached = self._cache.get(agent.name)
        return cached is not None and cached[1] == agent.base_sha and time.monotonic() - cached[0] < self.max_age

    def _changes(self, agent: Agent) -> worktrees.Changes | None:
        if agent.worktree is None:  # pending: nothing is cut yet, so nothing changed
            return None
        worktree = Path(agent.worktree)
        cached = self._cache.get(agent.name)
        now = time.monotonic()
        if cached and cached[1] == agent.base_sha and now - cached[0] < self.max_age:
            return cached[2]
        found: worktrees.Changes | None = None
        if worktree.is_dir() and agent.base_sha:
            if self.pause is not None:
                self.pause()
            try:
                found = (changed_paths if self.paths_only else worktrees.changes)(worktree, agent.base_sha)
            except CockpitError:
                found = cached[2] if cached else None
        self._cache[agent.name] = (now, agent.base_sha, found)
        return found

    def compute(self, agents: Iterable[Agent]) -> dict[str, Ownership]:
        agents = [a for a in agents if a.state != "missing" and a.worktree is not None]  # (pending: none yet)
        due = [a for a in agents if not self._fresh(a)]
        # Each diff is two short git processes: a command waiting for them starts several at once
        # (wall time, not CPU); a UI (``pause`` set) keeps to one at a time, behind the user's keys.
        if len(due) > 1 and self.pause is None:
            with ThreadPoolExecutor(max_workers=min(len(due), 2 * (os.cpu_count() or 1))) as pool:
                list(pool.map(self._changes, due))
        changed = {a.name: self.changed(a) for a in agents}
        result: dict[str, Ownership] = {}
        for agent in agents:
            mine = changed[agent.name]
            outside = sorted(p for p in mine if not in_scope(p, agent.scope))
            collisions = []
            for path in sorted(mine):
                others = sorted(o for o, paths in changed.items() if o != agent.name and path in paths)
                if others:
                    collisions.append({"path": path, "agents": others})
            result[agent.name] = Ownership(outside, collisions)
        return result


def head_from_files(worktree: Path) -> str | None:
    """The commit a linked worktree's HEAD points at, read from git's files (no git process);
    None whenever that is not plain (a symbolic ref to a missing or packed-away branch is looked
    up in ``packed-refs``; anything else unusual: None, and the caller asks git)."""
    try:
        pointer = (worktree / ".git").read_text().strip()
        if not pointer.startswith("gitdir: "):
            return None
        gitdir = Path(pointer.removeprefix("gitdir: "))
        gitdir = gitdir if gitdir.is_absolute() else worktree / gitdir
        head = (gitdir / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head if len(head) == 40 else None
        ref = head.removeprefix("ref: ")
        common = gitdir / (gitdir / "commondir").read_text().strip()
        loose = common / ref
        if loose.is_file():
            sha = loose.read_text().strip()
            return sha if len(sha) == 40 else None
        for line in (common / "packed-refs").read_text().splitlines():
            sha, _, name = line.partition(" ")
            if name == ref and len(sha) == 40:
                return sha
    except (OSError, ValueError):
        return None
    return None


def changed_paths(worktree: Path, base_sha: str) -> worktrees.Changes:
    """The paths of :func:`cockpit.core.worktrees.changes` (its line counts are 0), in one git call when the worktree's
    HEAD is still ``base_sha`` (nothing committed: ``git status``, untracked files included;
    a path staged and then changed back counts as changed), else as :func:`cockpit.core.worktrees.changes` does."""
    if head_from_files(worktree) != base_sha:
        return worktrees.changes(worktree, base_sha)
    out = worktrees.run(worktree, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames",
              env={"GIT_OPTIONAL_LOCKS": "0"}, strip=False)
    paths = frozenset(entry[3:] for entry in out.split("\0") if len(entry) > 3)
    return worktrees.Changes(paths, len(paths), 0, 0)


def record_new(repo: Repository, ownership: dict[str, Ownership]) -> None:
    """Append an event for each occurrence not reported before: ``out_of_scope`` with the new
    paths, ``collision`` with the path and the other agents."""
    history = repo.history()
    for name, found in ownership.items():
        record = history.records.get(name)
        if record is None:
            continue
        new_paths = [p for p in found.out_of_scope if p not in record.reported_out_of_scope]
        if new_paths:
            repo.events.append("out_of_scope", name, paths=new_paths, scope=list(record.spec.scope))
        for collision in found.collisions:
            key = f"{collision['path']}\0{','.join(collision['agents'])}"
            if key not in record.reported_collisions:
                repo.events.append("collision", name, path=collision["path"], agents=collision["agents"])
    repo.history()
