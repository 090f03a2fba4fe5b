"""The watcher: notices what agents do while no cockpit is open, and tells the user.

It runs in a hidden session (:data:`SESSION`, ``_watcher``) of the fleet's own private tmux
server, so it survives the terminal or SSH login that started it. Agent names match
``^[a-z0-9][a-z0-9-]{0,39}$``, so the name can never clash with an agent's, no agent operation
can target it, and ``Fleet.agents()`` (which lists the event log's agents, not tmux's sessions)
never shows it. ``spawn``/``up``/``respawn`` start it (:func:`ensure`) under the repository lock;
it ends itself, under the same lock, once no agent is live — so a spawn racing with its end
always either finds it alive or starts a new one.

Each tick (one second) it:

1. follows the event log and turns new events into notifications (:mod:`cockpit.core.notify`),
   rate-limited, each run through ``notify_command`` and recorded as a ``notification`` event
   (an open TUI shows those rather than deciding its own);
2. records exits at once (with the pane-died hook; whichever is first) and applies the 2-failure
   rule (:func:`cockpit.core.recovery.observe`, never waiting for the lock). It does not finish
   operations a crash interrupted: the next cockpit command does, as before;
3. computes every agent's activity (:mod:`cockpit.core.activity`) and records each change as an
   ``activity`` event ``{activity, previous}``.

Its output goes to ``.cockpit/watcher.log``.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping

from cockpit.core import activity, notify, pending
from cockpit.core.errors import CockpitError, LockBusy
from cockpit.core.events import Event
from cockpit.core.state import LIVE, PENDING, History, apply

if TYPE_CHECKING:
    from cockpit.core.fleet import Fleet

SESSION = "_watcher"
INTERVAL = 1.0


def log_path(fleet: "Fleet") -> Path:
    return fleet.layout.home / "watcher.log"


def argv(fleet: "Fleet", offset: int) -> list[str]:
    """The watcher's command line: no shell, nothing to quote."""
    return fleet.cockpit_command("_watch", "--offset", str(offset))


def running(fleet: "Fleet") -> bool:
    return fleet.tmux.has_session(SESSION)


def ensure(fleet: "Fleet", panes: Mapping[str, object] | None = None) -> bool:
    """Start the watcher unless it runs. Call under the repository lock, after an agent
    started; ``panes`` (from ``Tmux.panes``, read after it started) saves asking tmux again.
    Returns True when it started one. Never raises: an agent runs fine unwatched (the
    failure is recorded as a ``watcher.failed`` event and in watcher.log)."""
    if (SESSION in panes) if panes is not None else running(fleet):
        return False
    try:
        offset = fleet.layout.events.stat().st_size
    except OSError:
        offset = 0
    try:
        return fleet.tmux.start_hidden(SESSION, fleet.root, {}, argv(fleet, offset))
    except CockpitError as exc:
        fleet.record_event("watcher.failed", None, error=str(exc))
        return False


def stop(pid: int, timeout: float = 3.0) -> None:
    """Ask the watcher (pane pid ``pid``) to end after its current round (it finishes the
    notifications in flight), and wait for it up to ``timeout`` seconds."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


class Watcher:
    """One fleet's watcher. :meth:`tick` is one round; :meth:`run` loops until no agent is live."""

    def __init__(self, fleet: "Fleet", offset: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.fleet = fleet
        self.clock = clock
        config = activity.settings(fleet)
        self.limiter = notify.RateLimiter(config.notify_interval)
        self.runner = notify.CommandRunner(config.notify_command, fleet.root) if config.notify_command else None
        self.states = History()  # the log replayed here, for each event's "previous" state
        self.activity: dict[str, str | None] = {}
        everything, _ = fleet.read_events(0)
        fresh, self.offset = fleet.read_events(offset)
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
            self.activity[name] = event.data.get("activity")
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
        self.fleet.record_event("notification", note.get("agent"), note=note)
        if self.runner is not None:
            self.runner.run(note)

    def _follow(self) -> None:
        events, self.offset = self.fleet.read_events(self.offset)
        for event in events:
            self._consume(event, notify_user=True)

    # -- one round -------------------------------------------------------------------------------
    def tick(self) -> bool:
        """One round. Returns False when the watcher should end (its session is gone)."""
        from cockpit.core.recovery import observe
        fleet = self.fleet
        self._follow()
        panes = fleet.tmux.panes()
        if SESSION not in panes:
            return False  # killed, or the whole tmux server is gone
        # Exits, not crash recovery: with an operation pending (running elsewhere, or interrupted)
        # the watcher leaves it to the cockpit commands, so a reader never sees a recovery half done.
        if not fleet.history().pending and observe(fleet, panes, wait=0):
            panes = fleet.tmux.panes()
        if pending.advance(fleet):  # agents whose upstreams have all finished start now
            panes = fleet.tmux.panes()
        for name, record in fleet.history().records.items():
            current = activity.of_agent(fleet, record, panes.get(name))
            previous = self.activity.get(name)
            if current != previous and not (current is None and name not in self.activity):
                fleet.record_event("activity", name, activity=current, previous=previous)
                self.activity[name] = current
        self._follow()
        for note in self.limiter.due(self.clock()):
            self._send(note)
        return True

    def live(self) -> bool:
        """Whether anything needs watching: a live agent, a pending one (the watcher starts it),
        or an operation under way."""
        history = self.fleet.history()
        return bool(history.pending) or any(
            not r.discarded and (r.state in LIVE or r.state == PENDING) for r in history.records.values())

    def try_finish(self) -> bool:
        """End if no agent is live: under the lock (so a spawn cannot slip in between the check
        and the end), send what is held, and remove the session. True when finished."""
        if self.live():
            return False
        try:
            with self.fleet.locked(timeout=0):
                if self.live():
                    return False
                self._follow()
                for note in self.limiter.drain():
                    self._send(note)
                # Removing our own session sends us SIGHUP: outlive it to finish the runs in flight.
                signal.signal(signal.SIGHUP, signal.SIG_IGN)
                self.fleet.tmux.cmd("kill-session", "-t", f"={SESSION}")
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


def main(fleet: "Fleet", offset: int) -> int:
    """``cockpit _watch``: run the watcher with its output in watcher.log."""
    fleet.layout.home.mkdir(exist_ok=True)
    fd = os.open(log_path(fleet), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} watcher {os.getpid()} started", flush=True)
    try:
        Watcher(fleet, offset).run()
    except BaseException:
        traceback.print_exc()
        raise
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} watcher {os.getpid()} ended", flush=True)
    return 0
