"""The app follows the fleet: commands from another terminal show up, 30 agents fit an 80×24
terminal with a count of the tiles off screen, and the UI stays responsive while agents flood."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from cockpit.core.fleet import Fleet
from cockpit.ui.app import make_app
from cockpit.ui.feeds import TILE_LINES
from cockpit.ui.help import HelpScreen
from cockpit.ui.tiles import TileGrid
from conftest import PY, sleeper
from ui_support import agent_state, focus, tiles, wait_for

pytestmark = pytest.mark.tmux
PROJECT = Path(__file__).resolve().parent.parent


def app_for(fleet: Fleet, tmp_path: Path, **kwargs):
    return make_app(fleet, clock=None, include_user_themes=False, user_config=tmp_path / "none.toml", **kwargs)


def header_text(app) -> str:
    return str(app.query_one("#header").content)


async def test_a_command_from_another_terminal_shows_up(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    fleet.spawn("remote", command=sleeper())
    app = app_for(fleet, tmp_path, poll_interval=30.0)  # only the event log can tell it in time
    async with app.run_test(size=(100, 30)) as pilot:
        await focus(pilot, app, "remote")
        env = {**os.environ, "PYTHONPATH": str(PROJECT)}
        subprocess.run([PY, "-m", "cockpit", "pause", "remote"], cwd=repo, env=env, check=True, capture_output=True)
        await wait_for(pilot, lambda: agent_state(app, "remote") == "paused", timeout=5, message="pause seen")
        subprocess.run([PY, "-m", "cockpit", "spawn", "late", "--command", "sleep 3600"], cwd=repo, env=env,
                       check=True, capture_output=True)
        await wait_for(pilot, lambda: "late" in tiles(app), timeout=5, message="a tile for the new agent")


@pytest.mark.slow
async def test_thirty_agents_at_80x24_with_a_count_off_screen(fleet: Fleet, tmp_path: Path) -> None:
    names = [f"agent-{i:02d}" for i in range(30)]
    for name in names:
        fleet.spawn(name, command=f"echo I am {name}; sleep 3600")
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(tiles(app)) == 30, message="30 tiles")
        assert app.layout_mode == "list"  # tiles would be under 40x8: it opens in the list
        await pilot.press("t")  # the grid, as the user asks
        grid = app.query_one(TileGrid)
        await wait_for(pilot, lambda: grid.columns == 2 and f"{30 - 2 * grid.rows_shown} more" in header_text(app),
                       message="two columns and the off-screen count")
        await focus(pilot, app, "agent-00")
        for _ in range(20):
            await pilot.press("j")
        await wait_for(pilot, lambda: app.focused is tiles(app)["agent-29"] or app.focused is tiles(app)["agent-28"])
        await wait_for(pilot, lambda: grid.scroll_y > 0 and grid.off_screen < 30, message="scrolled")
        focused = app.focused
        assert focused.region.y >= grid.region.y and focused.region.bottom <= grid.region.bottom
        await wait_for(pilot, lambda: any(f"I am {focused.agent.name}" in line.plain for line in focused.feed.lines))


@pytest.mark.slow
async def test_the_ui_stays_responsive_while_agents_flood(fleet: Fleet, tmp_path: Path) -> None:
    # bursts of 60 lines every 50 ms: ~1200 lines/s per agent, without each agent eating a CPU
    flood = (f"{PY} -u -c \"import itertools, time\nfor i in itertools.count():\n"
             f" print(''.join('flood %d %d %s\\\\n' % (i, j, 'x' * 60) for j in range(60)), end='')\n"
             f" time.sleep(0.05)\"")
    for i in range(8):
        fleet.spawn(f"flood-{i}", command=flood)
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: len(tiles(app)) == 8 and all(t.feed.lines for t in tiles(app).values()))
        for _ in range(3):
            started = time.monotonic()
            await pilot.press("question_mark")
            await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), timeout=5)
            await pilot.press("escape")
            await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen), timeout=5)
            took = time.monotonic() - started
            print(f"help open+close under flood: {took:.2f}s")
            # ~1.5 s alone on 2 cores while 8 agents write ~10k lines/s; generous for a loaded CI
            assert took < 8.0
        first = {name: t.feed.version for name, t in tiles(app).items()}
        await wait_for(pilot, lambda: all(t.feed.version > first[n] + 2 for n, t in tiles(app).items()),
                       message="tiles keep following the flood")
        assert all(len(t.feed.lines) <= TILE_LINES for t in tiles(app).values())


async def test_tiles_flag_out_of_scope_edits_and_collisions(fleet: Fleet, tmp_path: Path) -> None:
    fleet.spawn("owner", command="echo one > shared.txt; sleep 3600", scope=["shared.txt"])
    fleet.spawn("rogue", command="echo two > shared.txt; echo x > elsewhere.txt; sleep 3600", scope=["src/**"])
    app = app_for(fleet, tmp_path, poll_interval=0.2)
    async with app.run_test(size=(160, 30)) as pilot:
        await wait_for(pilot, lambda: "rogue" in tiles(app) and "owner" in tiles(app), message="tiles")
        await wait_for(pilot, lambda: "2 out of scope" in str(tiles(app)["rogue"].border_subtitle),
                       timeout=20, message="out-of-scope badge")
        assert "collides with owner" in str(tiles(app)["rogue"].border_subtitle)
        await wait_for(pilot, lambda: "collides with rogue" in str(tiles(app)["owner"].border_subtitle),
                       timeout=20, message="collision badge on the other agent")
        assert "out of scope" not in str(tiles(app)["owner"].border_subtitle)


async def test_the_off_screen_count_points_where_the_hidden_tiles_are(fleet: Fleet, tmp_path: Path) -> None:
    for i in range(12):
        fleet.spawn(f"a{i:02d}", command="sleep 3600")
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(tiles(app)) == 12, message="12 tiles")
        assert app.layout_mode == "list"  # tiles would be under 40x8: it opens in the list
        await pilot.press("t")  # the grid, as the user asks
        grid = app.query_one(TileGrid)
        await wait_for(pilot, lambda: grid.columns == 2 and grid.rows_shown == 2, message="2×2 shown")
        await wait_for(pilot, lambda: "↓ 8 more" in header_text(app), message="8 below")
        assert "↑" not in header_text(app)
        await focus(pilot, app, "a00")
        for _ in range(3):
            await pilot.press("j")  # two rows down: the grid scrolls by one screen
        await wait_for(pilot, lambda: "↑ 4 ↓ 4 more" in header_text(app), message="4 above, 4 below")
        for _ in range(3):
            await pilot.press("j")
        await wait_for(pilot, lambda: "↑ 8 more" in header_text(app), message="8 above")
        assert "↓" not in header_text(app)
