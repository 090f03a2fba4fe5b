"""The cockpit TUI: a grid of agent tiles over one :class:`~cockpit.core.fleet.Fleet`.

The app is a view and controller: every engine call (git, tmux) runs in a worker thread
(:mod:`cockpit.ui.sync` for polling, :meth:`CockpitApp.run_op` for operations), results come back
with ``call_from_thread``, and errors become notifications. Log tiles are fed by one
:class:`~cockpit.core.log_watch.LogWatcher` and repainted at most once per frame.

:func:`make_app` is the one factory used by the CLI, the tests and the screenshot script.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Callable

from textual import events, work
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.message import Message
from textual.reactive import Reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Static

from cockpit.core import notify
from cockpit.core.agent import Agent, short_count
from cockpit.core.fleet import Fleet
from cockpit.core.log_watch import LogWatcher
from cockpit.ui import actions
from cockpit.ui.collector import CollectorTuning
from cockpit.ui.commands import AGENT_VERBS, CockpitCommands, PaletteCommand
from cockpit.ui.feeds import FLOOD_INTERVAL, LogFeed, RenderScheduler
from cockpit.ui.footer import KeyFooter
from cockpit.ui.keys import APP_KEYS, bindings
from cockpit.ui.sync import FleetSync, Snapshot, describe
from cockpit.ui.themes import DEFAULT_THEME, CockpitTheme, fallback_variables, load_themes, register_themes
from cockpit.ui.tiles import AgentTile, Clock, TileGrid
from cockpit.ui.zoom import ZoomScreen

INPUT_PRIORITY_S = 0.06
"""After a key, log rendering and repainting wait this long, so the key's answer
reaches the screen first even while every tile is streaming."""
WATCH_DEBOUNCE_MS = 4
"""How long the log watcher gathers changes before reporting them (it looks every few ms)."""
HEADER_INTERVAL = 1 / 4
"""The header (tiles off screen, counts) is brought up to date at least this often."""
FLOOD_MEMORY_S = 3.0
"""The fleet poll runs slowly (see ``FleetSync.poll``) until this long after a log last flooded."""
STATE_ORDER = ("pending", "running", "paused", "unknown", "exited", "failed", "killed", "halted", "missing")

AttachRunner = Callable[[list[str], dict[str, str]], int]


def run_attached(argv: list[str], env: dict[str, str]) -> int:
    """Run the attach command in the real terminal (the app is suspended meanwhile)."""
    return subprocess.call(argv, env=env)


class FleetHeader(Static):
    """Repository, base, agents per state and how many tiles are scrolled off the top (↑) and the
    bottom (↓) of the grid."""

    DEFAULT_CSS = """
    FleetHeader { dock: top; height: 1; background: $panel; color: $foreground; padding: 0 1; }
    """

    def show(self, repo: str, agents: list[Agent], hidden: tuple[int, int], activity: bool = True,
             queue: list[str] | None = None) -> None:
        bases = Counter(a.base for a in agents if a.base)
        base = f" · base [b]{bases.most_common(1)[0][0]}[/]" if bases else ""
        counts = Counter(a.state for a in agents)
        states = sorted(counts, key=lambda s: STATE_ORDER.index(s) if s in STATE_ORDER else 99)
        summary = "  ".join(f"[$state-{s}]●[/] {counts[s]} {s}" for s in states) or "no agents (n: new)"
        needs = ("waiting", "rate-limited", "error", "stalled")  # who needs the user (w focuses them)
        attention = Counter(a.activity for a in agents if a.activity in needs)
        if attention and activity:  # time-dependent
            summary += " │ " + "  ".join(f"[b $state-{k}]{attention[k]} {k}[/]" for k in needs if attention[k])
        spent = [a.usage for a in agents if a.usage]
        if spent:  # what the fleet costs
            summary += f" │ Σ {short_count(sum(u.get('counted_tokens', 0) for u in spent))} tokens"
        if queue:  # the merge queue, in order
            summary += " │ merge queue: " + " → ".join(queue[:5]) + (f" +{len(queue) - 5}" if len(queue) > 5 else "")
        above, below = hidden  # tiles scrolled off the top, off the bottom
        arrows = " ".join(filter(None, (f"↑ {above}" if above else "", f"↓ {below}" if below else "")))
        more = f"  [b]{arrows} more[/]" if arrows else ""
        text = f"[b]cockpit[/] · {repo}{base} │ {summary}{more}"
        if text != self._shown:  # called every frame: repaint only on change
            self._shown = text
            self.update(text)

    _shown = ""


class GridScreen(Screen):
    """The app's main screen (the grid of tiles).

    Textual repaints a whole screen when its focus moves; here only the two tiles involved
    repaint (their ``:focus`` style). Under a flood of log output that full-screen frame was
    most of what an arrow key cost before it showed."""

    focused: Reactive[Widget | None] = Reactive(None, repaint=False)


class LogsChanged(Message):
    """Posted (from any thread) when a feed has new lines: the app repaints dirty tiles."""


class CockpitApp(App[int]):
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
        self.alert_terminal = True
        """Send notifications to the terminal too (bell, OSC 9 / OSC 777)."""
        self.renders = RenderScheduler()
        """Renders the logs of every tile, in one thread, within a share of the time."""
        self.sync = FleetSync(fleet, poll_interval=poll_interval, diffs=diffs,
                              yield_to_input=self.renders.wait_while_held)
        self.feeds: dict[str, LogFeed] = {}
        self.feeds_by_path: dict[Path, LogFeed] = {}
        self.agents: list[Agent] = []
        self.queue: list[str] = []
        self.notices: list[str] = []
        """Shown when the app starts (the checklist of the batch that opened it)."""
        """The merge queue in order, shown in the header."""
        self.screen_views: set[str] = set()
        self.reported: list[str] = []
        """Every error shown to the user, oldest first (tests read it)."""
        self.polls = 0
        self._polling = False
        self._force_poll = False
        self._flooded_at = -FLOOD_MEMORY_S
        self._focus_next: str | None = None
        self.queue_stop = threading.Event()
        """Set on quit: a running merge queue stops after (or abandons) its candidate."""
        self._wake_posted = False
        self._changed_at = 0.0  # when a feed last changed (monotonic)
        self._input_at = 0.0  # when the last key arrived (monotonic)
        self._repaint_pending = False
        self._tiles: dict[str, AgentTile] = {}
        """The tiles by agent name, as of the last reconcile (repaint reads it many times a
        second; querying the DOM each time cost more than the repaint)."""
        self.collector = CollectorTuning()
        """Shorter, rarer garbage collections once the grid is up (see cockpit.ui.collector)."""
        self.watcher = LogWatcher(self._logs_changed, on_error=self._watcher_error,
                                  debounce_ms=WATCH_DEBOUNCE_MS)

    def post_message(self, message: Message) -> bool:
        if isinstance(message, events.Key):  # as it arrives (in the driver's input thread)
            self._key_first()
        return super().post_message(message)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key):  # and again once the UI thread handles it
            self._key_first()
        await super().on_event(event)

    def _key_first(self) -> None:
        """A key comes first: log rendering, the watcher's reads, the poll's git calls and
        tile repaints wait a moment, so the UI thread has the GIL to answer it, and the frame
        that answers it is not also redrawing every tile of a flood (any thread)."""
        self._input_at = time.monotonic()
        self.renders.hold(INPUT_PRIORITY_S)

    def get_default_screen(self) -> Screen:
        return GridScreen(id="_default")

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return fallback_variables(self.cockpit_themes)

    def compose(self) -> ComposeResult:
        yield FleetHeader(id="header")
        yield TileGrid()
        yield KeyFooter()

    def on_mount(self) -> None:
        self.set_keymap(self.keymap)
        for problem in self.problems:
            self.notify(problem, severity="warning", timeout=10)
        for notice in self.notices:
            self.notify(notice, title="before this batch", timeout=12)
        self.renders.start()
        self.watcher.start()
        self.set_interval(0.5, self.request_poll)
        self.set_interval(HEADER_INTERVAL, self.refresh_chrome)
        self.request_poll(force=True)
        self.query_one(TileGrid).focus()
        self.run_queue(quiet=True)  # resume a queue an earlier run left unfinished

    def on_unmount(self) -> None:
        self.queue_stop.set()
        self.watcher.stop()
        self.renders.stop()
        self.collector.restore()

    # -- polling -----------------------------------------------------------------------------
    def request_poll(self, force: bool = False) -> None:
        """Start a poll unless one runs; a forced request runs right after the current one."""
        self._force_poll = self._force_poll or force
        if self._polling:
            return
        self._polling = True
        force, self._force_poll = self._force_poll, False
        now = time.monotonic()
        if any(feed.flooding for feed in self.feeds.values()):
            self._flooded_at = now  # (a flooding feed is "flooding" only between two paints)
        self._poll(set(self.screen_views), force, now - self._flooded_at < FLOOD_MEMORY_S)

    @work(thread=True, exit_on_error=False, group="poll")
    def _poll(self, screens: set[str], force: bool, flooding: bool = False) -> None:
        try:
            snapshot = self.sync.poll(screens, force, slow=flooding)
        except Exception as exc:  # noqa: BLE001 - FleetSync reports errors itself; this is a bug
            snapshot = Snapshot(errors=[describe(exc)])
        self._ui(self._apply, snapshot)

    def _ui(self, callback: Callable[..., object], *args: object) -> None:
        """Run ``callback`` on the UI thread; a no-op once the app has stopped."""
        try:
            self.call_from_thread(callback, *args)
        except RuntimeError:  # the app is shutting down: nothing left to update
            pass

    def _apply(self, snapshot: Snapshot) -> None:
        self._polling = False
        self.polls += 1
        for message in snapshot.errors:
            if message not in self.reported[-3:]:
                self.report_error(message)
        for event in snapshot.events:  # (not in deterministic mode: they arrive at any moment)
            if (event.type == "notification" and isinstance(event.data.get("note"), dict)
                    and self.clock is not None):
                self.alert(event.data["note"])
        for name, lines in snapshot.screens.items():
            if name in self.feeds:
                self.feeds[name].set_screen(lines)
        if snapshot.queue is not None:
            self.queue = snapshot.queue
        if snapshot.agents is not None:
            self._reconcile(snapshot.agents, snapshot.diffs, snapshot.base_moved)
            if not self.collector.applied:  # the grid is up: what lives now, lives long
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
                self._drop_feed(name)
                if tile.screen.focused is tile:  # the next tile takes the focus (else: nothing has it)
                    survivors = [t for t in grid.tiles if t.agent.name in wanted]
                    later = [t for t in survivors if grid.tiles.index(t) > grid.tiles.index(tile)]
                    if survivors:
                        tile.screen.set_focus((later or survivors)[0])
                tile.remove()
        changed = False
        for index, agent in enumerate(agents):
            tile = tiles.get(agent.name)
            diff = diffs.get(agent.name) if diffs is not None else False
            moved = base_moved.get(agent.name) if base_moved is not None else None
            if tile is None:
                tile = AgentTile(agent, self._feed(agent), self.clock)
                tile.update_agent(agent, diff, moved)
                later = [tiles[a.name] for a in agents[index + 1:] if a.name in tiles]
                grid.mount(tile, before=later[0] if later else None)
                tiles[agent.name] = tile
                changed = True
            else:
                tile.update_agent(agent, diff, moved)
        self._tiles = {name: tile for name, tile in tiles.items() if name in wanted}
        if changed or len(tiles) != len(wanted):
            self.call_after_refresh(grid.layout_tiles)
        if self._focus_next and self._focus_next in tiles:
            tiles[self._focus_next].focus()
            self._focus_next = None
        elif isinstance(self.focused, TileGrid) and agents:
            self.call_after_refresh(self._focus_first)
        self.update_header()

    def _close_views_of(self, name: str) -> None:
        """The agent is gone (discarded, maybe from another terminal): close its zoom and diff
        view, and whatever was opened over them, rather than show a stale state."""
        from cockpit.ui.diffview import DiffScreen

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
        tiles = self.query_one(TileGrid).tiles
        # Checked and focused in one step: a deferred ``focus()`` could land after a tile the
        # user (or a test) focused in between, and take the focus from it.
        if tiles and (self.focused is None or isinstance(self.focused, TileGrid)):
            tiles[0].screen.set_focus(tiles[0])

    def update_header(self) -> None:
        grid, header = self.query_one_optional(TileGrid), self.query_one_optional(FleetHeader)
        if grid is not None and header is not None:  # both are gone while shutting down
            header.show(self.fleet.root.name, self.agents, grid.hidden, activity=self.clock is not None,
                        queue=self.queue)

    # -- logs --------------------------------------------------------------------------------
    def _feed(self, agent: Agent) -> LogFeed:
        feed = self.feeds.get(agent.name)
        if feed is None:
            feed = LogFeed(agent.name, agent.log, on_change=self._wake, scheduler=self.renders)
            self.feeds[agent.name] = feed
            self.feeds_by_path[Path(os.path.abspath(agent.log))] = feed
            self.watcher.watch(agent.log)
            self._pump(feed)
        return feed

    def _drop_feed(self, name: str) -> None:
        feed = self.feeds.pop(name, None)
        self.screen_views.discard(name)
        if feed is not None:
            self.feeds_by_path.pop(Path(os.path.abspath(feed.path)), None)
            self.watcher.unwatch(feed.path)

    @work(thread=True, exit_on_error=False, group="logs")
    def _pump(self, feed: LogFeed) -> None:
        feed.pump()

    def _logs_changed(self, paths: set[Path]) -> None:
        """LogWatcher callback (its thread): read, and have the feeds rendered and repainted."""
        for path in paths:
            feed = self.feeds_by_path.get(path)
            if feed is not None:
                self.renders.wait_while_held()  # a key first (the bytes wait in the file)
                feed.pump()

    def _watcher_error(self, exc: BaseException) -> None:
        self._ui(self.report_error, f"log watcher: {describe(exc)}")

    def _wake(self) -> None:
        """A feed changed (any thread): ask the UI thread to repaint, once per batch."""
        self._changed_at = time.monotonic()
        if not self._wake_posted:
            self._wake_posted = True
            self.post_message(LogsChanged())

    def on_logs_changed(self, _message: LogsChanged) -> None:
        self._wake_posted = False
        self.repaint()

    def repaint(self) -> None:
        """Repaint the tiles whose feed changed; Textual draws them in its next frame (at most
        60 a second), so a burst of writes costs one repaint, and one line costs one frame."""
        stack = self.screen_stack
        if not stack:  # shutting down
            return
        now = time.monotonic()
        later = self._input_at + INPUT_PRIORITY_S - now
        if later <= 0:  # (else answering a key: the tiles' new lines follow it)
            for tile in self._tiles.values():
                feed = tile.feed
                if not feed.dirty or not tile.is_mounted:
                    continue
                wait = tile.painted_at + FLOOD_INTERVAL - now if feed.flooding else 0
                if wait > 0:  # more lines than it shows since its last frame: a few frames do
                    later = wait if later <= 0 else min(later, wait)
                    continue
                feed.dirty = False
                feed.unseen = 0
                tile.painted_at = now
                tile.refresh_body()
        if later > 0 and not self._repaint_pending:
            self._repaint_pending = True
            self.set_timer(later, self._repaint_later)
        if isinstance(stack[-1], ZoomScreen):
            stack[-1].feed_changed()

    def on_tile_grid_arranged(self, _message: TileGrid.Arranged) -> None:
        self.update_header()  # "↓ N more" follows the layout and the scrolling at once

    def _repaint_later(self) -> None:
        self._repaint_pending = False
        self.repaint()

    def refresh_chrome(self) -> None:
        """A few times a second: the header, anything a lost wake-up left unpainted, and a
        full garbage collection when one is due and the screen is still."""
        self.repaint()
        self.update_header()
        still = time.monotonic() - max(self._changed_at, self._input_at)  # no new line, no key
        self.collector.tick(still)

    # -- helpers for actions -----------------------------------------------------------------
    def report_error(self, message: str) -> None:
        """Show an engine error; the app carries on."""
        self.reported.append(message)
        self.notify(message, severity="error", timeout=8)

    def tile(self, name: str | None = None) -> AgentTile | None:
        """The tile named ``name``, else the focused one (or the one under a zoom)."""
        grid = self.query_one_optional(TileGrid)
        if grid is None:
            return None
        if name is not None:
            return next((t for t in grid.tiles if t.agent.name == name), None)
        if isinstance(self.screen, ZoomScreen):
            return self.screen.tile
        focused = self.focused
        return focused if isinstance(focused, AgentTile) else None

    def toggle_view(self, tile: AgentTile) -> None:
        """Switch a tile between its log and its tmux screen."""
        tile.view = "screen" if tile.view == "log" else "log"
        if tile.view == "screen":
            self.screen_views.add(tile.agent.name)
            self.request_poll()
        else:
            self.screen_views.discard(tile.agent.name)
        tile.refresh_subtitle()
        tile.refresh()

    def palette_commands(self) -> list[PaletteCommand]:
        """Every palette entry: agent actions by name (those that can apply now), fleet actions, themes."""
        commands = []
        for agent in self.agents:
            for words, action, help_text in AGENT_VERBS:
                if actions.unavailable(agent, "pause_only" if action == "pause" else action):
                    continue  # not offered: it cannot apply to the agent now (the key says why)
                commands.append(PaletteCommand(f"{words} {agent.name}", help_text,
                                               partial(self.agent_action, action, agent.name)))
        commands.append(PaletteCommand("new agent", "Spawn a new agent", self.action_new_agent))
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
        tile.focus()
        getattr(self, f"action_{action}")(name)

    # actions live in cockpit.ui.actions to keep this module small
    action_move = actions.action_move
    action_focus_tile = actions.action_focus_tile
    action_pause = actions.action_pause
    action_resume = actions.action_resume
    action_kill = actions.action_kill
    action_next_attention = actions.action_next_attention
    action_mark_failed = actions.action_mark_failed
    action_discard = actions.action_discard
    action_respawn = actions.action_respawn
    action_attach = actions.action_attach
    action_new_agent = actions.action_new_agent
    action_toggle_screen = actions.action_toggle_screen
    action_zoom = actions.action_zoom
    action_help = actions.action_help
    action_diff = actions.action_diff
    action_merge = actions.action_merge
    run_queue = actions.run_queue
    run_op = actions.run_op
    attach_now = actions.attach_now


def make_app(fleet: Fleet, theme: str | None = None, *, clock: Clock | None | bool = True,
             poll_interval: float = 1.0, diffs: bool = True, user_config: Path | None = None,
             attach_runner: AttachRunner = run_attached, include_user_themes: bool = True) -> CockpitApp:
    """Build the app: themes, the theme to start with, and the keymap from ``[keys]``.

    ``clock=None`` hides time-dependent fields (ages, activity, the watcher's notifications) for
    deterministic screenshots; ``True`` uses the real clock. Problems with user themes, keys or config are shown as notifications.
    """
    from cockpit.ui.keys import check_keymap, refuse_conflicts, user_config_file, user_keys
    problems: list[str] = []
    themes, errors = load_themes(include_user=include_user_themes)
    problems += [str(e) for e in errors]
    configured_theme = None
    repo_keys: dict[str, str] = {}
    try:
        config = fleet.config
        configured_theme, repo_keys = config.theme, dict(config.keys)
    except Exception as exc:  # noqa: BLE001 - a broken cockpit.toml must not stop the TUI
        problems.append(describe(exc))
    try:
        personal = user_keys(user_config)
    except Exception as exc:  # noqa: BLE001
        personal, problems = {}, problems + [describe(exc)]
    personal_source, repo_source = str(user_config or user_config_file()), str(fleet.layout.config)
    keymap, bad = check_keymap(personal, personal_source)
    repo_map, bad_repo = check_keymap(repo_keys, repo_source)
    sources = {**{key: personal_source for key in keymap}, **{key: repo_source for key in repo_map}}
    keymap.update(repo_map)
    keymap, conflicts = refuse_conflicts(keymap, sources)
    problems += bad + bad_repo + conflicts
    chosen = theme or configured_theme or DEFAULT_THEME
    if chosen not in themes:
        problems.append(f"unknown theme {chosen!r} (have: {', '.join(sorted(themes))}); using {DEFAULT_THEME}")
        chosen = DEFAULT_THEME
    real_clock: Clock | None = (lambda: datetime.now(timezone.utc)) if clock is True else (clock or None)
    return CockpitApp(fleet, themes, chosen, keymap, problems, real_clock, poll_interval, diffs, attach_runner)


def run_app(fleet: Fleet, theme: str | None = None, mouse: bool = True, notices: list[str] | None = None) -> int:
    """Run the TUI in this terminal until the user quits. Agents keep running afterwards.
    ``notices`` (e.g. the pre-spawn checklist of the ``up`` that opened it) are shown first."""
    app = make_app(fleet, theme)
    app.notices = list(notices or [])
    app.run(mouse=mouse)
    return app.return_code or 0


__all__ = ["CockpitApp", "make_app", "run_app", "run_attached", "SuspendNotSupported"]
