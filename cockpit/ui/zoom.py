"""The zoomed tile: one agent full-screen, its whole ``session.log`` and ``/`` search over it.

The log is read from the file on demand (:class:`~cockpit.ui.logview.LogView` over the feed's
:class:`~cockpit.core.log_index.LineIndex`): the view opens on the end of the log at once; the
start of a big log is indexed in a worker when the view gets near it (``g``, scrolling up, a
match up there), so ``g`` reaches line 1 of a log of any size and nothing of it is held in
memory. While scrolled to the end the view follows new output; scrolled up it stays put.

Search (:mod:`cockpit.ui.search`) runs in workers over the whole file, newest lines first, then
over each line as it is finished. Every match is highlighted, the current one more strongly;
``n``/``N`` move between them. The screen view (``s``) shows the tmux screen instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import ScrollableContainer
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Input, Label, Static
from textual.worker import get_current_worker

from cockpit.ui.footer import key_footer
from cockpit.ui.keys import ZOOM_KEYS, bindings
from cockpit.ui.logview import LogView, Match, MatchList
from cockpit.ui.messages import deliver
from cockpit.ui.search import LogSearch
from cockpit.ui.tiles import AgentTile
from cockpit.ui.verbs import unavailable

PROGRESS_EVERY_S = 0.25
"""How often the indexing of a log's start reports how far it got."""
INDEX_SHARE = 0.5
"""The most of a core indexing a log's start may take (a GiB of it takes seconds)."""


