"""The engine against real git and a real tmux server on a private socket."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from cockpit.core import processes
from cockpit.core.errors import CockpitError
from cockpit.core.fleet import Fleet
from conftest import PY, git, sleeper, tree_hashes, wait_until

pytestmark = pytest.mark.tmux


def log_text(fleet: Fleet, name: str) -> str:
    path = fleet.layout.session_log(name)
    return path.read_bytes().decode(errors="replace") if path.exists() else ""


def state(fleet: Fleet, name: str) -> str:
    return fleet.agent(name).state


def spawn_sleeper(fleet: Fleet, name: str, **kw) -> None:
    fleet.spawn(name, command=sleeper(name), **kw)
    wait_until(lambda: f"{name} 2" in log_text(fleet, name), message=f"{name} output")


def test_spawn_creates_worktree_branch_session_and_log(fleet: Fleet, repo: Path) -> None:
    agent = fleet.spawn("alpha", command="echo task=$COCKPIT_TASK; sleep 60", task="do it")
    assert agent.state == "running" and agent.branch == "cockpit/alpha" and agent.attempt == 1
    worktree = Path(agent.worktree)
    assert worktree == repo / ".cockpit" / "worktrees" / "alpha" and (worktree / "README.md").exists()
    assert git(worktree, "branch", "--show-current") == "cockpit/alpha"
    assert fleet.tmux.has_session("alpha")
    wait_until(lambda: "task=do it" in log_text(fleet, "alpha"), message="task in log")
    spec = (repo / ".cockpit" / "agents" / "alpha" / "spec.toml").read_text()
    assert 'attempt = 1' in spec and agent.base_sha in spec
    assert "/.cockpit/" in (repo / ".git" / "info" / "exclude").read_text()
    assert git(repo, "status", "--porcelain") == ""  # the main checkout stays clean


def test_a_look_at_the_fleet_right_after_spawn_loses_none_of_the_agents_first_output(fleet: Fleet) -> None:
    """tmux opens the log's `cat >>` asynchronously; spawn has the log in place already, so a
    look in that instant (a TUI, `ls`) does not take it for a log deleted by hand and re-open
    the pipe, which dropped the first bytes of an agent that writes at once (seen in CI)."""
    names = [f"quick{i}" for i in range(10)]
    for name in names:
        fleet.spawn(name, command=f"printf '{name} said it\\n'; exit 1")
        assert fleet.layout.session_log(name).exists()
        fleet.agents()
    for name in names:
        wait_until(lambda: f"{name} said it" in log_text(fleet, name), message=f"{name}'s first line")


def test_spawn_three_discard_one_leaves_the_others_untouched(fleet: Fleet, repo: Path) -> None:
    for name in ("a", "b", "c"):
        fleet.spawn(name, command=f"echo {name} > mine.txt; git add mine.txt; git commit -qm {name}; "
                    f"echo untracked > scratch-{name}.txt; {sleeper(name)}")
    wt = {n: repo / ".cockpit" / "worktrees" / n for n in "abc"}
    wait_until(lambda: all((wt[n] / f"scratch-{n}.txt").exists() for n in "abc"), message="agents wrote")
    before = {n: tree_hashes(wt[n]) for n in "ac"}
    main_before = tree_hashes(repo)
    heads_before = {n: git(repo, "rev-parse", f"cockpit/{n}") for n in "ac"}
    main_head = git(repo, "rev-parse", "main")

    ref = fleet.discard("b")
    assert ref == "refs/cockpit/archive/b/1"
    assert not wt["b"].exists()
    assert "cockpit/b" not in git(repo, "branch", "--list", "cockpit/b")
    assert not fleet.tmux.has_session("b")
    for n in "ac":
        # The others write a counter to their log only; their files and branches are identical.
        assert tree_hashes(wt[n]) == before[n]
        assert git(repo, "rev-parse", f"cockpit/{n}") == heads_before[n]
        assert state(fleet, n) == "running"
    assert tree_hashes(repo) == main_before and git(repo, "rev-parse", "main") == main_head
    assert [a.name for a in fleet.agents()] == ["a", "c"]


def test_discard_then_restore_round_trips_byte_identical(fleet: Fleet, repo: Path) -> None:
    script = ("git commit -q --allow-empty -m one && echo c1 > committed.txt && git add committed.txt && "
              "git commit -qm two && printf 'dirty\\n' >> README.md && rm src/app.py && "
              "mkdir -p new/deep && printf '\\x00\\xffbin' > new/deep/blob.bin && echo staged > staged.txt && "
              "git add staged.txt && chmod +x committed.txt && echo ready; sleep 60")
    fleet.spawn("r", command=script)
    worktree = repo / ".cockpit" / "worktrees" / "r"
    wait_until(lambda: "ready" in log_text(fleet, "r"), message="agent ready")
    before = tree_hashes(worktree)
    mode_before = os.stat(worktree / "committed.txt").st_mode
    head_before = git(worktree, "rev-parse", "HEAD")
    preview = fleet.discard_preview("r")
    assert preview.ahead == 2 and len(preview.uncommitted) == 5  # committed.txt: mode change

    fleet.discard("r")
    assert not worktree.exists()
    agent = fleet.restore("r")
    assert agent.state == "killed" and agent.branch == "cockpit/r"
    assert tree_hashes(worktree) == before
    assert os.stat(worktree / "committed.txt").st_mode == mode_before
    assert not (worktree / "src" / "app.py").exists()
    assert git(worktree, "rev-parse", "HEAD") == head_before  # unpushed commits are back on the branch
    status = git(worktree, "status", "--porcelain", "--untracked-files=all")
    lines = {line.strip() for line in status.splitlines()}
    assert {"?? new/deep/blob.bin", "D src/app.py", "M README.md", "M committed.txt"} <= lines
    assert "?? staged.txt" in lines  # a staged new file comes back untracked: files, not the index
    # Run it again in the restored worktree.
    fleet.respawn("r", keep=True)
    assert state(fleet, "r") == "running"


def test_pause_freezes_and_resume_continues(fleet: Fleet) -> None:
    spawn_sleeper(fleet, "p")
    pid = fleet.agent("p").pid
    fleet.pause("p")
    assert state(fleet, "p") == "paused"
    assert all(processes.state(child) == "T" for child in processes.descendants(pid))
    log = fleet.layout.session_log("p")
    size = log.stat().st_size
    # For over a second of wall time, checked at every poll: the size must not move.
    start = time.monotonic()

    def unchanged_for_a_while() -> bool:
        assert log.stat().st_size == size, "a paused agent wrote to its log"
        return time.monotonic() - start > 1.5

    wait_until(unchanged_for_a_while, message="1.5 s of silence")
    with pytest.raises(CockpitError, match="already paused"):
        fleet.pause("p")
    fleet.resume("p")
    assert state(fleet, "p") == "running"
    wait_until(lambda: log.stat().st_size > size, message="log grows after resume")


def test_keys_typed_while_paused_arrive_after_resume(fleet: Fleet) -> None:
    fleet.spawn("q", command=f"{PY} -u -c \"print('ask'); print('got', input())\"")
    wait_until(lambda: "ask" in log_text(fleet, "q"), message="prompt")
    fleet.pause("q")
    fleet.tmux.send_keys("q", "hello", "Enter")
    fleet.resume("q")
    wait_until(lambda: "got hello" in log_text(fleet, "q"), message="answer after resume")


def test_exit_codes_are_detected(fleet: Fleet) -> None:
    fleet.spawn("ok", command="echo done")
    fleet.spawn("bad", command="exit 3")
    wait_until(lambda: state(fleet, "ok") == "exited", message="ok exits")
    wait_until(lambda: state(fleet, "bad") == "failed", message="bad fails")
    bad = fleet.agent("bad")
    assert bad.exit_code == 3 and bad.failures == 1
    assert fleet.agent("ok").exit_code == 0
    types = [(e.type, e.agent, e.data.get("exit_code")) for e in fleet.events.all() if e.type == "exited"]
    assert ("exited", "bad", 3) in types and ("exited", "ok", 0) in types
    assert len(types) == 2  # recorded once, however often the fleet is read


def test_two_failures_halt_the_agent_and_its_dependents(fleet: Fleet, repo: Path) -> None:
    lit = "'" * 3  # TOML literal strings: the commands hold both kinds of quotes
    (repo / "cockpit.toml").write_text(
        '[[agent]]\nname = "up"\ncommand = "exit 1"\n'
        f'[[agent]]\nname = "down"\ncommand = {lit}{sleeper("down")}{lit}\nafter = ["up"]\n'
        f'[[agent]]\nname = "free"\ncommand = {lit}{sleeper("free")}{lit}\n')
    fleet.up()
    wait_until(lambda: state(fleet, "up") == "failed", message="first failure")
    fleet.respawn("up")
    assert fleet.agent("up").attempt == 2 and fleet.agent("up").branch == "cockpit/up-v2"
    wait_until(lambda: state(fleet, "up") == "halted", message="halt after second failure")
    assert fleet.agent("up").failures == 2
    down = fleet.agent("down")
    assert down.state == "halted" and down.blocked_by == "up"
    # Whichever process records the failure (the agent's wrapper, the pane-died hook or this
    # one) halts the dependents, sessions ended, before it writes the failed agent's halt.
    assert not fleet.tmux.has_session("down")
    assert state(fleet, "free") == "running"
    with pytest.raises(CockpitError, match="halted after 2 failure"):
        fleet.respawn("up")
    # A replan is allowed and releases the dependents.
    fleet.respawn("up", task="a better plan", command="sleep 60")
    assert state(fleet, "up") == "running" and fleet.agent("up").failures == 0
    assert state(fleet, "down") == "killed"


def test_a_fresh_engine_sees_running_and_ended_agents(repo: Path) -> None:
    first = Fleet(repo)
    first.spawn("long", command="sleep 60")
    first.spawn("short", command="sleep 0.5; exit 7")
    del first
    second = Fleet(repo)  # cockpit restarted
    assert state(second, "long") == "running"
    wait_until(lambda: state(second, "short") == "failed", message="exit seen by the new engine")
    assert second.agent("short").exit_code == 7


def test_kill_keeps_worktree_branch_and_log(fleet: Fleet, repo: Path) -> None:
    spawn_sleeper(fleet, "k")
    pid = fleet.agent("k").pid
    children = processes.descendants(pid)
    fleet.kill("k")
    agent = fleet.agent("k")
    assert agent.state == "killed" and Path(agent.worktree).is_dir() and Path(agent.log).exists()
    assert git(repo, "rev-parse", "--verify", "cockpit/k")
    wait_until(lambda: all(processes.state(c) in (None, "Z") for c in children), message="processes gone")
    with pytest.raises(CockpitError, match="not running"):
        fleet.kill("k")


def test_respawn_fresh_archives_and_recuts(fleet: Fleet, repo: Path) -> None:
    fleet.spawn("w", command="echo work > work.txt; sleep 60", task="first")
    worktree = repo / ".cockpit" / "worktrees" / "w"
    wait_until(lambda: (worktree / "work.txt").exists(), message="work written")
    agent = fleet.respawn("w", task="second")
    assert agent.attempt == 2 and agent.branch == "cockpit/w-v2" and agent.task == "second"
    assert fleet.archives("w")[0][0] == "refs/cockpit/archive/w/1"
    assert "work.txt" in git(repo, "ls-tree", "-r", "--name-only", "refs/cockpit/archive/w/1")
    assert git(repo, "branch", "--list", "cockpit/w") == ""


def test_respawn_keep_restarts_in_same_worktree(fleet: Fleet, repo: Path) -> None:
    fleet.spawn("kp", command="echo run >> runs.txt; sleep 60")
    worktree = repo / ".cockpit" / "worktrees" / "kp"
    wait_until(lambda: (worktree / "runs.txt").exists(), message="first run")
    agent = fleet.respawn("kp", keep=True)
    assert agent.branch == "cockpit/kp" and agent.attempt == 2
    wait_until(lambda: (worktree / "runs.txt").read_text().count("run") == 2, message="second run, same worktree")


def test_deleted_worktree_shows_missing_and_discard_still_archives(fleet: Fleet, repo: Path) -> None:
    import shutil
    fleet.spawn("m", command="git commit -q --allow-empty -m mine; sleep 60")
    wait_until(lambda: git(repo, "rev-list", "--count", "main..cockpit/m") == "1", message="commit")
    shutil.rmtree(repo / ".cockpit" / "worktrees" / "m")
    assert state(fleet, "m") == "missing"
    ref = fleet.discard("m")
    assert git(repo, "rev-list", "--count", f"main..{ref}") == "1"
    assert fleet.agents() == []


def test_task_with_shell_syntax_is_passed_verbatim(fleet: Fleet, repo: Path) -> None:
    task = "quote ' \" $(touch pwned) `touch pwned2` ; rm -rf / \nsecond line"
    fleet.spawn("t", command=f"{PY} -c \"import os; open('task.out','w').write(os.environ['COCKPIT_TASK'])\"; sleep 60",
                task=task)
    out = repo / ".cockpit" / "worktrees" / "t" / "task.out"
    wait_until(lambda: out.exists() and out.read_text(), message="task written")  # (open, then written)
    assert out.read_text() == task
    assert not list(repo.rglob("pwned*"))


def test_agent_environment_is_scoped(fleet: Fleet, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COCKPIT_TEST_SECRET", "hunter2")
    fleet.spawn("env", command="env > env.out; sleep 60")
    out = repo / ".cockpit" / "worktrees" / "env" / "env.out"
    wait_until(lambda: out.exists() and "COCKPIT_AGENT" in out.read_text(), message="env written")
    text = out.read_text()
    assert "hunter2" not in text and "COCKPIT_AGENT=env" in text
    assert f"TMPDIR={repo / '.cockpit' / 'agents' / 'env' / 'tmp'}" in text


def test_exit_is_recorded_by_tmux_hook_with_no_cockpit_reading(fleet: Fleet, repo: Path) -> None:
    (repo / "cockpit.toml").write_text('[cockpit]\nmax_failures = 1\n'
                                       '[[agent]]\nname = "up"\ncommand = "sleep 0.3; exit 4"\n'
                                       '[[agent]]\nname = "down"\ncommand = "sleep 60"\nafter = ["up"]\n')
    fleet.up()
    events = fleet.layout.events
    # Only the file is read from here on: nobody calls the engine. The agent's wrapper reports
    # its own exit (tmux's pane-died hook and the watcher are the back-ups when it cannot).
    # The failed agent's halt is written last, after its dependents' (and their sessions' end).
    wait_until(lambda: '"type":"halted","agent":"up"' in events.read_text(), message="hook halts the agent")
    text = events.read_text()
    assert '"type":"exited","agent":"up","data":{"exit_code":4}' in text
    assert '"type":"halted","agent":"down"' in text
    assert text.index('"type":"halted","agent":"down"') < text.index('"type":"halted","agent":"up"')
    assert not fleet.tmux.has_session("down")


def test_restarting_the_only_agent_survives_the_server_exiting(fleet: Fleet) -> None:
    """Killing the last session makes tmux's server exit; a start right after must not fail."""
    fleet.spawn("only", command="sleep 60")
    for _ in range(15):
        fleet.respawn("only", keep=True, force=True)
    assert fleet.agent("only").state == "running" and fleet.agent("only").attempt == 16


