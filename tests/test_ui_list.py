"""The list layout with 64 agents, used by keyboard as a new user would: it opens by itself when
tiles would be too small, waiting agents on top, every agent key on the highlighted row, a live
preview, order, filter and pins (issue 14)."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest

from cockpit.core.fleet import Fleet
from cockpit.ui.app import CockpitApp, make_app
from cockpit.ui.dialogs import ConfirmDialog
from cockpit.ui.tiles import TileGrid
from cockpit.ui.zoom import ZoomScreen
from ui_support import FAILING, WAITING, many_fleet, many_ready, screen_rows, wait_for

pytestmark = pytest.mark.tmux


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory):
    """One fleet of 64 agents for the module (spawning them is the slow part)."""
    from conftest import stop_fleets_under
    base = tmp_path_factory.mktemp("many")
    yield many_fleet(base)
    stop_fleets_under(base)


def app_for(fleet: Fleet, tmp_path: Path) -> CockpitApp:
    return make_app(fleet, clock=None, include_user_themes=False, user_config=tmp_path / "none.toml")


def listed(app: CockpitApp) -> list[str]:
    return [agent.name for agent in app.agent_list.agents]


def visible_rows(app: CockpitApp) -> list[str]:
    """The agent names at the start of the list's rows as the screen shows them."""
    region = app.agent_list.region
    names = []
    for row in screen_rows(app)[region.y + 1:region.bottom]:
        match = re.match(r"[ ◆] (a\d+) ", row[region.x:region.right])
        if match:
            names.append(match.group(1))
    return names


async def list_ready(pilot, app: CockpitApp) -> None:
    await wait_for(pilot, lambda: many_ready(app) and len(app.agent_list.agents) == 64, timeout=60,
                   message="64 rows")


async def test_200x60_opens_the_list_with_48_or_more_agents_visible_waiting_on_top(many: Fleet,
                                                                                  tmp_path: Path) -> None:
    app = app_for(many, tmp_path)
    async with app.run_test(size=(200, 60)) as pilot:
        await list_ready(pilot, app)
        await pilot.pause(0.2)
        assert app.layout_mode == "list"
        assert app.query_one(TileGrid).display is False
        rows = visible_rows(app)
        assert len(rows) >= 48, rows
        assert rows[:len(WAITING)] == sorted(WAITING, key=lambda n: int(n[1:]))  # waiting on top, a7 a30 a52
        assert rows[len(WAITING):len(WAITING) + len(FAILING)] == list(FAILING)  # then the failed ones
        rest = rows[len(WAITING) + len(FAILING):]
        assert rest == sorted(rest, key=lambda n: int(n[1:]))  # then by name: a2 before a10
        assert app.focused is app.agent_list and app.agent_list.highlighted == "a7"


