"""TUI benchmarks. Each measurement opens the real app headless (``make_app(...).run_test()``)
in a fresh child process (``python -m bench.ui KIND ...``), so start-up includes imports and
memory is not polluted by earlier runs; the parent sets up the fleet and reads the JSON the
child prints on its last line.

How "on screen" is observed: :meth:`~cockpit.ui.tiles.AgentTile.render_lines` is wrapped; every
call (Textual's compositor makes it when it paints the tile into a frame) records the time,
whether the tile has focus and the rows it showed. All paint observation lives in
:class:`RenderLog` (only its ``install`` knows how tiles paint).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from pathlib import Path

from bench.common import cpu_seconds, rss_mb

SIZE = (200, 70)
"""The headless terminal: 32 tiles of at least 8 rows fit without scrolling."""
LINE = re.compile(r"L (\d+) (\d+\.\d+)")
BYTES_LINE = re.compile(rb"L (\d+) (\d+\.\d+)")

WRITER = """\
import sys, time
rate = float(sys.argv[1])
n, start = 0, time.time()
while True:
    n += 1
    print(f"L {n} {time.time():.6f}", flush=True)
    delay = start + n / rate - time.time()
    if delay > 0:
        time.sleep(delay)
"""


class RenderLog:
    """Wraps ``AgentTile.render_lines``: per agent, when it first showed content and, for each
    paint, the newest ``L <seq> <ts>`` line it showed (``lines=False`` skips that parsing) and
    ``(name, has_focus, time)`` in :attr:`focus_paints`; :meth:`next_focused_paint` is resolved
    by the first paint of a tile while it has focus."""

    def __init__(self, lines: bool = True) -> None:
        self.first_content: dict[str, float] = {}
        self.events: list[tuple[str, int, float]] = []
        self.created: dict[str, float] = {}
        self.focus_paints: list[tuple[str, bool, float]] = []
        self.stages: dict[str, list[tuple[str, int, float]]] = {"read": [], "rendered": []}
        self.lines = lines
        self._focus_waiters: list[tuple[str, asyncio.Future]] = []

    def next_focused_paint(self, name: str) -> asyncio.Future[float]:
        """A future set to the time of ``name``'s next paint while it has focus (call before
        the key that moves focus there is posted)."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._focus_waiters.append((name, future))
        return future

    def _painted(self, name: str, focused: bool, now: float) -> None:
        self.focus_paints.append((name, focused, now))
        if focused and self._focus_waiters:
            for waiter in [w for w in self._focus_waiters if w[0] == name]:
                self._focus_waiters.remove(waiter)
                if not waiter[1].done():
                    waiter[1].set_result(now)

    def install(self) -> None:
        from cockpit.ui.tiles import AgentTile
        original = AgentTile.render_lines
        original_init = AgentTile.__init__
        log = self

        def init(tile: AgentTile, agent, *args, **kwargs):  # type: ignore[no-untyped-def]
            log.created.setdefault(agent.name, time.time())
            original_init(tile, agent, *args, **kwargs)

        def render_lines(tile: AgentTile, crop):  # type: ignore[no-untyped-def]
            strips = original(tile, crop)
            now = time.time()
            name = tile.agent.name
            log._painted(name, tile.has_focus, now)
            if tile.feed.lines:
                log.first_content.setdefault(name, now)
            if not log.lines:
                return strips
            newest = 0
            for strip in reversed(strips):  # lines run oldest to newest: the lowest is newest
                match = LINE.search(strip.text)
                if match:
                    newest = int(match.group(1))
                    break
            if newest:
                log.events.append((name, newest, now))
            return strips

        AgentTile.render_lines = render_lines  # type: ignore[method-assign]
        AgentTile.__init__ = init  # type: ignore[method-assign]
        if self.lines:
            self._install_stages()

    def _install_stages(self) -> None:
        """Also record when each line was read from the log and when it was rendered, so the
        latency splits into its stages (:attr:`stages`)."""
        from cockpit.ui.feeds import LogFeed
        from cockpit.ui.terminal import TerminalRenderer
        names: dict[int, str] = {}
        log = self
        feed_init, renderer_feed, feed_flush = LogFeed.__init__, TerminalRenderer.feed, LogFeed.flush

        def init(feed: LogFeed, name, *args, **kwargs):  # type: ignore[no-untyped-def]
            feed_init(feed, name, *args, **kwargs)
            names[id(feed._renderer)] = name

        def feed_bytes(renderer: TerminalRenderer, data) -> None:  # type: ignore[no-untyped-def]
            renderer_feed(renderer, data)
            seqs = [int(m.group(1)) for m in BYTES_LINE.finditer(bytes(data))]
            if seqs and id(renderer) in names:
                log.stages["read"].append((names[id(renderer)], max(seqs), time.time()))

        def flush(feed: LogFeed) -> None:
            feed_flush(feed)
            seqs = [int(m.group(1)) for line in feed.lines[-3:] for m in [LINE.search(line.plain)] if m]
            if seqs:
                log.stages["rendered"].append((feed.name, max(seqs), time.time()))

        LogFeed.__init__ = init  # type: ignore[method-assign]
        TerminalRenderer.feed = feed_bytes  # type: ignore[method-assign]
        LogFeed.flush = flush  # type: ignore[method-assign]

    def tile_paint(self) -> float | None:
        """The slowest tile's creation (its feed opens the log) to its first painted content."""
        spans = [self.first_content[n] - t for n, t in self.created.items() if n in self.first_content]
        return max(spans) if spans else None


