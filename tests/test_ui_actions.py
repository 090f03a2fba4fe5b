"""Pilot tests of the agent keys against the real engine: real git, real tmux on a private socket."""

from __future__ import annotations

import contextlib
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from cockpit.core import processes
from cockpit.core.fleet import Fleet
from cockpit.ui.app import make_app
from cockpit.ui.dialogs import ConfirmDialog, DiscardDialog, NewAgentDialog, RespawnDialog
from conftest import sleeper, tree_hashes, wait_until
from ui_support import agent_state, focus, tile_text, tiles, wait_for

pytestmark = pytest.mark.tmux


def app_for(fleet: Fleet, tmp_path: Path, **kwargs):
    return make_app(fleet, clock=None, include_user_themes=False, user_config=tmp_path / "none.toml", **kwargs)


def tree_states(fleet: Fleet, name: str) -> list[str | None]:
    pane = fleet.tmux.pane(name)
    assert pane is not None and pane.pid
    return [processes.state(pid) for pid in processes.descendants(pane.pid)]


async def stays_constant(pilot, read, seconds: float) -> None:
    """Assert ``read()`` does not change for ``seconds`` (a window, polled, not one sleep)."""
    first = read()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await pilot.pause(0.05)
        assert read() == first


async def test_pause_freezes_the_processes_and_resume_thaws_them(fleet: Fleet, tmp_path: Path) -> None:
    fleet.spawn("chatty", command=sleeper("chatty"))
    fleet.spawn("other", command=sleeper("other"))
    log = fleet.layout.session_log("chatty")
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await focus(pilot, app, "chatty")
        await wait_for(pilot, lambda: "chatty 3" in tile_text(app, "chatty"), message="chatty's output")
        await pilot.press("p")
        await wait_for(pilot, lambda: agent_state(app, "chatty") == "paused", message="paused state")
        states = tree_states(fleet, "chatty")
        assert states and all(s == "T" for s in states), states
        await stays_constant(pilot, lambda: log.stat().st_size, 0.6)
        assert all(s != "T" for s in tree_states(fleet, "other"))
        await pilot.press("p")
        await wait_for(pilot, lambda: agent_state(app, "chatty") == "running", message="resumed state")
        size = log.stat().st_size
        await wait_for(pilot, lambda: log.stat().st_size > size, message="output after resume")
        assert all(s != "T" for s in tree_states(fleet, "chatty"))
        assert app.reported == []


async def test_kill_asks_first_and_cancel_keeps_the_agent(fleet: Fleet, tmp_path: Path) -> None:
    fleet.spawn("victim", command=sleeper())
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await focus(pilot, app, "victim")
        await pilot.press("x")
        dialog = await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog) and app.screen)
        assert app.focused is dialog.query_one("#cancel")
        await pilot.press("enter")  # Cancel
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmDialog))
        assert fleet.tmux.has_session("victim")
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("tab", "enter")  # Kill
        await wait_for(pilot, lambda: agent_state(app, "victim") == "killed", message="killed")
        assert not fleet.tmux.has_session("victim")
        assert Path(fleet.layout.worktree("victim")).is_dir()


