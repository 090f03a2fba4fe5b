"""Pilot tests of review and merge in the TUI (``v`` diff view, ``m`` merge queue) against real
git and tmux: what the diff view lists and shows, a merge landing on main, and a 1,000-file
change that opens without freezing the app."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from textual.widgets import OptionList, Static

from cockpit.core.agent import Agent
from cockpit.core.fleet import Fleet
from cockpit.ui.app import make_app
from cockpit.ui.dialogs import ConfirmDialog
from cockpit.ui.diffview import DiffScreen, colour_patch
from cockpit.ui.help import HelpScreen
from cockpit.ui.subtitle import subtitle_parts
from cockpit.ui.zoom import ZoomScreen
from conftest import PY, git, sleeper
from ui_support import focus, tiles, wait_for

pytestmark = pytest.mark.tmux


def app_for(fleet: Fleet, tmp_path: Path):
    return make_app(fleet, clock=None, include_user_themes=False, user_config=tmp_path / "none.toml")


def file_list(screen: DiffScreen) -> list[str]:
    options = screen.query_one(OptionList)
    return [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]


def patch_text(screen: DiffScreen) -> str:
    return str(screen.query_one("#diff-patch", Static).content)


async def test_diff_view_lists_committed_uncommitted_and_untracked_work(fleet: Fleet, tmp_path: Path) -> None:
    fleet.spawn("editor", command=sleeper())
    wt = fleet.layout.worktree("editor")
    (wt / "committed.txt").write_text("one\ntwo\n")
    git(wt, "add", "committed.txt")
    git(wt, "commit", "-qm", "editor: committed work")
    (wt / "src" / "app.py").write_text("print('changed')\n")  # uncommitted
    (wt / "untracked.txt").write_text("new\n")
    (wt / "blob.bin").write_bytes(b"\x00\x01\x02binary")
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await focus(pilot, app, "editor")
        await pilot.press("v")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen) and app.screen, message="diff view")
        await wait_for(pilot, lambda: len(file_list(screen)) == 4, message="the file list")
        listed = file_list(screen)
        assert any("committed.txt" in row and "+2" in row for row in listed), listed
        assert any("src/app.py" in row and "+1" in row and "-1" in row for row in listed), listed
        assert any("untracked.txt" in row for row in listed), listed
        assert any("blob.bin" in row and "bin" in row for row in listed), listed
        # the first file (git's path order: blob.bin) is selected; move to committed.txt
        await wait_for(pilot, lambda: screen.shown == "blob.bin", message="first patch")
        await pilot.press("down")
        await wait_for(pilot, lambda: screen.shown == "committed.txt", message="committed.txt's patch")
        assert "+one" in patch_text(screen) and "+two" in patch_text(screen)
        await pilot.press("down")
        await wait_for(pilot, lambda: screen.shown == "src/app.py", message="app.py's patch")
        assert "-print('app')" in patch_text(screen) and "+print('changed')" in patch_text(screen)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, DiffScreen), message="diff view closed")
        await pilot.press("v")
        await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen), message="diff view again")
        await pilot.press("q")  # closes the view, does not quit the app
        await wait_for(pilot, lambda: not isinstance(app.screen, DiffScreen), message="closed by q")
        assert app.is_running and app.reported == []
        await pilot.press("z", "v")  # from the zoomed tile too; closing goes back to the zoom
        await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen), message="diff from the zoom")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ZoomScreen), message="back to the zoom")
        titles = {command.title for command in app.palette_commands()}
        assert {"diff editor", "merge editor"} <= titles


async def test_merge_key_lands_a_committed_change_on_main(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    fleet.spawn("lander", command=sleeper())
    fleet.spawn("other", command=sleeper())
    wt = fleet.layout.worktree("lander")
    (wt / "feature.txt").write_text("the feature\n")
    git(wt, "add", "feature.txt")
    git(wt, "commit", "-qm", "lander: the feature")
    before = git(repo, "rev-parse", "main")
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await focus(pilot, app, "lander")
        await pilot.press("m")  # asks first, saying what lands where
        dialog = await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog) and app.screen, message="asks")
        text = " ".join(str(s.content) for s in dialog.query(Static))
        assert "1 commit(s) of cockpit/lander land on main" in text and "lander: the feature" in text
        assert git(repo, "rev-parse", "main") == before and fleet.agent("lander").state == "running"
        await pilot.press("tab", "enter")  # Merge
        await wait_for(pilot, lambda: tiles(app)["lander"].agent.state == "merged", timeout=60, message="merged")
        assert "merged" in str(tiles(app)["lander"].border_subtitle)
        assert git(repo, "rev-parse", "main") != before
        assert (repo / "feature.txt").read_text() == "the feature\n"  # the main checkout moved too
        # the other agent's tile now says base moved under it
        await wait_for(pilot, lambda: "base +1" in str(tiles(app)["other"].border_subtitle), timeout=30,
                       message="base +1 on the other tile")
        assert app.reported == []


async def test_merge_key_on_a_waiting_agent_with_nothing_committed_changes_nothing(
        fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    fleet.spawn("asker", command=f"{PY} -c \"input('[y/N] ')\"; sleep 3600")
    events = fleet.layout.events
    app = make_app(fleet, include_user_themes=False, user_config=tmp_path / "none.toml", poll_interval=0.2)
    shown: list[str] = []
    async with app.run_test(size=(140, 40)) as pilot:
        original = app.notify

        def record(message, *args, **kwargs):
            shown.append(str(message))
            return original(message, *args, **kwargs)

        app.notify = record  # type: ignore[method-assign]
        await focus(pilot, app, "asker")
        header = app.query_one("#header")
        await wait_for(pilot, lambda: "1 waiting" in str(header.content), message="1 waiting in the header")
        before = events.read_bytes()
        await pilot.press("m")
        await wait_for(pilot, lambda: any("nothing to merge" in m for m in shown), message="says so at once")
        assert "asker: nothing to merge: nothing committed on its branch" in shown
        assert not isinstance(app.screen, ConfirmDialog)
        assert b"merge.queued" not in events.read_bytes()[len(before):]
        await pilot.pause(0.6)  # a few polls later: still waiting, still running
        assert "1 waiting" in str(header.content)
        tile = tiles(app)["asker"]
        assert (tile.agent.state, tile.agent.activity) == ("running", "waiting")
        assert "waiting" in str(tile.border_subtitle)
        assert app.reported == []


async def test_a_merge_state_shows_beside_the_activity(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    from cockpit.core.queue import MergeQueue, enqueue
    fleet.spawn("asker", command=f"{PY} -c \"input('[y/N] ')\"; sleep 3600")
    enqueue(fleet, ["asker"])  # as `cockpit merge asker` from another terminal does
    MergeQueue(fleet).run()
    app = make_app(fleet, include_user_themes=False, user_config=tmp_path / "none.toml", poll_interval=0.2)
    async with app.run_test(size=(160, 40)) as pilot:
        tile = await focus(pilot, app, "asker")
        await wait_for(pilot, lambda: tile.agent.activity == "waiting", message="waiting")
        assert "blocked: nothing to merge" in str(tile.border_subtitle)
        await wait_for(pilot, lambda: "waiting" in str(tile.border_subtitle).split("nothing to merge")[-1],
                       message="the activity beside the merge state")
        await wait_for(pilot, lambda: "1 waiting" in str(app.query_one("#header").content), message="header")


async def test_a_thousand_file_diff_opens_without_blocking(fleet: Fleet, tmp_path: Path) -> None:
    fleet.spawn("big", command=sleeper())
    wt = fleet.layout.worktree("big")
    (wt / "many").mkdir()
    for index in range(1000):
        (wt / "many" / f"file{index:04d}.txt").write_text(f"line {index}\n" * 20)
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await focus(pilot, app, "big")
        started = time.monotonic()
        await pilot.press("v", "question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), message="help over the diff view")
        assert time.monotonic() - started < 5
        await pilot.press("escape")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen) and app.screen, message="diff")
        await wait_for(pilot, lambda: len(screen.files) == 1000, timeout=30, message="1,000 files listed")
        await pilot.press("end")
        await wait_for(pilot, lambda: screen.shown == "many/file0999.txt", message="the last file's patch")
        assert "+line 999" in patch_text(screen)
        assert len(screen.patches) < 50  # patches are computed on demand, not all 1,000
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, DiffScreen), message="closed")


def make_agent(name: str, state: str, merge: dict) -> Agent:
    return Agent(name=name, state=state, attempt=1, failures=0, max_failures=2, exit_code=None,
                 branch=f"cockpit/{name}", worktree="", log="", base="main", base_sha="", task="", command="",
                 scope=[], after=[], tmux_socket="", tmux_session=name, last_activity=None, state_since="",
                 merge=merge)


def test_subtitle_shows_merge_states_with_their_reason_and_base_moved() -> None:
    agent = make_agent("a", "conflict", {"reason": "conflict", "paths": ["a.txt"]})
    parts = subtitle_parts(agent, None, None, base_moved=3)
    assert "conflict: a.txt" in parts[0]
    assert any("base +3" in part for part in parts)
    blocked = make_agent("b", "blocked", {"reason": "uncommitted changes: x"})
    assert "blocked: uncommitted changes: x" in subtitle_parts(blocked, None, None)[0]
    assert not any("base +" in part for part in subtitle_parts(blocked, None, None))


def test_colour_patch_survives_undecodable_bytes_and_long_patches() -> None:
    text = colour_patch("+ok \udcff\n" + "+x\n" * 10, max_lines=5)
    assert "\ufffd" in text.plain and "more lines" in text.plain


async def test_header_shows_the_merge_queue_in_order(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    from cockpit.core import queue as merge_queue
    fleet.spawn("first", command="sleep 3600")
    fleet.spawn("second", command="sleep 3600")
    merge_queue.enqueue(fleet, ["second", "first"])
    runner = merge_queue.QueueLock(merge_queue.lock_path(fleet))  # another process is running the queue:
    assert runner.acquire()                                          # the app must not drain it meanwhile
    try:
        app = app_for(fleet, tmp_path)
        async with app.run_test(size=(160, 30)) as pilot:
            await wait_for(pilot, lambda: "merge queue: second → first" in str(app.query_one("#header").content),
                           message="the queue in the header")
    finally:
        runner.release()
