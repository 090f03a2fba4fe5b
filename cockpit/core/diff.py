"""What an agent changed: its committed, uncommitted and untracked work against the point where
it left base — exactly what a discard would archive.

The "from" side is the merge-base of base's current tip and the agent's HEAD; the "to" side is
the tree of the agent's whole worktree (:func:`worktrees.worktree_tree`, a temporary index —
the worktree, its index and its branch are never touched). When the worktree is gone, the
branch's committed work is what is shown.

Computed in steps so a view stays responsive on a 1,000-file change: :func:`agent_diff` fixes
both ends once, :meth:`AgentDiff.files` lists the files with +/- counts in one git call, and
:meth:`AgentDiff.patch` / :meth:`AgentDiff.patches` give unified diffs on demand or in batches.
Text is git's output decoded as UTF-8 with ``surrogateescape``: undecodable bytes survive, and
:func:`to_bytes` gives back git's exact bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cockpit.core import worktrees
from cockpit.core.errors import CockpitError
from cockpit.core.repository import Repository

# Plain, reproducible diffs: no external diff drivers, no textconv filters, no rename guessing
# (every changed path is listed once, under its own name).
_DIFF_OPTS = ("--no-ext-diff", "--no-textconv", "--no-renames")
_HEADER = re.compile(r"^(?:\x1b\[[0-9;]*m)*diff --git ", re.MULTILINE)


@dataclass(frozen=True)
class FileChange:
    """One changed path. ``added``/``removed`` are None for a binary file."""

    path: str
    status: str  # "A" added, "M" modified, "D" deleted, "T" type changed (file <-> symlink)
    added: int | None
    removed: int | None

    @property
    def binary(self) -> bool:
        return self.added is None


@dataclass(frozen=True)
class AgentDiff:
    """Both ends of one agent's change, fixed at the moment :func:`agent_diff` ran."""

    name: str
    root: Path
    base: str        # the base ref, e.g. "main"
    base_tip: str    # base's commit when computed
    merge_base: str  # the "from" commit
    head: str        # the agent's HEAD commit
    tree: str        # the "to" tree: the agent's whole state, uncommitted and untracked included

    def files(self) -> list[FileChange]:
        """Every changed path with its +/- counts, in git's (path) order. One git call."""
        out = worktrees.run(self.root, "diff", "--raw", "--numstat", "-z", *_DIFF_OPTS,
                            self.merge_base, self.tree, strip=False)
        return _parse_raw_numstat(out)

    def patch(self, path: str | None = None, color: bool = False, context: int = 3) -> str:
        """The unified diff of ``path``, or of every file when None."""
        return self._diff([path] if path is not None else [], color, context)

    def patches(self, paths: Iterable[str] | None = None, batch: int = 64, color: bool = False
                ) -> Iterator[tuple[str, str]]:
        """``(path, patch)`` for each path (default: every changed file), ``batch`` paths per git
        call, in order: a view can show the first files while the rest are still computed."""
        wanted = list(paths) if paths is not None else [f.path for f in self.files()]
        for start in range(0, len(wanted), max(batch, 1)):
            chunk = wanted[start:start + batch]
            text = self._diff(chunk, color, 3)
            starts = [m.start() for m in _HEADER.finditer(text)]
            if len(starts) != len(chunk):  # a path without a change, or an unexpected layout
                for path in chunk:
                    yield path, self.patch(path, color)
                continue
            for index, path in enumerate(chunk):
                end = starts[index + 1] if index + 1 < len(starts) else len(text)
                yield path, text[starts[index]:end]

    def _diff(self, paths: list[str], color: bool, context: int) -> str:
        args = ["diff", "--color=always" if color else "--no-color", f"-U{max(context, 0)}", *_DIFF_OPTS,
                self.merge_base, self.tree, "--"]
        args += [f":(literal){p}" for p in paths]
        return worktrees.run(self.root, *args, strip=False)


