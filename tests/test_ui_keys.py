"""Keys as data: help lists every binding, [keys] remaps work, the palette finds actions by agent
name, focus moves by grid geometry, zoom searches, and s switches to the tmux screen."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from cockpit.core.fleet import Fleet
from cockpit.ui.app import make_app
from cockpit.ui.dialogs import ConfirmDialog, DiscardDialog
from cockpit.ui.help import HelpScreen
from cockpit.ui.keys import ALL_KEYS, check_keymap, markdown_table, refuse_conflicts
from cockpit.ui.search import find_matches
from cockpit.ui.tiles import TileGrid, choose_layout
from cockpit.ui.zoom import ZoomScreen
from conftest import sleeper
from ui_support import agent_state, focus, tiles, wait_for


def app_for(fleet: Fleet, tmp_path: Path, **kwargs):
    kwargs.setdefault("user_config", tmp_path / "none.toml")
    return make_app(fleet, clock=None, include_user_themes=False, **kwargs)


def help_text(screen: HelpScreen) -> str:
    console = Console(width=200, record=True, file=open("/dev/null", "w"))
    console.print(screen.query_one("#help-table").content)
    return console.export_text()


def test_every_binding_has_an_id_and_a_description() -> None:
    ids = [spec.id for spec in ALL_KEYS]
    assert len(ids) == len(set(ids))
    assert all(spec.description for spec in ALL_KEYS)
    assert all(f"`{spec.id}`" in markdown_table() for spec in ALL_KEYS)
    good, problems = check_keymap({"pause": "P", "bogus": "x", "kill": " "}, "cockpit.toml")
    assert good == {"pause": "P"} and len(problems) == 2 and "keys.bogus" in problems[0]


def test_layout_uses_fewer_columns_when_narrow() -> None:
    assert choose_layout(4, 80, 21)[0] == 2
    columns, rows, height = choose_layout(30, 80, 21)
    assert columns * rows < 30 and height >= 8
    assert choose_layout(1, 160, 45) == (1, 1, 45)


@pytest.mark.tmux
async def test_help_lists_every_binding(fleet: Fleet, tmp_path: Path) -> None:
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("question_mark")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen) and app.screen)
        text = help_text(screen)
        for spec in ALL_KEYS:
            assert spec.id in text and spec.description in text, spec.id
        legend = str(screen.query_one("#help-legend").content)
        assert "try 2 (1/2 fail)" in legend and "TRY column" in legend  # the tiles' notation, explained
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen))


@pytest.mark.tmux
async def test_keys_remapped_in_cockpit_toml(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    (repo / "cockpit.toml").write_text('[keys]\npause = "P"\nhelp = "f1"\nnosuch = "y"\n')
    fleet.spawn("agent", command=sleeper())
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(100, 40)) as pilot:
        await focus(pilot, app, "agent")
        assert any("keys.nosuch" in p for p in app.problems)
        await pilot.press("P")
        await wait_for(pilot, lambda: agent_state(app, "agent") == "paused", message="paused by P")
        await pilot.press("p")  # no longer bound: would resume otherwise
        polls = app.polls
        await wait_for(pilot, lambda: app.polls >= polls + 3, message="a few polls")
        assert agent_state(app, "agent") == "paused" and fleet.agent("agent").state == "paused"
        await pilot.press("f1")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen) and app.screen)
        pause_row = next(line for line in help_text(screen).splitlines() if "pause" in line and "Pause" in line)
        assert pause_row.split()[0] == "P"


@pytest.mark.tmux
async def test_user_config_keys_apply_and_repo_keys_win(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    user = tmp_path / "user.toml"
    user.write_text('[keys]\nzoom = "Z"\nkill = "K"\n')
    (repo / "cockpit.toml").write_text('[keys]\nkill = "X"\n')
    app = app_for(fleet, tmp_path, user_config=user)
    assert app.keymap == {"zoom": "Z", "kill": "X"}


def test_conflicting_remaps_are_refused_naming_both_bindings() -> None:
    sources = {"discard": "cockpit.toml"}
    applied, problems = refuse_conflicts({"discard": "x"}, sources)
    assert applied == {} and len(problems) == 1
    assert problems[0] == ("keys.discard = 'x' (cockpit.toml) conflicts with kill (x): both would answer 'x' "
                           "in the grid; not applied: discard stays on 'd'")
    # a swap is no conflict; the zoom and the grid are separate contexts
    assert refuse_conflicts({"discard": "x", "kill": "d"}, {}) == ({"discard": "x", "kill": "d"}, [])
    assert refuse_conflicts({"search-next": "p"}, {}) == ({"search-next": "p"}, [])
    # an app key is active in every context; "?" is question_mark, as Textual names it
    applied, problems = refuse_conflicts({"quit": "g", "pause": "?"}, {"quit": "a.toml", "pause": "b.toml"})
    assert applied == {} and len(problems) == 2
    assert "keys.pause = '?' (b.toml) conflicts with help (question_mark)" in problems[0]
    assert "keys.quit = 'g' (a.toml) conflicts with zoom-top (g)" in problems[1] and "zoomed tile" in problems[1]
    # two remaps onto one key: neither applies
    applied, problems = refuse_conflicts({"kill": "y", "discard": "y"}, {"kill": "u.toml", "discard": "r.toml"})
    assert applied == {} and "neither applied" in problems[0]
    assert "keys.kill = 'y' (u.toml)" in problems[0] and "keys.discard = 'y' (r.toml)" in problems[0]


@pytest.mark.tmux
async def test_a_conflicting_remap_keeps_both_keys_working(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    user = tmp_path / "user.toml"
    user.write_text('[keys]\nrespawn = "p"\n')
    (repo / "cockpit.toml").write_text('[keys]\ndiscard = "x"\n')
    fleet.spawn("agent", command=sleeper())
    app = app_for(fleet, tmp_path, user_config=user)
    assert app.keymap == {}
    assert any(f"keys.discard = 'x' ({repo / 'cockpit.toml'}) conflicts with kill (x)" in p for p in app.problems)
    assert any(f"keys.respawn = 'p' ({user}) conflicts with pause (p)" in p for p in app.problems)
    async with app.run_test(size=(100, 40)) as pilot:
        await focus(pilot, app, "agent")
        await pilot.press("x")
        dialog = await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog) and app.screen)
        assert "Kill agent" in dialog.title_text
        await pilot.press("escape")
        await pilot.press("question_mark")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen) and app.screen)
        rows = [line.split()[0] for line in help_text(screen).splitlines() if line.strip()]
        assert rows.count("x") == 1 and rows.count("d") == 1


def palette_options(app) -> list[str]:
    from textual.command import CommandList
    options = app.screen.query_one(CommandList)
    return [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]


@pytest.mark.tmux
async def test_palette_offers_only_what_works_in_cockpit(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    from textual.command import CommandPalette
    fleet.spawn("alpha", command=sleeper())
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await focus(pilot, app, "alpha")
        titles = [c.title for c in app.palette_commands()]
        assert "fail alpha" in titles and "quit" in titles
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), message="palette")
        for query, builtin in (("screenshot", "Screenshot"), ("keys", "Keys"), ("maximize", "Maximize"),
                               ("dracula", "dracula")):
            await pilot.press(*query)
            await wait_for(pilot, lambda: palette_options(app), message=f"results for {query}")
            await pilot.pause(0.7)  # (the palette says "No matches found" after 0.5 s)
            assert not any(builtin in option for option in palette_options(app)), (query, palette_options(app))
            await pilot.press(*["backspace"] * len(query))
        await pilot.press(*"fail alph")
        await wait_for(pilot, lambda: any("fail alpha" in o for o in palette_options(app)), message="fail alpha")
        await pilot.press("enter")
        dialog = await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog) and app.screen)
        assert "Mark alpha failed" in dialog.title_text
    offered = [t.split(" ", 1)[1] for t in titles if t.startswith("theme ")]
    assert offered and "dracula" not in offered
    for name in offered:  # every theme offered works from --theme and from cockpit.toml
        assert make_app(fleet, name, clock=None, include_user_themes=False,
                        user_config=tmp_path / "none.toml").problems == [], name
        (repo / "cockpit.toml").write_text(f'[cockpit]\ntheme = "{name}"\n')
        configured = app_for(fleet, tmp_path)
        assert configured.problems == [] and configured.theme == name


@pytest.mark.tmux
async def test_palette_finds_actions_by_agent_name_and_switches_theme(fleet: Fleet, tmp_path: Path) -> None:
    fleet.spawn("alpha", command=sleeper())
    fleet.spawn("beta", command=sleeper())
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await focus(pilot, app, "alpha")
        titles = [c.title for c in app.palette_commands()]
        assert "discard beta" in titles and "pause alpha" in titles and "theme cockpit-light" in titles
        await pilot.press("ctrl+p")
        await pilot.press(*"discard bet")
        await pilot.pause(0.3)
        await pilot.press("enter")
        dialog = await wait_for(pilot, lambda: isinstance(app.screen, DiscardDialog) and app.screen)
        assert dialog.agent.name == "beta"
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, DiscardDialog))
        assert "beta" in tiles(app)
        await pilot.press("ctrl+p")
        await pilot.press(*"theme cockpit-light")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.theme == "cockpit-light", message="light theme")


@pytest.mark.tmux
async def test_focus_moves_by_grid_geometry(fleet: Fleet, tmp_path: Path) -> None:
    for name in ("a1", "a2", "a3", "a4", "a5"):
        fleet.spawn(name, command="sleep 3600")
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: len(tiles(app)) == 5)
        await focus(pilot, app, "a1")
        columns = app.query_one(TileGrid).columns
        assert columns >= 2
        name = lambda: app.focused.agent.name  # noqa: E731
        await pilot.press("l")
        assert name() == "a2"
        await pilot.press("h")
        assert name() == "a1"
        await pilot.press("j")
        assert name() == f"a{1 + columns}"
        await pilot.press("k", "right", "left", "tab")
        assert name() == "a2"
        await pilot.press("shift+tab", "shift+tab")
        assert name() == "a5"


@pytest.mark.tmux
async def test_zoom_search_and_screen_view(fleet: Fleet, tmp_path: Path) -> None:
    fleet.spawn("talker", command="for i in 1 2 3; do echo needle $i; echo hay $i; done; "
                                 "printf 'SCREEN-ONLY\\n'; sleep 3600")
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        tile = await focus(pilot, app, "talker")
        await wait_for(pilot, lambda: any("SCREEN-ONLY" in line.plain for line in tile.feed.lines))
        await pilot.press("z")
        zoom = await wait_for(pilot, lambda: isinstance(app.screen, ZoomScreen) and app.screen)
        await wait_for(pilot, lambda: any("needle 3" in line for line in zoom.view.visible_lines()), message="the log")
        await pilot.press("slash", *"NEEDLE", "enter")
        await wait_for(pilot, lambda: len(zoom.matches) == 3, message="3 matches")
        assert zoom.current == 2
        await pilot.press("n")
        assert zoom.current == 0
        await pilot.press("N", "N")
        assert zoom.current == 1
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, ZoomScreen))
        await pilot.press("s")
        assert tile.view == "screen"
        await wait_for(pilot, lambda: tile.feed.screen and any("SCREEN-ONLY" in row.plain for row in tile.feed.screen),
                       message="captured screen")
        await pilot.press("s")
        assert tile.view == "log"


@pytest.mark.tmux
async def test_the_screen_view_of_a_blank_pane_says_it_is_blank(fleet: Fleet, tmp_path: Path) -> None:
    fleet.spawn("quiet", command="sleep 3600")
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        tile = await focus(pilot, app, "quiet")
        await pilot.press("s")
        await wait_for(pilot, lambda: tile.feed.screen is not None, message="the pane captured")
        assert tile.feed.screen == []
        await wait_for(pilot, lambda: [line.plain for line in tile.shown_lines()] == ["(the screen is blank)"],
                       message="blank, not capturing")


def test_find_matches_is_case_insensitive_and_finds_repeats() -> None:
    from rich.text import Text
    assert find_matches([Text("aXa xa"), Text("none")], "xa") == [(0, 1, 3), (0, 4, 6)]
    assert find_matches([Text("abc")], "") == []


def test_readme_key_table_is_generated_from_the_bindings() -> None:
    """The README's key table must not drift from the bindings (regenerate with
    ``cockpit.ui.keys.markdown_table()``)."""
    from pathlib import Path

    from cockpit.ui.keys import markdown_table
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert markdown_table() in readme


async def test_a_key_holds_background_work_from_the_moment_it_arrives(fleet: Fleet, tmp_path: Path) -> None:
    """Posting the key (as the driver's input thread does) starts the hold: log rendering, the
    watcher's reads and the poll's git calls give way until the UI thread has answered it."""
    import threading
    import time

    from textual import events
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.renders._held_until < time.monotonic()
        key = events.Key("question_mark", "?")
        posted = threading.Thread(target=app.post_message, args=(key,))  # from another thread
        posted.start()
        posted.join()
        assert app.renders._held_until > time.monotonic() - 0.01
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), message="the key answered")


@pytest.mark.tmux
@pytest.mark.parametrize("width", [80, 120])
async def test_the_footer_always_shows_help_and_quit(fleet: Fleet, tmp_path: Path, width: int) -> None:
    from ui_support import screen_rows
    fleet.spawn("alpha", command=sleeper())
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(width, 24)) as pilot:
        await focus(pilot, app, "alpha")
        await wait_for(pilot, lambda: "? help" in screen_rows(app)[-1] and "q quit" in screen_rows(app)[-1],
                       message=f"? help and q quit on the grid at {width} columns")
        await pilot.press("z")
        await wait_for(pilot, lambda: isinstance(app.screen, ZoomScreen), message="zoom")
        await wait_for(pilot, lambda: "? help" in screen_rows(app)[-1] and "q quit" in screen_rows(app)[-1],
                       message=f"? help and q quit in the zoom at {width} columns")
