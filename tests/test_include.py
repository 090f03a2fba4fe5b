""".worktreeinclude against real git: which files a new worktree gets, and how they are copied."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cockpit.core import include
from cockpit.core.include import IncludeError
from conftest import git


@pytest.fixture
def checkout(repo: Path) -> Path:
    """The main checkout with a .gitignore and the ignored files a developer has."""
    (repo / ".gitignore").write_text(".env\n*.local\nnode_modules/\nsecrets/\n!keep.local\nbuild/\n")
    (repo / "tracked.local").write_text("tracked\n")
    git(repo, "add", "-f", ".gitignore", "tracked.local")
    git(repo, "commit", "-qm", "ignore rules")
    (repo / ".env").write_text("SECRET=1\n")
    (repo / ".env").chmod(0o600)
    (repo / "config").mkdir()
    (repo / "config" / "dev.local").write_text("dev\n")
    (repo / "run.local").write_text("#!/bin/sh\n")
    (repo / "run.local").chmod(0o755)
    (repo / "keep.local").write_text("not ignored: work in progress\n")
    (repo / "notes.txt").write_text("untracked, not ignored\n")
    (repo / "node_modules" / "a").mkdir(parents=True)
    (repo / "node_modules" / "a" / "index.js").write_text("module.exports = 1\n")
    (repo / "build").mkdir()
    (repo / "build" / "out.bin").write_bytes(b"\0\1")
    return repo


def worktree_of(repo: Path, name: str = "w") -> Path:
    path = repo.parent / name
    git(repo, "worktree", "add", "--quiet", "-b", name, str(path))
    return path


def test_copies_what_matches_and_is_ignored_and_nothing_else(checkout: Path) -> None:
    (checkout / ".worktreeinclude").write_text("# environment\n.env\n*.local\nnode_modules/\nnotes.txt\n")
    assert include.matching(checkout) == [".env", "config/dev.local", "node_modules/a/index.js", "run.local"]
    wt = worktree_of(checkout)
    before_tracked = (wt / "tracked.local").read_text()
    done = include.copy_into(checkout, wt)
    assert sorted(done.copied) == [".env", "config/dev.local", "node_modules/a/index.js", "run.local"]
    assert (wt / ".env").read_text() == "SECRET=1\n"
    assert not (wt / "keep.local").exists()  # matches, but git does not ignore it: the user's work
    assert not (wt / "notes.txt").exists()   # untracked and not ignored: never copied
    assert not (wt / "build").exists()       # ignored, but not listed
    assert (wt / "tracked.local").read_text() == before_tracked  # tracked: already there, untouched
    assert git(wt, "status", "--porcelain") == ""  # every copy is ignored: the worktree is clean
    # modes and modification times are kept
    assert stat.S_IMODE((wt / ".env").stat().st_mode) == 0o600
    assert stat.S_IMODE((wt / "run.local").stat().st_mode) == 0o755
    assert (wt / ".env").stat().st_mtime_ns == (checkout / ".env").stat().st_mtime_ns


def test_never_overwrites_a_file_the_worktree_has(checkout: Path) -> None:
    (checkout / ".worktreeinclude").write_text(".env\n")
    wt = worktree_of(checkout)
    (wt / ".env").write_text("the agent's own\n")
    done = include.copy_into(checkout, wt)
    assert done.copied == [] and done.kept == [".env"]
    assert (wt / ".env").read_text() == "the agent's own\n"


def test_no_include_file_copies_nothing(checkout: Path) -> None:
    wt = worktree_of(checkout)
    assert include.matching(checkout) == [] and include.copy_into(checkout, wt).copied == []
    assert not (wt / ".env").exists()


def test_symlinks_are_never_followed_out_of_the_repository(checkout: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("outside the repository\n")
    (checkout / "abs.local").symlink_to(outside)
    (checkout / "rel-out.local").symlink_to(os.path.relpath(outside, checkout))
    (checkout / "inside.local").symlink_to("config/dev.local")
    (checkout / "secrets").symlink_to(tmp_path)  # an ignored directory that is a symlink out
    (checkout / ".worktreeinclude").write_text("*.local\nsecrets/\n")
    wt = worktree_of(checkout)
    done = include.copy_into(checkout, wt)
    skipped = dict(done.skipped)
    assert "abs.local" in skipped and "rel-out.local" in skipped and "not followed" in skipped["abs.local"]
    assert not os.path.lexists(wt / "abs.local") and not os.path.lexists(wt / "rel-out.local")
    assert os.readlink(wt / "inside.local") == "config/dev.local"  # recreated as the same link
    assert (wt / "inside.local").read_text() == "dev\n"
    assert not os.path.lexists(wt / "secrets") and outside.read_text() == "outside the repository\n"


def test_a_symlinked_directory_in_the_worktree_is_not_written_through(checkout: Path, tmp_path: Path) -> None:
    (checkout / ".worktreeinclude").write_text("config/\n")
    wt = worktree_of(checkout)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (wt / "config").symlink_to(elsewhere)
    done = include.copy_into(checkout, wt)
    assert done.copied == [] and "is a symlink" in dict(done.skipped)["config/dev.local"]
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("pattern, why", [
    ("../shared/.env", "escapes the repository"),
    ("!../x", "escapes the repository"),
    ("config/../../x", "escapes the repository"),
    ("/etc/hosts", "looks like an absolute path"),
    ("~/.aws/credentials", "home directory"),
])
def test_a_pattern_that_leaves_the_repository_is_refused_naming_file_and_line(checkout: Path, pattern: str,
                                                                                 why: str) -> None:
    (checkout / ".worktreeinclude").write_text(f".env\n\n{pattern}\n")
    wt = worktree_of(checkout)
    with pytest.raises(IncludeError) as info:
        include.copy_into(checkout, wt)
    message = str(info.value)
    assert f".worktreeinclude:3: {pattern!r}" in message and why in message and "\n" not in message
    assert not (wt / ".env").exists()  # refused before anything was copied


def test_an_anchored_pattern_is_not_taken_for_an_absolute_path(checkout: Path) -> None:
    (checkout / ".worktreeinclude").write_text("/config/\n/.env\n")
    assert include.matching(checkout) == [".env", "config/dev.local"]


def test_patterns_that_match_nothing_are_reported(checkout: Path) -> None:
    (checkout / ".worktreeinclude").write_text(".env\n.env.production\nnotes.txt\n!config/\n")
    assert [p.text for p in include.unmatched(checkout)] == [".env.production", "notes.txt"]


def test_cockpit_s_own_directory_is_never_a_source(checkout: Path) -> None:
    (checkout / ".cockpit" / "agents" / "x" / "tmp").mkdir(parents=True)
    (checkout / ".cockpit" / "agents" / "x" / "tmp" / ".env").write_text("an agent's\n")
    git(checkout, "config", "core.excludesFile", str(checkout / ".git" / "info" / "cockpit-none"))
    (checkout / ".git" / "info" / "exclude").write_text("/.cockpit/\n")
    (checkout / ".worktreeinclude").write_text(".env\n")
    assert include.matching(checkout) == [".env"]
