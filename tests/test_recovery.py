"""Crashes between steps: the engine SIGKILLed inside spawn, discard, respawn and restore.
After each, a fresh `cockpit ls` shows a consistent state and the operation can be retried."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cockpit.core.server import default_socket
from cockpit.core.watch import SESSION as WATCHER
from conftest import git, tmux, wait_until

pytestmark = pytest.mark.tmux


def cockpit(repo: Path, *args: str, crash: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ}
    if crash:
        env["COCKPIT_CRASH_AT"] = crash
    return subprocess.run([sys.executable, "-m", "cockpit", *args], cwd=repo, capture_output=True, text=True,
                          env=env, stdin=subprocess.DEVNULL, timeout=60)


def ls(repo: Path) -> dict[str, dict]:
    result = cockpit(repo, "ls", "--json")
    assert result.returncode == 0, result.stderr
    return {a["name"]: a for a in json.loads(result.stdout)}


def sessions(repo: Path) -> list[str]:
    return tmux(repo, "list-sessions", "-F", "#{session_name}").stdout.split()


def assert_consistent(repo: Path) -> dict[str, dict]:
    agents = ls(repo)
    branches = {b.strip("*+ ") for b in git(repo, "branch", "--list", "cockpit/*").splitlines()}
    worktrees = {p.name for p in (repo / ".cockpit" / "worktrees").glob("*")}
    assert branches == {a["branch"] for a in agents.values() if a["state"] != "missing"}
    assert worktrees == {n for n, a in agents.items() if a["state"] != "missing"}
    assert set(sessions(repo)) - {WATCHER} <= set(agents)  # the watcher's hidden session is no agent
    return agents


@pytest.mark.parametrize("step", ["before-worktree", "after-worktree", "after-session"])
def test_crash_inside_spawn_rolls_back(repo: Path, step: str) -> None:
    result = cockpit(repo, "spawn", "s", "--command", "sleep 60", crash=f"spawn:{step}")
    assert result.returncode == -9
    assert assert_consistent(repo) == {}
    assert cockpit(repo, "spawn", "s", "--command", "sleep 60").returncode == 0
    assert ls(repo)["s"]["state"] == "running"


@pytest.mark.parametrize("step", ["before-archive", "after-archive", "after-teardown"])
def test_crash_inside_discard_completes_it(repo: Path, step: str) -> None:
    assert cockpit(repo, "spawn", "d", "--command", "echo data > work.txt; sleep 60").returncode == 0
    assert cockpit(repo, "spawn", "other", "--command", "sleep 60").returncode == 0
    worktree = repo / ".cockpit" / "worktrees" / "d"
    wait_until((worktree / "work.txt").exists, message="agent wrote its file")
    assert cockpit(repo, "discard", "d", "--yes", crash=f"discard:{step}").returncode == -9
    agents = assert_consistent(repo)
    assert set(agents) == {"other"} and agents["other"]["state"] == "running"
    refs = git(repo, "for-each-ref", "--format=%(refname)", "refs/cockpit/archive/d/").split()
    assert refs, "the archive was lost"
    assert "work.txt" in git(repo, "ls-tree", "-r", "--name-only", refs[-1])
    restored = cockpit(repo, "restore", "d")
    assert restored.returncode == 0, restored.stderr
    assert (worktree / "work.txt").read_text() == "data\n"


@pytest.mark.parametrize("step", ["after-archive", "after-teardown"])
def test_crash_inside_respawn_keeps_the_archive(repo: Path, step: str) -> None:
    assert cockpit(repo, "spawn", "r", "--command", "echo v1 > out.txt; sleep 60").returncode == 0
    worktree = repo / ".cockpit" / "worktrees" / "r"
    wait_until((worktree / "out.txt").exists, message="agent wrote its file")
    assert cockpit(repo, "respawn", "r", crash=f"respawn:{step}").returncode == -9
    assert_consistent(repo)
    refs = git(repo, "for-each-ref", "--format=%(refname)", "refs/cockpit/archive/r/").split()
    assert refs and "out.txt" in git(repo, "ls-tree", "-r", "--name-only", refs[-1])
    agents = ls(repo)
    if "r" in agents:  # crashed before the old worktree went: the agent is still there, stopped
        assert cockpit(repo, "respawn", "r").returncode == 0
    else:  # crashed after: restore from the archive, then run again
        assert cockpit(repo, "restore", "r").returncode == 0
    assert "r" in ls(repo)


def test_crash_inside_restore_rolls_back(repo: Path) -> None:
    assert cockpit(repo, "spawn", "x", "--command", "echo keep > k.txt; sleep 60").returncode == 0
    assert cockpit(repo, "discard", "x", "--yes").returncode == 0
    assert cockpit(repo, "restore", "x", crash="restore:after-worktree").returncode == -9
    assert assert_consistent(repo) == {}
    assert cockpit(repo, "restore", "x").returncode == 0
    assert "x" in ls(repo)


def test_every_login_finds_the_same_server(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    assert default_socket(a) == default_socket(tmp_path / "x" / ".." / "a")
    assert default_socket(a) != default_socket(b)
    assert default_socket(a).parent == Path(f"/tmp/cockpit-{os.getuid()}") and len(str(default_socket(a))) < 60
