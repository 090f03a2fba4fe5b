"""How cockpit runs git (``worktrees.run``): what GitPython's wrapper did, without importing it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cockpit.core import ownership, worktrees


def _repo(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    return path


def test_output_errors_and_the_last_newline(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "r")
    assert worktrees.run(repo, "rev-parse", "--show-toplevel") == os.path.realpath(repo)
    assert worktrees.run(repo, "rev-parse", "--show-toplevel", strip=False).endswith("\n")
    with pytest.raises(worktrees.GitError, match=r"^git rev-parse failed: "):
        worktrees.run(repo, "rev-parse", "no-such-ref")


def test_messages_are_english_whatever_the_locale(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")
    monkeypatch.setenv("LANGUAGE", "de")
    with pytest.raises(worktrees.GitError, match="not a git repository"):
        worktrees.run(tmp_path, "rev-parse", "HEAD")


def test_a_missing_or_unusable_directory_is_an_error_never_the_current_one(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(_repo(tmp_path / "here"))  # (GitPython ran git here instead)
    with pytest.raises(worktrees.GitError, match="no such directory"):
        worktrees.run(tmp_path / "gone", "status")
    (tmp_path / "file").write_text("x")
    with pytest.raises(worktrees.GitError, match="file"):
        worktrees.run(tmp_path / "file", "status")
    assert not worktrees.ok(tmp_path / "gone", "rev-parse", "HEAD")


def test_non_utf8_output_survives(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "r")
    name = os.fsdecode(b"caf\xe9.txt")  # not UTF-8: kept as a surrogate escape, like GitPython did
    (repo / name).write_text("x")
    out = worktrees.run(repo, "-c", "core.quotePath=false", "ls-files", "--others", "-z", strip=False)
    assert out.split("\0")[0] == name


def test_changed_paths_agrees_with_changes(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "r")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x"}
    for name in ("a.txt", "b.txt", "c.txt"):
        (repo / name).write_text(f"{name}\n")
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "one"], check=True, env=env)
    base = worktrees.run(repo, "rev-parse", "HEAD")
    wt = tmp_path / "wt"
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "-q", "-b", "agent", str(wt), base], check=True)
    assert ownership.head_from_files(wt) == base
    (wt / "a.txt").write_text("changed\n")
    (wt / "b.txt").unlink()
    (wt / "sub").mkdir()
    (wt / "sub" / "new.txt").write_text("new\n")
    assert ownership.changed_paths(wt, base).paths == worktrees.changes(wt, base).paths == {
        "a.txt", "b.txt", "sub/new.txt"}
    subprocess.run(["git", "-C", str(wt), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(wt), "commit", "-qm", "work"], check=True, env=env)
    (wt / "c.txt").write_text("changed after the commit\n")
    assert ownership.head_from_files(wt) == worktrees.run(wt, "rev-parse", "HEAD") != base
    assert ownership.changed_paths(wt, base).paths == worktrees.changes(wt, base).paths == {
        "a.txt", "b.txt", "c.txt", "sub/new.txt"}
    subprocess.run(["git", "-C", str(repo), "pack-refs", "--all"], check=True)  # the branch only in packed-refs
    assert ownership.head_from_files(wt) == worktrees.run(wt, "rev-parse", "HEAD")
