"""Git: branches, worktrees, archive snapshots and restores.

Every call is an argument list, one short-lived ``git`` process per call, started the way
GitPython's command wrapper (``git.Git.execute``) starts it — English messages (``LC_ALL=C``), no
stdin, stdout decoded as UTF-8 with surrogate escapes — but by :mod:`subprocess` directly:
importing GitPython costs more than most commands (~70-150 ms: it runs ``git version`` twice),
and a ``Repo`` object would leave ``cat-file --batch`` children behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cockpit.core.errors import CockpitError

# Archive commits are cockpit's own: they must not depend on the user's git identity.
_IDENTITY = {
    "GIT_AUTHOR_NAME": "cockpit",
    "GIT_AUTHOR_EMAIL": "cockpit@localhost",
    "GIT_COMMITTER_NAME": "cockpit",
    "GIT_COMMITTER_EMAIL": "cockpit@localhost",
}


# An agent writes its worktree, and may write a repository inside it: git run there would start
# git in that nested repository and run whatever its config says (core.fsmonitor, filters), outside
# any sandbox — or fail on it, so that discard fails. cockpit's own git commands never look inside
# a nested repository and never start an fsmonitor. (Your own git commands in an agent's worktree
# are not covered: treat it like a clone from a stranger.)
SAFE_CONFIG = ("-c", "core.fsmonitor=false", "-c", "diff.ignoreSubmodules=dirty", "-c", "submodule.recurse=false")


class GitError(CockpitError):
    pass


def execute(cwd: Path, argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``git`` with ``argv`` in ``cwd``: ``(status, stdout, stderr)``, both decoded."""
    full = {**os.environ, "LANGUAGE": "C", "LC_ALL": "C", **(env or {})}
    try:
        done = subprocess.run(["git", *argv], cwd=str(cwd), env=full, stdin=subprocess.DEVNULL,
                              capture_output=True, check=False)
    except FileNotFoundError:
        if not Path(cwd).is_dir():
            raise GitError(f"git {argv[0] if argv else ''} failed: no such directory: {cwd}") from None
        raise GitError("git is not installed (install it: apt-get install -y git)") from None
    except OSError as exc:  # not a directory, not allowed in: git never runs elsewhere instead
        raise GitError(f"git {argv[0] if argv else ''} failed: {exc.strerror or exc}: {cwd}") from None
    return (done.returncode, done.stdout.decode("utf-8", "surrogateescape"),
            done.stderr.decode("utf-8", "surrogateescape"))


def run(cwd: Path, *args: str, env: dict[str, str] | None = None, strip: bool = True) -> str:
    """Run ``git args...`` in ``cwd`` and return stdout (without its last newline when
    ``strip``); raise :class:`GitError` with git's message."""
    status, out, err = execute(cwd, [*SAFE_CONFIG, *args], env)
    if status != 0:
        stderr = err.strip()
        last = stderr.splitlines()[-1] if stderr else f"exit {status}"
        raise GitError(f"git {args[0]} failed: {last}")
    return out[:-1] if strip and out.endswith("\n") else out


def ok(cwd: Path, *args: str) -> bool:
    try:
        run(cwd, *args)
        return True
    except GitError:
        return False


def repo_root(start: Path) -> Path:
    """The main checkout of the repository containing ``start`` (also from inside a worktree)."""
    if not start.is_dir():  # (git would run in the current directory instead)
        raise CockpitError(f"not a directory: {start}")
    try:
        common = run(start, "rev-parse", "--path-format=absolute", "--git-common-dir")
    except GitError:
        raise CockpitError(f"not a git repository: {start} (run cockpit inside one, or 'git init' first)") from None
    common_path = Path(common)
    if common_path.name == ".git":
        return common_path.parent
    raise CockpitError(f"{start}: bare repositories are not supported (cockpit needs a main checkout)")


