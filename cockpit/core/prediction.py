"""Merge prediction: what merging two commits would conflict in, without merging anything.

``git merge-tree --write-tree`` (git >= 2.38) merges two commits with no worktree and no index;
:func:`predict` turns its answer into the conflicting paths and, where cheap, the line ranges of
each side that clash. Used by the conflict radar (:mod:`cockpit.core.radar`) for agents' current
work, and by the merge queue (:class:`CandidateCheck`) for its candidates' branches.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.core import worktrees
from cockpit.core.errors import CockpitError
from cockpit.core.merge_outcome import Outcome
from cockpit.core.state import Record

LINES_MAX_PATHS = 10
LINES_MAX_BYTES = 512 * 1024
"""Line ranges are read for at most this many conflicting files per pair, each under this size."""


def unsupported(version: tuple[int, int] | None) -> str | None:
    """Why prediction cannot run with this git version, or None when it can."""
    if version is not None and version >= worktrees.MERGE_TREE_GIT:
        return None
    found = f"this is git {version[0]}.{version[1]}" if version else "the git version could not be told"
    return f"conflict prediction needs git >= 2.38 ({found})"


# -- one merge-tree ---------------------------------------------------------------------------------
Ranges = dict[str, list[list[int]]]


@dataclass(frozen=True)
class Prediction:
    """What merging two commits would give: no paths when clean; else the conflicting paths and,
    where cheap, ``[first, last]`` line ranges per path in each side's own version."""

    paths: tuple[str, ...] = ()
    ours: Ranges = field(default_factory=dict)
    theirs: Ranges = field(default_factory=dict)

    def swapped(self) -> Prediction:
        return Prediction(self.paths, self.theirs, self.ours)

    def to_json(self) -> dict[str, Any]:
        return {"paths": list(self.paths), "ours": self.ours, "theirs": self.theirs}

    @staticmethod
    def from_json(data: dict[str, Any]) -> Prediction:
        return Prediction(tuple(data.get("paths") or ()), dict(data.get("ours") or {}), dict(data.get("theirs") or {}))


def predict(root: Path, ours: str, theirs: str) -> Prediction:
    """Merge two commits with ``git merge-tree`` (nothing is written but objects) and say what
    conflicts. Raises :class:`~cockpit.core.worktrees.GitError` when git cannot merge them at all."""
    merged = worktrees.merge_tree(root, ours, theirs)
    if merged.clean:
        return Prediction()
    ours_lines, theirs_lines = _line_ranges(root, merged.stages)
    return Prediction(tuple(merged.conflicts) or ("(a file git did not name)",), ours_lines, theirs_lines)


_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@", re.M)


def _hunks(root: Path, old: str, new: str) -> list[tuple[float, float, int, int]]:
    """``(base first, base last, new first, new last)`` per hunk of a blob diff; an insertion
    sits between base lines (``a + 0.5``) and a deletion at the line before it in the new side."""
    out = worktrees.run(root, "diff", "--no-color", "--no-ext-diff", "-U0", old, new, strip=False)
    hunks = []
    for match in _HUNK.finditer(out):
        a, b = int(match.group(1)), int(match.group(2) or 1)
        c, d = int(match.group(3)), int(match.group(4) or 1)
        base = (a + 0.5, a + 0.5) if b == 0 else (float(a), float(a + b - 1))
        hunks.append((*base, max(c, 1), max(c + d - 1, c, 1)))
    return hunks


def _line_ranges(root: Path, stages: dict[str, dict[int, str]]) -> tuple[Ranges, Ranges]:
    """Per conflicting text file both sides changed from a common version: the line ranges of
    each side's changes that overlap or touch a change of the other side (as git's merge sees a
    conflict). Two ``git diff`` per file; files past :data:`LINES_MAX_PATHS` or
    :data:`LINES_MAX_BYTES`, binary files and add/add or delete conflicts get none."""
    wanted = [(path, s) for path, s in stages.items() if {1, 2, 3} <= s.keys()][:LINES_MAX_PATHS]
    if not wanted:
        return {}, {}
    blobs = [blob for _, s in wanted for blob in (s[1], s[2], s[3])]
    try:
        checked = subprocess.run(["git", *worktrees.SAFE_CONFIG, "cat-file", "--batch-check"], cwd=root,
                                 input="\n".join(blobs) + "\n", capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        checked = ""
    sizes = {}
    for line in checked.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2].isdigit():
            sizes[parts[0]] = int(parts[2])
    ours: Ranges = {}
    theirs: Ranges = {}
    for path, s in wanted:
        if any(sizes.get(s[k], LINES_MAX_BYTES + 1) > LINES_MAX_BYTES for k in (1, 2, 3)):
            continue
        mine, other = _hunks(root, s[1], s[2]), _hunks(root, s[1], s[3])
        touching = [(m, o) for m in mine for o in other if m[0] <= o[1] + 1 and o[0] <= m[1] + 1]
        if touching:
            ours[path] = _merged([[m[2], m[3]] for m, _ in touching])
            theirs[path] = _merged([[o[2], o[3]] for _, o in touching])
    return ours, theirs


def _merged(ranges: list[list[int]]) -> list[list[int]]:
    result: list[list[int]] = []
    for first, last in sorted(ranges):
        if result and first <= result[-1][1] + 1:
            result[-1][1] = max(result[-1][1], last)
        else:
            result.append([first, last])
    return result


# -- the merge queue's look ahead -------------------------------------------------------------------
class CandidateCheck:
    """What the merge queue predicts before building: each candidate's branch tip (its committed
    work, which is what merges) against its base's current tip, memoized by the two commits.
    Says a prediction the first time it is a conflict, and again whenever it changes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.unsupported = unsupported(worktrees.git_version())
        self._memo: dict[tuple[str, str], tuple[str, ...] | None] = {}
        self._said: dict[str, tuple[str, ...]] = {}
        self._tips: dict[str, str] = {}

    def refresh(self) -> None:
        """Read every branch tip again (one git call): base moved, or a branch did."""
        self._tips = dict(worktrees.list_refs(self.root, "refs/heads/")) if not self.unsupported else {}

    def conflicts(self, record: Record) -> tuple[str, ...] | None:
        """The paths merging ``record``'s branch into its base would conflict in; None: unknown."""
        tip, onto = self._tips.get(f"refs/heads/{record.branch}"), self._tips.get(f"refs/heads/{record.base}")
        if self.unsupported or not tip or not onto:
            return None
        if (tip, onto) not in self._memo:
            try:
                self._memo[(tip, onto)] = predict(self.root, tip, onto).paths
            except CockpitError:
                self._memo[(tip, onto)] = None
        return self._memo[(tip, onto)]

    def news(self, records: list[Record], landed: str | None = None) -> list[Outcome]:
        """``predicted`` news for candidates predicted to conflict that were not said so yet,
        and for those whose prediction changed (``landed``: the agent that just landed)."""
        out = []
        for record in records:
            paths = self.conflicts(record)
            said = self._said.get(record.name)
            if paths is None or paths == said or (said is None and not paths):
                continue
            self._said[record.name] = paths
            out.append(Outcome(record.name, "predicted", paths=list(paths), base=record.base,
                               reason=f"after {landed} landed" if landed else None))
        return out

    def pick(self, records: list[Record]) -> Record:
        """The first candidate not predicted to conflict (unknown counts as not), else the first."""
        return next((r for r in records if not self.conflicts(r)), records[0])