def _app(root: str, socket: str):  # type: ignore[no-untyped-def]
    from cockpit.core.fleet import Fleet
    from cockpit.ui.app import make_app
    fleet = Fleet(Path(root))  # (its socket is recorded in .cockpit/)
    return make_app(fleet, include_user_themes=False, user_config=Path(root) / "no-user-config.toml")


async def _first_full_frame(app, pilot, log: RenderLog, agents: int, timeout: float) -> None:  # type: ignore[no-untyped-def]
    """Until every tile that is on screen has painted its log (and the header counts them)."""
    from cockpit.ui.tiles import TileGrid
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        grid = app.query_one(TileGrid)
        tiles = grid.tiles
        if app.polls and len(tiles) == agents and len(app.agents) == agents:
            visible = agents - grid.off_screen
            if len(log.first_content) >= visible:
                return
        await pilot.pause(0.005)
    raise TimeoutError(f"no full frame within {timeout}s")


async def paint(root: str, socket: str, agents: int) -> dict[str, object]:
    """Start-up to the first full frame, and memory before/after."""
    log = RenderLog()
    log.install()
    rss_before = rss_mb()
    started = time.time()
    app = _app(root, socket)
    async with app.run_test(size=SIZE) as pilot:
        await _first_full_frame(app, pilot, log, agents, timeout=60)
        frame = time.time()
        rss_after = rss_mb()
    return {"in_app_s": frame - started, "tile_paint_s": log.tile_paint(), "frame_at": frame,
            "rss_before_mb": rss_before, "rss_after_mb": rss_after}


async def idle(root: str, socket: str, agents: int, seconds: float) -> dict[str, object]:
    """CPU share of one core and memory with the app open on idle agents."""
    log = RenderLog()
    log.install()
    app = _app(root, socket)
    async with app.run_test(size=SIZE) as pilot:
        await _first_full_frame(app, pilot, log, agents, timeout=60)
        await pilot.pause(2.0)  # let start-up work settle
        rss_start, cpu_start, wall_start = rss_mb(), cpu_seconds(), time.monotonic()
        await pilot.pause(seconds)
        cpu, wall = cpu_seconds() - cpu_start, time.monotonic() - wall_start
        rss_end = rss_mb()
    return {"cpu_percent": 100 * cpu / wall, "wall_s": wall, "rss_start_mb": rss_start, "rss_end_mb": rss_end}


