"""How the agents are laid out: the grid or the list (``t``), in which order (``o``), narrowed by
a filter (``/``), and which are pinned (``space``): :class:`Arrangement`, a mixin of
:class:`~cockpit.ui.app.CockpitApp`, and :class:`ListLayout`, the list with its preview.

The order and the filter are the engine's (:mod:`cockpit.core.roster_order`); both layouts show
the same order. At start-up the list is chosen when the grid's tiles would be smaller than
:data:`SMALLEST_TILE`; once the user toggles, the choice stays for the session.
"""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import App, ComposeResult
from textual.containers import Container, Vertical
from textual.widgets import Input, Static

from cockpit.core.roster_order import SORTS, StableOrder, filtered, next_sort
from cockpit.ui.agent_list import AgentList, FilterInput, PreviewTile
from cockpit.ui.commands import PaletteCommand
from cockpit.ui.tiles import AgentTile, Clock, TileGrid

if TYPE_CHECKING:
    from cockpit.core.agent import Agent
    from cockpit.ui.live import LiveLogs

    _App = App[int]
else:
    _App = object

SMALLEST_TILE = (40, 8)
"""Below this tile size (cells) the grid is not the layout a fleet opens in."""
BESIDE_FROM = 150
"""From this width the preview is beside the list; narrower, below it."""


