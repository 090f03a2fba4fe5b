"""The zoomed view reaches the whole session.log, read from the file on demand: ``g`` goes to
line 1 of any log, ``/`` finds the first lines too, a 300,000-line burst is all there, and the
search count stays put while a progress line is being redrawn (real agents, real tmux)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from cockpit.core.fleet import Fleet
from cockpit.ui.app import make_app
from cockpit.ui.zoom import ZoomScreen
from conftest import PY
from ui_support import focus, screen_rows, wait_for

pytestmark = pytest.mark.tmux


def app_for(fleet: Fleet, tmp_path: Path):
    return make_app(fleet, clock=None, include_user_themes=False, user_config=tmp_path / "none.toml")


def printer(count: int, template: str) -> str:
    """An agent printing ``count`` lines (``template % i``, coloured), then DONE, then sleeping."""
    code = (f"import sys\nw = sys.stdout.write\nfor i in range({count}): w('\\x1b[32m' + ({template!r} % i) + "
            f"'\\x1b[0m\\n')\nprint('DONE', flush=True)\nimport time\ntime.sleep(3600)")
    return f"{PY} -u -c \"{code}\""


async def open_zoom(pilot, app, name: str) -> ZoomScreen:
    await focus(pilot, app, name)
    await pilot.press("z")
    return await wait_for(pilot, lambda: isinstance(app.screen, ZoomScreen) and app.screen, message="zoom")


def log_done(fleet: Fleet, name: str) -> bool:
    path = fleet.layout.session_log(name)
    return path.exists() and b"DONE" in path.read_bytes()[-200:]


def shown(app) -> list[str]:
    """The zoom's log rows as the user sees them (between the title and the status line)."""
    return [row.strip() for row in screen_rows(app)[1:-2]]


def status(app) -> str:
    return str(app.screen.query_one("#search-status").content)


async def test_g_and_search_reach_the_first_of_5000_lines(fleet: Fleet, tmp_path: Path) -> None:
    fleet.spawn("long", command=printer(5000, "line %05d of the log"))
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: log_done(fleet, "long"), message="5000 lines written")
        await open_zoom(pilot, app, "long")
        await wait_for(pilot, lambda: "DONE" in shown(app), message="the end shown first")
        await pilot.press("g")
        await wait_for(pilot, lambda: shown(app)[:2] == ["line 00000 of the log", "line 00001 of the log"],
                       message="g shows line 1")
        await pilot.press("G")
        await wait_for(pilot, lambda: "DONE" in shown(app), message="G back to the end")
        await pilot.press("slash", *"LINE 00007 ", "enter")
        await wait_for(pilot, lambda: status(app) == "/LINE 00007 : 1 of 1 (n/N)", message="found once")
        await wait_for(pilot, lambda: "line 00007 of the log" in shown(app), message="scrolled to it")
        await pilot.press("slash", *["backspace"] * 11, *"of the", "enter")
        await wait_for(pilot, lambda: status(app) == "/of the: 5000 of 5000 (n/N)", message="5000 matches, newest")
        await pilot.press("n")  # wraps to the oldest
        await wait_for(pilot, lambda: status(app) == "/of the: 1 of 5000 (n/N)", message="n wraps")
        await wait_for(pilot, lambda: "line 00000 of the log" in shown(app), message="at the first line")


async def test_a_300000_line_burst_is_all_there_and_not_held_in_memory(fleet: Fleet, tmp_path: Path) -> None:
    from cockpit.ui.logview import CACHE_LINES
    fleet.spawn("burst", command=printer(300_000, "burst %06d"))
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: log_done(fleet, "burst"), timeout=60, message="the burst written")
        zoom = await open_zoom(pilot, app, "burst")
        await wait_for(pilot, lambda: zoom.view.visible_lines()[-2:] == ["burst 299999", "DONE"], message="the end")
        assert not zoom.index.complete  # opened on its end: the start is indexed when it is needed
        zoom.view.scroll_to(y=40, animate=False)  # scrolling up near the first indexed line...
        before = await wait_for(pilot, lambda: zoom.view.visible_lines(), message="lines up there")
        await wait_for(pilot, lambda: zoom.index.complete, timeout=30, message="...indexes the start")
        assert zoom.index.lines == 300_001
        await wait_for(pilot, lambda: zoom.view.visible_lines() == before, message="the same lines, renumbered")
        await pilot.press("g")
        await wait_for(pilot, lambda: zoom.view.visible_lines()[:2] == ["burst 000000", "burst 000001"],
                       message="the first lines")
        zoom.view.scroll_to(y=150_000, animate=False)
        await wait_for(pilot, lambda: zoom.view.visible_lines()[:1] == ["burst 150000"], message="the middle")
        await pilot.press("G")
        await wait_for(pilot, lambda: zoom.view.visible_lines()[-2:] == ["burst 299999", "DONE"], message="the end")
        assert len(zoom.view.texts) < 10 * 40 and len(zoom.view._cache) <= CACHE_LINES