async def test_discard_removes_only_that_worktree_and_branch(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    fleet.spawn("doomed", command=sleeper())
    fleet.spawn("keeper", command=sleeper())
    doomed_wt, keeper_wt = fleet.layout.worktree("doomed"), fleet.layout.worktree("keeper")
    (doomed_wt / "scratch.txt").write_text("work in progress\n")
    (keeper_wt / "mine.txt").write_text("keep me\n")
    before_keeper, before_root = tree_hashes(keeper_wt), tree_hashes(repo)
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await focus(pilot, app, "doomed")
        await pilot.press("d")
        dialog = await wait_for(pilot, lambda: isinstance(app.screen, DiscardDialog) and app.screen)
        assert "scratch.txt" in str(dialog.query_one("#uncommitted").content)
        assert "refs/cockpit/archive/doomed/1" in str(dialog.query_one("#archive").content)
        assert app.focused is dialog.query_one("#cancel")
        await pilot.press("tab", "enter")
        await wait_for(pilot, lambda: "doomed" not in tiles(app), message="tile removed")
        assert "keeper" in tiles(app)
    assert not doomed_wt.exists()
    branches = subprocess.run(["git", "branch", "--list"], cwd=repo, capture_output=True, text=True).stdout
    assert "cockpit/doomed" not in branches and "cockpit/keeper" in branches
    assert subprocess.run(["git", "rev-parse", "--verify", "refs/cockpit/archive/doomed/1"], cwd=repo,
                          capture_output=True).returncode == 0
    assert tree_hashes(keeper_wt) == before_keeper
    assert tree_hashes(repo) == before_root
    assert fleet.tmux.has_session("keeper")


async def test_respawn_counts_attempts_and_refuses_a_halted_agent(fleet: Fleet, tmp_path: Path) -> None:
    fleet.spawn("flaky", command="echo trying; exit 1", task="fix it")
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        tile = await focus(pilot, app, "flaky")
        await wait_for(pilot, lambda: tile.agent.state == "failed", message="first failure")
        assert "try 1 (1/2 fail)" in tile.border_subtitle  # the notation of ls's TRY column
        ls = subprocess.run([sys.executable, "-m", "cockpit", "ls"], cwd=fleet.root, capture_output=True, text=True)
        assert "1 (1/2 fail)" in ls.stdout.splitlines()[1]
        await pilot.press("r")
        dialog = await wait_for(pilot, lambda: isinstance(app.screen, RespawnDialog) and app.screen)
        assert "attempt 1 → 2" in str(dialog.query_one("#title").content)
        await pilot.press("enter")  # submit the task as is: fresh worktree
        await wait_for(pilot, lambda: tiles(app)["flaky"].agent.attempt == 2, message="attempt 2")
        tile = tiles(app)["flaky"]
        await wait_for(pilot, lambda: tile.agent.state == "halted", message="halted after the second failure")
        await pilot.press("r")
        dialog = await wait_for(pilot, lambda: isinstance(app.screen, RespawnDialog) and app.screen)
        await pilot.press("enter")  # same task, no force: refused inside the dialog
        await wait_for(pilot, lambda: "Refused" in str(dialog.query_one("#problem").content))
        assert app.screen is dialog
        dialog.query_one("#task").value = "fix it, differently"
        await pilot.press("enter")
        await wait_for(pilot, lambda: tiles(app)["flaky"].agent.attempt == 3, message="attempt 3 (replan)")
    assert fleet.agent("flaky").task == "fix it, differently"


async def test_new_agent_form_spawns_and_focuses_it(fleet: Fleet, tmp_path: Path) -> None:
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("n")
        dialog = await wait_for(pilot, lambda: isinstance(app.screen, NewAgentDialog) and app.screen)
        await pilot.press("B", "a", "d", "enter")  # invalid name: the form stays
        await wait_for(pilot, lambda: "invalid agent name" in str(dialog.query_one("#problem").content))
        dialog.query_one("#name").value = "fresh"
        dialog.query_one("#command").value = "echo hello-from-fresh; sleep 3600"
        dialog.query_one("#task").value = "say hello"
        dialog.query_one("#scope").value = "src/**"
        await pilot.click("#confirm")
        tile = await wait_for(pilot, lambda: tiles(app).get("fresh"), message="new tile")
        await wait_for(pilot, lambda: app.focused is tile, message="focus on the new tile")
        await wait_for(pilot, lambda: "hello-from-fresh" in tile_text(app, "fresh"), message="its output")
    agent = fleet.agent("fresh")
    assert agent.task == "say hello" and agent.scope == ["src/**"]


async def test_attach_suspends_runs_the_attach_command_and_returns(fleet: Fleet, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    fleet.spawn("asker", command=sleeper())
    calls: list[tuple[list[str], dict[str, str]]] = []

    def runner(argv: list[str], env: dict[str, str]) -> int:
        calls.append((argv, env))
        return 0

    monkeypatch.delenv("TMUX", raising=False)
    app = app_for(fleet, tmp_path, attach_runner=runner)
    suspended: list[bool] = []

    @contextlib.contextmanager
    def fake_suspend():  # headless drivers cannot suspend; the real terminal is tested in test_ui_tmux
        suspended.append(True)
        yield

    async with app.run_test(size=(100, 30)) as pilot:
        app.suspend = fake_suspend  # type: ignore[method-assign]
        await focus(pilot, app, "asker")
        await pilot.press("enter")
        await wait_for(pilot, lambda: calls, message="attach runner")
        argv, env = calls[0]
        assert argv == fleet.attach_argv("asker")
        assert "TMUX" not in env and suspended == [True]
        await pilot.press("a")
        await wait_for(pilot, lambda: len(calls) == 2, message="second attach via 'a'")
        await pilot.press("p")  # the app is alive and still acts
        await wait_for(pilot, lambda: agent_state(app, "asker") == "paused", message="paused after attach")
        assert app.reported == []


async def test_attach_inside_tmux_opens_a_popup_of_the_users_tmux(fleet: Fleet, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside the user's tmux a nested attach would lose C-b d to the outer tmux: the agent opens
    in a popup of the user's tmux instead, and the app is not suspended (the grid stays behind)."""
    fleet.spawn("asker", command=sleeper())
    outer = f"/tmp/cockpit-test-outer-{uuid.uuid4().hex[:8]}"  # the user's tmux, with a client in a terminal
    terminal = outer + "-term"
    subprocess.run(["tmux", "-S", outer, "-f", "/dev/null", "new-session", "-d", "-s", "user", "sleep 600"], check=True)
    subprocess.run(["tmux", "-S", terminal, "-f", "/dev/null", "new-session", "-d", "-s", "term",
                    f"env -u TMUX tmux -S {outer} attach -t =user"], check=True)
    wait_until(lambda: "user" in subprocess.run(["tmux", "-S", outer, "list-clients", "-F", "#{session_name}"],
                                                capture_output=True, text=True).stdout, message="the user's client")
    pid = subprocess.run(["tmux", "-S", outer, "display-message", "-p", "#{pid}"], capture_output=True, text=True,
                         check=True).stdout.strip()
    calls: list[tuple[list[str], dict[str, str]]] = []

    def runner(argv: list[str], env: dict[str, str]) -> int:
        calls.append((argv, env))
        return 0

    monkeypatch.setenv("TMUX", f"{outer},{pid},0")
    app = app_for(fleet, tmp_path, attach_runner=runner)
    suspended: list[bool] = []

    @contextlib.contextmanager
    def fake_suspend():
        suspended.append(True)
        yield

    try:
        async with app.run_test(size=(100, 30)) as pilot:
            app.suspend = fake_suspend  # type: ignore[method-assign]
            await focus(pilot, app, "asker")
            await pilot.press("enter")
            await wait_for(pilot, lambda: calls, message="attach runner")
            argv, env = calls[0]
            assert argv[:3] == ["tmux", "display-popup", "-E"] and "detach: C-b d" in " ".join(argv)
            assert shlex.split(argv[-1]) == ["env", "-u", "TMUX", "-u", "TMUX_PANE", *fleet.attach_argv("asker")]
            assert env["TMUX"].startswith(outer) and suspended == []
            assert app.reported == []
    finally:
        for socket in (terminal, outer):
            subprocess.run(["tmux", "-S", socket, "kill-server"], capture_output=True)
            Path(socket).unlink(missing_ok=True)


async def test_attach_without_a_terminal_is_an_error_not_a_crash(fleet: Fleet, tmp_path: Path) -> None:
    fleet.spawn("asker", command=sleeper())
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await focus(pilot, app, "asker")
        await pilot.press("enter")
        await wait_for(pilot, lambda: any("attach from another one" in m for m in app.reported))
        assert app.is_running


async def test_engine_errors_become_notifications(fleet: Fleet, tmp_path: Path) -> None:
    import shutil
    fleet.spawn("gone", command=sleeper())
    fleet.kill("gone")
    shutil.rmtree(fleet.layout.worktree("gone"))  # deleted by hand: respawn --keep has nothing to keep
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        tile = await focus(pilot, app, "gone")
        await wait_for(pilot, lambda: tile.agent.state == "missing", message="missing")
        await pilot.press("r")
        dialog = await wait_for(pilot, lambda: isinstance(app.screen, RespawnDialog) and app.screen)
        dialog.query_one("#keep").value = True
        await pilot.click("#confirm")
        await wait_for(pilot, lambda: any("has no worktree" in m for m in app.reported), message="error toast")
        assert app.is_running
        await pilot.press("z")  # still responsive
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ZoomScreen")


async def test_keys_that_cannot_apply_say_why_at_once(fleet: Fleet, tmp_path: Path) -> None:
    fleet.spawn("dead", command=sleeper())
    fleet.kill("dead")
    fleet.spawn("broken", command="echo bye; exit 3")
    fleet.spawn("live", command=sleeper())
    app = app_for(fleet, tmp_path)
    shown: list[str] = []
    async with app.run_test(size=(120, 30)) as pilot:
        original = app.notify

        def record(message, *args, **kwargs):
            shown.append(str(message))
            return original(message, *args, **kwargs)

        app.notify = record  # type: ignore[method-assign]
        await focus(pilot, app, "dead")
        for key, says in (("x", "dead is not running (killed): nothing to kill"),
                          ("p", "dead is not running (killed): nothing to pause"),
                          ("a", "dead has no terminal any more (killed)"),
                          ("s", "dead has no terminal any more (killed)")):
            await pilot.press(key)
            await wait_for(pilot, lambda: any(says in m for m in shown), message=f"{key}: {says}")
            assert not isinstance(app.screen, ConfirmDialog)
            assert tiles(app)["dead"].view == "log"
        tile = await focus(pilot, app, "broken")
        await wait_for(pilot, lambda: tile.agent.state == "failed", message="broken failed")
        await pilot.press("F")
        await wait_for(pilot, lambda: any("broken has already failed" in m for m in shown), message="F refused")
        assert not isinstance(app.screen, ConfirmDialog) and fleet.agent("broken").failures == 1
        titles = {c.title for c in app.palette_commands()}
        assert {"kill live", "pause live", "fail live", "fail dead", "respawn dead", "discard dead"} <= titles
        assert not titles & {"kill dead", "pause dead", "resume dead", "attach dead", "resume live",
                             "fail broken", "kill broken"}
        assert app.reported == []


async def test_quit_leaves_agents_running(fleet: Fleet, tmp_path: Path) -> None:
    fleet.spawn("stay", command=sleeper())
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await focus(pilot, app, "stay")
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, message="exit")
    assert fleet.agent("stay").state == "running"


async def test_mark_failed_with_F_counts_towards_the_failure_rule(fleet: Fleet, tmp_path: Path) -> None:
    fleet.spawn("flaky", command=sleeper())
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await focus(pilot, app, "flaky")
        await pilot.press("F")
        dialog = await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog) and app.screen)
        assert app.focused is dialog.query_one("#cancel")
        await pilot.press("tab", "enter")
        await wait_for(pilot, lambda: agent_state(app, "flaky") == "failed", message="marked failed")
        assert fleet.agent("flaky").failures == 1 and not fleet.tmux.has_session("flaky")


