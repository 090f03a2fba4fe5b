"""The grid of agent tiles: one :class:`AgentTile` per agent inside a :class:`TileGrid`.

A tile shows its agent's name as border title, a status line as border subtitle
(:mod:`cockpit.ui.subtitle`) and the newest lines of its log (or its tmux screen) as body,
painted from a cache (:mod:`cockpit.ui.tile_rows`). Tiles never read files or call the engine:
the app hands them an :class:`~cockpit.core.agent.Agent` snapshot and a
:class:`~cockpit.ui.feeds.LogFeed` that worker threads keep up to date.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime

from rich.segment import Segment
from rich.text import Text
from textual.containers import ScrollableContainer
from textual.geometry import Region
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from cockpit.core.agent import Agent
from cockpit.ui.feeds import LogFeed
from cockpit.ui.internals import stock_widgets
from cockpit.ui.keys import GRID_KEYS, bindings
from cockpit.ui.subtitle import fit_subtitle, subtitle_parts
from cockpit.ui.tile_rows import RowCache

MIN_TILE_WIDTH = 38
MIN_TILE_HEIGHT = 8
TARGET_ASPECT = 3.5
"""Preferred tile width / height in cells (a cell is about twice as tall as wide)."""

Clock = Callable[[], datetime]


class AgentTile(Widget, can_focus=True):
    """One agent: border title = name, subtitle = status, body = the newest log lines."""

    DEFAULT_CSS = """
    AgentTile {
        border: round $foreground 30%;
        border-title-color: $foreground;
        border-title-style: bold;
        border-subtitle-color: $foreground-muted;
        padding: 0 1;
        height: 10;
        text-wrap: nowrap;
        text-overflow: clip;
        background: $surface;
    }
    AgentTile:focus {
        border: heavy $accent;
        border-title-color: $accent;
        background-tint: $accent 4%;
    }
    """

    def __init__(self, agent: Agent, feed: LogFeed, clock: Clock | None, tile_id: str | None = None) -> None:
        super().__init__(id=tile_id or f"tile-{agent.name}")
        self.agent = agent
        self.feed = feed
        self.clock = clock
        self.diff: tuple[int, int, int] | None = None
        self.view = "log"
        self.pending: str | None = None
        self.base_moved = 0
        """Commits base gained since the agent was cut (computed by the sync worker)."""
        self._subtitle: str | None = None
        self._shown: list[Text] = []
        self.row_cache = RowCache()
        """The frame and the body rows as last painted."""
        self.border_title = f"{agent.name} @ {agent.host}" if agent.host else agent.name  # (after row_cache)
        self.painted_at = 0.0
        """When the app last repainted the body for new lines (monotonic)."""
        self.stock = stock_widgets()
        """Paint the way Textual paints any widget (``COCKPIT_STOCK_WIDGETS=1``): no frame cache."""

    def update_agent(self, agent: Agent, diff: tuple[int, int, int] | None | bool = False,
                     base_moved: int | None = None) -> None:
        """Take a new snapshot (``diff=False`` / ``base_moved=None`` keep the last values)."""
        self.agent = agent
        if diff is not False:
            self.diff = diff  # type: ignore[assignment]
        if base_moved is not None:
            self.base_moved = base_moved
        self.refresh_subtitle()

    def refresh_subtitle(self) -> None:
        now = self.clock() if self.clock else None
        parts = subtitle_parts(self.agent, self.diff, now, self.pending, self.base_moved)
        if self.view == "screen":
            parts.insert(1, "screen")
        width = max(10, self.size.width - 4) if self.size.width else 60
        subtitle = fit_subtitle(parts, width)
        if subtitle != self._subtitle:  # (setting it parses it again and repaints the tile)
            self._subtitle = subtitle
            self.border_subtitle = subtitle

    def on_resize(self) -> None:
        self.refresh_subtitle()
        self.feed.rows = self.content_size.height or 1

    def body_lines(self) -> list[Text]:
        return self.screen_lines() if self.view == "screen" else self.feed.lines

    def screen_lines(self) -> list[Text]:
        """The agent's tmux screen as last captured, or a line saying why there is none."""
        screen, note = self.feed.screen, self.feed.screen_note
        if note is not None:  # (last: a tile shows the bottom of its lines)
            kept = "the last capture above" if screen else "no capture yet"
            return [*(screen or []), Text(f"({note}; {kept})", style="dim italic")]
        if screen is None:  # not captured yet
            return [Text("(capturing the tmux screen…)", style="dim")]
        return screen or [Text("(the screen is blank)", style="dim italic")]

    def shown_lines(self) -> list[Text]:
        """The lines the body shows now, top to bottom (a message when there are none)."""
        height = max(1, self.content_size.height)
        lines = self.body_lines()[-height:]
        if not lines:
            message = self.feed.error or ("(no output yet)" if self.agent.alive else f"({self.agent.process})")
            return [Text(message, style="dim italic")]
        return lines

    def refresh_body(self) -> None:
        """Repaint the body rows only (new log lines): the border and the frame are unchanged."""
        width, height = self.content_size
        if width > 0 and height > 0:
            super().refresh(Region(0, 0, width, height))  # content coordinates
        else:
            self.refresh()

    def refresh(self, *regions: Region, repaint: bool = True, layout: bool = False,
                recompose: bool = False) -> AgentTile:
        # Textual refreshes a widget whenever its title, subtitle, styles (focus, theme) or
        # size change; all of those may change the frame.
        if not regions or layout or recompose:
            self.row_cache.invalidate()
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self.row_cache.invalidate()

    def render_lines(self, crop: Region) -> list[Strip]:
        """Paint the rows in ``crop``: from :attr:`row_cache` (stock widgets: every row through
        :meth:`render_line`, as Textual paints any widget)."""
        self._shown = self.shown_lines()  # one snapshot per paint: the feed changes in a thread
        if self.stock:
            return super().render_lines(crop)
        return self.row_cache.paint(self, crop, self._shown, self.app.console, super().render_lines)

    def render_line(self, y: int) -> Strip:
        line = self._shown[y] if self.stock and y < len(self._shown) else None
        if line is None:  # (Textual's own renderer calls this for the frame only: see render_lines)
            return Strip.blank(self.content_size.width, self.rich_style)
        return Strip(Segment.apply_style(line.render(self.app.console), self.rich_style))