async def test_the_search_count_stays_put_while_a_progress_line_redraws(fleet: Fleet, tmp_path: Path) -> None:
    code = ("import time, itertools\nprint('target reached once', flush=True)\n"
            "for i in itertools.count():\n print(f'\\rtarget {i % 100}%', end='', flush=True); time.sleep(0.05)")
    fleet.spawn("progress", command=f"{PY} -u -c \"{code}\"")
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        path = fleet.layout.session_log("progress")
        await wait_for(pilot, lambda: path.exists() and b"target 5%" in path.read_bytes(), message="progress")
        zoom = await open_zoom(pilot, app, "progress")
        await pilot.press("slash", *"target", "enter")
        status = lambda: str(zoom.query_one("#search-status").content)  # noqa: E731
        await wait_for(pilot, lambda: status() == "/target: 1 of 1 (n/N)", message="one match, the finished line")
        seen = set()
        size = path.stat().st_size
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:  # the live line keeps changing; the count does not
            await pilot.pause(0.05)
            seen.add(status())
        assert seen == {"/target: 1 of 1 (n/N)"} and path.stat().st_size > size + 100
        await wait_for(pilot, lambda: any(line.startswith("target ") and line.endswith("%")
                                          for line in zoom.view.visible_lines()),
                       message="the live progress line is shown (rendered in a worker: it may lag a frame)")


async def test_a_huge_log_opens_on_its_end_at_once_and_indexes_its_start_when_needed(fleet: Fleet,
                                                                                    tmp_path: Path) -> None:
    fleet.spawn("huge", command="sleep 3600")
    log = fleet.layout.session_log("huge")
    text = b"".join(b"line %06d of a long session log %s\n" % (i, b"x" * 40) for i in range(4000))
    with open(log, "r+b") as handle:  # 512 MiB, sparse: as the big-log benchmark writes it
        handle.truncate((1 << 29) - len(text))
        handle.seek(0, os.SEEK_END)
        handle.write(text)
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        zoom = await open_zoom(pilot, app, "huge")
        started = time.monotonic()
        await wait_for(pilot, lambda: any("line 003999" in line for line in zoom.view.visible_lines()),
                       message="the end")
        assert time.monotonic() - started < 2.0
        assert not zoom.index.complete
        await pilot.press("slash", *"line 000001 ", "enter")  # a match in the part not indexed yet:
        await wait_for(pilot, lambda: status(app) == "/line 000001 : 1 of 1 (n/N)", timeout=30, message="found")
        await wait_for(pilot, lambda: zoom.index.complete, timeout=30, message="the start indexed to show it")
        await wait_for(pilot, lambda: any(r.startswith("line 000001 ") for r in shown(app)), message="shown")
        await pilot.press("G", "g")  # g goes to line 1
        await wait_for(pilot, lambda: zoom.view.visible_lines()[:1] and
                       zoom.view.visible_lines()[0].endswith("line 000000 of a long session log " + "x" * 40),
                       message="line 1: the NUL bytes and the first text")


def test_match_list_grows_at_both_ends_and_keeps_its_order() -> None:
    from cockpit.ui.logview import MatchList
    matches = MatchList()
    matches.add_older([(500, 3, 5), (500, 0, 2), (300, 1, 4)])  # found backwards: newest first
    matches.add_older([(100, 0, 1)])
    matches.add_newer([(900, 2, 3), (950, 0, 1)])  # found in lines written since
    ordered = [matches[i] for i in range(len(matches))]
    assert ordered == [(100, 0, 1), (300, 1, 4), (500, 0, 2), (500, 3, 5), (900, 2, 3), (950, 0, 1)]
    assert [matches.index(m) for m in ordered] == list(range(6)) and matches[-1] == (950, 0, 1)
    assert sorted(matches.on_line(500)) == [(0, 2), (3, 5)] and matches.on_line(900) == [(2, 3)]
    assert matches.on_line(400) == []
