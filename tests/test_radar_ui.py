"""The conflict radar where the user looks: the tile badge (``⚔ api: src/app.py``), the diff view's
marks, and the words both use."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Label, OptionList, Static

from cockpit.core.agent import Agent
from cockpit.core.fleet import Fleet
from cockpit.ui.app import make_app
from cockpit.ui.diffview import DiffScreen, clashes
from cockpit.ui.subtitle import conflict_badge, subtitle_parts
from conftest import git
from ui_support import focus, tile_subtitle, tiles, wait_for

LINES = "".join(f"line {i}\n" for i in range(1, 31))


def agent(**changes: object) -> Agent:
    fields: dict = {"name": "web", "state": "running", "attempt": 1, "failures": 0, "max_failures": 2,
                    "exit_code": None, "branch": "cockpit/web", "worktree": "/w", "log": "/l", "base": "main",
                    "base_sha": "0" * 40, "task": "", "command": "c", "scope": [], "after": [], "tmux_socket": "s",
                    "tmux_session": "web", "last_activity": None, "state_since": ""}
    return Agent(**{**fields, **changes})


def test_the_badge_names_the_first_conflict_and_counts_the_rest() -> None:
    assert conflict_badge(agent(conflicts=None)) is None  # unknown: nothing shown
    assert conflict_badge(agent(conflicts=[])) is None
    one = [{"with": "api", "paths": ["src/auth.py"], "lines": {}}]
    assert conflict_badge(agent(conflicts=one)) == "⚔ api: src/auth.py"
    more = one + [{"with": ":base", "paths": ["README.md", "b.py"], "lines": {}}]
    assert conflict_badge(agent(conflicts=more)) == "⚔ api: src/auth.py +2"
    # base is named by its branch, never mistaken for an agent named "base"
    assert conflict_badge(agent(conflicts=more[1:])) == "⚔ main (base): README.md +1"
    assert conflict_badge(agent(conflicts=[{"with": "base", "paths": ["x"]}])) == "⚔ base: x"


def test_the_badge_comes_early_and_a_partner_is_not_also_a_collision() -> None:
    collisions = [{"path": "src/auth.py", "agents": ["api", "docs"]}]
    parts = subtitle_parts(agent(collisions=collisions, conflicts=[{"with": "api", "paths": ["src/auth.py"]}]),
                           None, None)
    assert "⚔ api: src/auth.py" in parts[1] and parts[2].startswith("try ")
    assert any("collides with docs" in part for part in parts)
    assert not any("collides with api" in part for part in parts)
    # without a prediction, the collision is shown as before
    assert any("collides with api, docs" in p for p in subtitle_parts(agent(collisions=collisions), None, None))


def test_the_diff_view_marks_say_with_whom_and_where() -> None:
    conflicts = [{"with": "api", "paths": ["a.py", "b.bin"], "lines": {"a.py": [[3, 5], [9, 9]]}},
                 {"with": ":base", "paths": ["a.py"], "lines": {}}]
    assert clashes(conflicts, "main") == {"a.py": ["api (lines 3-5, 9)", "main (base)"], "b.bin": ["api"]}
    assert clashes(None, "main") == {}


@pytest.mark.tmux
async def test_a_predicted_conflict_shows_on_the_tiles_and_in_the_diff_view(repo: Path, tmp_path: Path) -> None:
    (repo / "src" / "app.py").write_text(LINES)
    git(repo, "commit", "-qam", "thirty lines")
    (repo / "cockpit.toml").write_text("[cockpit]\nradar_interval = 0.5\n")
    fleet = Fleet(repo)
    for name in ("api", "web"):
        fleet.spawn(name, command="exec sleep 600")
        (fleet.layout.worktree(name) / "src" / "app.py").write_text(LINES.replace("line 7\n", f"{name} 7\n"))
    (fleet.layout.worktree("web") / "notes.txt").write_text("mine\n")
    app = make_app(fleet, clock=None, include_user_themes=False, user_config=tmp_path / "none.toml",
                   poll_interval=0.2)
    async with app.run_test(size=(160, 30)) as pilot:
        await wait_for(pilot, lambda: "⚔ api: src/app.py" in tile_subtitle(app, "web"), timeout=30,
                       message="the badge on web's tile")
        assert "⚔ web: src/app.py" in tile_subtitle(app, "api")
        assert "collides" not in tile_subtitle(app, "web")  # the badge says more
        await focus(pilot, app, "web")
        await pilot.press("v")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen) and app.screen, message="diff")
        options = screen.query_one(OptionList)
        await wait_for(pilot, lambda: options.option_count == 2, message="the file list")
        rows = {str(options.get_option_at_index(i).prompt) for i in range(2)}
        assert any("⚔ src/app.py" in row for row in rows) and any(row.endswith(" notes.txt") for row in rows), rows
        assert "⚔ 1 predicted to conflict" in str(screen.query_one("#diff-title", Label).content)
        await wait_for(pilot, lambda: screen.shown is not None, message="a patch")
        if screen.shown != "src/app.py":
            await pilot.press("down")
            await wait_for(pilot, lambda: screen.shown == "src/app.py", message="app.py's patch")
        patch = str(screen.query_one("#diff-patch", Static).content)
        assert patch.startswith("⚔ predicted to conflict with api (lines 7)") and "+web 7" in patch
        assert set(tiles(app)) == {"api", "web"}
