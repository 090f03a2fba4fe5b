"""Per-agent log feeds: offset tailing + terminal emulation, off the UI thread.

A :class:`LogFeed` owns one agent's :class:`~cockpit.core.session_log.LogTail` and
:class:`~cockpit.ui.terminal.TerminalRenderer`. :meth:`LogFeed.pump` reads what was appended and
feeds it to the renderer; it runs in the log watcher's thread or a worker, never on the UI
thread. Rendering (terminal emulation, the expensive part) is then done by the app's one
:class:`RenderScheduler` thread, or at once when a feed has none. A render sets a dirty flag and
calls ``on_change`` (the app's wake-up, which repaints dirty tiles in the next frame), so a
burst of writes costs one repaint, not one per line, and a quiet line is on screen one frame
after the watcher saw it.

Only as many lines as the tile shows (:attr:`LogFeed.rows`) are rendered per change: a tile
repaints up to 60 times a second, and the cost must follow what is seen, not the scrollback.

Memory per feed is bounded: the tail reads at most ``TAIL_BYTES`` per call (older bytes of a
flood are skipped), the renderer keeps ``HISTORY`` lines, and the tile keeps ``rows``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from rich.text import Text

from cockpit.core.log_index import LineIndex
from cockpit.core.remote_logs import RemoteTail
from cockpit.core.session_log import LogTail
from cockpit.ui.terminal import TerminalRenderer, render_capture

TAIL_BYTES = 256 * 1024
"""How much of a log is read when a tile opens, and at most per read afterwards."""
HISTORY = 2000
"""Lines of scrollback kept per agent's renderer (the zoomed view reads the whole log from the
file instead: :meth:`LogFeed.line_index`)."""
TILE_LINES = 24
"""Lines rendered for a tile until it says how tall it is (:attr:`LogFeed.rows`)."""
MAX_TILE_LINES = 200
"""The most a tile may ask for."""
WIDTH = 200
"""Emulated terminal width; tiles crop, the zoomed view shows it all."""
RENDER_SHARE = 0.5
"""The most of a core that rendering logs may take, all feeds together (less was worse: batches
waited on the rest more than the UI gained). Rendering holds the
GIL the UI thread needs to answer keys: under a flood of output from many agents, tiles then
repaint less often (each render covers everything that arrived meanwhile), and keys still
reach the screen."""
FLOOD_INTERVAL = 0.1
"""A log that floods (more new lines than its tile shows between two paints) is rendered and
repainted at most this often: its intermediate frames could not be read anyway, and the time
is the UI's."""
FLOOD_TAIL_BYTES = 64 * 1024
"""How much of a flooding log is read at a time."""


