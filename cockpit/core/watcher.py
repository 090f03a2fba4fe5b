"""The watcher: notices what agents do while no cockpit is open, and tells the user.

It runs as ``cockpit _watch`` in the fleet's hidden watcher session (:mod:`cockpit.core.watch`
starts and stops it). Each tick (one second) it:

1. follows the event log and turns new events into notifications (:mod:`cockpit.core.notify`),
   rate-limited, each run through ``notify_command`` and recorded as a ``notification`` event
   (an open TUI shows those rather than deciding its own);
2. records exits at once (with the pane-died hook; whichever is first) and applies the 2-failure
   rule (:func:`cockpit.core.recovery.observe`, never waiting for the lock). It does not finish
   operations a crash interrupted: the next cockpit command does, as before;
3. starts pending agents whose upstreams have all finished (:func:`cockpit.core.pending.advance`);
4. computes every agent's activity (:mod:`cockpit.core.activity`) and records each change as an
   ``activity`` event ``{activity, reason, previous}``: a new activity, or a new reason of one
   that waits for the user (``waiting``, ``rate-limited``, ``error``: another permission asked);
   a ``working`` agent moving from tool to tool is not recorded (views read that live);
5. pauses agents over their token budget (:mod:`cockpit.core.usage`): the whole-tree freeze of
   ``cockpit pause``, recorded as a ``paused`` event with the reason, which notifies;
6. advances the conflict radar's round (:mod:`cockpit.core.radar`) by at most
   :data:`cockpit.core.radar.BUDGET_S` of work, a round at most every ``radar_interval`` seconds.
   With agents on hosts (a remote source handed in: :mod:`cockpit.core.remote_radar`), a round
   asks the hosts in background threads and waits for them a tick at a time; their agents'
   changes leave no trace here, so a round is due every :data:`REMOTE_EVERY_S` while any runs.

It ends itself, under the repository lock, once no agent is live (here, or on a host as the
last round saw it), after one last radar round (so
the work of agents that ended is predicted against each other and base). Its process and the git
processes it starts yield the CPU like the agents' tmux server does (``tmux_nice``).
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from collections.abc import Callable

from cockpit.core import activity, notify, pending, processes, radar, recovery, stillness, usage
from cockpit.core.errors import CockpitError, LockBusy
from cockpit.core.events import Event
from cockpit.core.repository import Repository
from cockpit.core.sessions import PaneState
from cockpit.core.state import LIVE, PENDING, History, apply
from cockpit.core.tmux_setup import lower_priority
from cockpit.core.watch import SESSION, log_path

INTERVAL = 1.0
FULL_EVERY_S = 30.0
"""A whole tick at least this often, even when nothing seemed to change (what leaves no trace in
an agent's directory: a process that waits for input without printing, a status file elsewhere)."""
RADAR_IDLE_S = 300.0
"""A radar round at least this often while nothing seemed to change (files edited by hand in a
worktree whose agent is silent); otherwise rounds start only after a change."""
REMOTE_EVERY_S = 10.0
"""A radar round at least this often while an agent on a host runs (one ssh request per host:
the host snapshots its agents, and only a changed snapshot is fetched)."""
QUIET_EVENTS = frozenset({"activity", "notification", "conflict.predicted", "radar.unsupported"})
"""Events that say nothing new about any worktree (many are the watcher's own)."""


def changed(previous: tuple[str | None, str | None] | None, current: tuple[str | None, str | None]) -> bool:
    """Whether an activity change is worth an event: another activity, or another reason to wait
    for the user (not the tools a working agent goes through, nor ``done`` turning to ``done``)."""
    if previous is None or previous[0] != current[0]:
        return True
    return current[0] in activity.NEEDS_USER and previous[1] != current[1]


class Watcher:
    """One fleet's watcher. :meth:`tick` is one round; :meth:`run` loops until no agent is live."""

    def __init__(self, repo: Repository, offset: int, clock: Callable[[], float] = time.monotonic,
                 remote: radar.RemoteSource | None = None) -> None:
        self.repo = repo
        self.clock = clock
        config = activity.settings(repo)
        self.limiter = notify.RateLimiter(config.notify_interval)
        self.runner = notify.CommandRunner(config.notify_command, repo.root) if config.notify_command else None
        self.states = History()  # the log replayed here, for each event's "previous" state
        self.activity: dict[str, tuple[str | None, str | None]] = {}
        self.radar = (radar.Radar(repo, interval=config.radar_interval, remote=remote)
                      if config.radar_interval > 0 else None)
        if self.radar is None:  # turned off: what an old round predicted must not be shown as current
            repo.layout.radar.unlink(missing_ok=True)
        else:
            self.radar.next_round = clock() + config.radar_interval  # the first round one interval in
        self._last_round_done = False  # the round after the last agent ended
        # What the last whole tick saw (:mod:`cockpit.core.stillness`); ticks in between that
        # find nothing changed skip tmux, /proc and git altogether.
        self.looks: dict[str, stillness.Look] = {}
        self._fresh_events = True
        self._worktree_news = True  # something happened since the last radar round started
        self._last_full = -1e18
        self._last_radar = -1e18
        self._due: float | None = None
        self.full_ticks = 0
        everything, _ = repo.read_events(0)
        fresh, self.offset = repo.read_events(offset)
        fresh_seqs = {e.seq for e in fresh}
        for event in everything:
            if event.seq not in fresh_seqs:
                self._consume(event, notify_user=False)
        for event in fresh:  # what happened between ensure() and this process starting
            self._consume(event, notify_user=True)
        self.stopping = False

    # -- events in -------------------------------------------------------------------------------
    def _consume(self, event: Event, notify_user: bool) -> None:
        name = event.agent
        if event.type == "activity" and name:
            self.activity[name] = (event.data.get("activity"), event.data.get("reason"))
        previous = self.states.records[name].state if name in self.states.records else None
        apply(self.states, event)
        state = self.states.records[name].state if name in self.states.records else None
        if not notify_user:
            return
        note = notify.notification(event, previous, state)
        if note is not None:
            for ready in self.limiter.offer(note, self.clock()):
                self._send(ready)

    def _send(self, note: notify.Note) -> None:
        self.repo.record_event("notification", note.get("agent"), note=note)
        if self.runner is not None:
            self.runner.run(note)

    def _follow(self) -> list[Event]:
        events, self.offset = self.repo.read_events(self.offset)
        for event in events:
            self._consume(event, notify_user=True)
            self._fresh_events = True
            if event.type not in QUIET_EVENTS:
                self._worktree_news = True
        return events

    def _watched(self) -> list[str]:
        return [n for n, r in self.states.records.items() if not r.discarded]

    def quiet(self, looks: dict[str, stillness.Look]) -> bool:
        """Whether nothing changed since the last whole tick: no event, no agent's directory
        changed (``looks``: as they are now), no activity threshold passed, the fallback
        interval not over."""
        now = self.clock()
        moved = stillness.changed(self.looks, looks)
        if moved:
            self._worktree_news = True
        due = self._due is not None and time.time() >= self._due
        radar_due = self.radar is not None and now >= self.radar.next_round and (
            self._worktree_news or now - self._last_radar >= self._radar_idle())
        return not (self._fresh_events or moved or due or radar_due or now - self._last_full >= FULL_EVERY_S)

    # -- one round -------------------------------------------------------------------------------
    def tick(self) -> bool:
        """One round. Returns False when the watcher should end (its session is gone). When
        nothing changed (:meth:`quiet`), only the held notifications are looked at."""
        repo = self.repo
        self._follow()
        looks = stillness.look(repo.layout, self._watched())  # before looking: a change meanwhile is news
        if self.quiet(looks) and not self._radar_busy():
            for note in self.limiter.due(self.clock()):
                self._send(note)
            return True
        self.looks = looks
        self._fresh_events = False
        self._last_full = self.clock()
        self.full_ticks += 1
        panes = repo.tmux.panes()
        if SESSION not in panes:
            return False  # killed, or the whole tmux server is gone
        # Exits, not crash recovery: with an operation pending (running elsewhere, or interrupted)
        # the watcher leaves it to the cockpit commands, so a reader never sees a recovery half done.
        if not repo.history().pending and recovery.observe(repo, panes, wait=0):
            panes = repo.tmux.panes()
        if pending.advance(repo):  # agents whose upstreams have all finished start now
            panes = repo.tmux.panes()
        for name, record in repo.history().records.items():
            found = activity.of_agent(repo, record, panes.get(name))
            current = (found.name, found.reason) if found else (None, None)
            previous = self.activity.get(name)
            if changed(previous, current) and not (current[0] is None and name not in self.activity):
                data: dict[str, object] = {"activity": current[0], "previous": previous[0] if previous else None}
                if current[1] is not None:
                    data["reason"] = current[1]
                repo.record_event("activity", name, **data)
                self.activity[name] = current
        self.enforce_budgets(panes)
        if self.radar is not None and (self._radar_busy() or self._worktree_news
                                       or self.clock() - self._last_radar >= self._radar_idle()):
            try:
                if not self._radar_busy() and self.clock() >= self.radar.next_round:
                    self._worktree_news = False  # (a change during the round makes another one due)
                    self._last_radar = self.clock()
                self.radar.step(radar.BUDGET_S, self.clock())
            except (CockpitError, OSError) as exc:  # the next round tries again; the rest of the tick goes on
                print(f"{time.strftime('%H:%M:%S')} watcher: conflict radar: {exc}", file=sys.stderr, flush=True)
        # This tick's own records (activity, notifications) need no other tick; anything else does.
        self._fresh_events = any(e.type not in QUIET_EVENTS for e in self._follow())
        config = activity.settings(repo)
        since = {n: r.state_since for n, r in self.states.records.items()}
        self._due = stillness.next_threshold(self.looks, since, (config.idle_after, config.stall_after), time.time())
        for note in self.limiter.due(self.clock()):
            self._send(note)
        return True

    def _radar_idle(self) -> float:
        """How long the radar waits for news before a round anyway."""
        remote = self.radar is not None and self.radar.remote is not None and self.radar.remote_live
        return REMOTE_EVERY_S if remote else RADAR_IDLE_S

    def _radar_busy(self) -> bool:
        """A radar round is under way (it goes on, a step per tick, whatever else changed)."""
        return self.radar is not None and self.radar.busy

    def enforce_budgets(self, panes: dict[str, PaneState]) -> list[str]:
        """Pause the running agents over a token budget (each once per limit). Returns their names.
        Under the lock, not waiting for it: a busy lock means another try next round."""
        repo = self.repo
        config = activity.settings(repo)
        records = {n: r for n, r in repo.history().records.items() if not r.discarded}
        if config.max_tokens is None and all((config.agents.get(n) or r.spec).max_tokens is None
                                             for n, r in records.items()):
            return []
        spent = {name: u for name, record in records.items() if (u := usage.of_agent(repo, record)) is not None}
        fleet_total = sum(u.counted for u in spent.values())
        due = {name: found for name in spent
               if records[name].state == "running" and (found := usage.breach(records[name], spent[name], config,
                                                                                   fleet_total)) is not None}
        paused: list[str] = []
        if not due:
            return paused
        try:
            with repo.locked(timeout=0):
                for name, why in due.items():
                    pane = panes.get(name)
                    record = repo.history().records.get(name)
                    if pane is None or pane.dead or not pane.pid or record is None or record.state != "running":
                        continue
                    stopped = processes.signal_tree(pane.pid, signal.SIGSTOP)
                    if stopped:
                        repo.record_event("paused", name, pids=stopped, reason=why.reason, budget=why.kind,
                                          limit=why.limit, tokens=why.tokens)
                        paused.append(name)
        except LockBusy:
            pass
        return paused

    def live(self) -> bool:
        """Whether anything needs watching: a live agent, a pending one (the watcher starts it),
        or an operation under way."""
        history = self.repo.history()
        return bool(history.pending) or any(
            not r.discarded and (r.state in LIVE or r.state == PENDING) for r in history.records.values()
        ) or (self.radar is not None and self.radar.remote_live)

    def try_finish(self) -> bool:
        """End if no agent is live: under the lock (so a spawn cannot slip in between the check
        and the end), send what is held, and remove the session. True when finished."""
        if self.live():
            self._last_round_done = False
            return False
        if self.radar is not None and not self._last_round_done:
            self._last_round_done = True
            try:
                self.radar.run_round()  # (outside the lock: it only reads the agents' work)
            except (CockpitError, OSError) as exc:
                print(f"{time.strftime('%H:%M:%S')} watcher: conflict radar: {exc}", file=sys.stderr, flush=True)
            self._follow()
        try:
            with self.repo.locked(timeout=0):
                if self.live():
                    return False
                self._follow()
                for note in self.limiter.drain():
                    self._send(note)
                # Removing our own session sends us SIGHUP: outlive it to finish the runs in flight.
                signal.signal(signal.SIGHUP, signal.SIG_IGN)
                self.repo.tmux.cmd("kill-session", "-t", f"={SESSION}")
        except LockBusy:
            return False
        return True

    def run(self, interval: float = INTERVAL) -> None:
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        while not self.stopping:
            started = self.clock()
            try:
                if not self.tick() or self.try_finish():
                    break
            except (CockpitError, OSError) as exc:
                print(f"{time.strftime('%H:%M:%S')} watcher: {exc}", file=sys.stderr, flush=True)
            time.sleep(max(0.05, interval - (self.clock() - started)))
        if self.runner is not None:
            self.runner.join(notify.NOTIFY_TIMEOUT + 1)


def main(repo: Repository, offset: int, remote: radar.RemoteSource | None = None) -> int:
    """``cockpit _watch``: run the watcher with its output in watcher.log."""
    repo.layout.home.mkdir(exist_ok=True)
    fd = os.open(log_path(repo), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} watcher {os.getpid()} started", flush=True)
    nice = activity.settings(repo).tmux_nice
    if nice > 0:  # background work, like the tmux server: the TUI and the agents come first
        lower_priority(os.getpid(), nice)  # the session's autogroup, where Linux schedules by it
        try:
            os.setpriority(os.PRIO_PROCESS, 0, max(nice, os.getpriority(os.PRIO_PROCESS, 0)))
        except OSError:
            pass
    try:
        Watcher(repo, offset, remote=remote).run()
    except BaseException:
        traceback.print_exc()
        raise
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} watcher {os.getpid()} ended", flush=True)
    return 0
