"""The CLI as a new user types it, and every bad input from the engine issue: a clear one-line
error, the right exit status, no traceback, nothing created, nothing lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import fleet_socket, git, sleeper, tmux, wait_until

pytestmark = pytest.mark.tmux


def cockpit(cwd: Path, *args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cockpit", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL, timeout=timeout)


def assert_clean_error(result: subprocess.CompletedProcess, code: int, text: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert text in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    if code == 1:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def snapshot_state(repo: Path) -> tuple:
    sessions = tmux(repo, "list-sessions", "-F", "#{session_name}").stdout.split()
    worktrees = (sorted(p.name for p in (repo / ".cockpit" / "worktrees").glob("*"))
                 if (repo / ".cockpit").exists() else [])
    return (git(repo, "branch", "--list"), git(repo, "worktree", "list"), sorted(sessions), worktrees,
            git(repo, "status", "--porcelain"))


def test_spawn_ls_logs_discard_restore_round_trip(repo: Path) -> None:
    result = cockpit(repo, "spawn", "alpha", "--command", "echo hello from $COCKPIT_AGENT; sleep 60", "--task", "t1")
    assert result.returncode == 0, result.stderr
    assert "cockpit/alpha" in result.stdout
    wait_until(lambda: "hello from alpha" in cockpit(repo, "logs", "alpha").stdout, message="log via CLI")
    listing = json.loads(cockpit(repo, "ls", "--json").stdout)
    assert len(listing) == 1
    entry = listing[0]
    for key in ("name", "state", "attempt", "failures", "exit_code", "branch", "worktree", "log", "base", "task",
                "scope", "tmux_socket", "tmux_session", "last_activity"):
        assert key in entry
    assert entry["state"] == "running" and entry["task"] == "t1" and entry["tmux_socket"] == fleet_socket(repo)
    table = cockpit(repo, "ls").stdout
    assert "alpha" in table and "running" in table

    refused = cockpit(repo, "discard", "alpha")  # no terminal to ask on
    assert_clean_error(refused, 1, "add --yes")
    assert Path(entry["worktree"]).is_dir()

    done = cockpit(repo, "discard", "alpha", "--yes")
    assert done.returncode == 0 and "refs/cockpit/archive/alpha/1" in done.stdout
    assert json.loads(cockpit(repo, "ls", "--json").stdout) == []
    assert "refs/cockpit/archive/alpha/1" in cockpit(repo, "archives", "alpha").stdout
    restored = cockpit(repo, "restore", "alpha")
    assert restored.returncode == 0 and Path(entry["worktree"]).is_dir()
    respawned = cockpit(repo, "respawn", "alpha", "--keep")
    assert respawned.returncode == 0 and "attempt 2" in respawned.stdout, respawned.stderr


def test_pause_resume_kill_fail_via_cli(repo: Path) -> None:
    assert cockpit(repo, "spawn", "b", "--command", sleeper("b")).returncode == 0
    assert cockpit(repo, "pause", "b").returncode == 0
    assert json.loads(cockpit(repo, "ls", "--json").stdout)[0]["state"] == "paused"
    assert cockpit(repo, "resume", "b").returncode == 0
    assert cockpit(repo, "kill", "b").returncode == 0
    assert_clean_error(cockpit(repo, "kill", "b"), 1, "not running")
    assert cockpit(repo, "fail", "b").returncode == 0
    assert json.loads(cockpit(repo, "ls", "--json").stdout)[0]["failures"] == 1


def test_init_writes_starter_and_refuses_to_overwrite(repo: Path) -> None:
    assert cockpit(repo, "init").returncode == 0
    text = (repo / "cockpit.toml").read_text()
    assert_clean_error(cockpit(repo, "init"), 1, "already exists")
    assert (repo / "cockpit.toml").read_text() == text
    result = cockpit(repo, "up", "--no-tui")
    assert result.returncode == 0 and "example: spawned" in result.stdout
    again = cockpit(repo, "up", "--no-tui")
    assert "example: already running" in again.stdout


def test_up_spawns_dependencies_first(repo: Path) -> None:
    (repo / "cockpit.toml").write_text(
        '[[agent]]\nname = "second"\ncommand = "sleep 60"\nafter = ["first"]\n'
        '[[agent]]\nname = "first"\ncommand = "sleep 60"\n')
    result = cockpit(repo, "up", "--no-tui")
    assert result.stdout.splitlines() == ["All 2 dispatches use isolation: worktree — verified",
                                          "first: spawned", "second: pending: waits for 'first' (running)"]


BAD_NAMES = ["../x", "a/b", "a;rm -rf ~", "", "x" * 41, "Upper", "caf\u00e9", "a b"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_change_nothing(repo: Path, name: str) -> None:
    before = snapshot_state(repo)
    for args in (["spawn", name, "--command", "true"], ["discard", name, "--yes"], ["pause", name],
                 ["logs", name], ["restore", name]):
        assert_clean_error(cockpit(repo, *args), 1, "invalid agent name")
    assert snapshot_state(repo) == before
    assert not (repo / ".cockpit" / "worktrees").exists()


def test_dash_name_is_a_usage_error(repo: Path) -> None:
    assert_clean_error(cockpit(repo, "spawn", "-rf"), 2, "usage:")
    assert_clean_error(cockpit(repo, "spawn", "--", "-rf", "--command", "true"), 2, "usage:")
    assert_clean_error(cockpit(repo, "spawn", "--command", "true", "--", "-rf"), 1, "invalid agent name")


def test_task_is_never_interpreted_by_a_shell(repo: Path) -> None:
    task = "it's \"quoted\" $(touch pwned) `touch pwned2`\nline two"
    result = cockpit(repo, "spawn", "t", "--command", "printf '%s' \"$COCKPIT_TASK\" > task.out; sleep 60",
                     "--task", task)
    assert result.returncode == 0, result.stderr
    out = repo / ".cockpit" / "worktrees" / "t" / "task.out"
    wait_until(lambda: out.exists() and out.read_text(), message="task written")  # (open, then written)
    assert out.read_text() == task and not list(repo.rglob("pwned*"))
    assert json.loads(cockpit(repo, "ls", "--json").stdout)[0]["task"] == task


def test_not_a_repository(tmp_path: Path) -> None:
    assert_clean_error(cockpit(tmp_path, "ls"), 1, "not a git repository")
    assert_clean_error(cockpit(tmp_path, "spawn", "a", "--command", "true"), 1, "not a git repository")
    assert list(tmp_path.iterdir()) == []


def test_repository_without_commits(tmp_path: Path) -> None:
    git(tmp_path, "init", "--quiet")
    assert_clean_error(cockpit(tmp_path, "spawn", "a", "--command", "true"), 1, "no commits")
    assert git(tmp_path, "branch", "--list") == ""
    assert not (tmp_path / ".cockpit" / "worktrees").exists()


def test_base_that_does_not_exist(repo: Path) -> None:
    before = snapshot_state(repo)
    assert_clean_error(cockpit(repo, "spawn", "a", "--command", "true", "--base", "nope"), 1,
                       "base 'nope' does not exist")
    assert_clean_error(cockpit(repo, "spawn", "a", "--command", "true", "--base=--all"), 1, "does not exist")
    assert snapshot_state(repo) == before


def test_existing_branch_or_path_is_never_clobbered(repo: Path) -> None:
    git(repo, "branch", "cockpit/mine")
    head = git(repo, "rev-parse", "cockpit/mine")
    assert_clean_error(cockpit(repo, "spawn", "mine", "--command", "true"), 1, "already exists")
    assert git(repo, "rev-parse", "cockpit/mine") == head
    squatter = repo / ".cockpit" / "worktrees" / "squat"
    squatter.mkdir(parents=True)
    (squatter / "precious.txt").write_text("keep me")
    assert_clean_error(cockpit(repo, "spawn", "squat", "--command", "true"), 1, "already exists")
    assert (squatter / "precious.txt").read_text() == "keep me"
    assert git(repo, "branch", "--list", "cockpit/squat") == ""
    sessions = tmux(repo, "list-sessions").stdout
    assert "squat" not in sessions and "mine" not in sessions


def test_malformed_toml(repo: Path) -> None:
    (repo / "cockpit.toml").write_text("[cockpit]\nbase = \n")
    result = cockpit(repo, "up", "--no-tui")
    assert_clean_error(result, 1, "cockpit.toml:2: invalid TOML")


def test_a_typo_in_cockpit_toml_leaves_the_running_agents_in_reach(repo: Path) -> None:
    """cockpit.toml edited while agents run, with a typo: ls lists them (saying why it could not
    read the file), and pause, resume, fail and discard work on them; what needs the file to
    start something (up, spawn without --command) still refuses, in one line."""
    assert cockpit(repo, "spawn", "b", "--command", sleeper("b")).returncode == 0
    (repo / "cockpit.toml").write_text("[cockpit]\nbase = \n")
    listed = cockpit(repo, "ls", "--json")
    assert listed.returncode == 0 and [a["name"] for a in json.loads(listed.stdout)] == ["b"]
    assert "cockpit.toml:2: invalid TOML" in listed.stderr and "listing the agents here" in listed.stderr
    assert cockpit(repo, "pause", "b").returncode == 0
    assert json.loads(cockpit(repo, "ls", "--json").stdout)[0]["state"] == "paused"
    assert cockpit(repo, "resume", "b").returncode == 0
    assert cockpit(repo, "fail", "b").returncode == 0
    discarded = cockpit(repo, "discard", "b", "--yes")
    assert discarded.returncode == 0 and "archived at refs/cockpit/archive/b/1" in discarded.stdout
    assert_clean_error(cockpit(repo, "up", "--no-tui"), 1, "cockpit.toml:2: invalid TOML")


def test_tmux_missing_or_too_old(repo: Path, tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    git_path = subprocess.run(["which", "git"], capture_output=True, text=True).stdout.strip()
    (bindir / "git").symlink_to(git_path)
    env = {"PATH": str(bindir)}
    assert_clean_error(cockpit(repo, "spawn", "a", "--command", "true", env=env), 1, "tmux is not installed")
    fake = bindir / "tmux"
    fake.write_text("#!/bin/sh\necho 'tmux 3.1c'\n")
    fake.chmod(0o755)
    assert_clean_error(cockpit(repo, "spawn", "a", "--command", "true", env=env), 1, "too old")
    assert git(repo, "branch", "--list") == "* main"


def test_spawn_failure_midway_leaves_nothing(repo: Path, tmp_path: Path) -> None:
    before = snapshot_state(repo)
    # A session of that name already on the fleet's server: the tmux step fails after the
    # worktree was made; everything must be rolled back.
    socket = Path(fleet_socket(repo))
    socket.parent.mkdir(mode=0o700, exist_ok=True)
    subprocess.run(["tmux", "-S", str(socket), "-f", "/dev/null", "new-session", "-d", "-s", "clash", "sleep 60"],
                   check=True)
    result = cockpit(repo, "spawn", "clash", "--command", "true")
    assert_clean_error(result, 1, "already exists")
    after = snapshot_state(repo)
    assert after[:2] == before[:2] and after[3:] == before[3:]
    assert not (repo / ".cockpit" / "agents" / "clash").exists()


def test_two_processes_discarding_the_same_agent(repo: Path) -> None:
    assert cockpit(repo, "spawn", "d", "--command", "echo x > f.txt; sleep 60").returncode == 0
    procs = [subprocess.Popen([sys.executable, "-m", "cockpit", "discard", "d", "--yes"], cwd=repo,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=60), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    assert any("no agent named 'd'" in err for _, err in results), results
    archives = cockpit(repo, "archives", "d").stdout.splitlines()
    assert [line.split()[0] for line in archives] == ["refs/cockpit/archive/d/1"]


def test_logs_follow_survives_deletion_truncation_and_binary(repo: Path) -> None:
    assert cockpit(repo, "spawn", "lg", "--command", sleeper("tick")).returncode == 0
    log = repo / ".cockpit" / "agents" / "lg" / "session.log"
    # SIGINT as a terminal delivers it: a runner that started us in the background (nohup, &)
    # passes SIGINT on as ignored, and Python then never raises KeyboardInterrupt.
    follower = subprocess.Popen([sys.executable, "-m", "cockpit", "logs", "lg", "-f", "-n", "1"], cwd=repo,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = bytearray()
    os.set_blocking(follower.stdout.fileno(), False)

    def read_more() -> bytes:
        chunk = follower.stdout.read()
        if chunk:
            seen.extend(chunk)
        return bytes(seen)

    try:
        wait_until(lambda: b"tick" in read_more(), message="follow prints output")
        with log.open("r+b") as handle:
            handle.truncate(0)
        with log.open("ab") as handle:
            handle.write(b"\xff\xfe binary \x00 after truncation\n")
        wait_until(lambda: b"after truncation" in read_more(), message="output after truncation")
        log.unlink()
        # cockpit notices the log is gone and re-opens the pipe; the follower picks up the new file.
        wait_until(lambda: cockpit(repo, "ls").returncode == 0 and log.exists(), message="log re-created")
        mark = len(seen)
        wait_until(lambda: b"tick" in read_more()[mark:], message="output after re-creation")
        assert follower.poll() is None
    finally:
        follower.send_signal(signal.SIGINT)
        try:  # read both pipes while it exits (a full pipe would block it), generously on a loaded machine
            os.set_blocking(follower.stdout.fileno(), True)
            _out, err = follower.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            follower.kill()
            raise
    assert follower.returncode in (0, 130) and b"Traceback" not in err


def test_down_stops_every_agent_and_keeps_their_work(repo: Path) -> None:
    for name in ("one", "two"):
        assert cockpit(repo, "spawn", name, "--command", "sleep 60").returncode == 0
    result = cockpit(repo, "down")
    assert result.returncode == 0 and "2 agent(s) stopped" in result.stdout
    listing = {a["name"]: a for a in json.loads(cockpit(repo, "ls", "--json").stdout)}
    assert {a["state"] for a in listing.values()} == {"killed"}
    assert all(Path(a["worktree"]).is_dir() for a in listing.values())
    assert "no agent was running" in cockpit(repo, "down").stdout


def test_one_line_is_the_message_of_a_refusal_and_names_the_type_of_anything_else() -> None:
    """The one rule every view uses to turn an error into the line the user sees
    (``cockpit.core.errors.one_line``: the CLI's stderr, the *.failed events)."""
    from cockpit.core.errors import CockpitError, NotFound, one_line
    assert one_line(NotFound("no agent named 'x' (see 'cockpit ls')")) == "no agent named 'x' (see 'cockpit ls')"
    assert one_line(CockpitError("refused")) == "refused"
    assert one_line(PermissionError(13, "Permission denied")) == "PermissionError: [Errno 13] Permission denied"
    assert one_line(KeyError("k")) == "KeyError: 'k'"