class RenderScheduler:
    """One thread that renders every feed that has changed, in batches.

    A batch renders each feed that asked since the last batch, once; then the thread rests for
    the CPU time the batch took times ``(1 - share) / share``, so rendering never takes more
    than ``share`` of a core however many agents write. Under light load a batch takes well under
    a millisecond and the rest is as short."""

    def __init__(self, share: float = RENDER_SHARE) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], not {share}")
        self.share = share
        self._pending: dict[LogFeed, float] = {}  # feed -> when due; insertion order is fair
        self._wake = threading.Condition()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._held_until = 0.0
        self.batches = 0
        """How many batches have run (tests and benchmarks read it)..."""
        self.busy = 0.0
        """...and the CPU time they took, in seconds."""

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stopped.clear()
            self._thread = threading.Thread(target=self._run, name="cockpit-render", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopped.set()
        with self._wake:
            self._wake.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None

    def hold(self, seconds: float) -> None:
        """Render nothing for ``seconds`` (any thread; a batch under way stops before its next
        feed): the user pressed a key, and the UI thread needs the GIL to answer it."""
        self._held_until = max(self._held_until, time.monotonic() + seconds)

    def wait_while_held(self, limit: float = 1.0) -> None:
        """Block the calling thread while a key's hold lasts (at most ``limit`` seconds): for
        other background work (the fleet poll's git calls) to give way to a key as well."""
        held = min(self._held_until - time.monotonic(), limit)
        if held > 0:
            self._stopped.wait(held)

    def request(self, feed: LogFeed, delay: float = 0.0) -> None:
        """Render ``feed`` in the first batch at least ``delay`` seconds from now (any thread;
        cheap). A feed asked for twice is rendered once, at the earlier time."""
        due = time.monotonic() + delay
        with self._wake:
            if due < self._pending.get(feed, due + 1):
                self._pending[feed] = due
            self._wake.notify()

    def _run(self) -> None:
        while not self._stopped.is_set():
            with self._wake:
                while not self._stopped.is_set():
                    now = time.monotonic()
                    if self._pending and min(self._pending.values()) <= now:
                        break
                    self._wake.wait(min(self._pending.values()) - now if self._pending else None)
                now = time.monotonic()
                batch = [feed for feed, due in self._pending.items() if due <= now]
                for feed in batch:
                    del self._pending[feed]
            started = time.thread_time()  # CPU time: waiting for the GIL is not rendering
            for feed in batch:
                self.wait_while_held()  # (before each feed: a key may come in mid-batch)
                feed.flush()  # never raises: errors are kept in the feed
            took = time.thread_time() - started
            self.batches += 1
            self.busy += took
            rest = took * (1 - self.share) / self.share
            if rest > 0.0005:
                self._stopped.wait(rest)


class LogFeed:
    """One agent's log, tailed and rendered. Thread-safe: ``pump`` may run in any thread."""

    def __init__(self, name: str, path: Path | str, on_change: Callable[[], None] | None = None,
                 scheduler: RenderScheduler | None = None, tail: LogTail | RemoteTail | None = None) -> None:
        self.name = name
        self.path = Path(path)
        self.on_change = on_change
        """Called (from the thread that rendered) after the lines changed; must be cheap."""
        self.scheduler = scheduler
        """Renders this feed after a pump; without one, :meth:`pump` renders at once."""
        self._rows = TILE_LINES
        self._lock = threading.Lock()
        self._tail = tail or LogTail(self.path, max_bytes=TAIL_BYTES, from_tail=TAIL_BYTES)
        """What reads the log: the file here, or a remote agent's log as its host streams it."""
        self._renderer = TerminalRenderer(width=WIDTH, history=HISTORY)
        self._lines: list[Text] = []
        self._screen: list[Text] | None = None
        self.screen_note: str | None = None
        """Why :attr:`screen` is an old capture (its host did not answer), else None."""
        self._index: LineIndex | None = None
        self._stale = False
        self.dirty = False
        """Set when :attr:`lines` changed; the app clears it when it repaints."""
        self.version = 0
        """Grows by one on every change of the log (the zoomed view re-renders on change)."""
        self.error: str | None = None
        self._rendered_at = 0.0
        self.unseen = 0
        """Lines read since the tile last painted (the app resets it): more than the tile
        shows means the log floods, and painting every frame of it would show nothing."""

    @property
    def flooding(self) -> bool:
        return self.unseen > self._rows

    @property
    def lines(self) -> list[Text]:
        """The newest rendered log lines (at most :attr:`rows`). Shared with the renderer:
        read them, do not change them."""
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
        self._render_soon()

    @property
    def screen(self) -> list[Text] | None:
        """The last captured tmux screen, when the screen view was used."""
        return self._screen

    def pump(self) -> bool:
        """Read what was appended (or restart after truncation/re-creation) and have it
        rendered. Returns True when anything changed. Errors are kept in :attr:`error`, never
        raised."""
        with self._lock:
            try:
                # A flooding log needs only its end: what the tile shows (older bytes are
                # skipped, as they are for any read beyond TAIL_BYTES).
                data = self._tail.read_new(FLOOD_TAIL_BYTES if self.flooding else None)
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
                self.unseen += data.count(b"\n")
            self._stale = True
        self._render_soon()
        return True

    def _render_soon(self) -> None:
        if self.scheduler is not None:
            # A flooding log is rendered only as often as its tile repaints it.
            delay = self._rendered_at + FLOOD_INTERVAL - time.monotonic() if self.flooding else 0.0
            self.scheduler.request(self, max(0.0, delay))
        else:
            self.flush()

    def flush(self) -> None:
        """Render what arrived since the last render, if anything did."""
        with self._lock:
            if self._stale:
                now = time.monotonic()
                early = self._rendered_at + FLOOD_INTERVAL - now
                if self.flooding and early > 0 and self.scheduler is not None:
                    self.scheduler.request(self, early)  # asked for before the last render
                    return
                self._rendered_at = now
                self._lines = self._renderer.lines(self._rows, copy=False)
                self._stale = False
                self._changed()

    def _changed(self) -> None:
        self.version += 1
        self.dirty = True
        if self.on_change is not None:
            self.on_change()

    def line_index(self) -> LineIndex:
        """The index of every line of this log (the zoomed view reads the file through it),
        made on first use and kept: zooming in again does not index the log again."""
        with self._lock:
            if self._index is None:
                self._index = LineIndex(self.path)
            return self._index

    def all_lines(self) -> list[Text]:
        """Every line of scrollback the renderer keeps (the zoomed view reads the file instead;
        tests read this to check the bound). Call from a worker thread."""
        with self._lock:
            return self._renderer.lines()

    def set_screen(self, captured: list[str]) -> None:
        """Store a capture-pane result (escapes included), rendered."""
        rendered = render_capture(captured)
        while rendered and not rendered[-1].plain.strip():
            rendered.pop()
        with self._lock:
            if (self._screen is None or self.screen_note is not None
                    or [t.markup for t in self._screen] != [t.markup for t in rendered]):
                self._screen = rendered
                self.screen_note = None
                self._changed()

    def keep_screen(self, note: str) -> None:
        """The screen could not be captured this time (its host did not answer): keep the last
        capture, and say why with ``note``."""
        with self._lock:
            if note != self.screen_note:
                self.screen_note = note
                self._changed()
