"""Canaries: each assumption cockpit makes about Textual's or pyte's internals
(:data:`cockpit.ui.internals.ASSUMPTIONS`), checked against the installed library. When an
upgrade breaks one, its canary fails here by name: update :mod:`cockpit.ui.internals` (and what
uses it); meanwhile ``COCKPIT_STOCK_WIDGETS=1`` runs cockpit on Textual's stock behaviour.

Also: the stock switch itself touches none of the Textual internals and shows the same tiles."""

from __future__ import annotations

import re
from pathlib import Path

import pyte
import pytest
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Static

from cockpit.ui import internals

TESTS = Path(__file__).resolve().parent
UPGRADE = "an upgrade broke an assumption of cockpit.ui.internals: update it (COCKPIT_STOCK_WIDGETS=1 meanwhile)"


def test_every_assumption_names_a_canary_that_exists() -> None:
    names = [a.name for a in internals.ASSUMPTIONS]
    assert len(names) == len(set(names))
    for assumption in internals.ASSUMPTIONS:
        path, _, test = assumption.canary.partition("::")
        source = (TESTS.parent / path).read_text()
        assert re.search(rf"^(async )?def {re.escape(test)}\(", source, re.M), assumption
        assert assumption.library in (internals.TEXTUAL, internals.PYTE)


# -- Textual -------------------------------------------------------------------------------------
class Focusable(Static, can_focus=True):
    """A focusable widget without bindings of its own."""


class FooterApp(App[None]):
    BINDINGS = [Binding("x", "noop", "Do x", id="x")]

    def compose(self) -> ComposeResult:
        yield Focusable("one", id="one")
        yield Focusable("two", id="two")
        yield Footer()

    def action_noop(self) -> None:
        pass


async def test_footer_composes_footer_keys_from_the_private_module() -> None:
    assert internals.FooterKey is not None, f"textual.widgets._footer.FooterKey is gone: {UPGRADE}"
    app = FooterApp()
    async with app.run_test() as pilot:
        await pilot.pause()
        footer = app.query_one(Footer)
        keys = [w for w in footer.query("*") if isinstance(w, internals.FooterKey)]
        assert any(getattr(k, "action", None) == "noop" for k in keys), f"Footer shows no FooterKey: {UPGRADE}"
        assert hasattr(internals.FooterKey, "compact"), UPGRADE


async def test_footer_keys_bound_to_compact_show_in_reactive_connect() -> None:
    bound: dict[str, bool] = {}

    class RecordingFooter(Footer):
        def compose(self) -> ComposeResult:
            for widget in super().compose():  # as KeyFooter sees them: composed, not mounted yet
                if isinstance(widget, internals.FooterKey):
                    bound[widget.action] = internals.follows_footer_compact(widget)  # type: ignore[attr-defined]
                yield widget

    class RecordingApp(FooterApp):
        def compose(self) -> ComposeResult:
            yield Focusable("one", id="one")
            yield RecordingFooter()

    app = RecordingApp()
    async with app.run_test() as pilot:
        await pilot.pause()
    assert bound.get("noop") is True, f"a key's binding to Footer.compact is not in _reactive_connect: {UPGRADE}"
    assert bound.get("command_palette") is False, f"the palette key is bound to compact now: {UPGRADE}"


async def test_footer_rebuilds_on_every_bindings_change() -> None:
    assert list(Footer().compose()) == [], f"Footer composes before its bindings are known: {UPGRADE}"
    composed: list[int] = []

    class CountingFooter(Footer):
        def compose(self) -> ComposeResult:
            composed.append(1)
            yield from super().compose()

    class CountingApp(FooterApp):
        def compose(self) -> ComposeResult:
            yield Focusable("one", id="one")
            yield Focusable("two", id="two")
            yield CountingFooter()

    app = CountingApp()
    async with app.run_test() as pilot:
        app.query_one("#one").focus()
        await pilot.pause(0.1)
        before = len(composed)
        for target in ("#two", "#one", "#two"):
            app.query_one(target).focus()  # the keys shown stay the same
            await pilot.pause(0.1)
        assert len(composed) > before, f"Footer no longer rebuilds on focus moves: KeyFooter may go ({UPGRADE})"


def test_the_default_screen_id() -> None:
    assert App().get_default_screen().id == internals.DEFAULT_SCREEN_ID, UPGRADE


