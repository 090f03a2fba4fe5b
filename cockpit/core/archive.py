"""Archives: an agent's whole work kept under ``refs/cockpit/archive/<name>/<N>`` before anything
of it is removed, so a discard (or a fresh respawn) can be undone.

An archive of a worktree is a snapshot commit: its tree is the worktree's every file,
uncommitted and untracked ones included (taken through a temporary index: the worktree, its
index and its branch are not touched), its first parent the worktree's HEAD, its message the
branch and base it came from. When the worktree is gone, the archive is the branch's tip.
"""

from __future__ import annotations

from dataclasses import dataclass

from cockpit.core import sandbox, worktrees
from cockpit.core.crash import crash_point
from cockpit.core.errors import CockpitError
from cockpit.core.layout import archive_ref
from cockpit.core.repository import Repository
from cockpit.core.spec import validate_name
from cockpit.core.state import Record

SNAPSHOT_SUBJECT = "cockpit archive of "


@dataclass(frozen=True)
class DiscardPreview:
    """What a discard will archive: shown before the user confirms."""

    name: str
    uncommitted: list[str]
    ahead: int
    archive_ref: str
    worktree_exists: bool


@dataclass(frozen=True)
class Contents:
    """What an archive holds, as :func:`restore` needs it."""

    snapshot: bool  # a worktree snapshot (files to put back), or a branch's tip
    tip: str  # the commit the branch is recreated at
    branch: str | None  # the branch it was taken from, when recorded
    base_sha: str | None


def refs(repo: Repository, name: str) -> list[tuple[str, str]]:
    """``(ref, sha)`` of every archive of ``name``, oldest first."""
    validate_name(name)
    found = worktrees.list_refs(repo.root, f"refs/cockpit/archive/{name}/")
    return sorted(found, key=lambda item: int(item[0].rsplit("/", 1)[1]) if item[0].rsplit("/", 1)[1].isdigit() else 0)


def next_ref(repo: Repository, name: str) -> str:
    """Where the next archive of ``name`` goes: one past the highest number used."""
    numbers = [int(ref.rsplit("/", 1)[1]) for ref, _ in worktrees.list_refs(repo.root, f"refs/cockpit/archive/{name}/")
               if ref.rsplit("/", 1)[1].isdigit()]
    return archive_ref(name, max(numbers, default=0) + 1)


def preview(repo: Repository, name: str) -> DiscardPreview:
    """What a discard would archive. Read without the lock: if another process discards
    the agent meanwhile (its worktree going away under git), this says so, as a discard
    would, rather than with git's error."""
    record = repo.record(name)
    worktree = repo.layout.worktree(name)
    uncommitted: list[str] = []
    ahead = 0
    exists = worktree.is_dir()
    try:
        if exists:
            uncommitted = worktrees.status_porcelain(worktree)
            ahead = worktrees.commits_ahead(worktree, record.base_sha) if record.base_sha else 0
        elif record.branch and record.base_sha and worktrees.branch_exists(repo.root, record.branch):
            ahead = int(worktrees.run(repo.root, "rev-list", "--count", f"{record.base_sha}..{record.branch}"))
    except CockpitError:
        repo.record(name)  # NotFound when it was discarded meanwhile
        raise
    return DiscardPreview(name, uncommitted, ahead, next_ref(repo, name), exists)


def write(repo: Repository, name: str, record: Record, op: str) -> str | None:
    """Store the worktree's whole state (or, if the worktree is gone, the branch's commits)
    at the next ``refs/cockpit/archive/<name>/<N>`` and record ``archived``. Returns the ref,
    or None if nothing exists. Caller holds the lock."""
    worktree = repo.layout.worktree(name)
    sandbox.before_archive(repo, name, record.branch)
    if worktree.is_dir():
        seen = preview(repo, name)
        ref = seen.archive_ref  # (the next ref: the preview found it)
        sha = worktrees.snapshot(worktree, f"{SNAPSHOT_SUBJECT}{name} (attempt {record.attempt}, {op})\n\n"
                                           f"branch: {record.branch}\nbase: {record.base_sha}\n")
        worktrees.update_ref(repo.root, ref, sha)
        repo.events.append("archived", name, ref=ref, sha=sha, branch=record.branch, base_sha=record.base_sha,
                           uncommitted=len(seen.uncommitted), ahead=seen.ahead, snapshot=True)
        return ref
    tip = worktrees.ref_sha(repo.root, f"refs/heads/{record.branch}") if record.branch else None
    if tip:
        ref = next_ref(repo, name)
        worktrees.update_ref(repo.root, ref, tip)
        repo.events.append("archived", name, ref=ref, sha=tip, branch=record.branch, base_sha=record.base_sha,
                           snapshot=False, note="worktree was missing: archived the branch's commits")
        return ref
    return None


def contents(repo: Repository, sha: str) -> Contents:
    """Read the archive commit ``sha``: a snapshot (its first parent is the branch's tip) or
    a branch's tip itself, and the branch and base its message recorded."""
    message = worktrees.run(repo.root, "log", "-1", "--format=%B", sha)
    snapshot = message.startswith(SNAPSHOT_SUBJECT)
    tip = worktrees.run(repo.root, "rev-parse", f"{sha}^1") if snapshot else sha
    meta = dict(line.split(": ", 1) for line in message.splitlines() if ": " in line)
    return Contents(snapshot, tip, meta.get("branch") or None, meta.get("base") or None)


def restore(repo: Repository, name: str, sha: str, branch: str, contents: Contents) -> None:
    """Recreate the worktree of ``name`` on a new ``branch`` at the archive's tip and, for a
    snapshot, put every file back byte-identical (untracked ones untracked)."""
    worktrees.add_worktree(repo.root, repo.layout.worktree(name), branch, contents.tip)
    crash_point("restore", "after-worktree")
    if contents.snapshot:
        worktrees.restore_files(repo.layout.worktree(name), sha)
