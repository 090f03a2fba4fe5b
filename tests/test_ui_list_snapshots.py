"""Snapshots of 64 agents (issue 14): the list and the grid, at 80×24, 160×48 and 250×70, in
cockpit-dark and cockpit-light (12). The fleet is deterministic (``ui_support.spawn_many``: fixed
logs, three agents waiting on their terminal, two failed, activity timings too long to change
during a test) and ages are hidden (``clock=None``).

Update after an intended change with ``pytest tests/test_ui_list_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cockpit.core.fleet import Fleet
from cockpit.ui.app import make_app
from cockpit.ui.tiles import TileGrid
from ui_support import many_fleet, many_ready, wait_for

pytestmark = [pytest.mark.tmux, pytest.mark.snapshot]
SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((160, 48), id="160x48"),
         pytest.param((250, 70), id="250x70")]
THEMES = ["cockpit-dark", "cockpit-light"]


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory):
    from conftest import stop_fleets_under
    base = tmp_path_factory.mktemp("many-snapshots")
    yield many_fleet(base)
    stop_fleets_under(base)


async def ready(pilot) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: many_ready(app), timeout=60, message="64 agents shown")
    await wait_for(pilot, lambda: app.layout_mode == "list" and app.preview is not None
                   and app.preview.feed.lines, message="the list and its preview")
    await pilot.pause(0.5)  # (the list's last-output column follows the logs a few times a second)


async def grid_ready(pilot) -> None:
    await ready(pilot)
    await pilot.press("t")
    grid = pilot.app.query_one(TileGrid)
    await wait_for(pilot, lambda: grid.display and grid.size.width and grid.shown[0].size.width,
                   message="the grid")
    await pilot.pause(0.5)


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", SIZES)
def test_list_of_64(snap_compare, many: Fleet, tmp_path: Path, size, theme: str) -> None:
    app = make_app(many, theme, clock=None, include_user_themes=False, user_config=tmp_path / "none.toml")
    assert snap_compare(app, terminal_size=size, run_before=ready)


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", SIZES)
def test_grid_of_64(snap_compare, many: Fleet, tmp_path: Path, size, theme: str) -> None:
    app = make_app(many, theme, clock=None, include_user_themes=False, user_config=tmp_path / "none.toml")
    assert snap_compare(app, terminal_size=size, run_before=grid_ready)
