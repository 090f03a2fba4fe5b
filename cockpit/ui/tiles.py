"""The grid of agent tiles: one :class:`AgentTile` per agent inside a :class:`TileGrid`.

A tile shows its agent's name as border title, a status line as border subtitle (state badge in
the theme's state colour, attempt, time in state, last activity, diff summary, branch) and the
newest lines of its log (or its tmux screen) as body. Tiles never read files or call the engine:
the app hands them an :class:`~cockpit.core.agent.Agent` snapshot and a
:class:`~cockpit.ui.feeds.LogFeed` that worker threads keep up to date.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime, timezone
from typing import Callable, Iterable, Sequence

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.containers import ScrollableContainer
from textual.color import Color
from textual.geometry import Region
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from cockpit.core.agent import Agent
from cockpit.ui.feeds import LogFeed
from cockpit.ui.keys import GRID_KEYS, bindings

MIN_TILE_WIDTH = 38
MIN_TILE_HEIGHT = 8
TARGET_ASPECT = 3.5
"""Preferred tile width / height in cells (a cell is about twice as tall as wide)."""

Clock = Callable[[], datetime]


def age(since: str | None, now: datetime) -> str | None:
    """``12s``, ``5m``, ``3h``, ``2d`` between an ISO timestamp and ``now``; None if unknown."""
    if not since:
        return None
    try:
        then = datetime.fromisoformat(since)
    except ValueError:
        return None
    if then.tzinfo is None:
        then = then.replace(tzinfo=timezone.utc)
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def diff_text(diff: tuple[int, int, int] | None) -> str | None:
    """``3 files +40 −7`` (None when unknown)."""
    if diff is None:
        return None
    files, added, removed = diff
    return f"{files} file{'s' if files != 1 else ''} +{added} −{removed}"


MERGE_STATES = ("queued", "blocked", "merged", "conflict", "rejected")


def merge_detail(agent: Agent) -> str | None:
    """Why a merge ended as it did, in a few words: ``a.txt`` for a conflict, the gate and its
    reason for a rejection, the reason of a block. None when there is nothing to add."""
    if agent.state not in MERGE_STATES or not agent.merge or agent.state in ("queued", "merged"):
        return None
    merge = agent.merge
    if agent.state == "conflict" and merge.get("paths"):
        paths = [str(p) for p in merge["paths"]]
        return ", ".join(paths[:3]) + (f" +{len(paths) - 3}" if len(paths) > 3 else "")
    if agent.state == "rejected" and merge.get("gate"):
        reason = f" ({merge['reason']})" if merge.get("reason") else ""
        return f"{merge['gate']}{reason}"
    return str(merge["reason"]) if merge.get("reason") else None


def _escape(text: str) -> str:
    return text.replace("[", "\\[")


def subtitle_parts(agent: Agent, diff: tuple[int, int, int] | None, now: datetime | None,
                   pending: str | None = None, base_moved: int = 0) -> list[str]:
    """The pieces of a tile's subtitle as Textual markup, most important first.
    ``now=None`` leaves out the time-dependent pieces (for deterministic screenshots)."""
    detail = merge_detail(agent)
    label = f"{agent.state}: {_escape(detail)}" if detail else agent.state
    state = f"[bold $state-{agent.state}]● {label}[/]"
    if agent.process not in (agent.state, "running"):  # a merge state shown: the process's word beside it
        state += f" [$state-{agent.process}]{agent.process}[/]"
    if pending:
        state += f" [italic]{pending}…[/]"
    if agent.activity and agent.activity != agent.process and now is not None:  # time-dependent
        state += f" [$state-{agent.activity}]{_escape(agent.doing(48) or agent.activity)}[/]"  # and why
    parts = [state]
    if agent.state == "pending" and agent.blocked_by:
        parts.append(f"[$state-pending]waits for {_escape(agent.blocked_by)}[/]")
    elif agent.state == "unknown" and agent.reason:
        parts.append(f"[$state-unknown]{_escape(agent.reason)}[/]")
    parts.append(f"try {agent.tries}")  # explained in help (TRIES_LEGEND)
    if agent.tokens:  # what it costs (claude-code agents: from its transcripts)
        parts.append(agent.tokens)
    if agent.out_of_scope:
        parts.append(f"[bold $error]⚠ {len(agent.out_of_scope)} out of scope[/]")
    if agent.collisions:
        others = sorted({o for c in agent.collisions for o in c["agents"]})
        parts.append(f"[bold $warning]⚠ collides with {', '.join(others)}[/]")
    if base_moved > 0:
        parts.append(f"[$warning]base +{base_moved}[/]")
    in_state = age(agent.state_since, now) if now is not None else None
    active = age(agent.last_activity, now) if now is not None else None
    if active:
        parts.append(f"{active} ago")
    text = diff_text(diff)
    if text:
        parts.append(text)
    if in_state:
        parts.append(f"for {in_state}")
    if agent.branch:
        parts.append(agent.branch)
    return parts


SUBTITLE_SEPARATOR = " · "


def fit_subtitle(parts: list[str], width: int) -> str:
    """Join as many leading parts as fit in ``width`` cells."""
    shown: list[str] = []
    used = 0
    for part in parts:
        cells = markup_cells(part) + (len(SUBTITLE_SEPARATOR) if shown else 0)
        if shown and used + cells > width:
            break
        shown.append(part)
        used += cells
    return SUBTITLE_SEPARATOR.join(shown)


@lru_cache(maxsize=4096)
def markup_cells(markup: str) -> int:
    """The width in cells of one subtitle part (its tags are balanced, so widths add up).
    Parsing markup costs ~0.2 ms a part, and every poll measures every tile's parts."""
    return Text.from_markup(_plain_markup(markup)).cell_len


