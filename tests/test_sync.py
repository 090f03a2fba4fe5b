"""The UI's poll (``FleetSync``) against a real fleet: which events make the diffs due, and
that a round takes its summaries from the ownership check instead of diffing twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from cockpit.core import worktrees
from cockpit.core.fleet import Fleet
from cockpit.ui.sync import FleetSync
from conftest import watcher_noticed

pytestmark = pytest.mark.tmux


def test_activity_events_do_not_make_the_diffs_due_but_operations_do(fleet: Fleet, monkeypatch) -> None:
    fleet.spawn("a", command="sleep 600")
    (fleet.layout.worktree("a") / "new.txt").write_text("one\ntwo\n")
    sync = FleetSync(fleet, poll_interval=0, diff_interval=3600)
    sync.poll(set())                       # the first poll: agents only
    first = sync.poll(set())               # the second: the diffs
    assert first.diffs == {"a": (1, 2, 0)}
    calls: list[tuple[str, ...]] = []
    real = worktrees.run

    def counting(cwd: Path, *args: str, **kw):  # type: ignore[no-untyped-def]
        calls.append(args)
        return real(cwd, *args, **kw)

    monkeypatch.setattr(worktrees, "run", counting)
    fleet.record_event("activity", "a", activity="idle", previous="working")
    quiet = sync.poll(set())
    assert quiet.events and quiet.diffs is None, "an activity change is no reason to diff again"
    assert calls == []
    fleet.pause("a")
    fleet.resume("a")
    assert sync.poll(set()).diffs is None  # paused/resumed cannot change a worktree either
    fleet.kill("a")
    killed = sync.poll(set())
    assert killed.diffs == {"a": (1, 2, 0)}
    # The ownership check diffed the worktree (two git calls); the summary came from it,
    # and base moved cost one rev-list plus resolving base once.
    assert sorted(args[0] for args in calls) == ["diff", "ls-files", "rev-list", "rev-parse"]


def _backdate(sync: FleetSync, name: str, ago: float) -> None:
    """As if the agents were read and ``name``'s worktree diffed ``ago`` seconds ago."""
    import time
    sync._last_agents = time.monotonic() - ago
    at, look, base = sync._diffed[name]
    sync._diffed[name] = (at - ago, look, base)


def test_while_a_log_floods_agents_and_diffs_are_read_less_often(fleet: Fleet) -> None:
    from cockpit.ui.sync import SLOW_FACTOR
    fleet.spawn("a", command="sleep 600")
    watcher_noticed(fleet, "a")  # (an event of the watcher's is read at once, flood or not)
    sync = FleetSync(fleet, poll_interval=1.0, diff_interval=1.0)
    sync.poll(set())
    sync.poll(set(), force=True)  # agents and diffs read
    log = fleet.layout.session_log("a")
    with log.open("a") as out:
        out.write("output\n")  # the agent's directory changed: its agent and worktree are due again
    ago = (1 + SLOW_FACTOR) / 2  # past the normal intervals, not past the stretched ones
    _backdate(sync, "a", ago)
    slow = sync.poll(set(), slow=True)
    assert slow.agents is None and slow.diffs is None
    normal = sync.poll(set())
    assert normal.agents is not None and normal.diffs is not None
    _backdate(sync, "a", ago)
    fleet.kill("a")  # an event: read at once, flood or not
    assert sync.poll(set(), slow=True).agents is not None


def test_an_idle_fleet_costs_no_git_and_no_re_read_until_something_changes(fleet: Fleet, monkeypatch) -> None:
    fleet.spawn("a", command="sleep 600")
    fleet.spawn("b", command="sleep 600")
    for name in ("a", "b"):
        watcher_noticed(fleet, name)  # (an event of the watcher's would be read: not an idle fleet yet)
    sync = FleetSync(fleet, poll_interval=0, diff_interval=0)
    sync.poll(set())
    assert sync.poll(set(), force=True).diffs is not None
    reads, diffs = sync.agent_reads, sync.diff_reads
    calls: list[tuple[str, ...]] = []
    real = worktrees.run

    def counting(cwd: Path, *args: str, **kw):  # type: ignore[no-untyped-def]
        calls.append(args)
        return real(cwd, *args, **kw)

    monkeypatch.setattr(worktrees, "run", counting)
    for _ in range(5):  # nothing written, no event: no re-read, no git
        quiet = sync.poll(set())
        assert quiet.agents is None and quiet.diffs is None
    assert (sync.agent_reads, sync.diff_reads, calls) == (reads, diffs, [])
    (fleet.layout.worktree("b") / "work.txt").write_text("one\n")
    with fleet.layout.session_log("b").open("a") as out:
        out.write("wrote work.txt\n")  # b printed: b (only) is re-read and diffed
    woke = sync.poll(set())
    assert woke.agents is not None and woke.diffs is not None
    assert woke.diffs["b"] == (1, 1, 0) and sync.diff_reads == diffs + 1
    assert {args[0] for args in calls} <= {"diff", "ls-files", "rev-list", "rev-parse"}
