"""Agents are listed in natural order (a2 before a10) by every view: ``ls``, ``ls --json``,
the TUI's tiles and its palette — one sort key, in the engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cockpit.core.agent import name_order
from cockpit.core.fleet import Fleet
from cockpit.ui.app import make_app
from cockpit.ui.tiles import TileGrid
from ui_support import wait_for

pytestmark = pytest.mark.tmux
NAMES = ["a1", "a10", "a2", "b", "a9"]
NATURAL = ["a1", "a2", "a9", "a10", "b"]


def test_name_order_is_natural() -> None:
    assert sorted(NAMES, key=name_order) == NATURAL
    assert sorted(["x-10", "x-9", "x-09"], key=name_order) == ["x-09", "x-9", "x-10"]


async def test_ls_ls_json_and_the_tui_list_agents_in_natural_order(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    for name in NAMES:
        fleet.spawn(name, command="sleep 3600")
    assert [a.name for a in fleet.agents()] == NATURAL

    def cockpit(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "cockpit", *args], cwd=repo, capture_output=True, text=True,
                              env=os.environ, check=True).stdout

    assert [a["name"] for a in json.loads(cockpit("ls", "--json"))] == NATURAL
    assert [line.split()[0] for line in cockpit("ls").splitlines()[1:]] == NATURAL
    app = make_app(fleet, clock=None, include_user_themes=False, user_config=tmp_path / "none.toml")
    async with app.run_test(size=(160, 48)) as pilot:
        grid = app.query_one(TileGrid)
        await wait_for(pilot, lambda: len(grid.tiles) == len(NAMES), message="every tile")
        assert [tile.agent.name for tile in grid.tiles] == NATURAL
        pauses = [c.title for c in app.palette_commands() if c.title.startswith("pause ")]
        assert pauses == [f"pause {name}" for name in NATURAL]