def head_commit(root: Path) -> str | None:
    try:
        return run(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    except GitError:
        return None


def current_branch(root: Path) -> str | None:
    try:
        return run(root, "symbolic-ref", "--quiet", "--short", "HEAD")
    except GitError:
        return None


def head(root: Path) -> tuple[str, str] | None:
    """``(branch, commit)`` of the main checkout's HEAD in one git call; the branch is
    ``"HEAD"`` when it is detached. None when HEAD has no commit (an empty repository)."""
    try:
        sha, _, ref = run(root, "rev-parse", "--quiet", "HEAD^{commit}", "--abbrev-ref", "HEAD").partition("\n")
    except GitError:
        return None
    return (ref.strip() or "HEAD"), sha.strip()


def resolve(root: Path, ref: str) -> str | None:
    if ref.startswith("-"):
        return None
    try:
        return run(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    except GitError:
        return None


def full_name(root: Path, ref: str) -> str | None:
    """The full ref name ``ref`` stands for (``HEAD``, ``@`` or ``main`` -> ``refs/heads/main``,
    ``v1`` -> ``refs/tags/v1``; ``HEAD`` itself when detached); None for a commit expression
    (``HEAD~0``, a hash) or a name that does not exist."""
    if ref.startswith("-"):
        return None
    try:
        return run(root, "rev-parse", "--symbolic-full-name", "--verify", "--quiet", "--end-of-options", ref) or None
    except GitError:
        return None


def branch_exists(root: Path, branch: str) -> bool:
    return ok(root, "show-ref", "--verify", "--quiet", f"refs/heads/{branch}")


def ref_sha(root: Path, ref: str) -> str | None:
    try:
        return run(root, "rev-parse", "--verify", "--quiet", ref)
    except GitError:
        return None


@dataclass(frozen=True)
class WorktreeEntry:
    path: Path
    head: str | None
    branch: str | None
    prunable: bool


def list_worktrees(root: Path) -> list[WorktreeEntry]:
    out = run(root, "worktree", "list", "--porcelain")
    entries: list[WorktreeEntry] = []
    for block in out.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, _, value = line.partition(" ")
            fields[key] = value
        if "worktree" in fields:
            branch = fields.get("branch")
            entries.append(WorktreeEntry(
                path=Path(fields["worktree"]),
                head=fields.get("HEAD"),
                branch=branch.removeprefix("refs/heads/") if branch else None,
                prunable="prunable" in fields,
            ))
    return entries


def branch_checked_out_at(root: Path, branch: str) -> Path | None:
    for entry in list_worktrees(root):
        if entry.branch == branch:
            return entry.path
    return None


def add_worktree(root: Path, path: Path, branch: str, start: str, *, new_branch: bool = True) -> None:
    """Create ``branch`` at ``start`` and check it out at ``path`` (or check out an existing one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if new_branch:
        run(root, "worktree", "add", "--quiet", "-b", branch, str(path), start)
    else:
        run(root, "worktree", "add", "--quiet", str(path), branch)


def remove_worktree(root: Path, path: Path) -> None:
    """Remove the worktree at ``path``, dirty or not; prune its record if it was deleted by hand."""
    if path.exists():
        try:
            run(root, "worktree", "remove", "--force", "--force", str(path))
            return  # (its record went with it: nothing to prune)
        except GitError:
            # Not (or no longer) registered as a worktree: it is cockpit's directory, remove it.
            shutil.rmtree(path)
    run(root, "worktree", "prune")


def delete_branch(root: Path, branch: str) -> None:
    """Delete ``branch`` if it exists. One checked out in a worktree is refused (git refuses it
    too; asked only then, ``git worktree list`` says where)."""
    if not branch_exists(root, branch):
        return
    try:
        run(root, "branch", "-D", branch)
    except GitError:
        at = branch_checked_out_at(root, branch)
        if at is not None:
            raise CockpitError(f"branch {branch!r} is checked out at {at}: not deleting it") from None
        raise


def snapshot(worktree: Path, message: str) -> str:
    """A commit of the worktree's whole state, on top of its HEAD, without touching it.

    Tracked changes (staged or not, deletions included) and untracked, non-ignored files go in;
    the worktree, its index and its branch are left exactly as they were. Uses a temporary
    index: ``git stash create`` would leave untracked files out.
    """
    head = run(worktree, "rev-parse", "--verify", "HEAD")
    with tempfile.TemporaryDirectory(prefix="cockpit-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index"), **_IDENTITY}
        run(worktree, "read-tree", "HEAD", env=env)
        run(worktree, "add", "--all", "--", ".", env=env)
        tree = run(worktree, "write-tree", env=env)
    return run(worktree, "commit-tree", tree, "-p", head, "-m", message, env=_IDENTITY)


def fixed_commit(root: Path, tree: str, parent: str, message: str) -> str:
    """A commit of ``tree`` on top of ``parent`` with cockpit's identity and a fixed date, so the
    same tree on the same parent is always the same commit (the conflict radar's snapshots)."""
    return run(root, "commit-tree", tree, "-p", parent, "-m", message,
               env={**_IDENTITY, "GIT_AUTHOR_DATE": "@0 +0000", "GIT_COMMITTER_DATE": "@0 +0000"})


def worktree_tree(worktree: Path) -> str:
    """The tree of the worktree's whole state — what :func:`snapshot` would commit — without
    touching the worktree, its index or its branch.

    The temporary index starts as a copy of the real one reset to HEAD (``read-tree -m`` keeps
    the cached stat data of unchanged files), so ``add --all`` hashes only what changed: cheap
    enough to call for a worktree of thousands of files. Tracked changes, deletions and untracked,
    non-ignored files go in, exactly as in a discard's archive.
    """
    real_index = Path(run(worktree, "rev-parse", "--path-format=absolute", "--git-path", "index"))
    with tempfile.TemporaryDirectory(prefix="cockpit-index-") as tmp:
        index = Path(tmp) / "index"
        env = {"GIT_INDEX_FILE": str(index)}
        seeded = False
        if real_index.is_file():
            shutil.copyfile(real_index, index)
            seeded = ok_env(worktree, env, "read-tree", "-m", "HEAD")
        if not seeded:  # no index yet, or one read-tree -m refuses (unmerged entries)
            index.unlink(missing_ok=True)
            run(worktree, "read-tree", "HEAD", env=env)
        run(worktree, "add", "--all", "--", ".", env=env)
        return run(worktree, "write-tree", env=env)


def ok_env(cwd: Path, env: dict[str, str], *args: str) -> bool:
    """Like :func:`ok`, with extra environment."""
    try:
        run(cwd, *args, env=env)
        return True
    except GitError:
        return False


def merge_base(root: Path, a: str, b: str) -> str | None:
    """The best common ancestor of two commits, or None when they share no history."""
    try:
        return run(root, "merge-base", a, b) or None
    except GitError:
        return None


def is_ancestor(root: Path, ancestor: str, descendant: str) -> bool:
    """Whether ``ancestor`` is reachable from ``descendant`` (a commit is its own ancestor)."""
    return ok(root, "merge-base", "--is-ancestor", ancestor, descendant)


def update_ref(root: Path, ref: str, sha: str) -> None:
    run(root, "update-ref", ref, sha)


def delete_ref(root: Path, ref: str) -> None:
    """Remove ``ref`` if it exists."""
    if ref_sha(root, ref) is not None:
        run(root, "update-ref", "-d", ref)


def list_refs(root: Path, prefix: str) -> list[tuple[str, str]]:
    out = run(root, "for-each-ref", "--format=%(refname) %(objectname)", prefix)
    return [tuple(line.split(" ", 1)) for line in out.splitlines() if line]  # type: ignore[misc]


def restore_files(worktree: Path, snapshot_sha: str) -> None:
    """Make the worktree's files exactly those of ``snapshot_sha`` while its index stays at HEAD.

    After this, files that were uncommitted at snapshot time are uncommitted again and files
    that were untracked are untracked again.
    """
    run(worktree, "read-tree", "--reset", "-u", snapshot_sha)
    run(worktree, "reset", "--quiet", "--mixed", "HEAD")


def status_entries(worktree: Path) -> list[tuple[str, str, str | None]]:
    """``(code, path, source)`` for every change ``git status`` shows (untracked files one by
    one, code ``??``; ignored files are not listed). ``source`` is a rename's or copy's origin."""
    out = run(worktree, "status", "--porcelain=v1", "--untracked-files=all", "-z", strip=False)
    entries: list[tuple[str, str, str | None]] = []
    items = out.split("\0")
    index = 0
    while index < len(items):
        item = items[index]
        if item:
            code, path = item[:2], item[3:]
            source = None
            if code[0] in "RC":
                index += 1  # the rename's source follows
                source = items[index] if index < len(items) else None
            entries.append((code, path, source))
        index += 1
    return entries


def status_porcelain(worktree: Path) -> list[str]:
    """Every path ``git status`` shows as changed or untracked (a rename by its new name)."""
    return [path for _, path, _ in status_entries(worktree)]


def commits_ahead(worktree: Path, base_sha: str) -> int:
    return int(run(worktree, "rev-list", "--count", f"{base_sha}..HEAD") or 0)


@dataclass(frozen=True)
class Changes:
    """What a worktree changed against a commit: committed, uncommitted and untracked."""

    paths: frozenset[str]
    """Every path touched (both sides of a rename)."""
    files: int
    insertions: int
    deletions: int

    @property
    def summary(self) -> tuple[int, int, int]:
        return self.files, self.insertions, self.deletions


def changes(worktree: Path, base_sha: str) -> Changes:
    """The worktree against ``base_sha``, in two git calls (the diff summary on a tile and the
    ownership checks both come from here)."""
    found = commit_changes(worktree, base_sha)
    paths, files, insertions, deletions = set(found.paths), found.files, found.insertions, found.deletions
    untracked = run(worktree, "ls-files", "--others", "--exclude-standard", "-z", strip=False)
    for path in filter(None, untracked.split("\0")):
        paths.add(path)
        files += 1
        try:
            with (worktree / path).open("rb") as handle:
                insertions += sum(1 for _ in handle)
        except OSError:
            pass
    return Changes(frozenset(paths), files, insertions, deletions)


def commit_changes(cwd: Path, base_sha: str, commit: str | None = None) -> Changes:
    """``base_sha`` against ``commit`` (None: the worktree ``cwd``'s tracked files) in one
    ``git diff --numstat``: the paths touched and the line counts (a remote agent's snapshot
    against its base, here or on its host)."""
    paths: set[str] = set()
    files = insertions = deletions = 0
    # -z: "added TAB removed TAB path NUL", or for a rename "added TAB removed TAB NUL old NUL new NUL"
    tokens = run(cwd, "diff", "--numstat", "-z", base_sha, *([commit] if commit else []), strip=False).split("\0")
    i = 0
    while i < len(tokens):
        fields = tokens[i].split("\t", 2)  # (a path may hold a tab)
        if len(fields) != 3:
            i += 1
            continue
        added, removed, path = fields
        if path:
            paths.add(path)
            i += 1
        else:
            paths.update(p for p in tokens[i + 1:i + 3] if p)
            i += 3
        files += 1
        insertions += int(added) if added.isdigit() else 0
        deletions += int(removed) if removed.isdigit() else 0
    return Changes(frozenset(paths), files, insertions, deletions)


def diff_summary(worktree: Path, base_sha: str) -> tuple[int, int, int]:
    """(files, insertions, deletions) of the worktree against ``base_sha``, untracked files included."""
    return changes(worktree, base_sha).summary


def ensure_excluded(root: Path, pattern: str = "/.cockpit/") -> None:
    """Add ``pattern`` to ``.git/info/exclude`` once, so cockpit's files never show as untracked."""
    info = Path(run(root, "rev-parse", "--path-format=absolute", "--git-path", "info/exclude"))
    info.parent.mkdir(parents=True, exist_ok=True)
    existing = info.read_text() if info.exists() else ""
    if pattern not in existing.splitlines():
        with info.open("a") as handle:
            if existing and not existing.endswith("\n"):
                handle.write("\n")
            handle.write(f"{pattern}\n")


MERGE_TREE_GIT = (2, 38)
"""``git merge-tree --write-tree`` (a merge with no worktree and no index) needs git 2.38."""


def git_version() -> tuple[int, int] | None:
    """The installed git's (major, minor), or None when it cannot be told."""
    import re
    import subprocess
    try:
        out = subprocess.run(["git", "--version"], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                             timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"(\d+)\.(\d+)", out)
    return (int(match.group(1)), int(match.group(2))) if match else None


class MergeConflict(CockpitError):
    """Commits that cannot be merged without a person: ``paths`` are the conflicting files."""

    def __init__(self, message: str, paths: list[str]) -> None:
        super().__init__(message)
        self.paths = paths


@dataclass(frozen=True)
class MergeTree:
    """What ``git merge-tree --write-tree`` made of two commits: the merged ``tree`` (conflict
    markers included in the files that conflict) and, per conflicting path, the blob of each
    stage git recorded (1: the merge base, 2: the first commit, 3: the second)."""

    tree: str
    clean: bool
    stages: dict[str, dict[int, str]]

    @property
    def conflicts(self) -> list[str]:
        """The conflicting paths, in git's order (empty when the merge is clean)."""
        return list(self.stages)


def merge_tree(root: Path, ours: str, theirs: str) -> MergeTree:
    """Merge two commits with no worktree and no index (git >= 2.38; the merge base is git's
    choice). Conflicts are the answer, not an error: :class:`GitError` only when git cannot merge
    them at all (an unknown commit, unrelated histories). Text conflicts are written in the
    plain ``merge`` style whatever the user's ``merge.conflictStyle``."""
    status, out, err = execute(root, [*SAFE_CONFIG, "-c", "merge.conflictStyle=merge", "merge-tree", "--write-tree",
                                      "--no-messages", "-z", ours, theirs])
    fields = out.split("\0")
    tree = fields[0].strip()
    if status not in (0, 1) or len(tree) < 40 or not all(c in "0123456789abcdef" for c in tree):
        last = (err or "").strip().splitlines()
        raise GitError(f"git merge-tree failed: {last[-1] if last else f'exit {status}'}")
    stages: dict[str, dict[int, str]] = {}
    if status == 1:  # "<mode> <blob> <stage>\t<path>" per conflicting stage, until an empty field
        for entry in fields[1:]:
            if not entry:
                break
            info, _, path = entry.partition("\t")
            parts = info.split(" ")
            if len(parts) == 3 and parts[2].isdigit():
                stages.setdefault(path, {})[int(parts[2])] = parts[1]
    return MergeTree(tree, status == 0, stages)


def merge_commit(root: Path, parents: list[str], message: str) -> str:
    """A commit whose tree merges ``parents`` and whose parents are exactly those commits (an
    octopus for more than two), made without a worktree or an index (:func:`merge_tree`, one
    pair at a time). Duplicates are merged once; a single distinct parent is returned as is.
    Raises :class:`MergeConflict` naming the conflicting paths."""
    unique = list(dict.fromkeys(parents))
    if len(unique) == 1:
        return unique[0]
    current, tree = unique[0], ""
    for i, tip in enumerate(unique[1:], start=1):
        merged = merge_tree(root, current, tip)
        if not merged.clean:
            paths = merged.conflicts
            raise MergeConflict(f"conflicts in {', '.join(paths) or 'files git could not name'}", paths)
        tree = merged.tree
        if i < len(unique) - 1:  # an intermediate commit, for the next pair's merge
            current = run(root, "commit-tree", tree, "-p", current, "-p", tip, "-m", message, env=_IDENTITY)
    argv = ["commit-tree", tree]
    for parent in unique:
        argv += ["-p", parent]
    return run(root, *argv, "-m", message, env=_IDENTITY)
