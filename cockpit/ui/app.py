"""The cockpit TUI: a grid of agent tiles over one :class:`~cockpit.core.fleet.Fleet`.

The app is a view and controller: every engine call (git, tmux) runs in a worker thread
(:mod:`cockpit.ui.sync` for polling, :meth:`~cockpit.ui.actions.AgentActions.run_op` for
operations), results come back as messages (:mod:`cockpit.ui.messages`), and errors become
notifications. The keys' actions are a mixin (:class:`~cockpit.ui.actions.AgentActions`); screens
get what they need when they open and never import the app. The tiles' logs are followed and
repainted by :class:`~cockpit.ui.live.LiveLogs`; the theme and keys come from
:mod:`cockpit.ui.preferences`.

:func:`make_app` is the one factory used by the CLI, the tests and the screenshot script.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from textual import events, work
from textual.app import App, ComposeResult
from textual.message import Message
from textual.screen import Screen
from textual.worker import Worker

from cockpit.core import notify, transport
from cockpit.core.agent import Agent
from cockpit.core.events import Event
from cockpit.core.fleet import Fleet
from cockpit.core.remote_logs import HostLogStream, RemoteTail
from cockpit.ui.actions import AgentActions, AttachRunner
from cockpit.ui.arrange import Arrangement
from cockpit.ui.collector import CollectorTuning
from cockpit.ui.commands import CockpitCommands, PaletteCommand
from cockpit.ui.diffview import DiffScreen
from cockpit.ui.feeds import LogFeed
from cockpit.ui.footer import key_footer
from cockpit.ui.header import FleetHeader
from cockpit.ui.internals import DEFAULT_SCREEN_ID, QuietFocusScreen, stock_widgets
from cockpit.ui.keys import APP_KEYS, bindings
from cockpit.ui.live import LiveLogs
from cockpit.ui.messages import Failure, LogsChanged, Polled, deliver, describe
from cockpit.ui.preferences import resolve_preferences
from cockpit.ui.remote_screens import RemoteCaptured, RemoteScreens
from cockpit.ui.sync import FleetSync, Snapshot
from cockpit.ui.themes import DEFAULT_THEME, CockpitTheme, fallback_variables, register_themes
from cockpit.ui.tiles import AgentTile, Clock, TileGrid
from cockpit.ui.verbs import AGENT_VERBS, unavailable
from cockpit.ui.zoom import ZoomScreen

HEADER_INTERVAL = 1 / 4
"""The header (tiles off screen, counts) is brought up to date at least this often..."""
STILL_HEADER_INTERVAL = 1.0
"""...or this often once no log has changed for :data:`STILL_AFTER_S` (an idle fleet's cockpit
then wakes less: ~0.2 % of a core with 16 tiles). Polls and layout changes update it at once anyway."""
STILL_AFTER_S = 2.0
FLOOD_MEMORY_S = 3.0
"""The fleet poll runs slowly (see ``FleetSync.poll``) until this long after a log last flooded."""


def run_attached(argv: list[str], env: dict[str, str]) -> int:
    """Run the attach command in the real terminal (the app is suspended meanwhile)."""
    return subprocess.call(argv, env=env)


HOST_EVENTS_KEPT = 500
"""How many of the hosts' events the app keeps (newest)."""


class GridScreen(QuietFocusScreen):
    """The app's main screen (the grid of tiles): a focus move repaints only the two tiles
    involved (see :class:`~cockpit.ui.internals.QuietFocusScreen`)."""