def test_spawn_in_an_empty_repository_says_so_and_creates_nothing(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    git(root, "init", "--quiet", "--initial-branch=main")
    fleet = Fleet(root)
    with pytest.raises(CockpitError, match="no commits yet"):
        fleet.spawn("a", command="sleep 1")
    with pytest.raises(CockpitError, match="no commits yet"):  # whatever base is asked for
        fleet.spawn("a", command="sleep 1", base="nope")
    assert not fleet.tmux.has_session("a")
    assert "cockpit/a" not in git(root, "branch", "--list")


def test_spawn_cuts_from_the_current_branch_and_refuses_a_detached_head(fleet: Fleet, repo: Path) -> None:
    git(repo, "checkout", "--quiet", "-b", "feature")
    (repo / "feature.txt").write_text("on feature\n")
    git(repo, "add", "feature.txt")
    git(repo, "commit", "--quiet", "-m", "feature")
    on_branch = fleet.spawn("b", command="sleep 60")
    assert on_branch.base == "feature" and on_branch.base_sha == git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "--quiet", "--detach", "main")
    # Its work could never be merged (the queue fast-forwards a branch): refused, nothing made.
    with pytest.raises(CockpitError, match=r"detached HEAD .*check out a branch, or give one with --base BRANCH"):
        fleet.spawn("d", command="sleep 60")
    assert not fleet.layout.worktree("d").exists() and "cockpit/d" not in git(repo, "branch", "--list")
    named = fleet.spawn("m", command="sleep 60", base="main")
    assert named.base == "main" and named.base_sha == git(repo, "rev-parse", "main")
    assert not (Path(named.worktree) / "feature.txt").exists()