def _plain_markup(markup: str) -> str:
    """Textual markup with ``$variable`` styles replaced, so Rich can measure it."""
    return re.sub(r"\[[^\]]*\$[^\]]*\]", "[b]", markup)


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

    def __init__(self, agent: Agent, feed: LogFeed, clock: Clock | None) -> None:
        super().__init__(id=f"tile-{agent.name}")
        self.agent = agent
        self.feed = feed
        self.clock = clock
        self.diff: tuple[int, int, int] | None = None
        self.view = "log"
        self.pending: str | None = None
        self.base_moved = 0
        """Commits base gained since the agent was cut (computed by the sync worker)."""
        self.border_title = agent.name
        self._subtitle: str | None = None
        self._shown: list[Text] = []
        self._strips: dict[object, Strip] = {}
        """Body rows as last painted, by their line's content (what the next paint reuses)."""
        self.painted_at = 0.0
        """When the app last repainted the body for new lines (monotonic)."""
        self._frame: _Frame | None = None
        """The border and padding as last rendered (None: render again)."""

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
        if self.view == "screen":
            screen = self.feed.screen
            if screen is None:  # not captured yet
                return [Text("(capturing the tmux screen…)", style="dim")]
            return screen or [Text("(the screen is blank)", style="dim italic")]
        return self.feed.lines

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
            self._frame = None
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._frame = None

    def render_lines(self, crop: Region) -> list[Strip]:
        """Paint the rows in ``crop``.

        A log tile repaints many times a second with all its body rows moved up by one, and
        Textual's per-row styling costs several times a cached row. So the frame (the border
        rows, and border and padding around a body row) comes from Textual's own renderer
        only when the tile was refreshed as a whole; a body row is that frame around a strip
        cached per log line."""
        self._shown = self.shown_lines()  # one snapshot per paint: the feed changes in a thread
        width, height = self.outer_size
        gutter = self.styles.gutter
        top, bottom = gutter.top, height - gutter.bottom
        content_width = width - gutter.left - gutter.right
        if bottom <= top or content_width <= 0:
            return super().render_lines(crop)
        frame = self._frame
        if frame is None or frame.size != (width, height):
            # The border rows above, one (empty) body row, the border rows below: Textual
            # styles each row it draws, so the body rows between are not asked for.
            rows = [*super().render_lines(Region(0, 0, width, top + 1)),
                    *([None] * (bottom - top - 1)),
                    *super().render_lines(Region(0, bottom, width, height - bottom))]
            rows = [None if row is None else _Row.join([row]) for row in rows]
            old, frame = frame, _Frame.of(self, rows)
            if old is None or old.body != frame.body:  # e.g. focus: not a new subtitle
                self._strips.clear()
            self._frame = frame
        strips = []
        painted: dict[object, Strip] = {}
        for y in crop.line_range:
            if top <= y < bottom:
                strips.append(self._body_row(y - top, frame, content_width, painted))
            else:
                strips.append(frame.rows[y])  # type: ignore[arg-type]  # a border row
        if crop.line_range == range(0, height):
            # Keep only the rows painted now: the next paint shows most of them again, one or
            # two rows up; older rows would only keep strips (each with caches of its own)
            # alive for the garbage collector to walk through.
            self._strips = painted
        if crop.column_span != (0, width):
            strips = [strip.crop(crop.x, crop.right) for strip in strips]
        return strips

    def render_line(self, y: int) -> Strip:
        # Only Textual's own renderer calls this, for the frame (see render_lines).
        return Strip.blank(self.content_size.width, self.rich_style)

    def _body_row(self, index: int, frame: _Frame, width: int, painted: dict[object, Strip]) -> Strip:
        line = self._shown[index] if index < len(self._shown) else None
        key = None if line is None else (line.plain, tuple(line.spans), line.style)
        row = self._strips.get(key)
        if row is None:  # built from segments: under a flood every row of every tile is new
            style = frame.style
            if line is None:
                body = [Segment(" " * width, style)]
            else:
                body = Segment.adjust_line_length(
                    list(Segment.apply_style(line.render(self.app.console), style)), width, style)
            for line_filter in frame.filters:
                body = line_filter.apply(body, frame.background)
            row = _Row([*frame.prefix, *body, *frame.suffix], frame.size[0])
            self._strips[key] = row
        painted[key] = row
        return row