async def hold(root: str, socket: str, agents: int, seconds: float, ready: str) -> dict[str, object]:
    """The app open on the fleet: after its first full frame, ``ready`` is created and the app
    stays open for ``seconds`` (the parent measures meanwhile, :mod:`bench.costs`)."""
    log = RenderLog(lines=False)
    log.install()
    app = _app(root, socket)
    async with app.run_test(size=SIZE) as pilot:
        await _first_full_frame(app, pilot, log, agents, timeout=60)
        Path(ready).write_text("ready\n")
        await pilot.pause(seconds)
    return {}


async def latency(root: str, socket: str, agents: int, seconds: float) -> dict[str, object]:
    """Paint events while agents write timestamped lines; the parent matches them to the logs."""
    from cockpit.ui.tiles import TileGrid
    log = RenderLog()
    log.install()
    app = _app(root, socket)
    async with app.run_test(size=SIZE) as pilot:
        await _first_full_frame(app, pilot, log, agents, timeout=60)
        await pilot.pause(1.0)
        off_screen = app.query_one(TileGrid).off_screen
        cpu_start = cpu_seconds()
        window = (time.time(), 0.0)
        await pilot.pause(seconds)
        window = (window[0], time.time())
        cpu = cpu_seconds() - cpu_start
        await pilot.pause(0.5)  # lines written at the very end still get their paint
        renders = (app.renders.batches, app.renders.busy)
    return {"events": log.events, "stages": log.stages, "window": window, "off_screen": off_screen,
            "cpu_percent": 100 * cpu / (window[1] - window[0]), "render_batches": renders[0],
            "render_busy_s": renders[1]}


async def _focus_grid(app, pilot, log: RenderLog, agents: int, kind: str):  # type: ignore[no-untyped-def]
    """After the first full frame: the tile grid, a tile focused (the keys of
    :func:`_press_focus_keys` move the focus between the first two tiles)."""
    from cockpit.ui.tiles import AgentTile, TileGrid
    await _first_full_frame(app, pilot, log, agents, timeout=60)
    grid = app.query_one(TileGrid)
    if len(grid.tiles) < 2:
        raise SystemExit(f"{kind}: needs at least two tiles")
    if not isinstance(app.focused, AgentTile):
        grid.tiles[0].focus()
    return grid


async def keys(root: str, socket: str, agents: int, seconds: float) -> dict[str, object]:
    """Key-press-to-screen latency (:func:`_press_focus_keys`, a key every 0.2 s, as in the flood)
    for ``seconds`` on a fleet doing whatever it does (the ``radar_load`` figure)."""
    log = RenderLog(lines=False)
    log.install()
    app = _app(root, socket)
    async with app.run_test(size=SIZE) as pilot:
        grid = await _focus_grid(app, pilot, log, agents, "keys")
        await pilot.pause(1.0)
        latencies, _, never = await _press_focus_keys(app, grid, log, seconds, 0.2)
    return {"key_latencies": latencies, "keys_never_painted": never}


def _tmux_pids(socket: str) -> dict[str, int]:
    """The private tmux server's pid and the fleet watcher's (its ``_watcher`` session)."""
    import subprocess
    pids: dict[str, int] = {}
    for key, args in (("tmux_server", ["display-message", "-p", "#{pid}"]),
                      ("watcher", ["list-panes", "-t", "=_watcher:", "-F", "#{pane_pid}"])):
        out = subprocess.run(["tmux", "-S", socket, "-f", "/dev/null", *args], capture_output=True, text=True).stdout
        if out.strip().splitlines() and out.split()[0].isdigit():
            pids[key] = int(out.split()[0])
    return pids


def _cpu_of(pids: dict[str, int]) -> dict[str, float]:
    seconds: dict[str, float] = {}
    for key, pid in pids.items():
        try:
            seconds[key] = cpu_seconds(pid)
        except (OSError, IndexError, ValueError):
            pass
    return seconds