class ZoomScreen(Screen[None]):
    """One tile full-screen. Dismisses back to the grid. ``toggle_view`` switches the tile
    between its log and its tmux screen (the app keeps track of the screens it captures)."""

    BINDINGS = bindings(ZOOM_KEYS)
    DEFAULT_CSS = """
    ZoomScreen #zoom-title { height: 1; width: 100%; background: $panel; padding: 0 1; }
    ZoomScreen #zoom-screen { height: 1fr; display: none; }
    ZoomScreen.screen-view #zoom-screen { display: block; }
    ZoomScreen.screen-view #zoom-log { display: none; }
    ZoomScreen #zoom-body { width: auto; text-wrap: nowrap; padding: 0 1; }
    ZoomScreen #search { dock: bottom; display: none; }
    ZoomScreen #search.visible { display: block; }
    ZoomScreen #search-status { height: 1; color: $foreground-muted; padding: 0 1; }
    """

    # -- what its workers report (to this screen) ---------------------------------------------------
    class Synced(Message, bubble=False):
        """The index was opened or extended: show what it has."""

    @dataclass
    class Indexing(Message, bubble=False):
        """How much of the log's start is indexed so far."""

        fraction: float

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, ZoomScreen.Indexing)

    @dataclass
    class HeadIndexed(Message, bubble=False):
        """The start of the log is indexed: every line number grew by ``shift`` (None: stopped,
        or the file changed meanwhile)."""

        shift: int | None

    @dataclass
    class Extended(Message, bubble=False):
        """What was appended is indexed; ``changed`` when the log grew or was replaced."""

        changed: bool

    @dataclass
    class Found(Message, bubble=False):
        """A batch of matches of ``search``: ``older`` ones from the backward scan, else in new lines."""

        search: LogSearch
        matches: list[Match]
        older: bool

    def __init__(self, tile: AgentTile, toggle_view: Callable[[AgentTile], None]) -> None:
        super().__init__()
        self.tile = tile
        self.toggle_view = toggle_view
        self.index = tile.feed.line_index()
        self.query_text = ""
        self.matches = MatchList()
        self.match: Match | None = None
        """The current match."""
        self.search: LogSearch | None = None
        self.seen_version = -1
        self.indexing: float | None = None
        """How much of the log's start is indexed (0..1) while that runs, else None."""
        self._goto_pending: Match | None = None
        self._extending = False
        self._extend_again = False

    def compose(self) -> ComposeResult:
        yield Label("", id="zoom-title")
        yield LogView(self.index, id="zoom-log")
        with ScrollableContainer(id="zoom-screen"):
            yield Static("", id="zoom-body")
        yield Label("", id="search-status")
        yield Input(placeholder="search the log (enter: find, esc: close)", id="search")
        yield key_footer()

    @property
    def view(self) -> LogView:
        return self.query_one("#zoom-log", LogView)

    @property
    def current(self) -> int:
        """The position of the current match, -1 when there is none."""
        return self.matches.index(self.match) if self.match is not None else -1

    def on_mount(self) -> None:
        self.set_class(self.tile.view == "screen", "screen-view")
        self.refresh_title()
        self.show_screen()
        self.view.on_near_start = self.need_start
        self.view.focus()
        self._open_index()

    def refresh_title(self) -> None:
        title = self.query_one_optional("#zoom-title", Label)
        if title is None:  # not composed yet (the app's frame timer can call before that)
            return
        tile = self.tile
        view = "screen" if tile.view == "screen" else "log"
        indexing = f" · indexing the start of the log… {self.indexing:.0%}" if self.indexing is not None else ""
        title.update(f"[b]{tile.agent.name}[/] · {view}{indexing} · {tile.border_subtitle or ''}")

    # -- following the file ------------------------------------------------------------------------
    @work(thread=True, exit_on_error=False, group="zoom-index")
    def _open_index(self) -> None:
        """Open the index on the end of the log: shown at once, whatever the log's size. Its
        start is indexed when the view gets near it (:meth:`need_start`)."""
        index = self.index
        if index.numbering == 0:
            index.open()
        else:
            index.extend()
        deliver(self, ZoomScreen.Synced())

    def need_start(self) -> None:
        """Index the start of the log (in a worker), unless that is done or under way: ``g``,
        scrolling near the top of what is indexed, or a match up there asks for it."""
        if not self.index.complete and self.indexing is None:
            self.indexing = 0.0
            self.refresh_title()
            self._scan_start()

    @work(thread=True, exit_on_error=False, group="zoom-index")
    def _scan_start(self) -> None:
        worker = get_current_worker()
        reported = [0.0]

        def progress(fraction: float) -> None:  # a few times a second: the UI thread has its own work
            if time.monotonic() - reported[0] >= PROGRESS_EVERY_S:
                reported[0] = time.monotonic()
                deliver(self, ZoomScreen.Indexing(fraction))

        shift = self.index.scan_head(stop=lambda: worker.is_cancelled or not self.is_attached,
                                     progress=progress, share=INDEX_SHARE)
        deliver(self, ZoomScreen.HeadIndexed(shift))

    def on_zoom_screen_synced(self, _message: ZoomScreen.Synced) -> None:
        if self.is_attached:
            self.view.sync()

    def on_zoom_screen_indexing(self, message: ZoomScreen.Indexing) -> None:
        self.indexing = message.fraction
        self.refresh_title()

    def on_zoom_screen_head_indexed(self, message: ZoomScreen.HeadIndexed) -> None:
        shift = message.shift
        self.indexing = None
        self.refresh_title()
        if not self.is_attached:
            return
        if shift is None:  # stopped, or the file changed meanwhile
            self.view.sync()
            if self.view.home_pending or self._goto_pending is not None:
                self.need_start()
            return
        self.view.renumbered(shift)
        if self._goto_pending is not None:
            self.scroll_to_match(self._goto_pending)

    def feed_changed(self) -> None:
        """Called by the app on every frame in which the feed changed."""
        if not self.is_mounted:
            return
        version = self.tile.feed.version
        if version != self.seen_version:
            self.seen_version = version
            self.show_screen()
            if self._extending:
                self._extend_again = True
            else:
                self._extending = True
                self._extend()
        if self.search is not None and not self.search.done:
            self.refresh_status()  # how far the search got
        self.refresh_title()

    @work(thread=True, exit_on_error=False, group="zoom-extend")
    def _extend(self) -> None:
        """Index what was appended, and search the lines finished since."""
        changed = self.index.extend()
        deliver(self, ZoomScreen.Extended(changed))
        search = self.search
        if search is not None:  # the lines finished since the last look
            found = search.new_lines(self.index)
            if found:
                deliver(self, ZoomScreen.Found(search, found, False))

    def on_zoom_screen_extended(self, message: ZoomScreen.Extended) -> None:
        changed = message.changed
        if not self.is_attached:
            return
        if changed:
            self.view.sync()
            if self.search is not None and self.search.generation != self.index.generation:
                self.start_search(self.search.query)  # the log was truncated or replaced
        self._extending = False
        if self._extend_again:
            self._extend_again = False
            self._extending = True
            self._extend()

    def show_screen(self) -> None:
        """The screen view's content: the tile's last tmux capture."""
        if self.tile.view != "screen":
            return
        text = Text("\n").join(self.tile.screen_lines())
        text.no_wrap = True
        self.query_one("#zoom-body", Static).update(text)

    # -- search ----------------------------------------------------------------------------------
    @on(Input.Submitted, "#search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        event.input.remove_class("visible")
        self.view.focus()
        self.start_search(event.value)

    def start_search(self, query: str) -> None:
        """Search the whole log for ``query`` (case-insensitive), newest match first."""
        self.query_text = query
        self.matches = MatchList()
        self.match = None
        self._goto_pending = None
        self.search = LogSearch(query, self.index.finished_end, self.index.generation) if query else None
        self.view.show_matches(self.matches, None)
        self.refresh_status()
        if self.search is not None:
            self._search_backwards(self.search)

    @work(thread=True, exclusive=True, exit_on_error=False, group="zoom-search")
    def _search_backwards(self, search: LogSearch) -> None:
        """Every finished line before where ``search`` began, newest first, in batches."""
        worker = get_current_worker()
        search.scan_backwards(self.index.path, stop=lambda: worker.is_cancelled or self.search is not search,
                              report=lambda batch: deliver(self, ZoomScreen.Found(search, batch, True)))

    def on_zoom_screen_found(self, message: ZoomScreen.Found) -> None:
        """A batch from a search: add, pick the newest as current, show."""
        search, matches, older = message.search, message.matches, message.older
        if search is not self.search:
            return
        if older:
            self.matches.add_older(matches)
        else:
            self.matches.add_newer(matches)
        if self.match is None and len(self.matches):
            self.match = self.matches[-1]  # the newest first
            self.scroll_to_match(self.match)
        self.view.show_matches(self.matches, self.match)
        self.refresh_status()

    def refresh_status(self) -> None:
        status = ""
        search = self.search
        if search is not None:
            query, count = search.query, len(self.matches)
            more = "+" if search.capped else ""
            if not search.done:
                status = f"/{query}: {count} found so far, searching… {search.fraction:.0%}"
            elif count:
                newest = f" (the newest {count})" if search.capped else ""
                status = f"/{query}: {self.current + 1} of {count}{more}{newest} (n/N)"
            else:
                status = f"/{query}: no match"
        label = self.query_one_optional("#search-status", Label)
        if label is not None:
            label.update(Text(status))

    def scroll_to_match(self, match: Match) -> None:
        line = self.index.line_of(match[0])
        if line is None:  # in the part of the log not indexed yet: once it is
            self._goto_pending = match
            self.need_start()
            return
        self._goto_pending = None
        view = self.view
        view.scroll_to(y=max(0, line - view.size.height // 2), animate=False, immediate=True, force=True)

    # -- actions ------------------------------------------------------------------------------
    def action_close(self) -> None:
        search = self.query_one("#search", Input)
        if search.has_class("visible"):
            search.remove_class("visible")
            self.view.focus()
            return
        self.search = None  # a running search stops at its next line
        self.dismiss(None)

    def action_search(self) -> None:
        search = self.query_one("#search", Input)
        search.add_class("visible")
        search.value = self.query_text
        search.focus()

    def action_next_match(self, step: int) -> None:
        if not len(self.matches):
            if self.query_text:
                still = self.search is not None and not self.search.done
                self.notify(f"no match for {self.query_text!r}" + (" yet (still searching)" if still else ""),
                            severity="warning")
            return
        self.match = self.matches[(self.current + step) % len(self.matches)]
        self.view.show_matches(self.matches, self.match)
        self.refresh_status()
        self.scroll_to_match(self.match)

    def action_toggle_screen(self) -> None:
        why = unavailable(self.tile.agent, "toggle_screen") if self.tile.view == "log" else None
        if why:
            self.notify(why, severity="warning")
            return
        self.toggle_view(self.tile)
        self.set_class(self.tile.view == "screen", "screen-view")
        self.refresh_title()
        self.show_screen()

    def action_scroll_home(self) -> None:
        if self.tile.view == "screen":
            self.query_one("#zoom-screen", ScrollableContainer).scroll_home(animate=False)
        else:  # (line 1 of the log, once its start is indexed)
            self.view.action_scroll_home()

    def action_scroll_end(self) -> None:
        if self.tile.view == "screen":
            self.query_one("#zoom-screen", ScrollableContainer).scroll_end(animate=False)
        else:
            self.view.action_scroll_end()

