"""Keeping the app in step with the fleet, off the UI thread.

:class:`FleetSync` runs one poll in a worker thread: it follows the event log (so a CLI command
typed in another terminal shows at once), re-reads the reconciled agents every
``poll_interval``, the diff summaries and how far base moved every ``diff_interval``, and the tmux screens of the tiles
in screen view on every tick. It returns a :class:`Snapshot` for the app to apply on the UI
thread. Errors are collected, one line each, never raised.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cockpit.core import activity, hosts, radar, remote_radar, stillness
from cockpit.core import queue as merge_queue
from cockpit.core.agent import Agent, name_order
from cockpit.core.errors import CockpitError
from cockpit.core.events import Event
from cockpit.core.fleet import Fleet
from cockpit.ui.messages import describe

REMOTE_INTERVAL = 2.0
"""Seconds between two looks at the hosts' agents (one ``ls`` round trip per host, in parallel)."""
FULL_EVERY_S = 30.0
"""The agents are re-read at least this often even when nothing seemed to change (see
:mod:`cockpit.core.stillness`: what leaves no trace in an agent's directory)."""
DIFF_FALLBACK_S = 300.0
"""An agent whose directory did not change (no output, no hook) has its worktree diffed again
after this long (files edited by hand while it is silent); otherwise only after a change."""
SLOW_FACTOR = 5
"""While a log floods, the agents are re-read and the worktrees diffed this many times less
often: under a flood those rounds were what kept keys from the screen (``bench/ui-figures.md``)."""
NO_DIFF_CHANGE = frozenset({"activity", "notification", "paused", "resumed", "conflict.predicted",
                            "radar.unsupported"})
"""Events that cannot change a worktree or a branch: they do not make the diffs due at once
(the watcher records activity changes many times a minute, and the conflict radar's findings
come from worktrees that were read already)."""