class WholeRefreshes:
    """Counts the refreshes of a widget or screen that cover all of it."""

    def __init__(self) -> None:
        self.whole = 0


async def test_a_redeclared_focused_still_refreshes_bindings_without_a_repaint() -> None:
    assert isinstance(Screen.__dict__.get("focused"), type(internals.QuietFocusScreen.__dict__["focused"])), UPGRADE
    counts: dict[str, WholeRefreshes] = {"stock": WholeRefreshes(), "quiet": WholeRefreshes()}
    published: dict[str, int] = {"stock": 0, "quiet": 0}

    def counting(base: type[Screen], kind: str) -> type[Screen]:
        class Counting(base):  # type: ignore[valid-type, misc]
            def refresh(self, *regions, **kwargs):  # type: ignore[no-untyped-def]
                if not regions and kwargs.get("repaint", True) and not kwargs.get("layout"):
                    counts[kind].whole += 1
                return super().refresh(*regions, **kwargs)

            def on_mount(self) -> None:
                self.bindings_updated_signal.subscribe(self, lambda _screen: published.__setitem__(
                    kind, published[kind] + 1))
        return Counting

    for kind, base in (("stock", Screen), ("quiet", internals.QuietFocusScreen)):
        class ScreenApp(App[None]):
            def get_default_screen(self) -> Screen:
                return counting(base, kind)(id=internals.DEFAULT_SCREEN_ID)

            def compose(self) -> ComposeResult:
                yield Focusable("one", id="one")
                yield Focusable("two", id="two")

        app = ScreenApp()
        async with app.run_test() as pilot:
            app.screen.set_focus(app.query_one("#one"))
            await pilot.pause(0.1)
            counts[kind].whole, published[kind] = 0, 0
            for target in ("#two", "#one"):
                app.screen.set_focus(app.query_one(target))
                await pilot.pause(0.1)
            assert app.screen.focused is app.query_one("#one")
    assert published["quiet"] > 0, f"the focused watcher no longer runs on a redeclared focused: {UPGRADE}"
    assert counts["quiet"].whole == 0, UPGRADE
    assert counts["stock"].whole > 0, "Textual no longer repaints a screen on a focus move: QuietFocusScreen may go"


async def test_textual_refreshes_a_widget_whole_when_its_frame_changes() -> None:
    seen = {"whole": 0, "style": 0, "render_lines": 0}

    class Framed(Static, can_focus=True):
        DEFAULT_CSS = "Framed { border: round $foreground; height: 5; } Framed:focus { border: heavy $accent; }"

        def refresh(self, *regions, **kwargs):  # type: ignore[no-untyped-def]
            if not regions:
                seen["whole"] += 1
            return super().refresh(*regions, **kwargs)

        def notify_style_update(self) -> None:
            seen["style"] += 1
            super().notify_style_update()

        def render_lines(self, crop):  # type: ignore[no-untyped-def]
            seen["render_lines"] += 1
            return super().render_lines(crop)

    class FramedApp(App[None]):
        def compose(self) -> ComposeResult:
            yield Framed("body", id="framed")
            yield Focusable("other", id="other")

    app = FramedApp()
    async with app.run_test() as pilot:
        widget: Widget = app.query_one("#framed")
        await pilot.pause(0.1)
        assert seen["render_lines"] > 0, f"the compositor no longer paints through render_lines: {UPGRADE}"
        for change in ("subtitle", "title"):
            seen["whole"] = 0
            setattr(widget, f"border_{change}", f"new {change}")
            await pilot.pause(0.05)
            assert seen["whole"] > 0, f"a new border {change} no longer refreshes the widget whole: {UPGRADE}"
        for change in ("focus", "theme"):  # (a style change refreshes the widget, or notifies it)
            seen["whole"] = seen["style"] = 0
            if change == "focus":
                widget.focus()
            else:
                app.theme = "textual-light"
            await pilot.pause(0.05)
            assert seen["whole"] + seen["style"] > 0, f"a {change} change no longer refreshes the widget: {UPGRADE}"


