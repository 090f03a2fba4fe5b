"""The zoomed view's log: every line of a ``session.log``, however big, read from the file on
demand through a :class:`~cockpit.core.log_index.LineIndex` and rendered one line at a time by
a :class:`~cockpit.ui.terminal.LineRenderer` (off the UI thread), with search matches marked.

Only a window around what is on screen is held: the lines shown, a few screens either side,
and a bounded cache of rendered lines. Scrolling asks a worker for the lines it lacks; until
they come (a few milliseconds) the rows are blank. The view follows new output while it is
scrolled to the end, and keeps its place otherwise — also when the start of the log gets
indexed and every line number grows (:meth:`LogView.renumbered`).
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.worker import get_current_worker

from cockpit.core.log_index import LineIndex
from cockpit.ui.messages import deliver
from cockpit.ui.terminal import LineRenderer

MATCH_STYLE = "black on yellow"
CURRENT_STYLE = "bold black on bright_green"
MARGIN = 2
"""Screens rendered ahead above and below what is shown."""
CACHE_LINES = 4096
"""Rendered lines kept by their (offset, end) in the file."""
NEAR_START = 3
"""Screens from the first indexed line at which scrolling up asks for the start of the log."""

Match = tuple[int, int, int]
"""``(offset of the line in the file, start, end)`` in the line's rendered text."""


class MatchList:
    """Search matches in file order, gathered newest first (the search runs backwards) and
    then as new lines arrive: both ends grow in O(1), and a match keeps its identity (its
    offset), so the current one stays current while older ones are found."""

    def __init__(self) -> None:
        self._older: list[Match] = []  # descending: found backwards from where the search began
        self._newer: list[Match] = []  # ascending: found in lines written since

    def __len__(self) -> int:
        return len(self._older) + len(self._newer)

    def __getitem__(self, index: int) -> Match:
        if index < 0:
            index += len(self)
        older = len(self._older)
        return self._older[older - 1 - index] if index < older else self._newer[index - older]

    def add_older(self, matches: list[Match]) -> None:
        """Matches older than any known, newest first."""
        self._older.extend(matches)

    def add_newer(self, matches: list[Match]) -> None:
        """Matches newer than any known, oldest first."""
        self._newer.extend(matches)

    def index(self, match: Match) -> int:
        """The position of ``match`` (which must be one)."""
        older = len(self._older)
        if self._newer and match >= self._newer[0]:
            return older + bisect_left(self._newer, match)
        position = bisect_left(self._older, tuple(-x for x in match), key=lambda m: tuple(-x for x in m))
        return older - 1 - position

    def on_line(self, offset: int) -> list[tuple[int, int]]:
        """``(start, end)`` of the matches in the line at ``offset``."""
        found = [(m[1], m[2]) for m in self._newer[bisect_left(self._newer, (offset,)):
                                                   bisect_left(self._newer, (offset + 1,))]]
        key = lambda m: -m[0]  # noqa: E731
        low = bisect_left(self._older, -offset, key=key)
        high = bisect_right(self._older, -offset, key=key)
        return found + [(m[1], m[2]) for m in self._older[low:high]]


