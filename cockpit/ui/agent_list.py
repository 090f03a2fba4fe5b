"""The list layout: one row per agent, and a live preview of the highlighted one.

:class:`AgentList` draws only the rows on screen (Textual's line API: ``render_line`` per
visible row of a :class:`~textual.scroll_view.ScrollView`), so 64 agents cost what the rows
shown cost, and no widget is mounted per row. The highlight follows an agent, not a row number:
re-sorting never moves it off its agent, and when its agent goes it moves to the neighbouring
row. :class:`PreviewTile` is a tile (the same renderer, colours and cursor motion) that shows the
highlighted agent's log or screen, following its grid tile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.events import Click
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Input

from cockpit.core.agent import Agent
from cockpit.core.roster_order import flags
from cockpit.ui.keys import LIST_KEYS, LIST_MOVE_KEYS, bindings
from cockpit.ui.subtitle import age
from cockpit.ui.tiles import AgentTile, Clock

SEPARATOR = " "
FLAG_MARKS = {"scope": "⚠scope", "collision": "⚠collides", "conflict": "⚔conflict"}
FLAG_ORDER = ("conflict", "rejected", "blocked", "queued", "merged", "scope", "collision")
"""The flags as the list shows them, most important first (a narrow column keeps those)."""


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    width: int


def columns_for(width: int, name_width: int) -> list[Column]:
    """The columns that fit ``width`` cells, most important first; the last log line takes
    what is left (when at least 12 cells are)."""
    wanted = [Column("pin", "", 1), Column("name", "agent", name_width), Column("state", "state", 10),
              Column("activity", "activity", 24), Column("flags", "flags", 20), Column("age", "for", 4),
              Column("try", "try", 12), Column("diff", "diff", 14)]
    chosen: list[Column] = []
    used = 0
    for column in wanted:
        cells = column.width + (len(SEPARATOR) if chosen else 0)
        if used + cells > width:
            if column.key == "activity" and width - used > 10:  # a narrower activity column
                chosen.append(Column("activity", "activity", width - used - len(SEPARATOR)))
                used = width
            continue
        chosen.append(column)
        used += cells
    if width - used - len(SEPARATOR) >= 12:
        chosen.append(Column("last", "last output", width - used - len(SEPARATOR)))
    return chosen


class AgentList(ScrollView, can_focus=True):
    """The agents' rows (row 0 is the column titles). The app hands it the agents in the order
    and filter to show (:meth:`show`); it posts :class:`Highlighted` when the highlighted agent
    changes."""

    BINDINGS = bindings(LIST_KEYS)
    COMPONENT_CLASSES = {"agent-list--cursor", "agent-list--header", "agent-list--dim"}
    DEFAULT_CSS = """
    AgentList { height: 1fr; background: $surface; scrollbar-size-vertical: 1; }
    AgentList > .agent-list--header { text-style: bold; color: $foreground-muted; }
    AgentList > .agent-list--dim { color: $foreground-muted; }
    AgentList > .agent-list--cursor { background: $accent 20%; }
    AgentList:focus > .agent-list--cursor { background: $accent 40%; text-style: bold; }
    """

    class Highlighted(Message):
        """The highlighted agent changed (None: the list is empty)."""

        def __init__(self, name: str | None) -> None:
            super().__init__()
            self.name = name

    def __init__(self, last_line: Callable[[str], Text | None], clock: Clock | None) -> None:
        super().__init__(id="agent-list")
        self.last_line = last_line
        """The newest non-blank log line of an agent (None: none yet)."""
        self.clock = clock
        self.agents: list[Agent] = []
        self.diffs: dict[str, tuple[int, int, int] | None] = {}
        self.pinned: set[str] = set()
        self.highlighted: str | None = None
        self.stale = False
        """Some log changed since the rows were painted (the app refreshes the list a few times a second)."""
        self._index: dict[str, int] = {}
        self._colours: tuple[str, dict[str, str]] | None = None
        self._strips: dict[object, Strip] = {}
        """Rows as last painted, by what they show."""
        self._painted: dict[object, Strip] = {}
        self._columns: tuple[tuple[int, int], list[Column]] | None = None
        self._styles: dict[tuple[str, bool], Style] = {}

    # -- content ---------------------------------------------------------------------------------
    def show(self, agents: list[Agent], diffs: dict[str, tuple[int, int, int] | None], pinned: set[str]) -> None:
        """Show ``agents`` in this order. The highlight stays on its agent; if that agent is no
        longer shown, it goes to the row that followed it (or preceded it, at the end)."""
        old = [agent.name for agent in self.agents]
        self.agents = list(agents)
        self.diffs = diffs
        self.pinned = set(pinned)
        self._index = {agent.name: i for i, agent in enumerate(self.agents)}
        highlighted = self.highlighted
        if highlighted not in self._index:
            highlighted = self._neighbour(old, highlighted)
        self.virtual_size = Size(self.size.width, len(self.agents) + 1)
        self.refresh()
        self._highlight(highlighted)

    def _neighbour(self, old: list[str], gone: str | None) -> str | None:
        if not self.agents:
            return None
        if gone in old:
            at = old.index(gone)
            for name in old[at + 1:]:
                if name in self._index:
                    return name
            for name in reversed(old[:at]):
                if name in self._index:
                    return name
        return self.agents[0].name

    def highlight(self, name: str) -> None:
        """Highlight ``name``'s row (ignored when it is not shown)."""
        if name in self._index:
            self._highlight(name)

    def _highlight(self, name: str | None) -> None:
        changed = name != self.highlighted
        self.highlighted = name
        if name is not None:
            self._scroll_to_row(self._index[name])
        if changed:
            self.refresh()
            self.post_message(AgentList.Highlighted(name))

    @property
    def rows_visible(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _scroll_to_row(self, row: int) -> None:
        top = int(self.scroll_y)
        if row < top:
            self.scroll_to(y=row, animate=False, immediate=True)
        elif row >= top + self.rows_visible:
            self.scroll_to(y=row - self.rows_visible + 1, animate=False, immediate=True)

    @property
    def hidden(self) -> tuple[int, int]:
        """``(above, below)``: rows scrolled off the top and off the bottom."""
        top = int(self.scroll_y)
        return top, max(0, len(self.agents) - top - self.rows_visible)

    @property
    def cursor(self) -> int:
        return self._index.get(self.highlighted or "", 0)

    def _move_to(self, row: int) -> None:
        if self.agents:
            self._highlight(self.agents[max(0, min(len(self.agents) - 1, row))].name)

    def action_cursor(self, step: int) -> None:
        self._move_to(self.cursor + step)

    def action_page(self, step: int) -> None:
        self._move_to(self.cursor + step * self.rows_visible)

    def action_first(self) -> None:
        self._move_to(0)

    def action_last(self) -> None:
        self._move_to(len(self.agents) - 1)

    def on_click(self, event: Click) -> None:
        row = int(self.scroll_y) + event.y - 1
        if 0 <= row < len(self.agents) and event.y >= 1:
            self._move_to(row)

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, len(self.agents) + 1)
        if self.highlighted in self._index:
            self._scroll_to_row(self._index[self.highlighted])

    # -- painting --------------------------------------------------------------------------------
    def _layout(self, width: int) -> list[Column]:
        """The columns for ``width`` (kept until the width or the longest name changes)."""
        name_width = min(24, max([5, *(len(agent.name) for agent in self.agents)]))
        if self._columns is None or self._columns[0] != (width, name_width):
            self._columns = ((width, name_width), columns_for(width, name_width))
        return self._columns[1]

    def _style(self, component: str) -> Style:
        """A component's Rich style, kept until the styles change (the theme, the focus)."""
        key = (component, self.has_focus)
        style = self._styles.get(key)
        if style is None:
            style = self._styles[key] = self.get_component_rich_style(component)
        return style

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()
        self._strips.clear()

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        columns = self._layout(width)
        if y == 0:
            header = self._style("agent-list--header")
            text = Text(SEPARATOR.join(c.title.ljust(c.width)[:c.width] for c in columns), style=header)
            return self._strip(text, width, header)
        row = int(self.scroll_y) + y - 1
        if row >= len(self.agents):
            return Strip.blank(width, self.rich_style)
        agent = self.agents[row]
        cursor = agent.name == self.highlighted
        key = (self.row_signature(agent), cursor, self.has_focus, width, self.app.theme)
        strip = self._strips.get(key)
        if strip is None:  # (a row is built anew only when something it shows changed)
            style = self.rich_style
            if cursor:
                style = style + self._style("agent-list--cursor")
            strip = self._strips[key] = self._strip(self.row_text(agent, columns), width, style)
        self._painted[key] = strip
        return strip

    def row_signature(self, agent: Agent) -> tuple[object, ...]:
        """Everything an agent's row shows: equal signatures paint equal rows."""
        line = self.last_line(agent.name)
        now = self.clock() if self.clock else None
        return (agent.name, agent.state, agent.process, agent.doing(80), agent.reason, agent.attempt,
                agent.failures, agent.max_failures, tuple(flags(agent)), self.diffs.get(agent.name),
                agent.name in self.pinned, age(agent.state_since, now) if now is not None else None,
                None if line is None else (line.plain, tuple(line.spans), line.style))

    def render_lines(self, crop: Region) -> list[Strip]:
        self._painted = {}
        strips = super().render_lines(crop)
        if crop.height >= self.size.height:  # a whole paint: keep only the rows shown now
            self._strips = self._painted
        return strips

    def _strip(self, text: Text, width: int, style: Style) -> Strip:
        segments = list(Segment.apply_style(text.render(self.app.console), style))
        return Strip(Segment.adjust_line_length(segments, width, style), width)

    def _colour(self, name: str) -> str | None:
        theme = self.app.theme
        if self._colours is None or self._colours[0] != theme:
            self._colours = (theme, self.app.get_css_variables())
        return self._colours[1].get(f"state-{name}")

    def row_text(self, agent: Agent, columns: list[Column]) -> Text:
        """One agent's row, cell by cell."""
        text = Text(no_wrap=True, overflow="ellipsis")
        dim = self._style("agent-list--dim")
        now = self.clock() if self.clock else None
        for i, column in enumerate(columns):
            if i:
                text.append(SEPARATOR)
            cell = self._cell(agent, column.key, now, dim)
            cell.truncate(column.width, overflow="ellipsis", pad=True)
            text.append_text(cell)
        return text

    def _cell(self, agent: Agent, key: str, now: object, dim: Style) -> Text:
        if key == "pin":
            return Text("◆" if agent.name in self.pinned else " ", style="bold")
        if key == "name":
            return Text(agent.name, style="bold")
        if key == "state":
            colour = self._colour(agent.state)
            return Text(f"● {agent.state}", style=f"bold {colour}" if colour else "bold")
        if key == "activity":
            doing = agent.doing(80)
            colour = self._colour(agent.activity or "")
            if doing:
                return Text(doing, style=colour or "")
            if agent.process != agent.state:  # a merge state shown: the process beside it
                return Text(agent.process, style=dim)
            return Text(agent.reason or "", style=dim)
        if key == "age":
            return Text(age(agent.state_since, now) or "" if now is not None else "", style=dim)  # type: ignore[arg-type]
        if key == "try":
            return Text(agent.tries, style="bold red" if agent.failures else "")  # ls's and the tiles' notation
        if key == "diff":
            diff = self.diffs.get(agent.name)
            if diff is None:
                return Text("")
            files, added, removed = diff
            text = Text()
            text.append(f"+{added}", style="green")
            text.append(f" −{removed}", style="red")
            text.append(f" {files}f", style=dim)
            return text
        if key == "flags":
            found = sorted(flags(agent), key=lambda f: FLAG_ORDER.index(f) if f in FLAG_ORDER else len(FLAG_ORDER))
            marks = [FLAG_MARKS.get(flag, flag) for flag in found]
            return Text(" ".join(marks), style="bold yellow" if marks else "")
        if key == "last":
            line = self.last_line(agent.name)
            return line.copy() if line is not None else Text("")
        return Text("")


