"""What reaches the screen: tiles paint their body from cached rows and their frame (border,
title, subtitle) only when it changes, so these tests read the screen itself back and check
that a focus move, a state change and new log lines all show, in the right tile, at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.text import Text

from cockpit.core.fleet import Fleet
from cockpit.ui.app import make_app
from cockpit.ui.subtitle import SUBTITLE_SEPARATOR, _plain_markup, fit_subtitle
from ui_support import focus, screen_rows, tiles, wait_for

pytestmark = pytest.mark.tmux


def tile_rows(app, name: str) -> list[str]:
    """The screen rows inside ``name``'s tile (border included); none before it exists."""
    tile = tiles(app).get(name)
    if tile is None:
        return []
    region = tile.region
    return [row[region.x:region.right] for row in screen_rows(app)[region.y:region.bottom]]


def corner(app, name: str) -> str:
    rows = tile_rows(app, name)
    return rows[0][0] if rows and rows[0] else ""


async def test_focus_state_and_new_lines_reach_the_screen(fleet: Fleet, tmp_path: Path) -> None:
    for name in ("left", "right"):
        fleet.spawn(name, command=f"echo first-{name}; sleep 3600")
    app = make_app(fleet, clock=None, include_user_themes=False, user_config=tmp_path / "none.toml")
    async with app.run_test(size=(100, 24)) as pilot:
        for name in ("left", "right"):
            await wait_for(pilot, lambda: any(f"first-{name}" in r for r in tile_rows(app, name)),
                           message=f"{name}'s first line on screen")

        await focus(pilot, app, "left")
        await wait_for(pilot, lambda: corner(app, "left") == "┏" and corner(app, "right") == "╭",
                       message="left drawn focused (heavy border), right not")
        await focus(pilot, app, "right")
        await wait_for(pilot, lambda: corner(app, "right") == "┏" and corner(app, "left") == "╭",
                       message="focus moved on screen")

        log = fleet.layout.session_log("left")
        with log.open("ab") as handle:
            handle.write(b"".join(b"burst line %03d\n" % i for i in range(60)))
        await wait_for(pilot, lambda: any("burst line 059" in r for r in tile_rows(app, "left")),
                       message="the newest line of a burst on screen")
        rows = tile_rows(app, "left")
        body = [r for r in rows[1:-1] if "burst line" in r]
        assert body and body[-1].strip("│ ").endswith("059"), rows
        assert not any("burst line" in r for r in tile_rows(app, "right")), "nothing leaks into the other tile"

        fleet.pause("left")
        await wait_for(pilot, lambda: "paused" in tile_rows(app, "left")[-1],
                       timeout=30,
                       message="the paused state in left's subtitle on screen")
        assert "paused" not in tile_rows(app, "right")[-1]
        fleet.resume("left")


def test_painted_rows_leave_no_cyclic_garbage() -> None:
    """Textual's Strip.divide caches ``[self]`` in the strip (a cycle); the compositor makes
    that cut on every row, and tiles drop rows many times a second. Their rows must not."""
    import gc

    from rich.segment import Segment
    from textual.strip import Strip

    from cockpit.ui.internals import CycleFreeStrip

    def garbage_after(make) -> int:  # type: ignore[no-untyped-def]
        gc.collect()
        gc.disable()
        try:
            for _ in range(10):
                strip = make()
                assert list(strip.divide([strip.cell_length])) == [strip]
                assert [s.text for s in strip.divide([1, strip.cell_length])] == ["a", "bc"]
                del strip
            return gc.collect()
        finally:
            gc.enable()

    assert garbage_after(lambda: Strip([Segment("abc")], 3)) > 0, \
        "Textual no longer makes the cycle: drop CycleFreeStrip"
    assert garbage_after(lambda: CycleFreeStrip.join([Strip([Segment("abc")], 3)])) == 0


WORDS = st.text(alphabet="ab 9:/-+界⚠●…", min_size=0, max_size=12)
PARTS = st.one_of(
    WORDS,
    WORDS.map(lambda w: f"[bold $state-running]● {w}[/]"),
    WORDS.map(lambda w: f"[bold $error]⚠ {w}[/]"),
    st.tuples(WORDS, WORDS).map(lambda ws: f"[$warning]{ws[0]}[/] [italic]{ws[1]}…[/]"),
)


@given(parts=st.lists(PARTS, max_size=8), width=st.integers(min_value=1, max_value=80))
def test_a_subtitle_keeps_the_parts_that_fit_measured_as_one_string(parts: list[str], width: int) -> None:
    """Parts are measured one by one (and cached); the result is what measuring the joined
    string, as the tile once did, gives: the leading parts that fit, and always the first."""
    shown: list[str] = []
    for part in parts:
        joined = SUBTITLE_SEPARATOR.join(shown + [part])
        if shown and Text.from_markup(_plain_markup(joined)).cell_len > width:
            break
        shown.append(part)
    assert fit_subtitle(parts, width) == SUBTITLE_SEPARATOR.join(shown)