async def test_new_agent_form_stays_open_on_a_duplicate_name_or_a_missing_command(
        fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    fleet.spawn("taken", command=sleeper())
    (repo / "cockpit.toml").write_text('[[agent]]\nname = "configured"\ncommand = "echo from-config; sleep 3600"\n')
    subprocess.run(["git", "branch", "cockpit/blocked"], cwd=repo, check=True)  # the engine will refuse this one
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: "taken" in tiles(app), message="tile")
        await pilot.press("n")
        dialog = await wait_for(pilot, lambda: isinstance(app.screen, NewAgentDialog) and app.screen)
        problem = lambda: str(dialog.query_one("#problem").content)  # noqa: E731
        dialog.query_one("#name").value = "taken"
        dialog.query_one("#command").value = "echo mine"
        dialog.query_one("#task").value = "my task"
        await pilot.press("enter")
        await wait_for(pilot, lambda: "already exists" in problem(), message="duplicate refused in the form")
        assert app.screen is dialog and dialog.query_one("#task").value == "my task"
        dialog.query_one("#name").value = "newbie"
        dialog.query_one("#command").value = ""
        await pilot.press("enter")
        await wait_for(pilot, lambda: "give a command" in problem(), message="missing command refused in the form")
        assert app.screen is dialog and "--" not in problem() and dialog.query_one("#task").value == "my task"
        assert app.focused is dialog.query_one("#command")
        dialog.query_one("#name").value = "blocked"
        dialog.query_one("#command").value = "echo never"
        await pilot.press("enter")  # valid in the form; the engine refuses: the form comes back, filled in
        again = await wait_for(pilot, lambda: isinstance(app.screen, NewAgentDialog) and app.screen is not dialog
                               and app.screen, message="the form again")
        assert "cockpit/blocked" in str(again.query_one("#problem").content)
        assert (again.query_one("#name").value, again.query_one("#command").value,
                again.query_one("#task").value) == ("blocked", "echo never", "my task")
        again.query_one("#name").value = "configured"  # no command needed: cockpit.toml has it
        again.query_one("#command").value = ""
        await pilot.press("enter")
        await wait_for(pilot, lambda: "from-config" in tile_text(app, "configured"), message="spawned from config")


