"""What merging an agent would do, worked out before anything is queued: the commits that
would land, on which base, how, and behind which gates — or why there is nothing to merge.

Views ask before they queue an agent (the TUI's ``m``): an agent with nothing committed is
refused with the reason and the event log is not touched, and the confirmation says what
will land where. The merge queue (:mod:`cockpit.core.queue`) still decides for itself when it
runs; this is a read-only preview.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from cockpit.core import worktrees
from cockpit.core.errors import CockpitError
from cockpit.core.repository import Repository

SUBJECTS_SHOWN = 5


@dataclass(frozen=True)
class MergePlan:
    """A preview of ``cockpit merge NAME``. ``refusal`` is None when there is something to land."""

    name: str
    branch: str
    base: str
    commits: int = 0
    """Commits of the branch that base does not have."""
    subjects: list[str] = field(default_factory=list)
    """The newest of their subjects (at most :data:`SUBJECTS_SHOWN`), newest first."""
    mode: str = "rebase"
    gates: tuple[str, ...] = ()
    base_ahead: int = 0
    """Commits base gained since the branch left it (the candidate is rebuilt on base's tip)."""
    checkout: str | None = None
    """Where base is checked out (fast-forwarded with it), if anywhere."""
    queued: bool = False
    refusal: str | None = None
    """Why nothing would land: no commits, already in base, uncommitted changes, no branch."""

    def describe(self) -> str:
        """A few lines for a confirmation: what lands where, how, and what checks it first."""
        lines = [f"{self.commits} commit(s) of {self.branch} land on {self.base}"
                 + (f" ({self.mode}" + (f" onto the {self.base_ahead} new commit(s) of {self.base})"
                                        if self.base_ahead else ")"))]
        lines += [f"  • {subject}" for subject in self.subjects]
        if self.commits > len(self.subjects):
            lines.append(f"  … and {self.commits - len(self.subjects)} more")
        lines.append("Gates: " + ("; ".join(self.gates) if self.gates else "none configured ([cockpit] gates)"))
        if self.checkout:
            lines.append(f"{self.base} is checked out at {self.checkout}: it moves there too (fast-forward only).")
        lines.append("Nothing is pushed; the agent's branch and worktree are not touched.")
        return "\n".join(lines)


def plan_merge(repo: Repository, name: str) -> MergePlan:
    """Work out what merging ``name`` would land. Raises :class:`NotFound` for an unknown agent."""
    record = repo.record(name)
    root = repo.root
    base, branch = record.base, record.branch
    try:
        config = repo.config
        mode, gates = config.merge, config.gates
    except CockpitError:
        mode, gates = "rebase", ()
    plan = MergePlan(name, branch, base, mode=mode, gates=tuple(gates), queued=record.merge_state == "queued")
    if not base or not worktrees.branch_exists(root, base):
        return _refuse(plan, f"its base {base!r} is not a local branch")
    if not branch or not worktrees.branch_exists(root, branch):
        return _refuse(plan, f"its branch {branch!r} does not exist")
    worktree = repo.layout.worktree(name)
    dirty = worktrees.status_porcelain(worktree) if worktree.is_dir() else []
    tip = worktrees.run(root, "rev-parse", "--verify", f"refs/heads/{branch}")
    onto = worktrees.run(root, "rev-parse", "--verify", f"refs/heads/{base}")
    commits = int(worktrees.run(root, "rev-list", "--count", f"{onto}..{tip}") or 0)
    if commits == 0:
        reason = "nothing committed on its branch" if tip == record.base_sha else f"its commits are already in {base}"
        if dirty:
            reason += f" (only uncommitted changes: {_files(dirty)})"
        return _refuse(plan, "nothing to merge: " + reason)
    if dirty:
        return _refuse(plan, f"uncommitted changes would block it: {_files(dirty)} (commit or discard them first)")
    subjects = worktrees.run(root, "log", f"-{SUBJECTS_SHOWN}", "--format=%s", f"{onto}..{tip}").splitlines()
    ahead = int(worktrees.run(root, "rev-list", "--count", f"{tip}..{onto}") or 0)
    checkout = None
    for entry in worktrees.list_worktrees(root):
        if entry.branch == base and not entry.path.is_relative_to(repo.layout.home):
            checkout = str(entry.path)
            break
    return replace(plan, commits=commits, subjects=subjects, base_ahead=ahead, checkout=checkout)


def _refuse(plan: MergePlan, reason: str) -> MergePlan:
    return replace(plan, refusal=reason)


def _files(paths: list[str]) -> str:
    return ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
