"""The zoomed tile: one agent full-screen, with its whole scrollback and ``/`` search.

Lines come from the tile's :class:`~cockpit.ui.feeds.LogFeed`, re-rendered in a worker whenever
the feed changes. While the view is scrolled to the end it follows new output; scrolled up it
stays put. Search is case-insensitive over the plain text; every match is highlighted, the
current one more strongly, and ``n``/``N`` move between them.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import ScrollableContainer
from textual.screen import Screen
from textual.widgets import Input, Label, Static

from cockpit.ui.footer import KeyFooter
from cockpit.ui.keys import ZOOM_KEYS, bindings
from cockpit.ui.tiles import AgentTile

MATCH_STYLE = "black on yellow"
CURRENT_STYLE = "bold black on bright_green"


def find_matches(lines: list[Text], query: str) -> list[tuple[int, int, int]]:
    """``(line, start, end)`` of every case-insensitive occurrence of ``query``."""
    if not query:
        return []
    needle = query.lower()
    found = []
    for number, line in enumerate(lines):
        haystack = line.plain.lower()
        start = haystack.find(needle)
        while start != -1:
            found.append((number, start, start + len(needle)))
            start = haystack.find(needle, start + max(1, len(needle)))
    return found


class ZoomScreen(Screen[None]):
    """One tile full-screen. Dismisses back to the grid."""

    BINDINGS = bindings(ZOOM_KEYS)
    DEFAULT_CSS = """
    ZoomScreen #zoom-title { height: 1; width: 100%; background: $panel; padding: 0 1; }
    ZoomScreen #zoom-scroll { height: 1fr; }
    ZoomScreen #zoom-body { width: auto; text-wrap: nowrap; padding: 0 1; }
    ZoomScreen #search { dock: bottom; display: none; }
    ZoomScreen #search.visible { display: block; }
    ZoomScreen #search-status { height: 1; color: $foreground-muted; padding: 0 1; }
    """

    def __init__(self, tile: AgentTile) -> None:
        super().__init__()
        self.tile = tile
        self.lines: list[Text] = []
        self.query_text = ""
        self.matches: list[tuple[int, int, int]] = []
        self.current = -1
        self.seen_version = -1

    def compose(self) -> ComposeResult:
        yield Label("", id="zoom-title")
        with ScrollableContainer(id="zoom-scroll"):
            yield Static("", id="zoom-body")
        yield Label("", id="search-status")
        yield Input(placeholder="search the log (enter: find, esc: close)", id="search")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.refresh_title()
        self.reload()

    def refresh_title(self) -> None:
        title = self.query_one_optional("#zoom-title", Label)
        if title is None:  # not composed yet (the app's frame timer can call before that)
            return
        tile = self.tile
        view = "screen" if tile.view == "screen" else "log"
        title.update(
            f"[b]{tile.agent.name}[/] · {view} · {tile.border_subtitle or ''}")

    def feed_changed(self) -> None:
        """Called by the app on every frame in which the feed changed."""
        if not self.is_mounted:
            return
        if self.tile.feed.version != self.seen_version:
            self.reload()
        self.refresh_title()

    @work(thread=True, exit_on_error=False, exclusive=True, group="zoom")
    def reload(self) -> None:
        """Render the full scrollback (or the screen) off the UI thread."""
        feed = self.tile.feed
        version = feed.version
        lines = list(feed.screen or []) if self.tile.view == "screen" else feed.all_lines()
        self.app.call_from_thread(self.show_lines, lines, version)

    def show_lines(self, lines: list[Text], version: int) -> None:
        scroller = self.query_one_optional("#zoom-scroll", ScrollableContainer)
        if scroller is None:  # closed meanwhile
            return
        following = scroller.scroll_y >= scroller.max_scroll_y - 1
        self.lines = lines
        self.seen_version = version
        self.matches = find_matches(lines, self.query_text)
        self.current = min(self.current, len(self.matches) - 1)
        self.paint()
        if following and self.current < 0:
            self.call_after_refresh(scroller.scroll_end, animate=False)

    def paint(self) -> None:
        text = Text("\n").join(self.lines) if self.lines else Text("(no output yet)", style="dim")
        if self.matches:
            offsets = [0]
            for line in self.lines:
                offsets.append(offsets[-1] + len(line.plain) + 1)
            for index, (number, start, end) in enumerate(self.matches):
                style = CURRENT_STYLE if index == self.current else MATCH_STYLE
                text.stylize(style, offsets[number] + start, offsets[number] + end)
        text.no_wrap = True
        self.query_one("#zoom-body", Static).update(text)
        status = ""
        if self.query_text:
            status = (f"/{self.query_text}: {self.current + 1} of {len(self.matches)} (n/N)" if self.matches
                      else f"/{self.query_text}: no match")
        self.query_one("#search-status", Label).update(status)

    # -- actions ------------------------------------------------------------------------------
    def action_close(self) -> None:
        search = self.query_one("#search", Input)
        if search.has_class("visible"):
            search.remove_class("visible")
            return
        self.dismiss(None)

    def action_search(self) -> None:
        search = self.query_one("#search", Input)
        search.add_class("visible")
        search.value = self.query_text
        search.focus()

    @on(Input.Submitted, "#search")
    def _search(self, event: Input.Submitted) -> None:
        event.input.remove_class("visible")
        self.query_one("#zoom-scroll").focus()
        self.query_text = event.value
        self.matches = find_matches(self.lines, self.query_text)
        self.current = len(self.matches) - 1 if self.matches else -1  # newest match first
        self.paint()
        self.scroll_to_current()

    def action_next_match(self, step: int) -> None:
        if not self.matches:
            if self.query_text:
                self.notify(f"no match for {self.query_text!r}", severity="warning")
            return
        self.current = (self.current + step) % len(self.matches)
        self.paint()
        self.scroll_to_current()

    def scroll_to_current(self) -> None:
        if 0 <= self.current < len(self.matches):
            scroller = self.query_one("#zoom-scroll", ScrollableContainer)
            line = self.matches[self.current][0]
            target = max(0, line - scroller.size.height // 2)
            self.call_after_refresh(scroller.scroll_to, y=target, animate=False)

    def action_toggle_screen(self) -> None:
        from cockpit.ui.actions import unavailable
        why = unavailable(self.tile.agent, "toggle_screen") if self.tile.view == "log" else None
        if why:
            self.notify(why, severity="warning")
            return
        self.app.toggle_view(self.tile)  # type: ignore[attr-defined]
        self.refresh_title()
        self.reload()

    def action_scroll_home(self) -> None:
        self.query_one("#zoom-scroll", ScrollableContainer).scroll_home(animate=False)

    def action_scroll_end(self) -> None:
        self.query_one("#zoom-scroll", ScrollableContainer).scroll_end(animate=False)