async def test_a_zoom_closes_when_its_agent_is_discarded_from_another_terminal(fleet: Fleet, repo: Path,
                                                                                tmp_path: Path) -> None:
    from cockpit.ui.diffview import DiffScreen
    from cockpit.ui.zoom import ZoomScreen
    fleet.spawn("doomed", command=sleeper())
    fleet.spawn("other", command=sleeper())
    app = app_for(fleet, tmp_path, poll_interval=0.2)
    async with app.run_test(size=(120, 30)) as pilot:
        await focus(pilot, app, "doomed")
        await pilot.press("z", "v")  # the zoom, and the diff view over it
        await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen), message="diff over the zoom")
        assert any(isinstance(s, ZoomScreen) for s in app.screen_stack)
        subprocess.run([sys.executable, "-m", "cockpit", "discard", "doomed", "--yes"], cwd=repo, check=True,
                       capture_output=True)
        await wait_for(pilot, lambda: "doomed" not in tiles(app), message="tile removed")
        await wait_for(pilot, lambda: len(app.screen_stack) == 1, message="zoom and diff closed")
        assert not any(isinstance(s, (ZoomScreen, DiffScreen)) for s in app.screen_stack)
        await pilot.press("z")  # the app goes on: zoom the other agent
        screen = await wait_for(pilot, lambda: isinstance(app.screen, ZoomScreen) and app.screen, message="zoom")
        assert screen.tile.agent.name == "other"


