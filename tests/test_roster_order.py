"""The order and the filter both layouts show (cockpit.core.roster_order): attention first, then
natural name order; by name; by recent output; re-sorted at most every 2 s; narrowed by name,
state or flag. Pure functions over Agent snapshots: no tmux, no git."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cockpit.core.agent import Agent
from cockpit.core.roster_order import (
    RESORT_INTERVAL,
    SORTS,
    StableOrder,
    attention_group,
    filtered,
    flags,
    matches,
    next_sort,
    ordered,
)


def agent(name: str, state: str = "running", activity: str | None = "working", **more: object) -> Agent:
    base = Agent(name=name, state=state, attempt=1, failures=0, max_failures=2, exit_code=None,
                 branch=f"cockpit/{name}",
                 worktree=f"/w/{name}", log=f"/l/{name}", base="main", base_sha="0" * 40, task="", command="sleep",
                 scope=[], after=[], tmux_socket="/s", tmux_session=name, last_activity=None,
                 state_since="2026-12-01T00:00:00+00:00", activity=activity)
    return replace(base, **more)  # type: ignore[arg-type]


FLEET = [
    agent("a10"), agent("a2"), agent("a1", activity="stalled"), agent("b3", state="failed", activity=None),
    agent("a9", activity="waiting"), agent("h1", state="halted", activity=None), agent("a20", activity="rate-limited"),
    agent("a3", activity="idle"),
]


def names(agents: list[Agent]) -> list[str]:
    return [a.name for a in agents]


def test_attention_first_waiting_then_failed_or_halted_then_stalled_then_by_natural_name() -> None:
    assert names(ordered(FLEET, "attention")) == ["a9", "a20", "b3", "h1", "a1", "a2", "a3", "a10"]
    assert [attention_group(a) for a in ordered(FLEET, "attention")] == [0, 0, 1, 1, 2, 3, 3, 3]


def test_a_merge_state_does_not_hide_a_failed_process() -> None:
    rejected = agent("r", state="rejected", activity=None, process_state="failed")
    assert attention_group(rejected) == 1


def test_by_name_is_natural_order() -> None:
    assert names(ordered(FLEET, "name")) == ["a1", "a2", "a3", "a9", "a10", "a20", "b3", "h1"]


def test_recent_output_first_and_silent_ones_last_by_name() -> None:
    fleet = [agent("old", last_activity="2026-12-01T10:00:00+00:00"), agent("never"),
             agent("new", last_activity="2026-12-01T10:05:00+00:00"), agent("also-never")]
    assert names(ordered(fleet, "recent")) == ["new", "old", "also-never", "never"]


def test_sorts_cycle_and_an_unknown_one_is_refused() -> None:
    assert [next_sort(s) for s in SORTS] == ["name", "recent", "attention"]
    with pytest.raises(ValueError, match="unknown sort"):
        ordered(FLEET, "size")


def test_the_order_changes_at_most_every_two_seconds_and_keeps_places_meanwhile() -> None:
    order = StableOrder()
    fleet = [agent("a1"), agent("a2"), agent("a3")]
    assert names(order.arrange(fleet, now=100.0)) == ["a1", "a2", "a3"]
    waiting = [agent("a1"), agent("a2"), agent("a3", activity="waiting")]
    assert names(order.arrange(waiting, now=100.5)) == ["a1", "a2", "a3"], "too soon: rows stay"
    assert names(order.arrange(waiting, now=100.0 + RESORT_INTERVAL)) == ["a3", "a1", "a2"]
    back = [agent("a1", activity="waiting"), agent("a2"), agent("a3")]
    assert names(order.arrange(back, now=100.0 + RESORT_INTERVAL + 1)) == ["a3", "a1", "a2"], "2 s since last move"
    assert names(order.arrange(back, now=100.0 + 2 * RESORT_INTERVAL)) == ["a1", "a2", "a3"]


def test_between_resorts_a_new_agent_takes_its_place_and_a_gone_one_leaves() -> None:
    order = StableOrder()
    order.arrange([agent("a1"), agent("a5"), agent("a9", activity="waiting")], now=0.0)
    later = [agent("a1"), agent("a5", activity="waiting"), agent("a9", activity="waiting"), agent("a3"),
             agent("a0", activity="waiting")]
    # a5 became waiting but keeps its row until the next re-sort; a new agent goes before the
    # first row that sorts after it now (a0 before a9; a3 after a5, which is waiting now)
    assert names(order.arrange(later, now=0.5)) == ["a0", "a9", "a1", "a5", "a3"]
    assert names(order.arrange([a for a in later if a.name != "a9"], now=0.6)) == ["a0", "a1", "a5", "a3"]


def test_a_new_sort_applies_at_once() -> None:
    order = StableOrder()
    order.arrange(FLEET, now=0.0)
    assert names(order.arrange(FLEET, now=0.1, sort="name"))[:3] == ["a1", "a2", "a3"]
    assert order.sort == "name"


def test_flags_and_filter_by_name_state_activity_or_flag() -> None:
    scoped = agent("api", out_of_scope=["x.py"], collisions=[{"path": "x.py", "agents": ["api", "ui"]}])
    clash = agent("ui", conflicts=[{"with": "api", "paths": ["x.py"]}])
    queued = agent("db", state="queued", process_state="running")
    fleet = [*FLEET, scoped, clash, queued]
    assert flags(scoped) == ["scope", "collision"] and flags(clash) == ["conflict"] and flags(queued) == ["queued"]
    assert names(filtered(fleet, "waiting")) == ["a9"]
    assert names(filtered(fleet, "failed")) == ["b3"]
    assert names(filtered(fleet, "conflict")) == ["ui"]
    assert names(filtered(fleet, "SCOPE")) == ["api"]
    assert names(filtered(fleet, "queued")) == ["db"]
    assert names(filtered(fleet, "a2")) == ["a2", "a20"]  # part of a name
    assert names(filtered(fleet, "a2 rate-limited")) == ["a20"]  # every word must match
    assert names(filtered(fleet, "attention")) == ["a9", "a20"]
    assert matches(FLEET[0], "") and matches(FLEET[0], "   ")
    assert names(filtered(fleet, "nothing-like-this")) == []