async def _press_focus_keys(app, grid, log: RenderLog, seconds: float,  # type: ignore[no-untyped-def]
                            interval: float) -> tuple[list[float], list[float], int]:
    """Every ``interval`` for ``seconds``: post ``right`` (from the first tile) or ``left`` (back)
    to the app as :meth:`Pilot.press` does, without waiting for idle, and time it to the first
    paint of the newly focused tile while it has focus. One key at a time: the next is posted
    once the last one painted (or gave up after 2 s). Returns the latencies, the times from
    posting to the focus change (the key handled; ``Screen.focused`` watched) and the number of
    keys never painted."""
    from textual import events

    from cockpit.ui.tiles import AgentTile
    latencies: list[float] = []
    handled: list[float] = []
    never = 0
    focus_changed: list[tuple[str, float]] = []

    def on_focus(widget) -> None:  # type: ignore[no-untyped-def]
        if isinstance(widget, AgentTile):
            focus_changed.append((widget.agent.name, time.time()))

    app.screen.watch(app.screen, "focused", on_focus, init=False)
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        tiles = grid.tiles
        index = tiles.index(app.focused) if app.focused in tiles else 1
        key, target = ("right", tiles[index + 1]) if index == 0 else ("left", tiles[index - 1])
        painted = log.next_focused_paint(target.agent.name)
        event = events.Key(key, None)
        event.set_sender(app)
        sent = time.time()
        app.post_message(event)
        try:
            latencies.append(await asyncio.wait_for(painted, 2.0) - sent)
        except TimeoutError:
            never += 1
        moved = [at for name, at in focus_changed if name == target.agent.name and at >= sent]
        if moved:
            handled.append(moved[0] - sent)
        focus_changed.clear()
        await asyncio.sleep(max(0.0, sent + interval - time.time()))
    return latencies, handled, never


async def flood(root: str, socket: str, agents: int, seconds: float, go_file: str, baseline: float,
                interval: float = 0.2) -> dict[str, object]:
    """Key-press-to-screen latency (:func:`_press_focus_keys`) for ``baseline`` seconds before
    the flood and for ``seconds`` during it, with cockpit's CPU (this process) and the tmux
    server's and the watcher's over the flood. Creating ``go_file`` starts the writers."""
    log = RenderLog(lines=False)
    log.install()
    app = _app(root, socket)
    async with app.run_test(size=SIZE) as pilot:
        grid = await _focus_grid(app, pilot, log, agents, "flood")
        await pilot.pause(0.5)
        before, _, before_never = await _press_focus_keys(app, grid, log, baseline, interval)
        pids = _tmux_pids(socket)
        others = _cpu_of(pids)
        cpu_start, wall_start = cpu_seconds(), time.monotonic()
        Path(go_file).write_text(f"{time.time()}\n")
        latencies, handled, never = await _press_focus_keys(app, grid, log, seconds, interval)
        wall = time.monotonic() - wall_start
        cpu = cpu_seconds() - cpu_start
        others = {k: 100 * (v - others[k]) / wall for k, v in _cpu_of(pids).items() if k in others}
    return {"latencies": latencies, "handled": handled, "never_painted": never, "baseline_latencies": before,
            "baseline_never_painted": before_never, "wall_s": wall, "cpu_percent": 100 * cpu / wall,
            "other_cpu_percent": others}


def main(argv: list[str]) -> None:
    kind, root, socket, *rest = argv
    agents = int(rest[0])
    if kind == "paint":
        result = asyncio.run(paint(root, socket, agents))
    elif kind == "idle":
        result = asyncio.run(idle(root, socket, agents, float(rest[1])))
    elif kind == "hold":
        result = asyncio.run(hold(root, socket, agents, float(rest[1]), rest[2]))
    elif kind == "latency":
        result = asyncio.run(latency(root, socket, agents, float(rest[1])))
    elif kind == "keys":
        result = asyncio.run(keys(root, socket, agents, float(rest[1])))
    elif kind == "flood":
        result = asyncio.run(flood(root, socket, agents, float(rest[1]), rest[2], float(rest[3])))
    else:
        raise SystemExit(f"unknown kind {kind!r}")
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # no slow interpreter teardown in the measurements' wall time


if __name__ == "__main__":
    main(sys.argv[1:])
