"""The grid's live part: every tile's log, followed off the UI thread and repainted at most once
per frame, a key's answer first.

:class:`LiveLogs` owns the tiles' :class:`~cockpit.ui.feeds.LogFeed` objects, the one
:class:`~cockpit.core.log_watch.LogWatcher` that reads them as they grow, and the one
:class:`~cockpit.ui.feeds.RenderScheduler` thread that renders them. A feed that changed wakes
the UI thread once per batch (the ``wake`` it is given posts
:class:`~cockpit.ui.messages.LogsChanged`); :meth:`LiveLogs.repaint` then repaints every tile
whose feed is dirty, and Textual draws them in its next frame, so a burst of writes costs one
repaint and one line costs one frame.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from cockpit.core.agent import Agent
from cockpit.core.log_watch import LogWatcher
from cockpit.core.remote_logs import RemoteTail
from cockpit.ui.feeds import FLOOD_INTERVAL, LogFeed, RenderScheduler
from cockpit.ui.tiles import AgentTile

INPUT_PRIORITY_S = 0.06
"""After a key, log rendering and repainting wait this long, so the key's answer
reaches the screen first even while every tile is streaming."""
WATCH_DEBOUNCE_MS = 4
"""How long the log watcher gathers changes before reporting them (it looks every few ms)."""


class LiveLogs:
    """The tiles' logs: read, rendered and repainted (see the module docstring).

    ``wake`` (any thread) asks the UI thread to call :meth:`woke` and :meth:`repaint`;
    ``set_timer(delay, callback)`` runs a callback on the UI thread later; ``on_error`` (the
    watcher's thread) reports what stops the watcher."""

    def __init__(self, wake: Callable[[], object], set_timer: Callable[[float, Callable[[], None]], object],
                 on_error: Callable[[BaseException], None],
                 remote_tail: Callable[[Agent], RemoteTail] | None = None) -> None:
        self.remote_tail = remote_tail
        """A remote agent's log as its host streams it (cockpit.core.remote_logs)."""
        self.renders = RenderScheduler()
        """Renders the logs of every tile, in one thread, within a share of the time."""
        self.feeds: dict[str, LogFeed] = {}
        self._by_path: dict[Path, LogFeed] = {}
        self.watcher = LogWatcher(self._paths_changed, on_error=on_error, debounce_ms=WATCH_DEBOUNCE_MS)
        self._wake = wake
        self._set_timer = set_timer
        self._wake_posted = False
        self._repaint_pending = False
        self.changed_at = 0.0
        """When a feed last changed (monotonic)."""
        self.input_at = 0.0
        """When the last key arrived (monotonic)."""

    def start(self) -> None:
        self.renders.start()
        self.watcher.start()

    def stop(self) -> None:
        self.watcher.stop()
        self.renders.stop()

    def key_pressed(self) -> None:
        """A key comes first (any thread): log rendering, the watcher's reads, the poll's git
        calls (they wait on :attr:`renders`) and tile repaints wait a moment, so the UI thread
        has the GIL to answer it, and the frame that answers it is not also redrawing every tile
        of a flood."""
        self.input_at = time.monotonic()
        self.renders.hold(INPUT_PRIORITY_S)

    @property
    def flooding(self) -> bool:
        """Whether any log floods now (more new lines than its tile shows since its last paint)."""
        return any(feed.flooding for feed in self.feeds.values())

    # -- feeds ---------------------------------------------------------------------------------
    def feed(self, agent: Agent, pump: Callable[[LogFeed], object]) -> LogFeed:
        """``agent``'s feed; a new one is watched and read first by ``pump`` (a worker)."""
        feed = self.feeds.get(agent.name)
        if feed is None and agent.host and self.remote_tail is not None:
            feed = LogFeed(agent.name, agent.log, on_change=self._feed_changed, scheduler=self.renders,
                           tail=self.remote_tail(agent))
            self.feeds[agent.name] = feed
            pump(feed)
        if feed is None:
            feed = LogFeed(agent.name, agent.log, on_change=self._feed_changed, scheduler=self.renders)
            self.feeds[agent.name] = feed
            self._by_path[Path(os.path.abspath(agent.log))] = feed
            self.watcher.watch(agent.log)
            pump(feed)
        return feed

    def drop(self, name: str) -> None:
        feed = self.feeds.pop(name, None)
        if feed is not None:
            self._by_path.pop(Path(os.path.abspath(feed.path)), None)
            self.watcher.unwatch(feed.path)

    def remote_changed(self, name: str) -> None:
        """A host streamed bytes of ``name``'s log (its stream's thread): read and render them."""
        feed = self.feeds.get(name)
        if feed is not None:
            self.renders.wait_while_held()
            feed.pump()

    def _paths_changed(self, paths: set[Path]) -> None:
        """LogWatcher callback (its thread): read, and have the feeds rendered and repainted."""
        for path in paths:
            feed = self._by_path.get(path)
            if feed is not None:
                self.renders.wait_while_held()  # a key first (the bytes wait in the file)
                feed.pump()

    # -- repainting ----------------------------------------------------------------------------
    def _feed_changed(self) -> None:
        """A feed changed (any thread): ask the UI thread to repaint, once per batch."""
        self.changed_at = time.monotonic()
        if not self._wake_posted:
            self._wake_posted = True
            self._wake()

    def woke(self) -> None:
        """The UI thread took the wake-up: the next change asks again."""
        self._wake_posted = False

    def repaint(self, tiles: Iterable[AgentTile], retry: Callable[[], None]) -> None:
        """Repaint the tiles whose feed changed; Textual draws them in its next frame (at most
        60 a second). While a key is answered, and for a log that floods, ``retry`` runs later."""
        now = time.monotonic()
        later = self.input_at + INPUT_PRIORITY_S - now
        if later <= 0:  # (else answering a key: the tiles' new lines follow it)
            for tile in tiles:
                feed = tile.feed
                if not feed.dirty or not tile.is_mounted:
                    continue
                wait = tile.painted_at + FLOOD_INTERVAL - now if feed.flooding else 0
                if wait > 0:  # more lines than it shows since its last frame: a few frames do
                    later = wait if later <= 0 else min(later, wait)
                    continue
                feed.dirty = False
                feed.unseen = 0
                tile.painted_at = now
                tile.refresh_body()
        if later > 0 and not self._repaint_pending:
            self._repaint_pending = True
            self._set_timer(later, lambda: self._retry(retry))

    def _retry(self, retry: Callable[[], None]) -> None:
        self._repaint_pending = False
        retry()

    def still_for(self) -> float:
        """How long no log line and no key has arrived."""
        return time.monotonic() - max(self.changed_at, self.input_at)
