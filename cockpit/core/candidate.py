"""One merge candidate in git: built in a scratch worktree, landed by fast-forward only.

What is guaranteed:

* :func:`build` works only in a detached scratch worktree: the agent's worktree and branch are
  never touched (rebase runs with ``rebase.updateRefs`` off, so no branch follows the rewrite).
* :func:`land` moves base forward only, and only from the exact tip the candidate was built on:
  ``update-ref NEW OLD`` (a compare-and-swap) when base is checked out nowhere; when it is checked
  out, only if that checkout is at OLD and nothing of the user's there is in the way
  (:func:`checkout_blockers`), by ``merge --ff-only`` there: files and ref move together, and the
  user's uncommitted and untracked files the commits do not touch stay exactly as they were
  (staged or not); nothing is stashed or reset. Nothing is pushed; no ref moves backwards or is
  forced.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cockpit.core import worktrees
from cockpit.core.errors import CockpitError
from cockpit.core.worktrees import GitError

MODES = ("rebase", "merge", "squash")
# Commits cockpit makes need an identity; the user's is used when git has one.
_IDENTITY = {"GIT_AUTHOR_NAME": "cockpit", "GIT_AUTHOR_EMAIL": "cockpit@localhost",
             "GIT_COMMITTER_NAME": "cockpit", "GIT_COMMITTER_EMAIL": "cockpit@localhost"}
# Settings a user's config could set that must not apply to a scratch build.
_SAFE = ("-c", "rebase.updateRefs=false", "-c", "rebase.autoStash=false", "-c", "merge.autoStash=false",
         "-c", "rebase.autoSquash=false")


class BaseMoved(CockpitError):
    """Base is no longer at the tip the candidate was built on: rebuild."""


class CheckoutNotClean(CockpitError):
    """Base is checked out in a worktree where landing would overwrite the user's files
    (``paths``): nothing may move."""

    def __init__(self, message: str, paths: list[str] | None = None) -> None:
        super().__init__(message)
        self.paths = list(paths or [])


@dataclass(frozen=True)
class Build:
    commit: str | None                              # the candidate: base + the agent's work
    conflicts: list[str] = field(default_factory=list)  # set when it could not be applied
    summary: str = ""


def identity_env(root: Path) -> dict[str, str]:
    return {} if worktrees.ok(root, "var", "GIT_COMMITTER_IDENT") else dict(_IDENTITY)


def make_scratch(root: Path, path: Path, onto: str) -> None:
    """A detached worktree at ``onto`` (no branch is created, so none can be left behind)."""
    if path.exists() or any(e.path == path for e in worktrees.list_worktrees(root)):
        remove_scratch(root, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    worktrees.run(root, "worktree", "add", "--quiet", "--detach", str(path), onto)


def remove_scratch(root: Path, path: Path) -> None:
    """Remove and unregister the scratch worktree, whatever state a build left it in."""
    worktrees.remove_worktree(root, path)


def _conflicts(scratch: Path) -> list[str]:
    out = worktrees.run(scratch, "diff", "--name-only", "--diff-filter=U", "-z", strip=False)
    return sorted({p for p in out.split("\0") if p})


def build(root: Path, scratch: Path, mode: str, onto: str, tip: str, message: str) -> Build:
    """Apply the agent's commits (``tip``) on ``onto`` in ``scratch`` (made by :func:`make_scratch`
    at ``onto``). Returns the candidate commit, or the conflicting paths."""
    if mode not in MODES:
        raise CockpitError(f"unknown merge mode {mode!r} (expected one of: {', '.join(MODES)})")
    env = identity_env(root)
    if mode == "rebase":
        worktrees.run(scratch, "checkout", "--quiet", "--detach", tip)
        try:
            worktrees.run(scratch, *_SAFE, "rebase", "--quiet", onto, env=env)
        except GitError as exc:
            paths = _conflicts(scratch)
            worktrees.ok(scratch, "rebase", "--abort")
            if paths:
                return Build(None, paths, "rebase stopped on a conflict")
            raise CockpitError(f"rebase failed: {exc}") from None
    elif mode == "merge":
        try:
            worktrees.run(scratch, *_SAFE, "merge", "--no-ff", "--no-edit", "--no-verify", "--quiet",
                          "-m", message, tip, env=env)
        except GitError as exc:
            paths = _conflicts(scratch)
            worktrees.ok(scratch, "merge", "--abort")
            if paths:
                return Build(None, paths, "merge stopped on a conflict")
            raise CockpitError(f"merge failed: {exc}") from None
    else:
        try:
            worktrees.run(scratch, *_SAFE, "merge", "--squash", "--no-verify", "--quiet", tip, env=env)
        except GitError as exc:
            paths = _conflicts(scratch)
            if paths:
                return Build(None, paths, "squash stopped on a conflict")
            raise CockpitError(f"squash failed: {exc}") from None
        if not worktrees.ok(scratch, "diff", "--cached", "--quiet"):
            worktrees.run(scratch, "commit", "--quiet", "--no-verify", "-m", message, env=env)
    commit = worktrees.run(scratch, "rev-parse", "--verify", "HEAD")
    count = worktrees.run(scratch, "rev-list", "--count", f"{onto}..{commit}")
    return Build(commit, [], f"{mode}: {count} commit(s) on top of {onto[:12]}")


def squash_message(root: Path, name: str, task: str, onto: str, tip: str) -> str:
    title = (task.strip().splitlines() or [""])[0][:72] or "work of agent " + name
    log = worktrees.run(root, "log", "--format=* %s", f"{onto}..{tip}")
    return f"{name}: {title}\n\nSquashed by cockpit from the agent's commits:\n{log}\n"


def checkout_of(root: Path, base: str, scratch_dir: Path) -> Path | None:
    """The worktree (the main checkout, usually) where branch ``base`` is checked out, if any."""
    for entry in worktrees.list_worktrees(root):
        if entry.branch == base and not entry.path.is_relative_to(scratch_dir):
            return entry.path
    return None


HOME = ".cockpit"  # cockpit's own directory in the main checkout (see cockpit.core.layout)


def _touched(checkout: Path, old: str, new: str) -> dict[str, str]:
    """``{path: status}`` of every path the commits from ``old`` to ``new`` change: ``A``
    (added), ``D`` (deleted), ``M`` or ``T`` (changed); a rename is its two sides."""
    out = worktrees.run(checkout, "diff", "--name-status", "--no-renames", "-z", old, new, strip=False)
    tokens = out.split("\0")
    return {tokens[i + 1]: tokens[i][:1] for i in range(0, len(tokens) - 1, 2) if tokens[i]}


def checkout_blockers(checkout: Path, old: str, new: str) -> list[tuple[str, str]]:
    """``(path, why)`` for everything of the user's in ``checkout`` (at ``old``) that moving it to
    ``new`` would overwrite or remove: an uncommitted change (staged or not) to a path the commits
    change; an untracked or ignored file (git itself overwrites ignored ones) where the commits
    add a file, or a file where they need a directory; untracked files in a directory they
    replace with a file; and anything they would write into ``.cockpit/``. Everything else — the
    user's other edits, untracked files, cockpit's own ``.cockpit/`` — is no obstacle: a
    fast-forward keeps it as it is."""
    touched = _touched(checkout, old, new)
    if not touched:
        return []
    found: dict[str, str] = {}
    untracked: set[str] = set()
    for code, path, source in worktrees.status_entries(checkout):
        if code == "??":
            untracked.add(path)
            continue
        for changed in (path, source):
            if changed and changed in touched:
                found.setdefault(changed, "uncommitted change")
    for path, status in touched.items():
        if path == HOME or path.startswith(HOME + "/"):
            found.setdefault(path, f"in {HOME}/, cockpit's own directory")
            continue
        if status != "A" or path in found:
            continue
        here = checkout / path
        if here.is_dir() and not here.is_symlink():
            if worktrees.run(checkout, "ls-files", "--others", "-z", "--", path, strip=False).strip("\0"):
                found[path + "/"] = "a directory with files git does not track"
        elif os.path.lexists(here):
            found[path] = "untracked" if path in untracked else "ignored"
        parts = path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in touched:  # a tracked file the commits remove: git handles it (an edit is caught above)
                break
            spot = checkout / parent
            if spot.is_symlink() or (spot.exists() and not spot.is_dir()):
                found.setdefault(parent, "untracked" if parent in untracked else "ignored")
                break
    return sorted(found.items())


def describe_blockers(root: Path, checkout: Path, blockers: list[tuple[str, str]]) -> str:
    """One line naming what is in the way (the first few) and what to do."""
    where = "main checkout" if checkout == root else f"checkout {checkout}"
    shown = ", ".join(f"{path} ({why})" for path, why in blockers[:5])
    if len(blockers) > 5:
        shown += f" and {len(blockers) - 5} more"
    if any(why.startswith(f"in {HOME}/") for _, why in blockers):
        return f"{where}: the agent's commits write into {HOME}/, cockpit's own directory: {shown}"
    return f"{where}: landing would overwrite {shown}; commit, move or remove them, then merge again"


def land(root: Path, base: str, old: str, new: str, checkout: Path | None, reason: str) -> None:
    """Advance branch ``base`` from ``old`` to ``new`` by fast-forward only.

    Raises :class:`BaseMoved` when base is not at ``old`` any more, :class:`CheckoutNotClean`
    when base is checked out in a worktree where landing would overwrite the user's files
    (:func:`checkout_blockers`); in both cases nothing moved.
    """
    if not worktrees.is_ancestor(root, old, new):
        raise CockpitError(f"refusing to move {base}: {new[:12]} is not a fast-forward of {old[:12]}")
    if checkout is None:
        try:
            worktrees.run(root, "update-ref", "-m", reason, f"refs/heads/{base}", new, old)
        except GitError:
            raise BaseMoved(f"{base} moved from {old[:12]} meanwhile") from None
        return
    head = worktrees.run(checkout, "rev-parse", "--verify", "HEAD")
    if head != old or worktrees.current_branch(checkout) != base:
        raise BaseMoved(f"{base} moved from {old[:12]} meanwhile")
    blockers = checkout_blockers(checkout, old, new)
    if blockers:
        raise CheckoutNotClean(describe_blockers(root, checkout, blockers), [path for path, _ in blockers])
    try:
        # --ff-only: git refuses anything but a fast-forward from wherever HEAD is *now*, so a
        # commit made between the check above and this line is never dropped; and it refuses to
        # overwrite a local change or an untracked file that appeared since the check.
        worktrees.run(checkout, "-c", "merge.autoStash=false", "merge", "--ff-only", "--quiet", "--no-stat", new)
    except GitError as exc:
        now = worktrees.ref_sha(root, f"refs/heads/{base}")
        if now != new:
            blockers = checkout_blockers(checkout, old, new) if now == old else []
            if blockers:  # something of the user's appeared in the way since the check
                raise CheckoutNotClean(describe_blockers(root, checkout, blockers),
                                       [path for path, _ in blockers]) from None
            raise BaseMoved(f"{base} could not be fast-forwarded: {exc}") from None