class TileGrid(ScrollableContainer, can_focus=True):
    """The tiles in a grid whose columns follow the terminal size. Tiles that do not fit scroll;
    :attr:`off_screen` counts them for the header. Owns the agent keys (they act on the focused
    tile), so they are inactive while a dialog or the zoomed view is open."""

    BINDINGS = bindings(GRID_KEYS)

    DEFAULT_CSS = """
    TileGrid {
        layout: grid;
        grid-size: 2;
        grid-gutter: 0;
        height: 1fr;
        scrollbar-size-vertical: 1;
    }
    TileGrid > .empty { color: $foreground-muted; padding: 1 2; column-span: 4; }
    """

    def __init__(self) -> None:
        super().__init__(id="grid")
        self.columns = 1
        self.rows_shown = 1
        self.tile_height = 10

    @property
    def tiles(self) -> list[AgentTile]:
        return list(self.query_children(AgentTile))

    @property
    def shown(self) -> list[AgentTile]:
        """The tiles on show (with agents pinned, the pinned ones), in order."""
        return [tile for tile in self.query_children(AgentTile) if tile.display]

    def layout_tiles(self) -> None:
        """Choose columns and tile height for the current size and number of tiles."""
        tiles = self.shown
        width, height = self.size.width, self.size.height
        if not width or not height:
            return
        self.columns, self.rows_shown, self.tile_height = choose_layout(len(tiles), width, height)
        self.styles.grid_size_columns = self.columns
        self.styles.grid_rows = str(self.tile_height)  # fixed rows: the rest scrolls
        for tile in tiles:
            tile.styles.height = self.tile_height
        self._arranged()

    def on_resize(self) -> None:
        self.layout_tiles()

    class Arranged(Message):
        """The tiles were laid out again or scrolled: what is off screen may have changed."""

    def _arranged(self) -> None:
        self.call_after_refresh(self.post_message, TileGrid.Arranged())

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        self._arranged()

    @property
    def off_screen(self) -> int:
        """How many tiles are (at least partly) outside the visible area."""
        above, below = self.hidden
        return above + below

    @property
    def hidden(self) -> tuple[int, int]:
        """``(above, below)``: how many tiles are (at least partly) scrolled off the top and
        off the bottom of the visible area."""
        count = len(self.shown)
        if not count or not self.tile_height:
            return 0, 0
        first_row = math.floor(self.scroll_y / self.tile_height + 0.01)
        last_row = math.floor((self.scroll_y + self.size.height) / self.tile_height + 0.01) - 1
        rows = [i // self.columns for i in range(count)]
        return sum(row < first_row for row in rows), sum(row > last_row for row in rows)


def choose_layout(count: int, width: int, height: int) -> tuple[int, int, int]:
    """``(columns, rows shown, tile height)``: as few tiles off screen as possible, then tiles
    whose shape is closest to :data:`TARGET_ASPECT`."""
    if count <= 0:
        return 1, 1, max(MIN_TILE_HEIGHT, height)
    max_columns = max(1, min(count, width // MIN_TILE_WIDTH))
    rows_fit = max(1, height // MIN_TILE_HEIGHT)
    best: tuple[float, int, int, int] | None = None
    for columns in range(1, max_columns + 1):
        rows_needed = math.ceil(count / columns)
        rows = min(rows_needed, rows_fit)
        tile_height = max(MIN_TILE_HEIGHT, height // rows)
        hidden = count - columns * rows if rows < rows_needed else 0
        aspect = (width / columns) / tile_height
        score = hidden * 10 + abs(math.log(aspect / TARGET_ASPECT))
        if best is None or score < best[0]:
            best = (score, columns, rows, tile_height)
    assert best is not None
    return best[1], best[2], best[3]