async def test_page_home_end_move_the_highlight_and_the_preview_follows(many: Fleet, tmp_path: Path) -> None:
    app = app_for(many, tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        await list_ready(pilot, app)
        agent_list = app.agent_list
        order = listed(app)
        page = agent_list.rows_visible
        await pilot.press("j", "j")
        assert agent_list.highlighted == order[2]
        await pilot.press("pagedown")
        assert agent_list.highlighted == order[2 + page]
        await pilot.press("end")
        assert agent_list.highlighted == order[-1]
        await wait_for(pilot, lambda: app.preview is not None and app.preview.agent.name == order[-1],
                       message="the preview shows the last agent")
        assert order[-1] in visible_rows(app)  # scrolled to it
        await pilot.press("pageup")
        assert agent_list.highlighted == order[-1 - page]
        await pilot.press("home")
        assert agent_list.highlighted == order[0] and visible_rows(app)[0] == order[0]
        await pilot.press("k")  # (stays on the first row)
        assert agent_list.highlighted == order[0]
        await wait_for(pilot, lambda: "shall I delete" in " ".join(line.plain for line in app.preview.shown_lines()),
                       message="the preview shows a7's log")
        await pilot.press("end", "w")  # the next agent needing the user, from the bottom: the first waiting
        assert agent_list.highlighted == "a7"
        await pilot.press("w")
        assert agent_list.highlighted == "a30" and "a30" in visible_rows(app)


async def test_order_cycles_and_resorting_keeps_the_highlight_on_its_agent(many: Fleet, tmp_path: Path) -> None:
    app = app_for(many, tmp_path)
    async with app.run_test(size=(200, 60)) as pilot:
        await list_ready(pilot, app)
        for _ in range(5):
            await pilot.press("j")
        chosen = app.agent_list.highlighted
        assert chosen == "a1"  # a7 a30 a52 (waiting), a12 a41 (failed), then a1
        await pilot.press("o")  # by name
        assert app.order.sort == "name"
        assert listed(app)[:12] == [f"a{i}" for i in range(1, 13)]
        assert app.agent_list.highlighted == chosen
        await pilot.press("o")  # recent output
        assert app.order.sort == "recent" and app.agent_list.highlighted == chosen
        await pilot.press("o")  # attention again
        assert app.order.sort == "attention" and listed(app)[:3] == list(WAITING)
        assert app.agent_list.highlighted == chosen
        [by_name] = [c for c in app.palette_commands() if c.title == "order: name"]
        by_name.run()  # the palette offers the orders too
        assert app.order.sort == "name" and listed(app)[0] == "a1" and app.agent_list.highlighted == chosen


async def test_filter_narrows_rows_by_state_flag_or_name_and_escape_clears_it(many: Fleet, tmp_path: Path) -> None:
    app = app_for(many, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await list_ready(pilot, app)
        await pilot.press("slash", *"waiting")
        await wait_for(pilot, lambda: listed(app) == list(WAITING), message="only the waiting agents")
        await pilot.press("enter")
        assert app.focused is app.agent_list and app.agent_list.highlighted in WAITING
        await pilot.press("j")
        assert app.agent_list.highlighted == WAITING[1]
        await pilot.press("slash", "ctrl+a", *"failed")  # (ctrl+a: to the start; the old text stays after)
        await pilot.press("end", *["backspace"] * len("waiting"))
        await wait_for(pilot, lambda: listed(app) == list(FAILING), message="only the failed agents")
        assert app.agent_list.highlighted == FAILING[0]  # its agent is gone: the neighbouring row
        await pilot.press("escape")
        await wait_for(pilot, lambda: len(listed(app)) == 64, message="every agent again")
        await pilot.press("slash", *"a6")
        await wait_for(pilot, lambda: listed(app) == ["a6", "a60", "a61", "a62", "a63", "a64"], message="by name")
        await pilot.press("escape")
        # the palette offers the filters too
        [command] = [c for c in app.palette_commands() if c.title == "filter: failed"]
        command.run()
        await wait_for(pilot, lambda: listed(app) == list(FAILING), message="filtered from the palette")


async def test_pinned_agents_are_what_the_grid_shows(many: Fleet, tmp_path: Path) -> None:
    app = app_for(many, tmp_path)
    async with app.run_test(size=(200, 60)) as pilot:
        await list_ready(pilot, app)
        await pilot.press("end", "space", "home", "space")
        assert app.pinned == {"a7", listed(app)[-1]}
        await pilot.press("t")
        grid = app.query_one(TileGrid)
        await wait_for(pilot, lambda: app.layout_mode == "grid" and grid.display, message="the grid")
        assert [t.agent.name for t in grid.shown] == ["a7", listed(app)[-1]]
        assert app.focused is grid.shown[0]
        await pilot.press("space")  # unpin a7 in the grid
        await wait_for(pilot, lambda: [t.agent.name for t in grid.shown] == [listed(app)[-1]], message="one pinned")
        await pilot.press("space")  # none pinned: every agent, attention first
        await wait_for(pilot, lambda: len(grid.shown) == 64, message="every tile")
        assert [t.agent.name for t in grid.shown][:5] == [*WAITING, *FAILING]
        await pilot.press("t")
        assert app.layout_mode == "list" and app.focused is app.agent_list


async def test_the_grid_is_attention_first_too_and_t_sticks(many: Fleet, tmp_path: Path) -> None:
    app = app_for(many, tmp_path)
    async with app.run_test(size=(250, 70)) as pilot:
        await list_ready(pilot, app)
        assert app.layout_mode == "list"
        await pilot.press("t")
        grid = app.query_one(TileGrid)
        await wait_for(pilot, lambda: grid.display and grid.size.width, message="the grid")
        assert [t.agent.name for t in grid.tiles][:5] == [*WAITING, *FAILING]
        assert app.focused is grid.tiles[0]
        chosen = next(t for t in grid.tiles if t.agent.name == "a20")
        chosen.screen.set_focus(chosen)
        await pilot.press("o")  # by name: the tiles move, the focus stays on a20
        await wait_for(pilot, lambda: [t.agent.name for t in grid.tiles][:3] == ["a1", "a2", "a3"], message="by name")
        assert app.focused is chosen
        await pilot.press("o", "o")  # recent output, then attention first again
        await wait_for(pilot, lambda: [t.agent.name for t in grid.tiles][:3] == list(WAITING), message="attention")
        assert app.focused is chosen
        polls = app.polls
        await wait_for(pilot, lambda: app.polls >= polls + 2, message="two more polls")
        assert app.layout_mode == "grid"


async def test_every_agent_key_acts_on_the_highlighted_row(fleet: Fleet, tmp_path: Path) -> None:
    from conftest import sleeper
    for name in ("one", "two", "three"):
        fleet.spawn(name, command=sleeper(name))
    attached: list[list[str]] = []

    def runner(argv: list[str], env: dict[str, str]) -> int:
        attached.append(argv)
        return 0

    app = make_app(fleet, clock=None, include_user_themes=False, user_config=tmp_path / "none.toml",
                   attach_runner=runner)
    @contextlib.contextmanager
    def no_suspend():  # headless drivers cannot suspend (the real terminal is tested in test_ui_tmux)
        yield

    async with app.run_test(size=(120, 36)) as pilot:
        app.suspend = no_suspend  # type: ignore[method-assign]
        await wait_for(pilot, lambda: len(app.agents) == 3, message="three agents")
        assert app.layout_mode == "grid"  # three tiles fit
        await pilot.press("t")
        assert app.layout_mode == "list" and listed(app) == ["one", "three", "two"]
        await pilot.press("j", "j")  # two
        assert app.agent_list.highlighted == "two"

        await pilot.press("p")
        await wait_for(pilot, lambda: fleet.agent("two").state == "paused", message="two paused")
        assert fleet.agent("one").state == "running"
        # p resumes what the row shows paused: until the app has seen the pause, p pauses again
        await wait_for(pilot, lambda: app.tile("two").agent.process == "paused", message="the row says paused")
        await pilot.press("p")
        await wait_for(pilot, lambda: fleet.agent("two").state == "running", message="two resumed")

        await pilot.press("s")
        await wait_for(pilot, lambda: app.preview is not None and app.preview.view == "screen", message="screen view")
        await pilot.press("s")
        await wait_for(pilot, lambda: app.preview.view == "log", message="log view")

        await pilot.press("z")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, ZoomScreen) and app.screen)
        assert screen.tile.agent.name == "two"
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, ZoomScreen))

        await pilot.press("v")
        from cockpit.ui.diffview import DiffScreen
        screen = await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen) and app.screen)
        assert screen.agent_name == "two"
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, DiffScreen))

        await pilot.press("a")
        await wait_for(pilot, lambda: attached, message="attach")
        assert attached[0] == fleet.attach_argv("two")

        await pilot.press("m")  # nothing committed: said at once, nothing asked
        await wait_for(pilot, lambda: any("two" in n.message for n in app._notifications), message="merge answer")

        for key, title in (("x", "Kill two?"), ("F", "Mark two failed?")):
            await pilot.press(key)
            dialog = await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog) and app.screen)
            assert dialog.title_text == title
            await pilot.press("escape")
            await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmDialog))

        await pilot.press("r")
        from cockpit.ui.dialogs import RespawnDialog
        dialog = await wait_for(pilot, lambda: isinstance(app.screen, RespawnDialog) and app.screen)
        assert dialog.agent.name == "two"
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, RespawnDialog))

        await pilot.press("d")
        from cockpit.ui.dialogs import DiscardDialog
        dialog = await wait_for(pilot, lambda: isinstance(app.screen, DiscardDialog) and app.screen)
        await pilot.press("tab", "enter")  # Discard
        await wait_for(pilot, lambda: listed(app) == ["one", "three"], message="two's row gone")
        assert app.agent_list.highlighted == "three"  # the neighbour, not the first row
        assert fleet.tmux.has_session("one") and fleet.tmux.has_session("three")
        assert app.reported == []


