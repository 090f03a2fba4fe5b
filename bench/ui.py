"""TUI benchmarks. Each measurement opens the real app headless (``make_app(...).run_test()``)
in a fresh child process (``python -m bench.ui KIND ...``), so start-up includes imports and
memory is not polluted by earlier runs; the parent sets up the fleet and reads the JSON the
child prints on its last line.

How "on screen" is observed: :meth:`~cockpit.ui.tiles.AgentTile.render_lines` is wrapped; every
call (Textual's compositor makes it when it paints the tile into a frame) records the time and
the rows the tile showed.
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
    paint, the newest ``L <seq> <ts>`` line it showed."""

    def __init__(self) -> None:
        self.first_content: dict[str, float] = {}
        self.events: list[tuple[str, int, float]] = []
        self.created: dict[str, float] = {}

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
            if tile.feed.lines:
                log.first_content.setdefault(name, now)
            newest = 0
            for strip in strips:
                match = LINE.search(strip.text)
                if match:
                    newest = max(newest, int(match.group(1)))
            if newest:
                log.events.append((name, newest, now))
            return strips

        AgentTile.render_lines = render_lines  # type: ignore[method-assign]
        AgentTile.__init__ = init  # type: ignore[method-assign]

    def tile_paint(self) -> float | None:
        """The slowest tile's creation (its feed opens the log) to its first painted content."""
        spans = [self.first_content[n] - t for n, t in self.created.items() if n in self.first_content]
        return max(spans) if spans else None


def _app(root: str, socket: str):  # type: ignore[no-untyped-def]
    from cockpit.core.fleet import Fleet
    from cockpit.ui.app import make_app
    fleet = Fleet(Path(root), socket_name=socket)
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
    return {"in_app_s": frame - started, "tile_paint_s": log.tile_paint(), "frame_at": frame, "rss_before_mb": rss_before,
            "rss_after_mb": rss_after}


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
    return {"events": log.events, "window": window, "off_screen": off_screen,
            "cpu_percent": 100 * cpu / (window[1] - window[0])}


def main(argv: list[str]) -> None:
    kind, root, socket, *rest = argv
    agents = int(rest[0])
    if kind == "paint":
        result = asyncio.run(paint(root, socket, agents))
    elif kind == "idle":
        result = asyncio.run(idle(root, socket, agents, float(rest[1])))
    elif kind == "latency":
        result = asyncio.run(latency(root, socket, agents, float(rest[1])))
    else:
        raise SystemExit(f"unknown kind {kind!r}")
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # no slow interpreter teardown in the measurements' wall time


if __name__ == "__main__":
    main(sys.argv[1:])