def totals(files: Iterable[FileChange]) -> tuple[int, int, int]:
    """(files, insertions, deletions); binary files count as files only."""
    count = added = removed = 0
    for change in files:
        count += 1
        added += change.added or 0
        removed += change.removed or 0
    return count, added, removed


def to_bytes(text: str) -> bytes:
    """git's exact bytes for text this module returned."""
    return text.encode("utf-8", "surrogateescape")


def _parse_raw_numstat(out: str) -> list[FileChange]:
    """Parse ``git diff --raw --numstat -z``: the raw records (``:meta\\0path\\0``) first, then
    the numstat ones (``added\\tremoved\\tpath\\0``)."""
    tokens = out.split("\0")
    status: dict[str, str] = {}
    order: list[str] = []
    counts: dict[str, tuple[int | None, int | None]] = {}
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.startswith(":") and index + 1 < len(tokens):
            status[tokens[index + 1]] = token.split()[-1][:1]
            order.append(tokens[index + 1])
            index += 2
            continue
        if token.count("\t") >= 2:
            added, removed, path = token.split("\t", 2)
            counts[path] = (int(added) if added.isdigit() else None, int(removed) if removed.isdigit() else None)
        index += 1
    return [FileChange(path, status[path], *counts.get(path, (None, None))) for path in order]


def agent_diff(repo: Repository, name: str) -> AgentDiff:
    """Fix both ends of ``name``'s change now. Cost: one ``add --all`` into a temporary index
    (only changed files are hashed) and a few ref look-ups; no diff is computed yet."""
    record = repo.record(name)
    root = repo.root
    worktree = repo.layout.worktree(name)
    base_tip = (worktrees.resolve(root, record.base) if record.base else None) or record.base_sha
    if worktree.is_dir():
        head = worktrees.run(worktree, "rev-parse", "--verify", "HEAD")
        tree = worktrees.worktree_tree(worktree)
    else:
        tip = worktrees.ref_sha(root, f"refs/heads/{record.branch}") if record.branch else None
        if tip is None:
            raise CockpitError(f"agent {name!r} has neither a worktree nor a branch: nothing to diff")
        head = tip
        tree = worktrees.run(root, "rev-parse", f"{head}^{{tree}}")
    start = (worktrees.merge_base(root, base_tip, head) if base_tip else None) or record.base_sha or head
    if record.upstreams and record.base_sha and start != record.base_sha \
            and worktrees.is_ancestor(root, record.base_sha, head) \
            and worktrees.is_ancestor(root, start, record.base_sha):
        start = record.base_sha  # cut from a merge with its upstreams (after): their work is not its own
    return AgentDiff(name=name, root=root, base=record.base, base_tip=base_tip or "", merge_base=start,
                     head=head, tree=tree)


def base_moved(repo: Repository, name: str, tips: dict[str, str | None] | None = None) -> int:
    """How many commits base has that the agent's branch does not: "base +3" on its tile.
    0 when base or the branch cannot be resolved. ``tips`` memoizes each base's commit (a
    round over every agent resolves a base once); one more git call per agent."""
    record = repo.record(name)
    root = repo.root
    if not record.base:
        return 0
    tips = {} if tips is None else tips
    if record.base not in tips:
        tips[record.base] = worktrees.resolve(root, record.base)
    base_tip = tips[record.base]
    if not base_tip:
        return 0
    worktree = repo.layout.worktree(name)
    if worktree.is_dir():  # the worktree's HEAD (an agent may have moved it off its branch)
        try:
            return int(worktrees.run(worktree, "rev-list", "--count", f"HEAD..{base_tip}") or 0)
        except CockpitError:
            pass  # no HEAD there (a broken worktree): count from the branch
    head = worktrees.ref_sha(root, f"refs/heads/{record.branch}") if record.branch else None
    if not head:
        return 0
    return int(worktrees.run(root, "rev-list", "--count", f"{head}..{base_tip}") or 0)
