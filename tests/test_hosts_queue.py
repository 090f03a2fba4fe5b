"""Remote agents in the persistent merge queue, against real hosts (tests/hosts_support.py): queued
with local agents in one order, listed with their host, landed by the one runner, blocked when
their host does not answer, and settled after the runner is killed mid-merge."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import git, wait_until
from hosts_support import Host, Lab
from test_hosts import cockpit, configure, last_commit, ok

pytestmark = [pytest.mark.ssh, pytest.mark.tmux]

COMMIT = ("sh -c 'echo {text} > {file} && git add {file} && "
          "git -c user.name=agent -c user.email=agent@example.invalid commit -qm \"{file} committed\" && sleep 600'")


def spawn_committer(repo: Path, name: str, file: str, host: Host | None = None) -> None:
    """An agent that commits ``file`` and then stays running; returns once the commit is there."""
    where = ["--host", host.alias] if host is not None else []
    ok(cockpit(repo, "spawn", name, "--command", COMMIT.format(text=name, file=file), *where))
    if host is not None:
        worktree = Path(host.repo, ".cockpit", "worktrees", name)
        wait_until(lambda: last_commit(host, worktree).endswith(f"{file} committed"), message=f"{name}'s commit")
    else:
        wait_until(lambda: git(repo, "log", "-1", "--format=%s", f"cockpit/{name}") == f"{file} committed",
                   message=f"{name}'s commit")


def hold_queue(repo: Path):
    """The queue lock, taken as a runner in another process would: ``cockpit merge`` then only
    queues (what a user sees while another cockpit runs the queue)."""
    from cockpit.core.fleet import Fleet
    from cockpit.core.queue import QueueLock, lock_path
    held = QueueLock(lock_path(Fleet(repo)))
    assert held.acquire()
    return held


def refs(repo: Path) -> dict[str, str]:
    """Every ref but the radar's snapshots (they move with a local agent's own work)."""
    lines = git(repo, "for-each-ref", "--format=%(refname) %(objectname)").splitlines()
    return dict(line.split(" ", 1) for line in lines if not line.startswith("refs/cockpit/snapshot/"))


def crashing(repo: Path, *args: str, at: str) -> subprocess.CompletedProcess[str]:
    """``cockpit ARGS`` SIGKILLed at crash point ``at`` (cockpit/core/crash.py)."""
    return subprocess.run([sys.executable, "-m", "cockpit", "-C", str(repo), *args], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL, env={**os.environ, "COCKPIT_CRASH_AT": at})


def test_merge_queues_local_and_remote_agents_in_one_order_and_the_runner_lands_them_in_turn(
        hosts: Lab, repo: Path) -> None:
    (big,) = hosts.up("big")
    hosts.install_cockpit(big)
    configure(repo, hosts, big, agents='[cockpit]\ngates = ["test -f README.md"]\n')
    spawn_committer(repo, "r1", "remote.txt", big)
    spawn_committer(repo, "l1", "local.txt")
    ok(cockpit(repo, "spawn", "r2", "--host", "big", "--command", "sh -c 'echo wip > wip.txt; sleep 600'"))
    wait_until(lambda: Path(big.repo, ".cockpit", "worktrees", "r2", "wip.txt").exists(), message="r2's file")

    bad = cockpit(repo, "merge", "r1", "ghost")  # one unknown name: nothing is queued
    assert bad.returncode == 1 and bad.stderr.strip() == "cockpit: no agent named 'ghost' (see 'cockpit ls')"
    assert json.loads(ok(cockpit(repo, "queue", "--json"))) == []
    held = hold_queue(repo)
    try:
        queued = cockpit(repo, "merge", "r1", "l1", "r2")
        assert queued.returncode == 1, queued.stdout + queued.stderr  # only queued: another runner has it
        assert queued.stdout.splitlines()[:3] == ["r1@big: queued (position 1)", "l1: queued (position 2)",
                                                  "r2@big: queued (position 3)"]
        assert "is running the merge queue" in queued.stdout
        listed = json.loads(ok(cockpit(repo, "queue", "--json")))
        assert [(e["position"], e["name"], e["host"], e["state"]) for e in listed] == [
            (1, "r1", "big", "queued"), (2, "l1", None, "queued"), (3, "r2", "big", "queued")]
        table = ok(cockpit(repo, "queue")).splitlines()
        assert [line.split()[:4] for line in table[:3]] == [["1", "r1", "big", "queued"], ["2", "l1", "-", "queued"],
                                                            ["3", "r2", "big", "queued"]]
        again = cockpit(repo, "merge", "r1")
        assert "r1@big: already queued (position 1)" in again.stdout
        shown = json.loads(ok(cockpit(repo, "ls", "--json")))
        assert {a["name"]: (a["host"], a["state"]) for a in shown} == {
            "r1": ("big", "queued"), "l1": (None, "queued"), "r2": ("big", "queued")}
    finally:
        held.release()

    before = git(repo, "rev-parse", "main")
    resumed = cockpit(repo, "merge")  # no names: resumes the queue, remote entries included
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr  # r2 is blocked
    ends = [line for line in resumed.stdout.splitlines() if ": merged" in line or ": blocked" in line]
    assert [line.split(":")[0] for line in ends] == ["r1@big", "l1", "r2@big"], resumed.stdout
    assert ends[0].startswith("r1@big: merged into main at ") and ends[1].startswith("l1: merged into main at ")
    assert ends[2] == "r2@big: blocked: uncommitted changes on host big: wip.txt"
    assert git(repo, "show", "main:remote.txt") == "r1" and git(repo, "show", "main:local.txt") == "l1"
    assert git(repo, "merge-base", "--is-ancestor", before, "main") == ""  # base only fast-forwarded
    assert git(repo, "merge-base", "--is-ancestor", "refs/cockpit/hosts/big/r1", "main") == ""
    assert json.loads(ok(cockpit(repo, "queue", "--json"))) == []
    recorded = [json.loads(line) for line in (repo / ".cockpit" / "events.jsonl").read_text().splitlines()]
    assert [(e["data"]["agent_name"], e["data"]["state"]) for e in recorded if e["type"] == "remote.merge"] == [
        ("r1", "merged"), ("r2", "blocked")]
    assert "outcome: r1@big: merged" in (repo / ".cockpit" / "remote" / "big" / "r1" / "merge.log").read_text()
    # the outcome stays with the queue here: the host's own view of its agent is untouched
    assert {a["name"]: a["state"] for a in json.loads(ok(cockpit(repo, "ls", "--json")))}["r1"] == "running"


def test_a_remote_agent_whose_host_does_not_answer_is_blocked_and_the_queue_goes_on(
        hosts: Lab, repo: Path) -> None:
    (big,) = hosts.up("big")
    hosts.install_cockpit(big)
    configure(repo, hosts, big)
    spawn_committer(repo, "r1", "remote.txt", big)
    spawn_committer(repo, "l1", "local.txt")
    held = hold_queue(repo)
    try:
        cockpit(repo, "merge", "r1", "l1")
    finally:
        held.release()
    big.stop_sshd()
    before = refs(repo)
    run = cockpit(repo, "merge")
    assert run.returncode == 1, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    blocked = [line for line in lines if line.startswith("r1@big: blocked: ")]
    assert len(blocked) == 1 and blocked[0].startswith("r1@big: blocked: host big unreachable"), run.stdout
    assert lines.index(blocked[0]) < next(i for i, line in enumerate(lines) if line.startswith("l1: merged"))
    after = refs(repo)
    assert "refs/cockpit/hosts/big/r1" not in after  # nothing fetched
    assert {ref for ref in after if after[ref] != before.get(ref)} == {"refs/heads/main"}  # l1 landed, nothing else
    assert git(repo, "show", "main:local.txt") == "l1"
    # the host is back: queued again, it lands
    big.start_sshd()
    merged = cockpit(repo, "merge", "r1")
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert git(repo, "show", "main:remote.txt") == "r1"


@pytest.mark.parametrize("step", ["after-candidate", "during-gate", "after-gates", "before-ref", "after-ref"])
def test_a_runner_killed_while_landing_a_remote_agent_is_settled_by_the_next(
        hosts: Lab, repo: Path, step: str) -> None:
    (big,) = hosts.up("big")
    hosts.install_cockpit(big)
    configure(repo, hosts, big, agents='[cockpit]\ngates = ["test -f remote.txt"]\n')
    spawn_committer(repo, "r1", "remote.txt", big)
    before = git(repo, "rev-parse", "main")
    crashed = crashing(repo, "merge", "r1", at=f"merge:{step}")
    assert crashed.returncode == -9, crashed.stdout + crashed.stderr
    landed = git(repo, "rev-parse", "main") != before
    assert landed == (step == "after-ref")
    assert [(e["name"], e["host"]) for e in json.loads(ok(cockpit(repo, "queue", "--json")))] == [("r1", "big")]
    resumed = cockpit(repo, "merge")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    if landed:
        assert "r1@big: the merge interrupted by a crash had landed: finished it" in resumed.stdout
    else:
        assert "r1@big: the merge interrupted by a crash was abandoned" in resumed.stdout
    assert "r1@big: merged into main at " in resumed.stdout
    assert git(repo, "rev-list", "--count", f"{before}..main") == "1"  # landed exactly once
    assert git(repo, "show", "main:remote.txt") == "r1"
    assert json.loads(ok(cockpit(repo, "queue", "--json"))) == []
    scratch = repo / ".cockpit" / "merge"
    assert not scratch.exists() or not any(scratch.iterdir())  # no scratch worktree left
