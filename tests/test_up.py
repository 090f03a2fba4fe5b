"""`cockpit up` on a fleet that already ran: what it restarts, spawns and leaves, and that it says
why. Real git, tmux and processes; the CLI as a user types it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cockpit.core.fleet import Fleet
from cockpit.core.queue import MergeQueue, enqueue
from conftest import git, tmux, wait_until

pytestmark = pytest.mark.tmux
LIT = "'''"  # TOML literal strings: commands keep their quotes


def cockpit(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cockpit", *args], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ), stdin=subprocess.DEVNULL, timeout=60)


def ls(repo: Path) -> dict[str, dict]:
    result = cockpit(repo, "ls", "--json")
    assert result.returncode == 0, result.stderr
    return {a["name"]: a for a in json.loads(result.stdout)}


def agents_toml(*agents: tuple[str, str], header: str = "", after: dict[str, str] | None = None) -> str:
    text = header
    for name, command in agents:
        text += f'[[agent]]\nname = "{name}"\ncommand = {LIT}{command}{LIT}\n'
        if after and name in after:
            text += f'after = ["{after[name]}"]\n'
    return text


STARTS = "echo start >> starts.txt; echo up; exec sleep 600"  # counts its starts in its worktree


def test_up_after_down_restarts_the_fleet_in_place(repo: Path) -> None:
    (repo / "cockpit.toml").write_text(agents_toml(("a", STARTS), ("b", STARTS)))
    assert cockpit(repo, "up", "--no-tui").returncode == 0
    assert cockpit(repo, "spawn", "adhoc", "--command", "sleep 600").returncode == 0  # not in cockpit.toml
    wait_until(lambda: all(a["state"] == "running" for a in ls(repo).values()), message="all running")
    before = ls(repo)
    worktree_a = Path(before["a"]["worktree"])
    wait_until(lambda: (worktree_a / "starts.txt").exists(), message="a started")
    (worktree_a / "wip.txt").write_text("uncommitted work\n")
    assert cockpit(repo, "down").returncode == 0
    assert {a["state"] for a in ls(repo).values()} == {"killed"}

    result = cockpit(repo, "up", "--no-tui")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "All 2 dispatches use isolation: worktree — verified",
        "a: restarted (attempt 2, same worktree and branch cockpit/a)",
        "b: restarted (attempt 2, same worktree and branch cockpit/b)",
        "adhoc: left killed: not in cockpit.toml ('cockpit respawn adhoc --keep' restarts it)"]
    after = ls(repo)
    for name in "ab":
        assert after[name]["state"] == "running" and after[name]["attempt"] == 2
        assert after[name]["branch"] == f"cockpit/{name}" and after[name]["worktree"] == before[name]["worktree"]
    assert (worktree_a / "wip.txt").read_text() == "uncommitted work\n"  # the same worktree, kept as it was
    wait_until(lambda: (worktree_a / "starts.txt").read_text() == "start\nstart\n", message="a restarted")
    assert after["adhoc"]["state"] == "killed"
    assert sorted(b for b in git(repo, "branch", "--list", "--format=%(refname:short)").split()) == [
        "cockpit/a", "cockpit/adhoc", "cockpit/b", "main"]

    again = cockpit(repo, "up", "a", "b", "--no-tui")  # running agents are untouched; only those named
    assert again.stdout.splitlines() == ["a: already running", "b: already running"]
    assert ls(repo)["a"]["attempt"] == 2


def test_up_restarts_a_crashed_agent_and_leaves_done_failed_and_halted_ones(repo: Path) -> None:
    (repo / "cockpit.toml").write_text(agents_toml(
        ("done", "exit 0"), ("bad", "exit 3"), ("lib", "exit 1"), ("app", STARTS), ("crash", STARTS),
        header="[cockpit]\nmax_failures = 1\n", after={"app": "lib"}))
    assert cockpit(repo, "up", "--no-tui").returncode == 0
    wait_until(lambda: {n: a["state"] for n, a in ls(repo).items()} == {
        "done": "exited", "bad": "halted", "lib": "halted", "app": "halted", "crash": "running"},
        message="done exited, bad/lib halted (max_failures = 1), app halted with lib, crash running")
    tmux(repo, "kill-session", "-t", "=crash", check=True)  # a crash
    wait_until(lambda: ls(repo)["crash"]["state"] == "killed", message="the crash recorded")

    result = cockpit(repo, "up", "--no-tui")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Not applicable because N=1 (the pre-spawn checklist runs for batches of two or more)"
    said = {line.split(":", 1)[0]: line.split(": ", 1)[1] for line in lines[1:]}
    assert said["crash"] == "restarted (attempt 2, same worktree and branch cockpit/crash)"
    assert said["done"].startswith("left exited: it finished with exit 0 (done")
    assert said["bad"] == ("left halted after 1 failure(s) (max_failures = 1): it needs 'cockpit respawn bad' "
                           "with a new --task or --command, or --force")
    assert said["lib"].startswith("left halted after 1 failure(s)")
    assert said["app"].startswith("left halted because 'lib' failed: respawn 'lib' (that releases it)")
    states = {n: (a["state"], a["attempt"]) for n, a in ls(repo).items()}
    assert states == {"done": ("exited", 1), "bad": ("halted", 1), "lib": ("halted", 1), "app": ("halted", 1),
                      "crash": ("running", 2)}


def test_up_leaves_a_failed_agent_for_respawn(repo: Path) -> None:
    (repo / "cockpit.toml").write_text(agents_toml(("bad", "exit 3")))
    assert cockpit(repo, "up", "--no-tui").returncode == 0
    wait_until(lambda: ls(repo)["bad"]["state"] == "failed", message="bad failed")
    result = cockpit(repo, "up", "--no-tui")
    assert result.returncode == 0
    assert result.stdout.splitlines()[-1] == (
        "bad: left failed (exit 3, 1/2 failures): 'cockpit respawn bad' starts the next attempt")
    assert ls(repo)["bad"]["attempt"] == 1


def test_up_spawns_discarded_agents_afresh_and_leaves_a_missing_one(repo: Path) -> None:
    (repo / "cockpit.toml").write_text(agents_toml(("gone", STARTS), ("gone2", STARTS), ("lost", STARTS)))
    assert cockpit(repo, "up", "--no-tui").returncode == 0
    worktree = Path(ls(repo)["gone"]["worktree"])
    wait_until(lambda: (worktree / "starts.txt").exists(), message="gone started")
    (worktree / "mine.txt").write_text("work worth keeping\n")
    for name in ("gone", "gone2"):
        assert cockpit(repo, "discard", name, "--yes").returncode == 0
    assert (repo / ".cockpit" / "agents" / "gone").is_dir()  # its log directory stays
    assert cockpit(repo, "kill", "lost").returncode == 0
    lost_worktree = Path(ls(repo)["lost"]["worktree"])
    subprocess.run(["rm", "-rf", str(lost_worktree)], check=True)

    result = cockpit(repo, "up", "--no-tui")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "All 2 dispatches use isolation: worktree — verified",
        "gone: spawned afresh (it was discarded; its archives stay: cockpit archives gone)",
        "gone2: spawned afresh (it was discarded; its archives stay: cockpit archives gone2)",
        f"lost: left missing: its worktree {lost_worktree} is gone "
        "('cockpit respawn lost' starts afresh, archiving its branch first)"]
    agents = ls(repo)
    assert agents["gone"]["state"] == "running" and agents["gone"]["attempt"] == 1
    assert not (worktree / "mine.txt").exists()  # a fresh worktree ...
    archive = git(repo, "show", "refs/cockpit/archive/gone/1:mine.txt")  # ... the old work archived
    assert archive == "work worth keeping"
    assert agents["lost"]["state"] == "missing" and not lost_worktree.exists()


def test_up_leaves_a_merged_agent_done(fleet: Fleet, repo: Path) -> None:
    (repo / "cockpit.toml").write_text(agents_toml(
        ("feature", "echo feature > feature.txt; git add feature.txt; git commit -qm feature; exit 0")))
    git(repo, "add", "cockpit.toml")
    git(repo, "commit", "-qm", "config")
    fleet.up()
    wait_until(lambda: fleet.agent("feature").state == "exited", message="feature done")
    enqueue(fleet, ["feature"])
    assert [o.state for o in MergeQueue(fleet).run()] == ["merged"]
    result = cockpit(repo, "up", "--no-tui")
    assert result.returncode == 0
    assert result.stdout.splitlines() == ["feature: left merged: its work is in base (done)"]


def test_a_single_agent_that_cannot_start_is_refused_and_said(repo: Path) -> None:
    """A batch of one is not checked, so the spawn's own check refuses it: said on stderr,
    exit 1, nothing of it left behind; the running agent is untouched."""
    (repo / "cockpit.toml").write_text(agents_toml(("one", STARTS), ("two", STARTS)))
    git(repo, "branch", "cockpit/one")  # someone else's branch of that name
    assert cockpit(repo, "spawn", "two").returncode == 0
    result = cockpit(repo, "up", "--no-tui")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "one: not started: branch 'cockpit/one' already exists and is not a live cockpit agent's: "
        "refusing to touch it (rename or delete it first)"]
    assert result.stdout.splitlines() == [
        "Not applicable because N=1 (the pre-spawn checklist runs for batches of two or more)",
        "two: already running"]
    assert set(ls(repo)) == {"two"} and not (repo / ".cockpit" / "worktrees" / "one").exists()


def test_an_agent_that_fails_to_start_holds_back_its_dependents_only(repo: Path) -> None:
    (repo / "cockpit.toml").write_text(agents_toml(("one", STARTS), ("two", STARTS), ("three", STARTS),
                                                   after={"three": "one"}))
    leftover = repo / ".cockpit" / "agents" / "one" / "tmp"  # a file where its TMPDIR must go
    leftover.parent.mkdir(parents=True)
    leftover.write_text("not a directory\n")
    result = cockpit(repo, "up", "--no-tui")
    assert result.returncode == 1
    assert result.stdout.splitlines() == ["All 3 dispatches use isolation: worktree — verified", "two: spawned"]
    errors = result.stderr.splitlines()
    assert len(errors) == 2 and errors[0].startswith("one: not started: ") and "tmp" in errors[0]
    assert errors[1] == "three: not started: it runs after 'one', which did not start"
    assert set(ls(repo)) == {"two"}
    assert git(repo, "branch", "--list", "cockpit/one") == "" and leftover.read_text() == "not a directory\n"


def test_up_leaves_an_agent_in_an_unknown_state_alone(repo: Path) -> None:
    """The fleet's server runs but cannot be reached (stopped, socket moved away): up cannot
    tell whether the agent runs, so it starts nothing and says why."""
    import signal
    (repo / "cockpit.toml").write_text(agents_toml(("docs", STARTS)))
    assert cockpit(repo, "up", "--no-tui").returncode == 0
    fleet = Fleet(repo)
    address = fleet.tmux.address
    os.kill(address.server_pid, signal.SIGSTOP)
    os.rename(address.socket, address.socket + ".gone")
    try:
        result = cockpit(repo, "up", "--no-tui")
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert len(lines) == 1 and lines[0].startswith("docs: left unknown: ") and "cannot be reached" in lines[0]
    finally:
        Path(address.socket + ".gone").rename(address.socket)
        os.kill(address.server_pid, signal.SIGCONT)
    assert Fleet(repo).agent("docs").state == "running" and Fleet(repo).agent("docs").attempt == 1