async def test_removed_last_row_highlights_the_one_before(fleet: Fleet, tmp_path: Path) -> None:
    from conftest import sleeper
    for name in ("b1", "b2", "b3"):
        fleet.spawn(name, command=sleeper(name))
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: len(app.agents) == 3, message="three agents")
        await pilot.press("t", "end")
        assert app.agent_list.highlighted == "b3"
        fleet.discard("b3")  # as from another terminal
        await wait_for(pilot, lambda: listed(app) == ["b1", "b2"], message="b3's row gone")
        assert app.agent_list.highlighted == "b2"


async def test_an_agent_that_starts_waiting_rises_to_the_top_under_a_steady_highlight(fleet: Fleet,
                                                                                      tmp_path: Path) -> None:
    from conftest import sleeper
    (fleet.root / "cockpit.toml").write_text("[cockpit]\nidle_after = 100000\nstall_after = 100000\n")
    fleet.spawn("c1", command=sleeper("c1"))
    fleet.spawn("c2", command="echo thinking; sleep 3; printf 'proceed? '; read answer; sleep 3600")
    fleet.spawn("c3", command=sleeper("c3"))
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: len(app.agents) == 3, message="three agents")
        await pilot.press("t", "end")
        assert listed(app) == ["c1", "c2", "c3"] and app.agent_list.highlighted == "c3"
        await wait_for(pilot, lambda: listed(app)[0] == "c2", timeout=30, message="c2 waits: on top")
        assert listed(app) == ["c2", "c1", "c3"]
        assert app.agent_list.highlighted == "c3"  # the rows moved; the highlight did not
        assert "waiting" in visible_text(app, "c2")


def visible_text(app: CockpitApp, name: str) -> str:
    """The screen row of ``name`` in the list."""
    region = app.agent_list.region
    return next((row[region.x:region.right] for row in screen_rows(app)[region.y + 1:region.bottom]
                 if re.match(rf"[ ◆] {name} ", row[region.x:region.right])), "")


def test_the_list_opens_by_itself_only_when_tiles_would_be_under_40x8() -> None:
    from cockpit.ui.arrange import tiles_too_small
    assert not tiles_too_small(3, 80, 22)  # two columns of 40x11
    assert tiles_too_small(12, 80, 22)
    assert tiles_too_small(64, 200, 58) and tiles_too_small(64, 250, 68)
    assert not tiles_too_small(32, 200, 68)  # (the benchmark's 32-tile grid stays a grid)
    assert not tiles_too_small(0, 80, 22)
