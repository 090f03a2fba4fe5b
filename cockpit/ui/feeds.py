"""Per-agent log feeds: offset tailing + terminal emulation, off the UI thread.

A :class:`LogFeed` owns one agent's :class:`~cockpit.core.session_log.LogTail` and
:class:`~cockpit.ui.terminal.TerminalRenderer`. :meth:`LogFeed.pump` reads what was appended,
feeds the renderer and renders the newest lines; it runs in the log watcher's thread or a worker,
never on the UI thread. Then it sets a dirty flag and calls ``on_change`` (the app's wake-up,
which repaints dirty tiles in the next frame), so a burst of writes costs one repaint, not one
per line, and a quiet line is on screen one frame after the watcher saw it.

Only as many lines as the tile shows (:attr:`LogFeed.rows`) are rendered per change: a tile
repaints up to 60 times a second, and the cost must follow what is seen, not the scrollback.

Memory per feed is bounded: the tail reads at most ``TAIL_BYTES`` per call (older bytes of a
flood are skipped), the renderer keeps ``HISTORY`` lines, and the tile keeps ``rows``.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

from rich.text import Text

from cockpit.core.session_log import LogTail
from cockpit.ui.terminal import TerminalRenderer, render_capture

TAIL_BYTES = 256 * 1024
"""How much of a log is read when a tile opens, and at most per read afterwards."""
HISTORY = 2000
"""Lines of scrollback kept per agent (what the zoomed view can show)."""
TILE_LINES = 24
"""Lines rendered for a tile until it says how tall it is (:attr:`LogFeed.rows`)."""
MAX_TILE_LINES = 200
"""The most a tile may ask for."""
WIDTH = 200
"""Emulated terminal width; tiles crop, the zoomed view shows it all."""
RENDER_SHARE = 0.2
"""A log is re-rendered on every change the watcher reports (it batches them, a few ms apart),
but when rendering is expensive (a flood of heavy output) at most this share of the time:
rendering holds the GIL the UI needs. What arrives in between is rendered when the interval is
over, by a timer, so a quiet line after a burst is never left waiting."""


class LogFeed:
    """One agent's log, tailed and rendered. Thread-safe: ``pump`` may run in any thread."""

    def __init__(self, name: str, path: Path | str, on_change: Callable[[], None] | None = None) -> None:
        self.name = name
        self.on_change = on_change
        """Called (from the thread that rendered) after the lines changed; must be cheap."""
        self._rows = TILE_LINES
        self.path = Path(path)
        self._lock = threading.Lock()
        self._tail = LogTail(self.path, max_bytes=TAIL_BYTES, from_tail=TAIL_BYTES)
        self._renderer = TerminalRenderer(width=WIDTH, history=HISTORY)
        self._lines: list[Text] = []
        self._screen: list[Text] | None = None
        self._stale = False
        self._rendered_at = 0.0
        self._render_cost = 0.0
        self._timer: threading.Timer | None = None
        self.dirty = False
        """Set when :attr:`lines` changed; the app clears it when it repaints."""
        self.version = 0
        """Grows by one on every change of the log (the zoomed view re-renders on change)."""
        self.error: str | None = None

    @property
    def lines(self) -> list[Text]:
        """The newest rendered log lines (at most :attr:`rows`)."""
        return self._lines

    @property
    def rows(self) -> int:
        """How many of the newest lines are rendered (the tile's height)."""
        return self._rows

    @rows.setter
    def rows(self, value: int) -> None:
        value = max(1, min(MAX_TILE_LINES, int(value)))
        with self._lock:
            if value == self._rows:
                return
            self._rows = value
            self._stale = True
            self._schedule(0)  # rendered off the calling (UI) thread

    @property
    def screen(self) -> list[Text] | None:
        """The last captured tmux screen, when the screen view was used."""
        return self._screen

    def pump(self) -> bool:
        """Read what was appended (or restart after truncation/re-creation) and re-render.
        Returns True when anything changed. Errors are kept in :attr:`error`, never raised."""
        with self._lock:
            try:
                data = self._tail.read_new()
                reset = self._tail.was_reset
                self.error = None
            except OSError as exc:  # LogError is an OSError
                message = str(exc)
                changed = message != self.error
                self.error = message
                if changed:
                    self._changed()
                return changed
            if not data and not reset:
                return False
            if reset:
                self._renderer.reset()
            if data:
                self._renderer.feed(data)
            self._stale = True
            wait = self._rendered_at + self._interval() - time.monotonic()
            if reset or wait <= 0:
                self._render()
            else:
                self._schedule(wait)
            return True

    def _schedule(self, delay: float) -> None:
        """Render in ``delay`` seconds, in a timer thread (the lock is held)."""
        if self._timer is None:
            self._timer = threading.Timer(delay, self.flush)
            self._timer.daemon = True
            self._timer.start()

    def _interval(self) -> float:
        return self._render_cost / RENDER_SHARE

    def flush(self) -> None:
        """Render what a throttled :meth:`pump` left unrendered (call from a worker, often)."""
        with self._lock:
            self._timer = None
            if self._stale:
                self._render()

    def _render(self) -> None:
        started = time.monotonic()
        self._lines = self._renderer.lines(self._rows)
        self._rendered_at = time.monotonic()
        self._render_cost = self._rendered_at - started
        self._stale = False
        self._changed()

    def _changed(self) -> None:
        self.version += 1
        self.dirty = True
        if self.on_change is not None:
            self.on_change()

    def all_lines(self) -> list[Text]:
        """Every line of scrollback (for the zoomed view). Call from a worker thread."""
        with self._lock:
            return self._renderer.lines()

    def set_screen(self, captured: list[str]) -> None:
        """Store a capture-pane result (escapes included), rendered."""
        rendered = render_capture(captured)
        while rendered and not rendered[-1].plain.strip():
            rendered.pop()
        with self._lock:
            if self._screen is None or [t.markup for t in self._screen] != [t.markup for t in rendered]:
                self._screen = rendered
                self._changed()