def tiles_too_small(count: int, width: int, height: int) -> bool:
    """Whether every arrangement of ``count`` tiles that shows them all at once in ``width`` x
    ``height`` cells gives tiles smaller than :data:`SMALLEST_TILE`."""
    if count <= 0:
        return False
    min_width, min_height = SMALLEST_TILE
    for columns in range(1, count + 1):
        rows = -(-count // columns)
        if width // columns >= min_width and height // rows >= min_height:
            return False
    return True


class ListLayout(Container):
    """The list (a status line, the filter when open, the rows) and the preview of the
    highlighted agent, beside it on a wide terminal, below it on a narrow one."""

    DEFAULT_CSS = """
    ListLayout { height: 1fr; layout: horizontal; display: none; }
    ListLayout.below { layout: vertical; }
    ListLayout > #list-side { width: 3fr; height: 1fr; }
    ListLayout.below > #list-side { width: 1fr; height: 3fr; }
    ListLayout > #preview, ListLayout > #preview-empty { width: 2fr; height: 1fr; }
    ListLayout.below > #preview, ListLayout.below > #preview-empty { width: 1fr; height: 2fr; }
    ListLayout #list-status { height: 1; color: $foreground-muted; padding: 0 1; }
    ListLayout FilterInput { height: 1; border: none; padding: 0 1; display: none; }
    ListLayout FilterInput.open { display: block; }
    ListLayout #preview-empty { color: $foreground-muted; padding: 1 2; }
    """

    def __init__(self, agent_list: AgentList) -> None:
        super().__init__(id="list-layout")
        self.agent_list = agent_list

    def compose(self) -> ComposeResult:
        with Vertical(id="list-side"):
            yield Static(id="list-status")
            yield FilterInput(placeholder="filter: name, state or flag (waiting, failed, conflict…)", id="filter")
            yield self.agent_list
        yield Static("(no agent)", id="preview-empty")

    def on_resize(self) -> None:
        self.set_class(self.size.width < BESIDE_FROM, "below")


class Arrangement(_App):
    """Layout, order, filter and pins of the agents (mixed into ``CockpitApp``)."""

    agents: list[Agent]
    live: LiveLogs
    clock: Clock | None
    _tiles: dict[str, AgentTile]

    def init_arrangement(self) -> None:
        self.layout_mode = "grid"
        """``grid`` or ``list``."""
        self.layout_chosen = False
        """The user toggled the layout (or it was decided at start-up): it stays."""
        self.order = StableOrder()
        self.filter_text = ""
        self.pinned: set[str] = set()
        self.list_diffs: dict[str, tuple[int, int, int] | None] = {}
        self.agent_list = AgentList(self._last_line, self.clock)
        self.preview: PreviewTile | None = None

    def compose_list(self) -> ComposeResult:
        yield ListLayout(self.agent_list)

    # -- what is shown, in which order -----------------------------------------------------------
    def arrange(self) -> None:
        """Put the tiles and the rows in the order and filter of now (call after the agents or
        the choices changed)."""
        grid = self.query_one_optional(TileGrid)
        if grid is None:
            return
        if not self.layout_chosen and self.agents and grid.size.width:
            self.layout_chosen = True
            width, height = self.size.width, self.size.height - 2  # (the header and the footer)
            if tiles_too_small(len(self.agents), width, height):
                self._set_layout("list")
        shown = self.order.arrange(self.agents, time.monotonic())
        self._order_tiles(grid, shown)
        rows = filtered(shown, self.filter_text)
        self.agent_list.show(rows, self.list_diffs, self.pinned)
        self._status()

    def _order_tiles(self, grid: TileGrid, shown: list[Agent]) -> None:
        tiles = grid.tiles
        by_name = {tile.agent.name: tile for tile in tiles}
        order = [by_name[agent.name] for agent in shown if agent.name in by_name]
        moved = False
        for index, tile in enumerate(order):
            if index < len(tiles) and tiles[index] is not tile:
                grid.move_child(tile, before=tiles[index])
                tiles.remove(tile)
                tiles.insert(index, tile)
                moved = True
        pinned = [tile for tile in order if tile.agent.name in self.pinned]
        for tile in order:
            visible = not pinned or tile.agent.name in self.pinned
            if tile.display != visible:
                tile.display = visible
                moved = True
        if moved:
            focused = self.focused
            if isinstance(focused, AgentTile) and not focused.display and grid.shown:
                focused.screen.set_focus(grid.shown[0])
            self.call_after_refresh(grid.layout_tiles)
            if isinstance(self.focused, AgentTile):
                self.call_after_refresh(grid.scroll_to_widget, self.focused, animate=False)

    def _status(self) -> None:
        status = self.query_one_optional("#list-status", Static)
        if status is None:
            return
        total, rows = len(self.agents), len(self.agent_list.agents)
        parts = [f"{rows} of {total} agents" if rows != total else f"{total} agents", f"order: {self.order.sort}"]
        if self.filter_text:
            parts.append(f"filter: {self.filter_text}")
        if self.pinned:
            parts.append(f"◆ {len(self.pinned)} pinned")
        status.update(Text(" · ".join(parts)))

    def _last_line(self, name: str) -> Text | None:
        feed = self.live.feeds.get(name)
        if feed is None:
            return None
        return next((line for line in reversed(feed.lines) if line.plain.strip()), None)

    # -- the layout ------------------------------------------------------------------------------
    def action_toggle_layout(self) -> None:
        self.layout_chosen = True
        self._set_layout("list" if self.layout_mode == "grid" else "grid")

    def _set_layout(self, mode: str) -> None:
        grid, layout = self.query_one_optional(TileGrid), self.query_one_optional(ListLayout)
        if grid is None or layout is None:
            return
        current = self._current_tile()
        self.layout_mode = mode
        grid.display = mode == "grid"
        layout.display = mode == "list"
        if mode == "list":
            if current is not None:
                self.agent_list.highlight(current.agent.name)
            self.agent_list.focus()
            self.sync_preview()
        else:
            target = self._tiles.get(self.agent_list.highlighted or "")
            for tile in self._tiles.values():  # the preview may have asked for fewer rows
                if tile.content_size.height:
                    tile.feed.rows = tile.content_size.height
                tile.refresh()
            if target is None or not target.display:
                target = grid.shown[0] if grid.shown else None
            if target is not None:
                target.screen.set_focus(target)
                self.call_after_refresh(grid.scroll_to_widget, target, animate=False)
            else:
                grid.focus()
            self.call_after_refresh(grid.layout_tiles)

    def _current_tile(self) -> AgentTile | None:
        if self.layout_mode == "list":
            return self._tiles.get(self.agent_list.highlighted or "")
        focused = self.focused
        return focused if isinstance(focused, AgentTile) else None

    def show_tile(self, tile: AgentTile) -> None:
        """Bring ``tile``'s agent under the user's eye at once: focus the tile, or highlight its row."""
        if self.layout_mode == "list":
            if tile.agent.name not in {a.name for a in self.agent_list.agents}:
                self._apply_filter("")  # (the filter hid it: the user asked for this agent)
            self.agent_list.highlight(tile.agent.name)
            return
        if not tile.display:
            self.pinned.clear()  # (the pins hid it)
            self.arrange()
        tile.screen.set_focus(tile)

    def on_agent_list_highlighted(self, _message: AgentList.Highlighted) -> None:
        self.sync_preview()

    def sync_preview(self) -> None:
        """The preview follows the highlighted agent's tile (mounted on first use)."""
        if self.layout_mode != "list":
            return
        layout = self.query_one_optional(ListLayout)
        source = self._tiles.get(self.agent_list.highlighted or "")
        if layout is None:
            return
        if self.preview is not None:  # (nothing highlighted: no agent, or the filter hides them all)
            self.preview.display = source is not None
        if source is None:
            return
        if self.preview is None:
            self.preview = PreviewTile(source)
            empty = layout.query_one_optional("#preview-empty")
            if empty is not None:
                empty.remove()
            layout.mount(self.preview)
        else:
            self.preview.follow(source)
            self.preview.mirror()

    def painted_tiles(self) -> list[AgentTile]:
        """The tiles whose new log lines are painted now: the grid's, or the preview in the list
        (whose rows are refreshed a few times a second instead: :attr:`AgentList.stale`)."""
        if self.layout_mode == "grid":
            return list(self._tiles.values())
        preview = self.preview
        keep = preview.feed if preview is not None else None
        for feed in self.live.feeds.values():
            if feed.dirty and feed is not keep:
                feed.dirty = False  # (shown by the list's last-line column, not by a tile)
                feed.unseen = 0
                self.agent_list.stale = True
        return [preview] if preview is not None and preview.is_mounted else []

    def refresh_list(self) -> None:
        """A few times a second: the list's last lines and the preview's status."""
        if self.layout_mode != "list":
            return
        if self.agent_list.stale:
            self.agent_list.stale = False
            self.agent_list.refresh()
        if self.preview is not None:
            self.preview.mirror()

    def arrangement_commands(self) -> list[PaletteCommand]:
        """The palette's entries for the layout, the order and the filter."""
        commands = [PaletteCommand("layout: grid / list", "Switch between the grid and the list",
                                   self.action_toggle_layout),
                    PaletteCommand("filter the list…", "Narrow the list by name, state or flag", self.action_filter)]
        commands += [PaletteCommand(f"order: {sort}", "Order both layouts", partial(self.set_sort, sort))
                     for sort in SORTS]
        words = {"waiting", "failed", "stalled", "conflict", "scope", "collision", "queued"}
        commands += [PaletteCommand(f"filter: {word}", f"Show only the agents that are {word} (or flagged so)",
                                    partial(self.filter_by, word)) for word in sorted(words)]
        if self.filter_text:
            commands.append(PaletteCommand("filter: clear", "Show every agent", partial(self.filter_by, "")))
        return commands

    # -- order, filter, pins ---------------------------------------------------------------------
    def action_cycle_sort(self) -> None:
        self.order.sort = next_sort(self.order.sort)
        self.order.resort_now()
        self.arrange()
        self.notify(f"order: {self.order.sort}", timeout=2)

    def set_sort(self, sort: str) -> None:
        if sort in SORTS:
            self.order.sort = sort
            self.order.resort_now()
            self.arrange()

    def action_filter(self) -> None:
        """Open the list's filter (switching to the list first)."""
        if self.layout_mode != "list":
            self.layout_chosen = True
            self._set_layout("list")
        field = self.query_one(FilterInput)
        field.add_class("open")
        field.value = self.filter_text
        field.focus()

    def action_clear_filter(self) -> None:
        field = self.query_one_optional(FilterInput)
        if field is not None:
            field.remove_class("open")
        self._apply_filter("")
        self.agent_list.focus()

    def action_focus_list(self) -> None:
        self.agent_list.focus()

    def on_input_changed(self, message: Input.Changed) -> None:
        if isinstance(message.input, FilterInput):
            self._apply_filter(message.value)

    def on_input_submitted(self, message: Input.Submitted) -> None:
        if isinstance(message.input, FilterInput):
            self._apply_filter(message.value)
            if not message.value.strip():
                message.input.remove_class("open")
            self.agent_list.focus()

    def filter_by(self, query: str) -> None:
        """Show the list narrowed to ``query`` (the palette's filters)."""
        if self.layout_mode != "list":
            self.layout_chosen = True
            self._set_layout("list")
        field = self.query_one(FilterInput)
        field.value = query
        field.set_class(bool(query), "open")
        self._apply_filter(query)
        self.agent_list.focus()

    def _apply_filter(self, query: str) -> None:
        self.filter_text = query.strip()
        self.arrange()

    def action_pin(self, name: str | None = None) -> None:
        """Pin the agent (the grid then shows the pinned agents only), or unpin it."""
        tile = self._tiles.get(name) if name else self._current_tile()
        if tile is None:
            self.notify("no agent selected", severity="warning")
            return
        agent = tile.agent.name
        if agent in self.pinned:
            self.pinned.discard(agent)
            said = f"unpinned {agent}" + ("" if self.pinned else ": the grid shows every agent")
        else:
            self.pinned.add(agent)
            said = f"pinned {agent}: the grid shows the {len(self.pinned)} pinned"
        self.arrange()
        self.notify(said, timeout=3)
