"""A worktree an agent can work in, end to end: .worktreeinclude, setup in the agent's pane,
teardown and stop, a port block per agent. Real git, real tmux, real sockets, real processes."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from cockpit.core import ports, processes, sandbox
from cockpit.core.errors import CockpitError
from cockpit.core.fleet import Fleet
from conftest import PY, git, sleeper, tree_hashes, wait_until

pytestmark = pytest.mark.tmux


@pytest.fixture
def project(repo: Path) -> Path:
    """A repository as a real project has it: an ignored .env in the main checkout, listed in
    .worktreeinclude."""
    (repo / ".gitignore").write_text(".env\n*.local\n")
    (repo / ".worktreeinclude").write_text(".env\n")
    git(repo, "add", ".gitignore", ".worktreeinclude")
    git(repo, "commit", "-qm", "ignore .env; include it in worktrees")
    (repo / ".env").write_text("DATABASE_URL=postgres://localhost/dev\n")
    return repo


def configure(root: Path, text: str) -> None:
    (root / "cockpit.toml").write_text(text)


def log_text(fleet: Fleet, name: str) -> str:
    path = fleet.layout.session_log(name)
    return path.read_bytes().decode(errors="replace") if path.exists() else ""


def events(fleet: Fleet, name: str, kind: str | None = None) -> list:
    return [e for e in fleet.events.all() if e.agent == name and (kind is None or e.type == kind)]


def settled(fleet: Fleet, name: str) -> str:
    """Wait until the agent's process has ended and its exit is recorded; its state."""
    return wait_until(lambda: (a := fleet.agent(name)).state not in ("running", "paused") and a.state,
                      timeout=30, message=f"{name} to end")


# -- .worktreeinclude --------------------------------------------------------------------------------
def test_spawn_copies_included_ignored_files_and_leaves_tracked_ones(project: Path) -> None:
    fleet = Fleet(project)
    (project / "README.md").write_text("edited in the main checkout, not committed\n")  # tracked: never copied
    (project / "notes.local").write_text("ignored, but not listed\n")
    agent = fleet.spawn("web", command=sleeper("web"))
    wt = Path(agent.worktree)
    assert (wt / ".env").read_text() == "DATABASE_URL=postgres://localhost/dev\n"
    assert (wt / "README.md").read_text() == "hello\n" and not (wt / "notes.local").exists()
    assert git(wt, "status", "--porcelain") == ""  # the copy is ignored there too
    assert agent.included == 1 and fleet.agent("web").included == 1
    assert git(project, "status", "--porcelain") == "M README.md"  # the main checkout: as it was


def test_a_pattern_out_of_the_repository_refuses_the_spawn_and_creates_nothing(project: Path) -> None:
    fleet = Fleet(project)
    (project / ".worktreeinclude").write_text(".env\n../secrets/.env\n")
    with pytest.raises(CockpitError, match=r"\.worktreeinclude:2: '\.\./secrets/\.env' escapes the repository"):
        fleet.spawn("web", command=sleeper())
    assert not fleet.layout.worktree("web").exists() and not git(project, "branch", "--list", "cockpit/web")
    assert not fleet.tmux.has_session("web") and fleet.agents() == []


