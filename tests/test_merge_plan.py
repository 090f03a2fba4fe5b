"""A merge state is shown beside what the process does, never instead of it; and the preview
the TUI's ``m`` asks with: what lands where, or why nothing would (real git and tmux)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from cockpit.core import wait
from cockpit.core.activity import next_needing_attention
from cockpit.core.agent import Agent
from cockpit.core.fleet import Fleet
from cockpit.core.merge_plan import plan_merge
from cockpit.core.queue import MergeQueue, enqueue
from conftest import PY, git, wait_until, watcher_noticed

pytestmark = pytest.mark.tmux

ASKER = shlex.quote(PY) + " -u -c " + shlex.quote("input('[y/N] ')") + "; sleep 3600"


def test_a_blocked_merge_keeps_the_agents_activity(fleet: Fleet) -> None:
    fleet.spawn("asker", command=ASKER)
    wait_until(lambda: fleet.agent("asker").activity == "waiting", message="asker waiting")
    enqueue(fleet, ["asker"])
    outcomes = MergeQueue(fleet).run()
    assert [(o.state, o.reason) for o in outcomes] == [("blocked", "nothing to merge: no commits on its branch")]
    agent = fleet.agent("asker")
    assert (agent.state, agent.process, agent.activity) == ("blocked", "running", "waiting")
    assert wait.check(fleet, "asker", "waiting")  # cockpit wait asker --for waiting returns
    assert next_needing_attention(fleet.agents()) == "asker"  # w focuses it


def make_agent(name: str, state: str, process: str, activity: str | None = None) -> Agent:
    return Agent(name=name, state=state, attempt=1, failures=1, max_failures=2, exit_code=1, branch="",
                 worktree="", log="", base="", base_sha="", task="", command="", scope=[], after=[],
                 tmux_socket="", tmux_session=name, last_activity=None, state_since="", process_state=process,
                 activity=activity)


def test_a_failed_agent_with_a_merge_state_still_needs_attention() -> None:
    agents = [make_agent("ok", "merged", "exited"), make_agent("broken", "rejected", "failed")]
    assert next_needing_attention(agents) == "broken"


def test_plan_refuses_an_agent_with_nothing_committed_and_changes_nothing(fleet: Fleet, repo: Path) -> None:
    fleet.spawn("idle", command="sleep 3600")
    watcher_noticed(fleet, "idle")  # (its event is the watcher's, not the plan's)
    events = fleet.layout.events.read_bytes()
    plan = plan_merge(fleet, "idle")
    assert plan.refusal == "nothing to merge: nothing committed on its branch"
    (fleet.layout.worktree("idle") / "draft.txt").write_text("not committed\n")
    plan = plan_merge(fleet, "idle")
    assert plan.refusal == "nothing to merge: nothing committed on its branch (only uncommitted changes: draft.txt)"
    assert fleet.layout.events.read_bytes() == events  # nothing queued, nothing recorded
    assert fleet.agent("idle").state == "running"


def test_plan_says_what_lands_where(fleet: Fleet, repo: Path) -> None:
    (repo / "cockpit.toml").write_text('[cockpit]\ngates = ["true"]\nmerge = "squash"\n')
    git(repo, "add", "cockpit.toml")
    git(repo, "commit", "-qm", "config")
    fleet.spawn("lander", command="sleep 3600")
    wt = fleet.layout.worktree("lander")
    for index in range(2):
        (wt / f"f{index}.txt").write_text(f"{index}\n")
        git(wt, "add", "-A")
        git(wt, "commit", "-qm", f"lander: part {index}")
    (repo / "other.txt").write_text("base moves\n")
    git(repo, "add", "other.txt")
    git(repo, "commit", "-qm", "base moves")
    plan = plan_merge(fleet, "lander")
    assert plan.refusal is None
    assert (plan.commits, plan.subjects, plan.base, plan.base_ahead) == (2, ["lander: part 1", "lander: part 0"],
                                                                        "main", 1)
    text = plan.describe()
    assert "2 commit(s) of cockpit/lander land on main (squash onto the 1 new commit(s) of main)" in text
    assert "Gates: true" in text and f"checked out at {repo}" in text
    (wt / "f0.txt").write_text("changed\n")
    assert plan_merge(fleet, "lander").refusal == (
        "uncommitted changes would block it: f0.txt (commit or discard them first)")