@dataclass
class Snapshot:
    """What one poll found. ``agents``/``diffs`` are None when they were not re-read."""

    agents: list[Agent] | None = None
    diffs: dict[str, tuple[int, int, int] | None] | None = None
    base_moved: dict[str, int] | None = None
    """Commits base gained since each agent was cut; read with the diff summaries."""
    queue: list[str] | None = None
    """The merge queue in order (names, ``NAME@HOST`` for a remote agent), read with the agents."""
    screens: dict[str, list[str]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class FleetSync:
    """Polling state. :meth:`poll` must run in a worker thread, one at a time."""

    def __init__(self, fleet: Fleet, poll_interval: float = 1.0, diff_interval: float = 5.0,
                 diffs: bool = True, yield_to_input: Callable[[], None] | None = None) -> None:
        self.fleet = fleet
        self.yield_to_input = yield_to_input
        """Called before each agent's git calls: blocks while the user's key is answered (a
        round of git processes for every agent contends with the UI thread under a log flood)."""
        fleet.ownership_tracker.pause = yield_to_input
        self.poll_interval = poll_interval
        self.diff_interval = diff_interval
        self.diffs_enabled = diffs
        self.offset: int | None = None
        self._last_agents = 0.0
        self._last_diffs = 0.0
        self.polls = 0
        self._remote: list[Agent] | None = None
        self._remote_at = 0.0
        self._warned: set[str] = set()
        self.remote_warnings: list[str] = []
        """Warnings of the last look at the hosts not reported before (a host unreachable)."""
        self._agents: list[Agent] | None = None
        self.looks: dict[str, stillness.Look] = {}
        """Each agent's directory when the agents were last re-read (:mod:`cockpit.core.stillness`)."""
        self._diffed: dict[str, tuple[float, stillness.Look, str | None]] = {}
        """Per agent: when its worktree was last diffed, its look then, and its base commit."""
        self._summaries: dict[str, tuple[tuple[int, int, int] | None, int]] = {}
        """Per agent: the last diff summary and commits base had gained, reused while still."""
        self._due: float | None = None
        self.agent_reads = 0
        self.diff_reads = 0

    def _with_remote(self, local: list[Agent], now: float, force: bool) -> list[Agent]:
        """``local`` and every host's agents (asked every :data:`REMOTE_INTERVAL` at most, or
        after an operation). A host's warning is reported once, until it changes."""
        if force or self._remote is None or now - self._remote_at >= REMOTE_INTERVAL:
            self._remote_at = now
            merged, warnings = hosts.all_agents(self.fleet, [])
            self._remote = merged
            warnings += remote_radar.left_out(radar.read(self.fleet))
            self.remote_warnings = [w for w in warnings if w not in self._warned]
            self._warned = set(warnings)
        remote = self._remote or []
        found = remote_radar.cross([*local, *remote], radar.read(self.fleet), self.fleet.ownership_tracker.changed)
        return sorted(found, key=lambda a: name_order(a.name))

    def poll(self, screens: set[str], force: bool = False, slow: bool = False) -> Snapshot:
        """One round; ``force`` re-reads agents and diffs now (after an operation). ``slow``
        (a log floods: the machine is busy, and the user's keys need the CPU) stretches the
        agent and diff intervals by :data:`SLOW_FACTOR`; the event log is still followed on
        every round, and any event in it still has the agents re-read at once."""
        snap = Snapshot()
        fleet = self.fleet
        try:
            if self.offset is None:  # start following at the end: history is in agents()
                try:
                    self.offset = os.path.getsize(fleet.layout.events)
                except OSError:
                    self.offset = 0
            snap.events, offset = fleet.read_events(self.offset)
            if offset < self.offset:  # the log was replaced
                snap.events, offset = fleet.read_events(0)
            self.offset = offset
        except Exception as exc:  # noqa: BLE001 - reported to the user
            snap.errors.append(describe(exc))
        now = time.monotonic()
        first = self.polls == 0
        self.polls += 1
        changed = force or any(e.type not in NO_DIFF_CHANGE for e in snap.events)
        if changed and self.diffs_enabled and not first:
            fleet.ownership_tracker.invalidate()  # something happened: diff every worktree again
        stretch = SLOW_FACTOR if slow else 1
        # Each worktree is diffed (out-of-scope edits, collisions, the summary on its tile) only
        # when its agent's directory changed, or after DIFF_FALLBACK_S: the tracker keeps the rest.
        fleet.ownership_tracker.max_age = DIFF_FALLBACK_S
        names = [a.name for a in self._agents] if self._agents is not None else []
        looks = stillness.look(fleet.layout, names)
        moved = stillness.changed(self.looks, looks)
        due = self._due is not None and time.time() >= self._due
        if (force or snap.events or first or due or now - self._last_agents >= FULL_EVERY_S * stretch
                or (moved and now - self._last_agents >= self.poll_interval * stretch)):
            self._last_agents = now
            self.looks = looks
            self.agent_reads += 1
            try:
                # The first poll only finds the agents, so their tiles show at once; the git
                # work per worktree (ownership, diff summaries) follows in the next one.
                for name in self._stale(looks, now, changed, stretch):
                    fleet.ownership_tracker.invalidate(name)
                snap.agents = fleet.agents(ownership=self.diffs_enabled and not first)
                if fleet.config.hosts:
                    snap.agents = self._with_remote(snap.agents, now, force or bool(snap.events))
                    snap.errors += self.remote_warnings
                    self.remote_warnings = []
                snap.queue = [entry.label for entry in merge_queue.pending(fleet)]
                self._agents = snap.agents
                config = activity.settings(fleet)
                since = {a.name: a.state_since for a in snap.agents}
                self._due = stillness.next_threshold(looks, since, (config.idle_after, config.stall_after),
                                                     time.time())
            except Exception as exc:  # noqa: BLE001
                snap.errors.append(describe(exc))
        elif fleet.config.hosts and self._agents is not None and now - self._remote_at >= REMOTE_INTERVAL:
            # This machine's agents are still: its read is skipped, but the hosts' agents are not
            # seen in its files (their events reach the app after the poll), so they are asked.
            try:
                local = [a for a in self._agents if a.host is None]
                snap.agents = self._agents = self._with_remote(local, now, False)
                snap.errors += self.remote_warnings
                self.remote_warnings = []
            except Exception as exc:  # noqa: BLE001
                snap.errors.append(describe(exc))
        if first:
            self._last_diffs = now - self.diff_interval  # due at the next poll
        elif snap.agents is not None and self.diffs_enabled:
            self._last_diffs = now
            snap.diffs, snap.base_moved = {}, {}
            tips: dict[str, str | None] = {}  # each base resolved once per round
            stale = self._stale(self.looks, now, changed, stretch)
            rediffed = False
            last_round = radar.read(fleet) if any(a.host for a in snap.agents) else None
            for agent in snap.agents:
                kept = self._summaries.get(agent.name)
                if agent.host is not None:  # its counts come with its snapshot in the radar's round
                    found = (remote_radar.diff_of(last_round, agent), 0)
                    snap.diffs[agent.name], snap.base_moved[agent.name] = found
                    rediffed = rediffed or found != kept
                    self._summaries[agent.name] = found
                    continue
                if agent.name not in stale and kept is not None:
                    snap.diffs[agent.name], snap.base_moved[agent.name] = kept
                    continue
                if self.yield_to_input is not None:
                    self.yield_to_input()
                # (the ownership check of this poll diffed the worktree already, as a rule)
                summary = fleet.ownership_tracker.summary(agent.name, agent.base_sha)
                try:
                    snap.diffs[agent.name] = summary or fleet.diff_summary(agent.name)
                except CockpitError:  # a missing worktree simply has no summary
                    snap.diffs[agent.name] = None
                try:
                    snap.base_moved[agent.name] = fleet.base_moved(agent.name, tips)
                except CockpitError:  # no base or branch to count from
                    snap.base_moved[agent.name] = 0
                self.diff_reads += 1
                rediffed = True
                self._summaries[agent.name] = (snap.diffs[agent.name], snap.base_moved[agent.name])
                self._diffed[agent.name] = (now, self.looks.get(agent.name, ()), agent.base_sha)
            for name in set(self._summaries) - {a.name for a in snap.agents}:
                self._summaries.pop(name, None)
                self._diffed.pop(name, None)
            if not rediffed:  # (None: the tiles keep what they show)
                snap.diffs = snap.base_moved = None
        for name in sorted(screens):
            try:
                snap.screens[name] = fleet.screen(name)
            except Exception as exc:  # noqa: BLE001
                snap.screens[name] = [f"(no screen: {describe(exc)})"]
        return snap

    def _stale(self, looks: dict[str, stillness.Look], now: float, everything: bool, stretch: int) -> set[str]:
        """The agents whose worktree must be diffed again: all after an event that may change a
        worktree (``everything``), else those never diffed, those whose directory changed since
        their last diff at least ``diff_interval`` (× ``stretch``) ago, and those diffed longer
        than DIFF_FALLBACK_S ago."""
        names = set(looks)
        if everything:
            return names
        return {name for name in names
                if (seen := self._diffed.get(name)) is None
                or (seen[1] != looks[name] and now - seen[0] >= self.diff_interval * stretch)
                or now - seen[0] >= DIFF_FALLBACK_S}