class CockpitApp(Arrangement, AgentActions, App[int]):
    """One fleet's agents as tiles. Quitting leaves every agent running."""

    TITLE = "cockpit"
    COMMANDS = {CockpitCommands}
    """Only cockpit's own commands: Textual's (screenshot, keys panel, maximize, its themes) do not
    work here, or offer themes ``--theme`` refuses."""
    BINDINGS = bindings(APP_KEYS)
    CSS = "Screen { layers: base overlay; }"

    def __init__(self, fleet: Fleet, themes: dict[str, CockpitTheme], theme: str = DEFAULT_THEME,
                 keymap: dict[str, str] | None = None, problems: list[str] | None = None,
                 clock: Clock | None = None, poll_interval: float = 1.0, diffs: bool = True,
                 attach_runner: AttachRunner = run_attached) -> None:
        self.cockpit_themes = themes  # read by get_theme_variable_defaults during App.__init__
        super().__init__()
        register_themes(self, themes)
        self.theme = theme
        self.fleet = fleet
        self.keymap = dict(keymap or {})
        self.problems = list(problems or [])
        self.clock = clock
        self.attach_runner = attach_runner
        self.stock = stock_widgets()
        """Textual's stock widgets and behaviour only (``COCKPIT_STOCK_WIDGETS=1``)."""
        self.alert_terminal = True
        """Send notifications to the terminal too (bell, OSC 9 / OSC 777)."""
        self.live = LiveLogs(wake=lambda: self.post_message(LogsChanged()), set_timer=self.set_timer,
                             on_error=self._watcher_error, remote_tail=self._remote_tail)
        self.host_events: list[Event] = []
        """The hosts' newest events, as their streams delivered them (each once)."""
        self.log_streams: dict[str, HostLogStream] = {}
        """One live log stream per host with agents shown (cockpit.core.remote_logs)."""
        """The tiles' logs: followed, rendered and repainted."""
        self.renders = self.live.renders
        self.sync = FleetSync(fleet, poll_interval=poll_interval, diffs=diffs,
                              yield_to_input=self.renders.wait_while_held)
        self.agents: list[Agent] = []
        self.queue: list[str] = []
        """The merge queue in order, shown in the header."""
        self.notices: list[str] = []
        """Shown when the app starts (the checklist of the batch that opened it)."""
        self.screen_views: set[str] = set()
        """The agents whose tile shows its tmux screen (each poll captures the local ones)."""
        self.remote_screens = RemoteScreens(fleet, self, self._start_capture)
        """Captures the remote ones, on their hosts (cockpit.ui.remote_screens)."""
        self.reported: list[str] = []
        """Every error shown to the user, oldest first (tests read it)."""
        self.polls = 0
        self._polling = False
        self._force_poll = False
        self._flooded_at = -FLOOD_MEMORY_S
        self._chrome_at = -STILL_HEADER_INTERVAL
        self.focus_next: str | None = None
        self.queue_stop = threading.Event()
        """Set on quit: a running merge queue stops after (or abandons) its candidate."""
        self._tiles: dict[str, AgentTile] = {}
        """The tiles by agent name, as of the last reconcile (repaint reads it many times a
        second; querying the DOM each time cost more than the repaint)."""
        self.collector = CollectorTuning()
        """Shorter, rarer garbage collections once the grid is up (see cockpit.ui.collector)."""
        self.init_arrangement()

    def post_message(self, message: Message) -> bool:
        if isinstance(message, events.Key):  # a key comes first: as it arrives (the input thread)
            self.live.key_pressed()
        return super().post_message(message)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key):  # and again once the UI thread handles it
            self.live.key_pressed()
        await super().on_event(event)

    def get_default_screen(self) -> Screen:
        if self.stock:
            return super().get_default_screen()
        return GridScreen(id=DEFAULT_SCREEN_ID)

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return fallback_variables(self.cockpit_themes)

    def compose(self) -> ComposeResult:
        yield FleetHeader(id="header")
        yield TileGrid()
        yield from self.compose_list()
        yield key_footer()

    def on_mount(self) -> None:
        self.set_keymap(self.keymap)
        transport.keep_sessions()  # keys on remote agents: one round trip, not a cockpit start there
        for problem in self.problems:
            self.notify(problem, severity="warning", timeout=10)
            self.reported.append(problem)  # (a broken cockpit.toml is also every poll's error: said once)
        for notice in self.notices:
            self.notify(notice, title="before this batch", timeout=12)
        self.live.start()
        self.set_interval(0.5, self.request_poll)
        self.set_interval(HEADER_INTERVAL, self.refresh_chrome)
        self.request_poll(force=True)
        self.query_one(TileGrid).focus()
        self.run_queue(quiet=True)  # resume a queue an earlier run left unfinished

    def on_unmount(self) -> None:
        self.queue_stop.set()
        for stream in self.log_streams.values():
            stream.stop()
        self.live.stop()
        self.collector.restore()
        transport.close_sessions()

    def _remote_tail(self, agent: Agent) -> RemoteTail:
        """A remote agent's log, from its host's one live stream (started at the first tile)."""
        host = agent.host or ""
        stream = self.log_streams.get(host)
        if stream is None:
            stream = self.log_streams[host] = HostLogStream(self.fleet, host, self.live.remote_changed)
            stream.start()
        return stream.tail(agent.name)

    # -- polling -----------------------------------------------------------------------------
    def request_poll(self, force: bool = False) -> None:
        """Start a poll unless one runs; a forced request runs right after the current one."""
        self._force_poll = self._force_poll or force
        local, remote = self._screens_by_host()
        self.remote_screens.tick(remote)
        if self._polling:
            return
        self._polling = True
        force, self._force_poll = self._force_poll, False
        now = time.monotonic()
        if self.live.flooding:
            self._flooded_at = now  # (a flooding feed is "flooding" only between two paints)
        self._poll(local, force, now - self._flooded_at < FLOOD_MEMORY_S)

    def _screens_by_host(self) -> tuple[set[str], dict[str, set[str]]]:
        """The agents in screen view: this machine's, and each host's."""
        local: set[str] = set()
        remote: dict[str, set[str]] = {}
        for name in self.screen_views:
            tile = self._tiles.get(name)
            host = tile.agent.host if tile is not None else None
            if host is None:
                local.add(name)
            else:
                remote.setdefault(host, set()).add(name)
        return local, remote

    def _start_capture(self, capture: Callable[[], None], group: str) -> Worker[None]:
        return self.run_worker(capture, thread=True, exit_on_error=False, group=group)

    def on_remote_captured(self, message: RemoteCaptured) -> None:
        self.remote_screens.apply(message, self.live.feeds)

    @work(thread=True, exit_on_error=False, group="poll")
    def _poll(self, screens: set[str], force: bool, flooding: bool = False) -> None:
        try:
            snapshot = self.sync.poll(screens, force, slow=flooding)
        except Exception as exc:  # noqa: BLE001 - FleetSync reports errors itself; this is a bug
            snapshot = Snapshot(errors=[describe(exc)])
        deliver(self, Polled(snapshot))

    def on_polled(self, message: Polled) -> None:
        snapshot = message.snapshot
        self._polling = False
        self.polls += 1
        for message in snapshot.errors:
            if message not in self.reported[-3:]:
                self.report_error(message)
        for stream in self.log_streams.values():  # the hosts' events: their agents' notifications
            remote = stream.drain_events()
            self.host_events = (self.host_events + remote)[-HOST_EVENTS_KEPT:]
            snapshot.events = [*snapshot.events, *remote]
        for event in snapshot.events:  # (not in deterministic mode: they arrive at any moment)
            if (event.type == "notification" and isinstance(event.data.get("note"), dict)
                    and self.clock is not None):
                self.alert(event.data["note"])
            elif event.type == "radar.unsupported" and self.clock is not None:  # recorded once per fleet
                self.notify(str(event.data.get("reason")), title="cockpit: conflict radar", severity="warning",
                            timeout=10)
        for name, lines in snapshot.screens.items():
            if name in self.live.feeds:
                self.live.feeds[name].set_screen(lines)
        if snapshot.queue is not None:
            self.queue = snapshot.queue
        if snapshot.agents is not None:
            self._reconcile(snapshot.agents, snapshot.diffs, snapshot.base_moved)
            if not self.collector.applied and not self.stock:  # the grid is up: what lives now, lives long
                # (not with stock widgets: their rows are cyclic garbage, which CPython's own
                # full collections must keep freeing)
                self.call_after_refresh(self.collector.apply)
        if self._force_poll or self.polls == 1:  # (the first poll left the diffs for now)
            self.request_poll(force=self.polls == 1)

    def alert(self, note: dict) -> None:
        """A notification the fleet's watcher recorded: shown here, and sent to the terminal as
        a bell plus OSC 9 / OSC 777 so the desktop of a laptop running the SSH client shows it."""
        title, body = notify.describe(note)
        urgent = note.get("state") in ("failed", "halted") or note.get("type") in ("conflict", "rejected")
        self.notify(body, title=title, severity="error" if urgent else "warning", timeout=8)
        if self.alert_terminal and not self.is_headless:
            try:
                sys.__stderr__.write(notify.terminal_alert(note))  # Textual's driver writes here too
                sys.__stderr__.flush()
            except (OSError, ValueError, AttributeError):
                self.bell()

    def _reconcile(self, agents: list[Agent], diffs: dict[str, tuple[int, int, int] | None] | None,
                   base_moved: dict[str, int] | None = None) -> None:
        """Add, update and remove tiles to match the fleet."""
        grid = self.query_one_optional(TileGrid)
        if grid is None:  # shutting down
            return
        self.agents = agents
        tiles = {tile.agent.name: tile for tile in grid.tiles}
        wanted = {agent.name for agent in agents}
        for name, tile in tiles.items():
            if name not in wanted:
                self._close_views_of(name)
                self.live.drop(name)
                self.screen_views.discard(name)
                if tile.screen.focused is tile:  # the next tile takes the focus (else: nothing has it)
                    # (the neighbour: the tile after it, or before it when it was the last)
                    survivors = [t for t in grid.shown if t.agent.name in wanted]
                    later = [t for t in survivors if grid.tiles.index(t) > grid.tiles.index(tile)]
                    if survivors:
                        tile.screen.set_focus(later[0] if later else survivors[-1])
                tile.remove()
        changed = False
        for index, agent in enumerate(agents):
            tile = tiles.get(agent.name)
            diff = diffs.get(agent.name) if diffs is not None else False
            moved = base_moved.get(agent.name) if base_moved is not None else None
            if tile is None:
                tile = AgentTile(agent, self.live.feed(agent, self._pump), self.clock)
                tile.update_agent(agent, diff, moved)
                later = [tiles[a.name] for a in agents[index + 1:] if a.name in tiles]
                grid.mount(tile, before=later[0] if later else None)
                tiles[agent.name] = tile
                changed = True
            else:
                tile.update_agent(agent, diff, moved)
        self._tiles = {name: tile for name, tile in tiles.items() if name in wanted}
        if diffs is not None:
            self.list_diffs = dict(diffs)
        self.pinned &= wanted
        self.arrange()
        if changed or len(tiles) != len(wanted):
            self.call_after_refresh(grid.layout_tiles)
        if self.focus_next and self.focus_next in tiles:
            if self.layout_mode == "list":
                self.show_tile(tiles[self.focus_next])
            else:
                tiles[self.focus_next].focus()
            self.focus_next = None
        elif isinstance(self.focused, TileGrid) and agents and self.layout_mode == "grid":
            self.call_after_refresh(self._focus_first)
        self.update_header()

    def _close_views_of(self, name: str) -> None:
        """The agent is gone (discarded, maybe from another terminal): close its zoom and diff
        view, and whatever was opened over them, rather than show a stale state."""

        def about(screen: Screen) -> bool:
            return ((isinstance(screen, ZoomScreen) and screen.tile.agent.name == name)
                    or (isinstance(screen, DiffScreen) and screen.agent_name == name))

        stack = self.screen_stack
        index = next((i for i, screen in enumerate(stack) if about(screen)), None)
        if index is None:
            return
        for _ in range(len(stack) - index):
            self.pop_screen()
        self.notify(f"{name} is gone (discarded): its view was closed", severity="warning")

    def _focus_first(self) -> None:
        tiles = self.query_one(TileGrid).shown
        # Checked and focused in one step: a deferred ``focus()`` could land after a tile the
        # user (or a test) focused in between, and take the focus from it.
        if tiles and (self.focused is None or isinstance(self.focused, TileGrid)):
            tiles[0].screen.set_focus(tiles[0])

    def update_header(self) -> None:
        grid, header = self.query_one_optional(TileGrid), self.query_one_optional(FleetHeader)
        if grid is not None and header is not None:  # both are gone while shutting down
            hidden = grid.hidden if self.layout_mode == "grid" else self.agent_list.hidden
            header.show(self.fleet.root.name, self.agents, hidden, activity=self.clock is not None,
                        queue=self.queue)

    # -- logs --------------------------------------------------------------------------------
    @work(thread=True, exit_on_error=False, group="logs")
    def _pump(self, feed: LogFeed) -> None:
        feed.pump()

    def _watcher_error(self, exc: BaseException) -> None:
        deliver(self, Failure(f"log watcher: {describe(exc)}"))

    def on_logs_changed(self, _message: LogsChanged) -> None:
        self.live.woke()
        self.repaint()

    def repaint(self) -> None:
        """Repaint the tiles whose log changed (and feed the zoomed view, if one is open)."""
        stack = self.screen_stack
        if not stack:  # shutting down
            return
        self.live.repaint(self.painted_tiles(), retry=self.repaint)
        if isinstance(stack[-1], ZoomScreen):
            stack[-1].feed_changed()

    def on_tile_grid_arranged(self, _message: TileGrid.Arranged) -> None:
        self.update_header()  # "↓ N more" follows the layout and the scrolling at once

    def refresh_chrome(self) -> None:
        """A few times a second: the header, anything a lost wake-up left unpainted, and a
        full garbage collection when one is due and the screen is still."""
        now = time.monotonic()
        if self.live.still_for() >= STILL_AFTER_S and now - self._chrome_at < STILL_HEADER_INTERVAL:
            return
        self._chrome_at = now
        self.repaint()
        self.update_header()
        self.refresh_list()
        self.collector.tick(self.live.still_for())  # no new line, no key

    # -- helpers for actions -----------------------------------------------------------------
    def report_error(self, message: str) -> None:
        """Show an engine error; the app carries on."""
        self.reported.append(message)
        self.notify(message, severity="error", timeout=8)

    def on_failure(self, message: Failure) -> None:
        self.report_error(message.message)

    def tile(self, name: str | None = None) -> AgentTile | None:
        """The tile named ``name``, else the focused one (or the one under a zoom)."""
        grid = self.query_one_optional(TileGrid)
        if grid is None:
            return None
        if name is not None:
            return next((t for t in grid.tiles if t.agent.name == name), None)
        if isinstance(self.screen, ZoomScreen):
            return self.screen.tile
        if self.layout_mode == "list":
            return self._tiles.get(self.agent_list.highlighted or "")
        focused = self.focused
        return focused if isinstance(focused, AgentTile) else None

    def toggle_view(self, tile: AgentTile) -> None:
        """Switch a tile between its log and its tmux screen."""
        tile.view = "screen" if tile.view == "log" else "log"
        if tile.view == "screen":
            self.screen_views.add(tile.agent.name)
            if tile.agent.host is not None:
                self.remote_screens.due(tile.agent.host)
            self.request_poll()
        else:
            self.screen_views.discard(tile.agent.name)
        tile.refresh_subtitle()
        tile.refresh()
        self.sync_preview()

    def palette_commands(self) -> list[PaletteCommand]:
        """Every palette entry: agent actions by name (those that can apply now), fleet actions, themes."""
        commands = []
        for agent in self.agents:
            for words, action, help_text in AGENT_VERBS:
                if unavailable(agent, "pause_only" if action == "pause" else action):
                    continue  # not offered: it cannot apply to the agent now (the key says why)
                commands.append(PaletteCommand(f"{words} {agent.name}", help_text,
                                               partial(self.agent_action, action, agent.name)))
        commands.append(PaletteCommand("new agent", "Spawn a new agent", self.action_new_agent))
        commands.extend(self.arrangement_commands())
        commands.append(PaletteCommand("help", "Show every key", self.action_help))
        commands.append(PaletteCommand("quit", "Quit cockpit (agents keep running)", self.action_quit))
        for name in sorted(self.cockpit_themes):  # the themes --theme and [cockpit] theme accept
            commands.append(PaletteCommand(f"theme {name}", "Switch the colour theme",
                                           partial(setattr, self, "theme", name)))
        return commands

    def agent_action(self, action: str, name: str) -> None:
        """Run an agent action on ``name`` (from the palette), focusing its tile."""
        tile = self.tile(name)
        if tile is None:
            self.report_error(f"no agent named {name!r}")
            return
        self._focus(tile)
        getattr(self, f"action_{action}")(name)