async def test_respawn_choices_differ_without_colour(fleet: Fleet, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from ui_support import screen_rows
    monkeypatch.setenv("NO_COLOR", "1")
    fleet.spawn("flaky", command="exit 1")
    wait_until(lambda: fleet.agent("flaky").state == "failed", message="first failure")
    fleet.respawn("flaky")  # second failure: halted, so the dialog also shows the force box
    wait_until(lambda: fleet.agent("flaky").state == "halted", message="halted")
    app = app_for(fleet, tmp_path)
    assert app.no_color

    def row(text: str) -> str:
        return next(r for r in screen_rows(app) if text in r)

    async with app.run_test(size=(120, 40)) as pilot:
        tile = await focus(pilot, app, "flaky")
        await wait_for(pilot, lambda: tile.agent.process == "halted", message="halted")
        await pilot.press("r")
        dialog = await wait_for(pilot, lambda: isinstance(app.screen, RespawnDialog) and app.screen)
        await pilot.pause(0.2)
        assert "●" in row("fresh: archive") and "●" not in row("keep: same worktree")
        assert "○" in row("keep: same worktree")
        assert "X" not in row("force (respawn")
        dialog.query_one("#keep").value = True
        dialog.query_one("#force").value = True
        await pilot.pause(0.2)
        assert "●" in row("keep: same worktree") and "●" not in row("fresh: archive")
        assert "X" in row("force (respawn")


async def test_a_typo_in_cockpit_toml_at_start_is_said_once(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    """The TUI reads cockpit.toml for its theme and keys, and every poll reads it again: a typo
    found at start was said twice, once as a warning and once as an error."""
    fleet.spawn("busy", command="sleep 600")
    (repo / "cockpit.toml").write_text("[cockpit]\nbase = \n")
    app = app_for(fleet, tmp_path)
    said: list[str] = []
    notify = app.notify

    def counting(message, **kwargs):  # type: ignore[no-untyped-def]
        said.append(str(message))
        return notify(message, **kwargs)

    app.notify = counting  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.polls >= 4, message="four polls")
    assert [m for m in said if "cockpit.toml:2: invalid TOML" in m] == [said[0]], said


async def test_a_typo_in_cockpit_toml_does_not_take_the_agent_keys_away(fleet: Fleet, repo: Path,
                                                                       tmp_path: Path) -> None:
    """cockpit.toml edited while agents run, with a typo: the keys on an agent running here still
    work (where it runs is in its record, not in the file), and the typo is said."""
    fleet.spawn("busy", command=sleeper("busy"))
    app = app_for(fleet, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await focus(pilot, app, "busy")
        await wait_for(pilot, lambda: "busy 2" in tile_text(app, "busy"), message="busy's output")
        (repo / "cockpit.toml").write_text("[cockpit]\nbase = \n")
        await pilot.press("p")
        await wait_for(pilot, lambda: agent_state(app, "busy") == "paused", message="paused despite the typo")
        assert all(s == "T" for s in tree_states(fleet, "busy"))
        await pilot.press("p")
        await wait_for(pilot, lambda: agent_state(app, "busy") == "running", message="resumed despite the typo")
        await wait_for(pilot, lambda: any("cockpit.toml:2: invalid TOML" in r for r in app.reported),
                       message="the typo said")