class LogView(ScrollView, can_focus=True):
    """A virtual view of every line of one log (see the module docstring)."""

    DEFAULT_CSS = """
    LogView { height: 1fr; padding: 0 1; background: $surface; }
    """

    @dataclass
    class Rendered(Message, bubble=False):
        """Lines ``first`` .. ``first + count`` of ``numbering``, rendered (by this view's worker)."""

        numbering: int
        first: int
        count: int
        rendered: dict[int, tuple[int, Text]]

    def __init__(self, index: LineIndex, id: str | None = None) -> None:
        super().__init__(id=id)
        self.index = index
        self.texts: dict[int, tuple[int, Text]] = {}
        """Rendered lines by line number (of :attr:`numbering`): ``(offset, text)``."""
        self.numbering = index.numbering
        self.matches: MatchList | None = None
        self.current: Match | None = None
        self._width = 0
        self._wanted: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self._renderer = LineRenderer()
        self._cache: OrderedDict[tuple[int, int], Text] = OrderedDict()
        self._asked = False
        self.following = True
        """Scrolled to the end: new lines scroll into view."""
        self.home_pending = False
        """Line 1 was asked for before the start of the log was indexed."""
        self.on_near_start: Callable[[], None] | None = None
        """Called when scrolling up gets near the first indexed line of a log whose start is
        not indexed yet."""

    # -- what is shown ---------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        style = self.rich_style
        number = scroll_y + y
        entry = self.texts.get(number)
        if entry is None:
            if number < self.index.lines:
                self._ask_soon()
            return Strip.blank(width, style)
        offset, text = entry
        if self.matches is not None and len(self.matches):
            spans = self.matches.on_line(offset)
            if spans:
                text = text.copy()
                for start, end in spans:
                    current = self.current is not None and self.current[0] == offset and self.current[1] == start
                    text.stylize(CURRENT_STYLE if current else MATCH_STYLE, start, end)
        strip = Strip(text.render(self.app.console), text.cell_len)
        return strip.crop_extend(scroll_x, scroll_x + width, style).apply_style(style)

    def visible_lines(self) -> list[str]:
        """The plain text of the rows on screen now (tests and screenshots read it)."""
        top = int(self.scroll_y)
        return [self.texts[n][1].plain for n in range(top, top + self.size.height) if n in self.texts]

    # -- keeping up with the file ----------------------------------------------------------------
    def sync(self) -> None:
        """The index changed (new lines, or the live line grew): resize, follow, re-render the
        live line. Call on the UI thread."""
        if self.index.numbering != self.numbering:  # truncated or replaced: start over
            self.numbering = self.index.numbering
            self.texts = {}
            self.following = True
        lines = self.index.lines
        finished = self.index.finished_lines
        for number in [n for n in self.texts if n >= finished - 1]:  # the live line (and the one it was)
            del self.texts[number]
        self.virtual_size = Size(max(self._width, 1), lines)
        if self.following:
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
        self._ask()
        self.refresh()

    def renumbered(self, shift: int) -> None:
        """The start of the log was indexed: every line number grew by ``shift``; stay on the
        same lines (or go to the first, when that was asked for meanwhile)."""
        self.numbering = self.index.numbering
        self.texts = {number + shift: entry for number, entry in self.texts.items()}
        following = self.following
        self.virtual_size = Size(max(self._width, 1), self.index.lines)
        if self.home_pending:
            self.home_pending = False
            self.scroll_to(y=0, animate=False, immediate=True, force=True)
        elif following:
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
        else:
            self.scroll_to(y=self.scroll_y + shift, animate=False, immediate=True, force=True)
        self._ask()

    def action_scroll_home(self) -> None:
        """To line 1 of the log: at once when its start is indexed, else as soon as it is."""
        if self.index.complete:
            self.scroll_home(animate=False)
            return
        self.home_pending = True
        if self.on_near_start is not None:
            self.on_near_start()

    def action_scroll_end(self) -> None:
        self.home_pending = False
        self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        self.following = new >= self.max_scroll_y
        if new < old and new < NEAR_START * max(1, self.size.height) and not self.index.complete:
            if self.on_near_start is not None:
                self.on_near_start()
        self._ask()

    def on_resize(self) -> None:
        if self.following:  # (a sync before the first layout could not scroll yet)
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
        self._ask()

    def _ask_soon(self) -> None:
        if not self._asked:
            self._asked = True
            self.call_later(self._ask)

    def _ask(self) -> None:
        """Have the lines around the screen rendered, unless they are."""
        self._asked = False
        height = max(1, self.size.height)
        top = int(self.scroll_y)
        first = max(0, top - MARGIN * height)
        last = min(self.index.lines, top + (MARGIN + 1) * height)
        if all(n in self.texts for n in range(top, min(last, top + height))):
            return
        if self._wanted == (self.numbering, first, last):  # (asked already)
            return
        self._wanted = (self.numbering, first, last)
        self._render(self.numbering, first, last - first)

    @work(thread=True, exclusive=True, exit_on_error=False, group="logview")
    def _render(self, numbering: int, first: int, count: int) -> None:
        """Read lines ``first`` .. and render them (a worker: file reads and emulation)."""
        lines = self.index.read(first, count)
        rendered: dict[int, tuple[int, Text]] = {}
        with self._lock:  # one renderer, one cache
            for number, line in enumerate(lines, first):
                if get_current_worker().is_cancelled:
                    return
                key = (line.offset, line.end)
                text = self._cache.get(key)
                if text is None:
                    text = self._renderer.render(line.data, line.cut)
                    self._cache[key] = text
                    if len(self._cache) > CACHE_LINES:
                        self._cache.popitem(last=False)
                else:
                    self._cache.move_to_end(key)
                rendered[number] = (line.offset, text)
        if self.index.numbering == numbering:
            deliver(self, LogView.Rendered(numbering, first, count, rendered))

    def on_log_view_rendered(self, message: LogView.Rendered) -> None:
        numbering, first, count, rendered = message.numbering, message.first, message.count, message.rendered
        if numbering != self.numbering or not self.is_attached:
            return
        if self._wanted == (numbering, first, first + count):
            self._wanted = None
        height = max(1, self.size.height)
        top = int(self.scroll_y)
        keep = range(top - (MARGIN + 1) * height, top + (MARGIN + 2) * height)
        texts = {n: e for n, e in self.texts.items() if n in keep}
        texts.update(rendered)
        self.texts = texts
        width = max((text.cell_len for _, text in rendered.values()), default=0)
        if width > self._width:
            self._width = width
            self.virtual_size = Size(width, self.index.lines)
        self.refresh()
        self._ask()  # scrolled meanwhile?

    # -- search ----------------------------------------------------------------------------------
    def show_matches(self, matches: MatchList | None, current: Match | None) -> None:
        self.matches, self.current = matches, current
        self.refresh()