def test_the_pre_spawn_checklist_lists_included_files_and_ports(project: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from cockpit.core.checklist import run_checklist
    from cockpit.core.spec import AgentSpec
    configure(project, "[worktree]\nports = 2\n")
    fleet = Fleet(project)
    (project / ".worktreeinclude").write_text(".env\n.env.production\n")
    specs = [AgentSpec(name="a", command="x"), AgentSpec(name="b", command="x")]
    checklist = run_checklist(fleet, specs)
    items = {item.check: item for item in checklist.items if item.agent == "*"}
    assert checklist.passed
    assert items[".worktreeinclude"].detail == "1 ignored file(s) copied into each new worktree"
    assert items["free TCP ports"].detail == "2 block(s) of 2 port(s)"
    assert checklist.warnings == [".worktreeinclude:2: '.env.production' matches no ignored file of the main checkout"]
    (project / ".worktreeinclude").write_text("/etc/passwd\n")
    monkeypatch.setattr(ports, "PORT_RANGE", (1, 1))
    checklist = run_checklist(fleet, specs)
    failed = {item.check: item.detail for item in checklist.failures}
    assert "looks like an absolute path" in failed[".worktreeinclude"]
    assert failed["free TCP ports"].startswith("2 block(s) of 2 port(s): not enough free in 1-1")


def test_a_fresh_respawn_that_could_not_set_up_refuses_before_it_touches_the_worktree(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = Fleet(project)
    wt = Path(fleet.spawn("web", command="echo work > work.txt; sleep 60").worktree)
    wait_until(lambda: (wt / "work.txt").exists(), message="at work")
    (project / ".worktreeinclude").write_text("../elsewhere/.env\n")
    with pytest.raises(CockpitError, match="escapes the repository"):
        fleet.respawn("web")
    (project / ".worktreeinclude").write_text(".env\n")
    configure(project, "[worktree]\nports = 2\n")
    monkeypatch.setattr(ports, "PORT_RANGE", (1, 1))
    with pytest.raises(CockpitError, match="no block of 2 free TCP port"):
        fleet.respawn("web")
    agent = fleet.agent("web")  # untouched: same attempt, worktree, branch, process
    assert agent.state == "running" and agent.attempt == 1 and (wt / "work.txt").exists() and agent.archives == []
    assert not [e for e in events(fleet, "web") if e.type.startswith("respawn")]


# -- setup -----------------------------------------------------------------------------------------------
def test_setup_runs_in_the_pane_before_the_agent_with_its_environment(project: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    configure(project, f"""
[worktree]
setup = ["echo setting up; cat .env", "echo port=$COCKPIT_PORT", "while [ ! -e {go} ]; do sleep 0.05; done"]
ports = 2

[[agent]]
name = "web"
command = "echo agent starts; sleep 60"
""")
    fleet = Fleet(project)
    fleet.spawn("web")
    wait_until(lambda: fleet.agent("web").activity == "setup", message="activity setup")
    assert "agent starts" not in log_text(fleet, "web")
    go.touch()
    wait_until(lambda: "agent starts" in log_text(fleet, "web"), message="the agent after its setup")
    log = log_text(fleet, "web")
    port = fleet.agent("web").ports[0]
    assert "[cockpit] setup 1/3: echo setting up; cat .env" in log and "DATABASE_URL=postgres" in log
    assert f"port={port}" in log and log.index("setup done") < log.index("agent starts")
    wait_until(lambda: fleet.agent("web").activity not in ("setup", None), message="activity after setup")


def test_a_failing_setup_stops_there_and_counts_as_a_failure(project: Path) -> None:
    configure(project, """
[[agent]]
name = "web"
command = "touch agent-ran; sleep 60"

[agent.worktree]
setup = ["echo first", "exit 3", "echo never"]
""")
    fleet = Fleet(project)
    fleet.spawn("web")
    assert settled(fleet, "web") == "failed"
    agent = fleet.agent("web")
    assert agent.reason == "setup: exit 3 exited 3" and agent.exit_code == 3 and agent.failures == 1
    wt = Path(agent.worktree)
    assert wt.is_dir() and not (wt / "agent-ran").exists()  # kept for inspection; the agent never ran
    assert "never" not in log_text(fleet, "web").split("setup 3/3")[0] and "setup 3/3" not in log_text(fleet, "web")
    fleet.respawn("web")  # a fresh worktree: setup again, failing again -> the 2-failure rule
    wait_until(lambda: fleet.agent("web").state == "halted", timeout=30, message="halted after 2 failures")


def test_a_setup_that_never_ends_times_out_and_leaves_no_process(project: Path) -> None:
    configure(project, """
[worktree]
setup = ["sleep 1000 & echo $! > $TMPDIR/sleeper.pid; wait"]
setup_timeout = 1

[[agent]]
name = "web"
command = "sleep 60"
""")
    fleet = Fleet(project)
    started = time.monotonic()
    fleet.spawn("web")
    assert settled(fleet, "web") == "failed"
    assert time.monotonic() - started < 15
    assert fleet.agent("web").reason == "setup: sleep 1000 & echo $! > $TMPDIR/sleeper.pid; wait timed out " \
                                        "(setup_timeout = 1 s)"
    pid = int((fleet.layout.tmp_dir("web") / "sleeper.pid").read_text())
    wait_until(lambda: processes.state(pid) in (None, "Z"), message="the setup's child to be gone")


def test_a_setup_that_reads_stdin_gets_end_of_file_not_a_hang(project: Path) -> None:
    configure(project, """
[[agent]]
name = "cat"
command = "echo agent starts; sleep 60"
[agent.worktree]
setup = ["cat", "head -c 10 /dev/stdin; echo read-done"]

[[agent]]
name = "asks"
command = "sleep 60"
[agent.worktree]
setup = ["read answer"]
""")
    fleet = Fleet(project)
    fleet.spawn("cat")
    fleet.spawn("asks")
    wait_until(lambda: "agent starts" in log_text(fleet, "cat"), message="setup past cat")
    assert settled(fleet, "asks") == "failed" and fleet.agent("asks").reason == "setup: read answer exited 1"


def test_a_setup_that_deletes_its_worktree_fails_and_the_archive_holds(project: Path) -> None:
    configure(project, """
[[agent]]
name = "web"
command = "sleep 60"
[agent.worktree]
setup = ["cd .. && rm -rf \\"$COCKPIT_WORKTREE\\""]
""")
    fleet = Fleet(project)
    bystander = fleet.spawn("other", command=sleeper("other"))
    other = tree_hashes(Path(bystander.worktree))
    fleet.spawn("web")
    wait_until(lambda: events(fleet, "web", "exited"), timeout=30, message="web's exit")
    agent = fleet.agent("web")
    assert agent.reason.startswith("setup: cd .. && rm -rf") and "deleted the worktree" in agent.reason
    assert agent.state == "missing" and agent.failures == 1
    ref = fleet.discard("web")  # the branch is archived: nothing of it is lost
    assert ref and git(project, "rev-parse", ref) == git(project, "rev-parse", "main")
    assert tree_hashes(Path(bystander.worktree)) == other and fleet.agent("other").state == "running"


def test_respawn_keep_runs_setup_again_only_when_asked_or_when_it_did_not_succeed(project: Path) -> None:
    configure(project, """
[worktree]
setup = ["echo x >> setup-ran.local"]

[[agent]]
name = "web"
command = "sleep 60"
""")
    fleet = Fleet(project)
    wt = Path(fleet.spawn("web").worktree)
    wait_until(lambda: (wt / "setup-ran.local").exists(), message="first setup")
    wait_until(lambda: fleet.agent("web").activity not in ("setup", None), message="web past setup")
    (wt / ".env").write_text("the agent's own .env\n")
    fleet.respawn("web", keep=True)
    wait_until(lambda: fleet.agent("web").attempt == 2 and fleet.agent("web").activity not in ("setup", None),
               message="web restarted")
    assert (wt / "setup-ran.local").read_text() == "x\n"  # not again
    fleet.respawn("web", keep=True, setup=True)
    wait_until(lambda: (wt / "setup-ran.local").read_text() == "x\nx\n", message="setup on --setup")
    assert (wt / ".env").read_text() == "the agent's own .env\n"  # included files: never overwritten


def test_the_first_start_after_restore_runs_setup_and_gets_the_included_files(project: Path) -> None:
    configure(project, """
[worktree]
setup = ["echo set-up > setup-ran.local"]
ports = 1

[[agent]]
name = "web"
command = "echo committed > work.txt; sleep 60"
""")
    fleet = Fleet(project)
    wt = Path(fleet.spawn("web").worktree)
    wait_until(lambda: (wt / "work.txt").exists(), message="agent at work")
    first_port = fleet.agent("web").ports
    fleet.discard("web")
    assert ports.held(project, "web") == []
    agent = fleet.restore("web")
    assert (wt / "work.txt").read_text() == "committed\n"  # the archive's files
    assert (wt / ".env").exists() and not (wt / "setup-ran.local").exists()  # ignored files are not archived
    assert agent.ports == first_port  # the same numbers, free again
    fleet.respawn("web", keep=True)
    wait_until(lambda: (wt / "setup-ran.local").exists(), message="setup after restore")


# -- teardown and stop -------------------------------------------------------------------------------
def test_teardown_runs_after_the_archive_and_before_the_worktree_goes(project: Path, tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    configure(project, f"""
[worktree]
teardown = ["git -C \\"$COCKPIT_REPO\\" rev-parse --verify -q refs/cockpit/archive/web/1 > {seen}; ls .env >> {seen}"]

[[agent]]
name = "web"
command = "sleep 60"
""")
    fleet = Fleet(project)
    fleet.spawn("web")
    ref = fleet.discard("web")
    archive, env = seen.read_text().split()
    assert archive == git(project, "rev-parse", ref) and env == ".env"  # archived already; worktree still there
    kinds = [e.type for e in events(fleet, "web")]
    assert kinds.index("archived") < kinds.index("teardown.done") < kinds.index("discarded")
    assert not fleet.layout.worktree("web").exists()
    assert "[cockpit] teardown 1/1" in log_text(fleet, "web")


def test_a_failing_or_hanging_teardown_never_blocks_the_discard(project: Path) -> None:
    configure(project, """
[[agent]]
name = "fails"
command = "sleep 60"
[agent.worktree]
teardown = ["echo going down; exit 5", "echo never"]

[[agent]]
name = "hangs"
command = "sleep 60"
[agent.worktree]
teardown = ["sleep 1000"]
teardown_timeout = 1
""")
    fleet = Fleet(project)
    for name in ("fails", "hangs"):
        fleet.spawn(name)
    for name, reason in (("fails", "teardown: echo going down; exit 5 exited 5"),
                         ("hangs", "teardown: sleep 1000 timed out (teardown_timeout = 1 s)")):
        started = time.monotonic()
        ref = fleet.discard(name)
        assert time.monotonic() - started < 15
        assert ref and git(project, "rev-parse", "--verify", ref)  # the archive is there
        assert not fleet.layout.worktree(name).exists()
        assert [e.data["reason"] for e in events(fleet, name, "teardown.failed")] == [reason]
        assert [e.type for e in events(fleet, name)][-1] == "discarded"
    assert "never" not in log_text(fleet, "fails").split("exited 5")[-1]


def test_stop_runs_when_the_agent_is_killed_and_when_the_fleet_goes_down(project: Path, tmp_path: Path) -> None:
    stopped = tmp_path / "stopped"
    configure(project, f"""
[worktree]
stop = ["echo $COCKPIT_AGENT >> {stopped}"]

[[agent]]
name = "a"
command = "sleep 60"

[[agent]]
name = "b"
command = "sleep 60"
[agent.worktree]
stop = ["exit 7"]
""")
    fleet = Fleet(project)
    fleet.spawn("a")
    fleet.spawn("b")
    fleet.kill("a")
    assert stopped.read_text() == "a\n"
    fleet.respawn("a", keep=True)
    assert set(fleet.down()) == {"a", "b"}  # b's failing stop does not stop the down
    assert stopped.read_text() == "a\na\n"
    assert [e.data["reason"] for e in events(fleet, "b", "stop.failed")] == ["stop: exit 7 exited 7"]
    assert not fleet.tmux.running()


# -- ports ------------------------------------------------------------------------------------------------
SERVER = f"{PY} -m http.server $COCKPIT_PORT --bind 127.0.0.1"


def answer(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/.env", timeout=2) as response:
            return response.status
    except OSError:
        return 0


def test_two_agents_serve_http_on_their_own_ports_at_once(project: Path) -> None:
    configure(project, f"""
[worktree]
ports = 3

[[agent]]
name = "one"
command = "{SERVER}"

[[agent]]
name = "two"
command = "{SERVER}"
""")
    fleet = Fleet(project)
    checklist, _ = fleet.up()
    assert checklist.passed
    one, two = fleet.agent("one"), fleet.agent("two")
    assert len(one.ports) == 3 and len(two.ports) == 3 and not set(one.ports) & set(two.ports)
    for agent in (one, two):
        wait_until(lambda: answer(agent.ports[0]) == 200, message=f"{agent.name}'s server")
    # each served its own worktree (its included .env)
    with urllib.request.urlopen(f"http://127.0.0.1:{two.ports[0]}/.env", timeout=2) as response:
        assert response.read() == b"DATABASE_URL=postgres://localhost/dev\n"
    recorded = [e.data["ports"] for e in events(fleet, "one", "ports.allocated")]
    assert recorded == [one.ports]  # in the event log
    registry = json.loads(ports.registry_path().read_text())
    assert {"repo": str(project), "agent": "two", "ports": two.ports} in [
        {k: b[k] for k in ("repo", "agent", "ports")} for b in registry["blocks"]]


def test_ports_and_compose_project_in_the_agent_s_environment(project: Path) -> None:
    configure(project, """
[worktree]
ports = 2

[[agent]]
name = "web"
command = "echo P=$COCKPIT_PORT PS=$COCKPIT_PORTS C=$COMPOSE_PROJECT_NAME; sleep 60"
""")
    fleet = Fleet(project)
    first, second = fleet.spawn("web").ports
    wait_until(lambda: f"P={first} PS={first} {second} C=cockpit-repo-web" in log_text(fleet, "web"),
               message="the variables")


def test_ports_are_held_until_discard(project: Path) -> None:
    configure(project, f"""
[worktree]
ports = 1

[[agent]]
name = "web"
command = "{SERVER}"
""")
    fleet = Fleet(project)
    block = fleet.spawn("web").ports
    wait_until(lambda: answer(block[0]) == 200, message="the server")
    fleet.kill("web")
    assert fleet.agent("web").ports == block and ports.held(project, "web") == block  # a killed agent keeps them
    fleet.respawn("web", keep=True)
    assert fleet.agent("web").ports == block
    wait_until(lambda: answer(block[0]) == 200, message="the server again, on the same port")
    fleet.respawn("web")  # re-cut: the agent lives on, and so does its block
    assert fleet.agent("web").ports == block
    fleet.discard("web")
    assert ports.held(project, "web") == []
    assert [e.data["ports"] for e in events(fleet, "web", "ports.released")] == [block]


def test_exhausted_ports_refuse_the_spawn_with_nothing_left(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(project, """
[worktree]
ports = 2

[[agent]]
name = "web"
command = "sleep 60"
""")
    fleet = Fleet(project)
    monkeypatch.setattr(ports, "PORT_RANGE", (1, 1))  # (port 1 is never free to us: a block of 2 cannot be)
    with pytest.raises(CockpitError, match="no block of 2 free TCP port"):
        fleet.spawn("web")
    assert not fleet.layout.worktree("web").exists() and not git(project, "branch", "--list", "cockpit/web")
    assert fleet.agents() == [] and ports.held(project, "web") == []


# -- under the write sandbox ------------------------------------------------------------------------------
def _bwrap_problem() -> str | None:
    try:
        sandbox.require()
    except sandbox.SandboxError as exc:
        return str(exc)
    return None


@pytest.mark.skipif(_bwrap_problem() is not None, reason=f"bubblewrap cannot be used here: {_bwrap_problem()}")
def test_setup_and_teardown_run_inside_the_sandbox(project: Path) -> None:
    configure(project, """
[cockpit]
sandbox = "bwrap"

[worktree]
setup = ["touch \\"$COCKPIT_REPO/escaped-setup\\" || true", "touch set-up.local"]
teardown = ["touch \\"$COCKPIT_REPO/escaped-teardown\\" || true"]

[[agent]]
name = "web"
command = "echo agent starts; sleep 60"
""")
    fleet = Fleet(project)
    wt = Path(fleet.spawn("web").worktree)
    wait_until(lambda: "agent starts" in log_text(fleet, "web"), message="the agent after setup")
    assert (wt / "set-up.local").exists() and not (project / "escaped-setup").exists()
    fleet.discard("web")
    assert not (project / "escaped-teardown").exists() and events(fleet, "web", "teardown.done")


# -- the bystanders --------------------------------------------------------------------------------------
def test_other_agents_are_byte_identical_through_every_new_step(project: Path, tmp_path: Path) -> None:
    configure(project, """
[worktree]
setup = ["echo setting up"]
teardown = ["echo tearing down; exit 1"]
stop = ["echo stopping"]
ports = 2

[[agent]]
name = "c"
command = "echo c > c.txt; git add c.txt; git commit -qm c; sleep 60"

[[agent]]
name = "bad"
command = "sleep 60"
[agent.worktree]
setup = ["exit 4"]
""")
    fleet = Fleet(project)
    for name in ("a", "b"):
        fleet.spawn(name, command=f"echo {name} > mine.txt; git add mine.txt; git commit -qm {name}; "
                                  f"echo untracked > scratch.txt; {sleeper(name)}")
    wt = {n: fleet.layout.worktree(n) for n in "ab"}
    wait_until(lambda: all((wt[n] / "scratch.txt").exists() for n in "ab"), message="a and b at work")

    def look() -> dict:
        return {n: (tree_hashes(wt[n]), git(project, "rev-parse", f"cockpit/{n}"), fleet.agent(n).pid,
                    fleet.agent(n).ports, fleet.agent(n).state) for n in "ab"}

    before = look()
    main_before = (tree_hashes(project), git(project, "rev-parse", "main"))
    fleet.spawn("c")  # include + ports + setup
    wait_until(lambda: (fleet.layout.worktree("c") / "c.txt").exists(), message="c at work")
    fleet.spawn("bad")  # a failing setup
    settled(fleet, "bad")
    fleet.kill("c")  # stop
    fleet.respawn("c", keep=True, setup=True)
    fleet.respawn("c")  # re-cut: archive, teardown (failing), include, setup
    fleet.discard("c")  # teardown, ports released
    fleet.discard("bad")
    fleet.restore("c")  # include, ports again
    assert look() == before
    assert (tree_hashes(project), git(project, "rev-parse", "main")) == main_before
    assert os.path.exists(project / ".env")


# -- the CLI, as a new user types it ----------------------------------------------------------------------
def cockpit(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "cockpit", *args], cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)


def test_the_cli_shows_ports_and_included_files_and_warns_of_a_failed_teardown(project: Path) -> None:
    configure(project, """
[worktree]
ports = 2
teardown = ["exit 9"]

[[agent]]
name = "web"
command = "sleep 60"
""")
    spawned = cockpit(project, "spawn", "web")
    assert spawned.returncode == 0, spawned.stderr
    block = Fleet(project).agent("web").ports
    assert f"1 file(s) from .worktreeinclude; ports {block[0]}-{block[1]} ($COCKPIT_PORT={block[0]})" in spawned.stdout
    listing = json.loads(cockpit(project, "ls", "--json").stdout)[0]
    assert listing["ports"] == block and listing["included"] == 1
    table = cockpit(project, "ls").stdout.splitlines()
    assert "PORTS" in table[0] and f"{block[0]}-{block[1]}" in table[1]
    refused = cockpit(project, "respawn", "web", "--setup")
    assert refused.returncode == 2 and "--setup goes with --keep" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    discarded = cockpit(project, "discard", "web", "--yes")
    assert discarded.returncode == 0 and "archived at refs/cockpit/archive/web/1" in discarded.stdout
    assert "warning: web: teardown: exit 9 exited 9 (output in its session.log)" in discarded.stderr


# -- the tile ---------------------------------------------------------------------------------------------
async def test_a_tile_shows_setup_its_port_and_why_a_setup_failed(project: Path, tmp_path: Path) -> None:
    from cockpit.ui.app import make_app
    from ui_support import tile_subtitle, tile_text, wait_for
    go = tmp_path / "go"
    configure(project, f"""
[[agent]]
name = "web"
command = "echo serving; sleep 60"
[agent.worktree]
setup = ["echo installing deps", "while [ ! -e {go} ]; do sleep 0.05; done"]
ports = 2

[[agent]]
name = "bad"
command = "sleep 60"
[agent.worktree]
setup = ["exit 3"]
""")
    fleet = Fleet(project)
    fleet.up()
    first = fleet.agent("web").ports[0]
    app = make_app(fleet, include_user_themes=False, user_config=tmp_path / "none.toml")
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: " setup " in tile_subtitle(app, "web") + " ",
                       message="activity setup on the tile")
        assert f"port {first} (+1)" in tile_subtitle(app, "web")
        await wait_for(pilot, lambda: "[cockpit] setup 1/2: echo installing deps" in tile_text(app, "web"),
                       message="the setup's output on the tile")
        await wait_for(pilot, lambda: "setup: exit 3 exited 3" in tile_subtitle(app, "bad"),
                       message="the failed setup's reason on the tile")
        go.touch()
        await wait_for(pilot, lambda: "serving" in tile_text(app, "web"), message="the agent after setup")
        await wait_for(pilot, lambda: " setup " not in tile_subtitle(app, "web") + " ", message="setup over")
