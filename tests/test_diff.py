"""``core/diff``: what an agent changed — committed, uncommitted and untracked — against the
merge-base of base and its HEAD, without touching its worktree."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cockpit.core.diff import agent_diff, base_moved, totals
from cockpit.core.fleet import Fleet
from conftest import git, tree_hashes, wait_until

pytestmark = pytest.mark.tmux


def log_text(fleet: Fleet, name: str) -> str:
    path = fleet.layout.session_log(name)
    return path.read_bytes().decode(errors="replace") if path.exists() else ""


def spawn_script(fleet: Fleet, tmp_path: Path, name: str, body: str) -> Path:
    """Spawn an agent running ``body`` (sh), then printing READY and sleeping; wait for READY."""
    script = tmp_path / f"agent-{name}.sh"
    script.write_text(f"set -e\n{body}\necho READY\nexec sleep 600\n")
    fleet.spawn(name, command=f"sh {script}")
    wait_until(lambda: "READY" in log_text(fleet, name), message=f"{name} ready")
    return fleet.layout.worktree(name)


WORK = """\
printf 'one\\ntwo\\n' > committed.txt
git add committed.txt
git commit -qm committed
printf 'hello\\nmore\\n' > README.md
rm src/app.py
mkdir -p new/deep
printf 'u1\\nu2\\nu3\\n' > new/deep/untracked.txt
printf '\\000\\001\\002' > blob.bin
printf 'staged\\n' > staged.txt
git add staged.txt
"""


def _index_digest(worktree: Path) -> str:
    index = Path(git(worktree, "rev-parse", "--path-format=absolute", "--git-path", "index"))
    return hashlib.sha256(index.read_bytes()).hexdigest()


def test_diff_covers_committed_uncommitted_and_untracked(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    worktree = spawn_script(fleet, tmp_path, "d", WORK)
    files_before = tree_hashes(worktree)
    status_before = git(worktree, "status", "--porcelain", "--untracked-files=all")
    index_before = _index_digest(worktree)

    diff = agent_diff(fleet, "d")
    files = {f.path: f for f in diff.files()}
    assert set(files) == {"committed.txt", "README.md", "src/app.py", "new/deep/untracked.txt", "blob.bin",
                          "staged.txt"}
    assert (files["committed.txt"].status, files["committed.txt"].added, files["committed.txt"].removed) == ("A", 2, 0)
    assert (files["README.md"].status, files["README.md"].added, files["README.md"].removed) == ("M", 1, 0)
    assert (files["src/app.py"].status, files["src/app.py"].removed) == ("D", 1)
    assert files["new/deep/untracked.txt"].added == 3
    assert files["blob.bin"].binary and files["blob.bin"].added is None
    assert totals(files.values()) == (6, 2 + 1 + 3 + 1, 1)

    readme = diff.patch("README.md")
    assert readme.startswith("diff --git a/README.md b/README.md") and "+more" in readme and "-hello" not in readme
    assert "diff --git" not in readme[1:]
    everything = diff.patch()
    assert everything.count("diff --git ") == 6 and "Binary files" in everything
    assert "\x1b[" not in everything and "\x1b[" in diff.patch("README.md", color=True)
    # Batches give exactly the per-file patches, in the list's order.
    batched = list(diff.patches(batch=4))
    assert [p for p, _ in batched] == [f.path for f in diff.files()]
    assert all(text == diff.patch(path) for path, text in batched)

    # Nothing of the worktree was touched: files, status, index.
    assert tree_hashes(worktree) == files_before
    assert git(worktree, "status", "--porcelain", "--untracked-files=all") == status_before
    assert _index_digest(worktree) == index_before
    # It is exactly what a discard would archive.
    ref = fleet.discard("d")
    archived = git(repo, "diff", "--name-only", "--no-renames", diff.merge_base, ref).splitlines()
    assert sorted(archived) == sorted(files)


def test_diff_is_against_the_merge_base_and_counts_base_moves(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    spawn_script(fleet, tmp_path, "m", "printf 'agent\\n' > agent.txt\ngit add agent.txt\ngit commit -qm agent")
    assert base_moved(fleet, "m") == 0
    for n in range(3):  # base moves on: those commits are not the agent's change
        (repo / f"base{n}.txt").write_text("base\n")
        git(repo, "add", f"base{n}.txt")
        git(repo, "commit", "-qm", f"base {n}")
    assert base_moved(fleet, "m") == 3
    diff = agent_diff(fleet, "m")
    assert [f.path for f in diff.files()] == ["agent.txt"]
    assert diff.base_tip == git(repo, "rev-parse", "main")


def test_diff_of_a_missing_worktree_shows_the_branch(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    import shutil
    worktree = spawn_script(fleet, tmp_path, "g", "printf 'x\\n' > kept.txt\ngit add kept.txt\ngit commit -qm kept\n"
                                                  "printf 'lost\\n' > lost.txt")
    shutil.rmtree(worktree)
    assert [f.path for f in agent_diff(fleet, "g").files()] == ["kept.txt"]


def test_a_thousand_file_change_lists_fast_and_patches_incrementally(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    body = ("mkdir -p many\n"
            "i=0; while [ $i -lt 1000 ]; do printf 'line %s\\n' $i > many/f$i.txt; i=$((i+1)); done\n"
            "git add many\ngit commit -qm many\nprintf 'extra\\n' >> many/f7.txt")
    spawn_script(fleet, tmp_path, "big", body)
    diff = agent_diff(fleet, "big")
    files = diff.files()
    assert len(files) == 1000 and all(f.added for f in files)
    assert {f.path: f.added for f in files}["many/f7.txt"] == 2
    first = next(iter(diff.patches(batch=50)))  # the first patch is there before the rest is computed
    assert first[0] == files[0].path and "+line" in first[1]


def test_cli_diff_and_stat_plain_when_not_a_tty(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    spawn_script(fleet, tmp_path, "c", "printf 'c\\n' > c.txt\ngit add c.txt\ngit commit -qm c\nprintf 'u\\n' > u.txt")

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "cockpit", *args], cwd=repo, capture_output=True,
                              env=os.environ, timeout=60)

    stat = run("diff", "c", "--stat")
    assert stat.returncode == 0, stat.stderr
    out = stat.stdout.decode()
    assert "\x1b[" not in out
    assert "+1 -0  A c.txt" in out and "+1 -0  A u.txt" in out and "2 file(s) changed, 2 insertion(s)" in out
    full = run("diff", "c")
    assert full.returncode == 0 and b"+++ b/u.txt" in full.stdout and b"\x1b[" not in full.stdout
    assert run("diff", "nobody").returncode == 1


def test_worktree_changes_give_the_paths_and_the_summary_in_two_git_calls(repo: Path) -> None:
    """One ``diff --numstat -z`` and one ``ls-files`` answer both the ownership check (paths,
    both sides of a rename, a tab in a name) and the tile's summary (a rename is one file)."""
    from cockpit.core import worktrees
    (repo / "big.txt").write_text("".join(f"line {i}\n" for i in range(40)))
    git(repo, "add", "big.txt")
    git(repo, "commit", "--quiet", "-m", "big")
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "mv", "big.txt", "moved.txt")                    # a rename, staged
    (repo / "src" / "app.py").write_text("print('changed')\nprint('more')\n")  # modified
    (repo / "tab\tname.txt").write_text("a\nb\n")              # untracked, a tab in its name
    (repo / "blob.bin").write_bytes(b"\0\1\2")
    git(repo, "add", "blob.bin")                               # binary: counted, no lines
    found = worktrees.changes(repo, base)
    assert found.paths == {"big.txt", "moved.txt", "src/app.py", "tab\tname.txt", "blob.bin"}
    # What the two separate commands cockpit ran before say:
    name_only = set(filter(None, subprocess.run(
        ["git", "diff", "--name-only", "--no-renames", "-z", base], cwd=repo, capture_output=True,
        text=True, check=True).stdout.split("\0")))
    assert found.paths == name_only | {"tab\tname.txt"}
    numstat = git(repo, "diff", "--numstat", base).splitlines()
    assert found.files == len(numstat) + 1 == 4  # moved (one rename), app.py, blob.bin + untracked
    assert found.insertions == sum(int(line.split("\t")[0]) for line in numstat if line[0].isdigit()) + 2
    assert found.deletions == sum(int(line.split("\t")[1]) for line in numstat if line[0].isdigit())
    assert worktrees.diff_summary(repo, base) == found.summary