def test_a_tmux_session_of_the_same_name_is_refused_and_left_running(fleet: Fleet, repo: Path) -> None:
    fleet.tmux.cmd("new-session", "-d", "-s", "theirs", "sleep 600")
    with pytest.raises(CockpitError, match="already exists"):
        fleet.spawn("theirs", command="sleep 60")
    assert fleet.tmux.has_session("theirs")
    assert "cockpit/theirs" not in git(repo, "branch", "--list")
    assert not fleet.layout.worktree("theirs").exists()
    # Tmux.start on its own (the step after the checks) refuses too, and kills nothing.
    with pytest.raises(CockpitError, match="already exists"):
        fleet.tmux.start("theirs", repo, {}, fleet.layout.home / "theirs.log")
    assert fleet.tmux.has_session("theirs")


def test_the_tmux_server_yields_the_cpu_and_the_agents_keep_theirs(fleet: Fleet, repo: Path) -> None:
    """Where Linux schedules by session (autogroups), the agents' tmux server runs at
    ``tmux_nice`` so a flood of agent output does not take the CPU from cockpit's UI; the
    agents, each in a session of its own, keep the default priority."""
    if not os.path.exists("/proc/self/autogroup"):
        pytest.skip("this kernel does not schedule by autogroup")
    agent = fleet.spawn("a", command="sleep 60")
    server = int(fleet.tmux.cmd("display-message", "-p", "#{pid}")[0])

    def nice_of(pid: int) -> int:
        return int(Path(f"/proc/{pid}/autogroup").read_text().rsplit("nice", 1)[1])

    assert nice_of(server) == 5
    assert agent.pid is not None and nice_of(agent.pid) == 0
    # Never raised back: with tmux_nice = 0 the server keeps what it has.
    (repo / "cockpit.toml").write_text("[cockpit]\ntmux_nice = 0\n")
    fleet.spawn("b", command="sleep 60")
    assert nice_of(server) == 5 and nice_of(fleet.agent("b").pid) == 0