# -- pyte ----------------------------------------------------------------------------------------
def test_pyte_parser_state_says_when_it_is_between_sequences() -> None:
    stream = pyte.Stream(pyte.Screen(20, 2))
    states = []
    for piece in ("ab", "\x1b[", "1", ";3", "m", "cd", "\x1b", "]0;title\x07", "e"):
        stream.feed(piece)
        states.append(internals.between_sequences(stream))
    assert states == [True, False, False, False, True, True, False, True, True], UPGRADE


def test_pyte_measures_characters_with_wcwidth(monkeypatch: pytest.MonkeyPatch) -> None:
    import pyte.screens
    import wcwidth
    assert internals.pyte_wcwidth is pyte.screens.wcwidth
    assert getattr(pyte.screens.wcwidth, "__wrapped__", None) is wcwidth.wcwidth, UPGRADE
    measured: list[str] = []

    def recording(char: str) -> int:
        measured.append(char)
        return wcwidth.wcwidth(char)

    monkeypatch.setattr(pyte.screens, "wcwidth", recording)
    pyte.Stream(pyte.Screen(10, 1)).feed("a\u4e2d")
    assert "a" in measured and "\u4e2d" in measured, f"Screen.draw measures with something else: {UPGRADE}"


def test_pyte_misspells_bright_magenta() -> None:
    import pyte.graphics
    screen = pyte.Screen(10, 1)
    pyte.Stream(screen).feed("\x1b[105mx")
    assert screen.buffer[0][0].bg == internals.PYTE_BRIGHT_MAGENTA == pyte.graphics.BG_AIXTERM[105], (
        "pyte spells SGR 105 right now: drop PYTE_BRIGHT_MAGENTA")


# -- the switch ----------------------------------------------------------------------------------
def test_stock_widgets_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for value, stock in (("", False), ("0", False), ("1", True), ("yes", True)):
        monkeypatch.setenv(internals.STOCK_ENV, value)
        assert internals.stock_widgets() is stock
    monkeypatch.delenv(internals.STOCK_ENV)
    assert internals.stock_widgets() is False


@pytest.mark.tmux
async def test_stock_widgets_touch_no_internal_and_show_the_same_tiles(fleet, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from cockpit.ui.app import make_app
    from cockpit.ui.zoom import ZoomScreen
    from ui_support import screen_rows, tiles, wait_for

    fleet.spawn("left", command=r"printf 'first-left\n\033[32mgreen\033[0m and plain\n'; sleep 3600")
    fleet.spawn("right", command="echo first-right; sleep 3600")

    def tile_rows(app, name: str) -> list[str]:
        region = tiles(app)[name].region
        return [row[region.x:region.right] for row in screen_rows(app)[region.y:region.bottom]]

    def boom(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("stock widgets touched a Textual internal")

    shown: dict[bool, dict[str, list[str]]] = {}
    for stock in (False, True):
        if stock:
            monkeypatch.setenv(internals.STOCK_ENV, "1")
            monkeypatch.setattr(internals, "follows_footer_compact", boom)
            monkeypatch.setattr(internals.CycleFreeStrip, "__init__", boom)
            monkeypatch.setattr(internals.QuietFocusScreen, "__init__", boom)
        app = make_app(fleet, clock=None, include_user_themes=False, user_config=tmp_path / "none.toml")
        async with app.run_test(size=(100, 24)) as pilot:
            await wait_for(pilot, lambda: len(tiles(app)) == 2 and all(
                any(f"first-{n}" in r for r in tile_rows(app, n)) for n in ("left", "right"))
                and "and plain" in "".join(tile_rows(app, "left")), message="both tiles painted")
            await pilot.pause(0.2)
            shown[stock] = {name: tile_rows(app, name) for name in ("left", "right")}
            if stock:
                assert type(app.query_one(Footer)) is Footer and type(app.screen) is Screen
                await pilot.press("right")
                await wait_for(pilot, lambda: app.focused is tiles(app)["right"], message="focus moved")
                await wait_for(pilot, lambda: tile_rows(app, "right")[0][0] == "┏", message="drawn focused")
                await pilot.press("z")
                await wait_for(pilot, lambda: isinstance(app.screen, ZoomScreen), message="zoom")
                await wait_for(pilot, lambda: "first-right" in app.screen.view.visible_lines(), message="zoomed log")
                await pilot.press("escape")
                await wait_for(pilot, lambda: not isinstance(app.screen, ZoomScreen), message="back")
                assert app.reported == []
    assert shown[True] == shown[False]