class _Row(Strip):
    """A painted row of a tile.

    Textual's ``Strip.divide`` answers a cut at the strip's own end with ``[self]`` and caches
    that list in the strip: a reference cycle, which only a full garbage collection frees.
    The compositor makes that cut on every row of every tile, and tiles make and drop rows
    many times a second: about 7,000 objects a second became cyclic garbage (16 agents at
    100 lines/s). A row answers that cut without the cache."""

    __slots__ = ()

    def divide(self, cuts: Iterable[int]) -> Sequence[Strip]:
        cuts = [cut for cut in cuts if cut <= self.cell_length]
        if cuts == [self.cell_length]:
            return [self]
        return super().divide(cuts)


@dataclass(frozen=True)
class _Frame:
    """A tile's frame as Textual rendered it: every row (border rows as they are), and the
    border and padding on either side of a body row, with what body rows are styled with."""

    size: tuple[int, int]
    rows: list[Strip | None]
    """Every row of the tile; body rows other than the first are None (never drawn by Textual)."""
    prefix: Strip
    suffix: Strip
    style: Style
    background: Color
    filters: tuple[object, ...]

    @property
    def body(self) -> tuple[object, ...]:
        """What a body row's look depends on: when it is unchanged, cached rows stay valid."""
        return (self.size[0], tuple(self.prefix), tuple(self.suffix), self.style, self.background,
                self.filters)

    @classmethod
    def of(cls, tile: AgentTile, rows: list[Strip | None]) -> _Frame:
        width, height = tile.outer_size
        gutter = tile.styles.gutter
        empty_body_row = rows[gutter.top]  # render_line draws every body row blank
        assert empty_body_row is not None
        return cls((width, height), rows, empty_body_row.crop(0, gutter.left),
                   empty_body_row.crop(width - gutter.right, width), tile.rich_style,
                   tile.background_colors[1], tuple(tile.get_line_filters()))


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

    def layout_tiles(self) -> None:
        """Choose columns and tile height for the current size and number of tiles."""
        tiles = self.tiles
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
        count = len(self.tiles)
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