def test_a_paused_agent_with_a_zombie_child_is_still_paused(fleet: Fleet) -> None:
    """A child that ends just as its parent is stopped stays a zombie until the parent runs
    again; the agent is paused all the same (the environment matrix saw 'running')."""
    fleet.spawn("z", command=f"{PY} -c \"import os, time\nif os.fork() == 0: os._exit(0)\ntime.sleep(600)\"")
    pane = fleet.tmux.pane("z")
    assert pane is not None and pane.pid
    wait_until(lambda: "Z" in [processes.state(p) for p in processes.descendants(pane.pid)], message="a zombie child")
    fleet.pause("z")
    assert fleet.agent("z").state == "paused"
    fleet.resume("z")
    assert fleet.agent("z").state == "running"


def _cpu_ticks(pids: list[int]) -> int:
    """The CPU time (user + system, in clock ticks) the live processes of ``pids`` have used."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # (fields 14 and 15 of proc(5): utime, stime)
    return total


def test_a_stop_not_yet_acted_on_counts_as_stopped() -> None:
    """``stop_pending`` reads the kernel's pending signals: a stopped process sent SIGSTOP again
    holds it pending (as a process still on its way to stopping does), and SIGCONT clears it."""
    import signal
    import subprocess
    proc = subprocess.Popen(["sleep", "60"])
    try:
        assert not processes.stop_pending(proc.pid)
        os.kill(proc.pid, signal.SIGSTOP)
        wait_until(lambda: processes.state(proc.pid) == "T", message="sleep stopped")
        assert not processes.stop_pending(proc.pid)  # (acted on: it stopped)
        os.kill(proc.pid, signal.SIGSTOP)
        wait_until(lambda: processes.stop_pending(proc.pid), message="the second SIGSTOP pending")
        os.kill(proc.pid, signal.SIGCONT)
        wait_until(lambda: processes.state(proc.pid) in ("S", "R"), message="sleep running again")
        assert not processes.stop_pending(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    assert not processes.stop_pending(proc.pid)  # (gone)


def test_pause_stops_an_agent_that_keeps_forking(fleet: Fleet) -> None:
    """A pause walks the tree until a walk finds no process the walks before it missed: children
    forked while it signals are stopped too, and none runs on (a build forks all the time)."""
    fleet.spawn("forker", command="while :; do sleep 30 & sleep 0.002; done")
    pane = fleet.tmux.pane("forker")
    assert pane is not None and pane.pid
    wait_until(lambda: len(processes.descendants(pane.pid)) > 20, message="a forking agent")
    fleet.pause("forker")
    kids = processes.descendants(pane.pid)
    # Just signalled, a process may still show R until it is scheduled, or D while it waits in
    # the kernel for a vforked child that was stopped before its exec: it has the stop pending.
    running = [(p, processes.state(p)) for p in kids if processes.state(p) not in ("T", "t", "Z", "X", None)
               and not processes.stop_pending(p)]
    assert not running, f"processes neither stopped nor stopping after the pause: {running}"
    count = len(kids)
    wait_until(lambda: all(processes.state(p) in ("T", "t", "D", "Z", "X", None) for p in kids),
               message="every process stopped, or blocked in the kernel with the stop pending")
    used = _cpu_ticks(kids)
    start = time.monotonic()

    def no_new_process_for_a_while() -> bool:
        assert len(processes.descendants(pane.pid)) <= count, "a paused agent forked"
        return time.monotonic() - start > 1.0

    wait_until(no_new_process_for_a_while, message="1 s without a new process")
    # Over that second, none of its processes ran: the loop alone uses CPU all the time.
    assert _cpu_ticks(kids) == used, "a process of the paused agent used CPU"
    assert fleet.agent("forker").state == "paused"
    fleet.resume("forker")
    wait_until(lambda: len(processes.descendants(pane.pid)) > count, message="forking again after resume")


def test_discard_keeps_a_branch_checked_out_elsewhere_and_says_where(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    """A branch the user checked out in a worktree of their own is not deleted: the discard says
    where it is checked out, and the archive holds the agent's work all the same."""
    spawn_sleeper(fleet, "kept")
    (Path(fleet.agent("kept").worktree) / "work.txt").write_text("the agent's work\n")
    mine = tmp_path / "mine"
    git(repo, "worktree", "add", "--force", str(mine), "cockpit/kept")  # (--force: the agent has it too)
    with pytest.raises(CockpitError, match=rf"branch 'cockpit/kept' is checked out at {mine}: not deleting it"):
        fleet.discard("kept")
    assert git(repo, "rev-parse", "--verify", "cockpit/kept")
    assert "refs/cockpit/archive/kept/1" in git(repo, "for-each-ref", "--format=%(refname)", "refs/cockpit/archive")
    assert git(repo, "show", "refs/cockpit/archive/kept/1:work.txt") == "the agent's work"
