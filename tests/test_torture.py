"""Torture: random sequences of operations on 2-5 agents (Hypothesis stateful testing).

After every step: no operation on one agent changed another agent's worktree or branch, main
and the main checkout never changed, every restore is byte-identical to what was discarded, and
``ls --json`` agrees with git and tmux. Bounded for ``make test``; set COCKPIT_TORTURE_EXAMPLES
(and COCKPIT_TORTURE_STEPS) to run more.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from cockpit.core import processes
from cockpit.core.errors import CockpitError
from cockpit.core.fleet import Fleet
from cockpit.core.spec import NAME_RE
from conftest import git, kill_tmux_server, tree_hashes

pytestmark = pytest.mark.tmux

NAMES = st.sampled_from(["a", "b", "c", "d", "e"])
FILES = st.sampled_from(["notes.txt", "src/app.py", "src/new/deep.bin", "README.md", "x y.txt"])
CONTENT = st.binary(max_size=64)


class FleetMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="cockpit-torture-"))
        self.repo = self.tmp / "repo"
        self.repo.mkdir()
        git(self.repo, "init", "--quiet", "--initial-branch=main")
        git(self.repo, "config", "user.name", "t")
        git(self.repo, "config", "user.email", "t@t.invalid")
        (self.repo / "README.md").write_text("hello\n")
        (self.repo / "src").mkdir()
        (self.repo / "src" / "app.py").write_text("print(1)\n")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "--quiet", "-m", "initial")
        self.fleet = Fleet(self.repo)
        self.main_head = git(self.repo, "rev-parse", "main")
        self.main_files = tree_hashes(self.repo)
        self.model: dict[str, dict] = {}      # live agents: expected files and branch head
        self.discarded: dict[str, dict] = {}  # name -> files at discard time

    def teardown(self) -> None:
        kill_tmux_server(self.fleet.tmux.socket)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _expect(self, name: str) -> None:
        worktree = self.fleet.layout.worktree(name)
        self.model[name] = {"files": tree_hashes(worktree), "head": git(worktree, "rev-parse", "HEAD")}

    # -- rules ------------------------------------------------------------------------------------
    def _live(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(sorted(self.model)), label="agent")

    @rule(name=NAMES)
    def spawn(self, name: str) -> None:
        if name in self.model:
            return
        self.fleet.spawn(name, command="sleep 600")
        self.discarded.pop(name, None)
        self._expect(name)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def pause_or_resume(self, data: st.DataObject) -> None:
        name = self._live(data)
        state = self.fleet.agent(name).state
        if state == "running":
            self.fleet.pause(name)
            pid = self.fleet.agent(name).pid
            assert all(processes.state(p) == "T" for p in processes.descendants(pid))
        elif state == "paused":
            self.fleet.resume(name)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def kill(self, data: st.DataObject) -> None:
        name = self._live(data)
        if self.fleet.agent(name).alive:
            self.fleet.kill(name)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), path=FILES, content=CONTENT)
    def agent_writes(self, data: st.DataObject, path: str, content: bytes) -> None:
        name = self._live(data)
        target = self.fleet.layout.worktree(name) / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        self._expect(name)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def agent_commits(self, data: st.DataObject) -> None:
        name = self._live(data)
        worktree = self.fleet.layout.worktree(name)
        git(worktree, "add", "-A")
        git(worktree, "commit", "--quiet", "--allow-empty", "-m", f"work of {name}")
        self._expect(name)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def discard(self, data: st.DataObject) -> None:
        name = self._live(data)
        self.fleet.discard(name)
        self.discarded[name] = self.model.pop(name)

    @precondition(lambda self: self.discarded)
    @rule(data=st.data())
    def restore(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.discarded)), label="discarded agent")
        agent = self.fleet.restore(name)
        expected = self.discarded.pop(name)
        worktree = Path(agent.worktree)
        assert tree_hashes(worktree) == expected["files"], "restore is not byte-identical"
        assert git(worktree, "rev-parse", "HEAD") == expected["head"]
        self._expect(name)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), keep=st.booleans())
    def respawn(self, data: st.DataObject, keep: bool) -> None:
        name = self._live(data)
        self.fleet.respawn(name, keep=keep, force=True)
        self._expect(name)

    @rule(name=NAMES)
    def refused_operation_changes_nothing(self, name: str) -> None:
        try:
            self.fleet.resume(name) if name in self.model else self.fleet.pause(name)
        except CockpitError:
            pass

    # -- invariants -------------------------------------------------------------------------------
    @invariant()
    def others_untouched_and_main_unchanged(self) -> None:
        assert git(self.repo, "rev-parse", "main") == self.main_head
        assert tree_hashes(self.repo) == self.main_files
        assert git(self.repo, "status", "--porcelain") == ""
        for name, expected in self.model.items():
            worktree = self.fleet.layout.worktree(name)
            assert tree_hashes(worktree) == expected["files"], f"{name}'s worktree changed"
            assert git(worktree, "rev-parse", "HEAD") == expected["head"], f"{name}'s branch moved"

    @invariant()
    def ls_agrees_with_git_and_tmux(self) -> None:
        agents = {a.name: a for a in self.fleet.agents()}
        assert set(agents) == set(self.model)
        panes = self.fleet.tmux.panes()
        branches = {b.strip("*+ ") for b in git(self.repo, "branch", "--list", "cockpit/*").splitlines()}
        assert branches == {a.branch for a in agents.values()}
        worktrees = {p.name for p in self.fleet.layout.worktrees.glob("*")}
        assert worktrees == set(agents)
        for name, agent in agents.items():
            pane = panes.get(name)
            if agent.state in ("running", "paused"):
                assert pane is not None and not pane.dead
            if agent.state == "killed":
                assert pane is None
        # The fleet's own watcher session ("_watcher") can never clash with an agent name.
        assert {name for name in panes if NAME_RE.match(name)} <= set(agents)


TestFleetMachine = FleetMachine.TestCase
TestFleetMachine.settings = settings(
    max_examples=int(os.environ.get("COCKPIT_TORTURE_EXAMPLES", "6")),
    stateful_step_count=int(os.environ.get("COCKPIT_TORTURE_STEPS", "12")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