class PreviewTile(AgentTile, can_focus=False):
    """The highlighted agent's tile, beside or below the list: its grid tile's log or screen,
    status line and all, drawn by the same renderer."""

    def __init__(self, source: AgentTile) -> None:
        super().__init__(source.agent, source.feed, source.clock, tile_id="preview")
        self.source = source
        self.mirror()

    def follow(self, source: AgentTile) -> None:
        """Show ``source``'s agent from now on."""
        if source is not self.source:
            self.source = source
            self.feed = source.feed
            self.border_title = source.agent.name
            if self.content_size.height:
                self.feed.rows = max(self.feed.rows, self.content_size.height)
            self.mirror()
            self.refresh()

    def mirror(self) -> None:
        """Take the source tile's snapshot: agent, diff, the operation under way, the view."""
        source = self.source
        self.agent, self.diff, self.pending, self.base_moved = (source.agent, source.diff, source.pending,
                                                                source.base_moved)
        if self.view != source.view:
            self.view = source.view
            self.refresh()
        self.refresh_subtitle()


class FilterInput(Input):
    """The list's filter: narrows the rows as it is typed; enter keeps it, escape clears it."""

    BINDINGS = [spec.binding() for spec in LIST_MOVE_KEYS if spec.id == "filter-clear"] + [
        Binding("down", "app.focus_list", show=False)]
