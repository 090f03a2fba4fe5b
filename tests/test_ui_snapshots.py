"""Snapshots of the real app on a deterministic fleet (fixed names, fixed log contents, ages
hidden) at 80×24 and 160×48: the grid, the discard dialog, help and the light theme.

Update after an intended change with ``pytest tests/test_ui_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cockpit.core.fleet import Fleet
from cockpit.ui.app import make_app
from cockpit.ui.dialogs import DiscardDialog
from cockpit.ui.help import HelpScreen
from ui_support import fixed_ready, spawn_fixed, wait_for

pytestmark = [pytest.mark.tmux, pytest.mark.snapshot]
SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((160, 48), id="160x48")]


@pytest.fixture
def fixed_fleet(fleet: Fleet) -> Fleet:
    spawn_fixed(fleet)
    return fleet


def snapshot_app(fleet: Fleet, tmp_path: Path, theme: str | None = None):
    return make_app(fleet, theme, clock=None, include_user_themes=False, user_config=tmp_path / "none.toml")


async def ready(pilot) -> None:
    await wait_for(pilot, lambda: fixed_ready(pilot.app), message="fixed fleet shown")
    await pilot.pause(0.1)


@pytest.mark.parametrize("size", SIZES)
def test_grid(snap_compare, fixed_fleet: Fleet, tmp_path: Path, size) -> None:
    assert snap_compare(snapshot_app(fixed_fleet, tmp_path), terminal_size=size, run_before=ready)


@pytest.mark.parametrize("size", SIZES)
def test_light_theme(snap_compare, fixed_fleet: Fleet, tmp_path: Path, size) -> None:
    assert snap_compare(snapshot_app(fixed_fleet, tmp_path, "cockpit-light"), terminal_size=size, run_before=ready)


@pytest.mark.parametrize("size", SIZES)
def test_discard_dialog(snap_compare, fixed_fleet: Fleet, tmp_path: Path, size) -> None:
    async def open_dialog(pilot) -> None:
        await ready(pilot)
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, DiscardDialog), message="discard dialog")
        await pilot.pause(0.1)

    assert snap_compare(snapshot_app(fixed_fleet, tmp_path), terminal_size=size, run_before=open_dialog)


@pytest.mark.parametrize("size", SIZES)
def test_help(snap_compare, fixed_fleet: Fleet, tmp_path: Path, size) -> None:
    async def open_help(pilot) -> None:
        await ready(pilot)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, HelpScreen), message="help")
        await pilot.pause(0.1)

    assert snap_compare(snapshot_app(fixed_fleet, tmp_path), terminal_size=size, run_before=open_help)