def make_app(fleet: Fleet, theme: str | None = None, *, clock: Clock | None | bool = True,
             poll_interval: float = 1.0, diffs: bool = True, user_config: Path | None = None,
             attach_runner: AttachRunner = run_attached, include_user_themes: bool = True) -> CockpitApp:
    """Build the app: themes, the theme to start with, and the keymap from ``[keys]``
    (:func:`~cockpit.ui.preferences.resolve_preferences`).

    ``clock=None`` hides time-dependent fields (ages, activity, the watcher's notifications) for
    deterministic screenshots (the list still shows each agent's activity: it is what orders the
    rows); ``True`` uses the real clock. Problems with user themes, keys or
    config are shown as notifications.
    """
    chosen = resolve_preferences(fleet, theme, user_config, include_user_themes)
    real_clock: Clock | None = (lambda: datetime.now(UTC)) if clock is True else (clock or None)
    return CockpitApp(fleet, chosen.themes, chosen.theme, chosen.keymap, chosen.problems, real_clock, poll_interval,
                      diffs, attach_runner)


def run_app(fleet: Fleet, theme: str | None = None, mouse: bool = True, notices: list[str] | None = None) -> int:
    """Run the TUI in this terminal until the user quits. Agents keep running afterwards.
    ``notices`` (e.g. the pre-spawn checklist of the ``up`` that opened it) are shown first."""
    app = make_app(fleet, theme)
    app.notices = list(notices or [])
    app.run(mouse=mouse)
    return app.return_code or 0


__all__ = ["CockpitApp", "make_app", "run_app", "run_attached"]
