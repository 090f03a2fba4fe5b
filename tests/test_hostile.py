"""Hostile input, table-driven: names, tasks, config files and log contents. Each gives a clear
message and exit 1 or 2 (or, for content cockpit must simply carry, exit 0), never a traceback;
nothing is created and nothing is lost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import git, sleeper, tmux, wait_until

pytestmark = pytest.mark.tmux


def cockpit(cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cockpit", *args], cwd=cwd, capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def no_traceback(result: subprocess.CompletedProcess) -> None:
    assert b"Traceback" not in result.stderr and b"Traceback" not in result.stdout


def fleet_state(repo: Path) -> tuple:
    sessions = tmux(repo, "list-sessions", "-F", "#{session_name}").stdout
    return (git(repo, "for-each-ref"), git(repo, "worktree", "list"), sessions, git(repo, "status", "--porcelain"),
            sorted(str(p.relative_to(repo)) for p in (repo / ".cockpit").rglob("*")
                   if "tmp" not in p.parts and p.name not in ("lock", "events.jsonl"))
            if (repo / ".cockpit").exists() else [])


HOSTILE_NAMES = ["..", ".", "a/../../etc", "-", "--help-me", "a\nb", "a\x1b[2Jb", "$(id)", "`id`", "a*", "~root",
                 "x" * 10_000, "\u202eevil", "a\tb", "ü", "A", "a_b", "a.b", "a:b", " a", "a "]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names(repo: Path, name: str) -> None:
    before = fleet_state(repo)
    for args in (["spawn", "--command", "true", "--", name], ["kill", "--", name], ["respawn", "--", name],
                 ["restore", "--", name], ["logs", "--", name], ["attach", "--", name],
                 ["discard", "--yes", "--", name]):
        result = cockpit(repo, *args)
        no_traceback(result)
        assert result.returncode in (1, 2), (args, result.stderr)
        assert len(result.stderr.decode().strip().splitlines()) <= 3
    assert fleet_state(repo) == before


@pytest.mark.parametrize("task", ["", "x" * 100_000, "\x1b]0;title\x07\x1b[2J", "line1\nline2\r\nline3",
                                  "'; rm -rf / #", '"$HOME" `id` $(id) ${IFS}', "\u202e\u0000".replace("\u0000", "")])
def test_hostile_tasks_are_passed_verbatim_or_refused_cleanly(repo: Path, task: str) -> None:
    result = subprocess.run([sys.executable, "-m", "cockpit", "spawn", "t", "--command",
                             "printf '%s' \"$COCKPIT_TASK\" > task.out; sleep 60", "--task", task],
                            cwd=repo, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert "Traceback" not in result.stderr
    if result.returncode == 0:
        out = repo / ".cockpit" / "worktrees" / "t" / "task.out"
        wait_until(out.exists, message="task written")
        wait_until(lambda: out.read_bytes() == task.encode(), message="task verbatim")
    else:
        assert result.returncode == 1 and result.stderr.count("\n") == 1
        assert git(repo, "branch", "--list", "cockpit/t") == ""
    assert not list(repo.rglob("pwned*"))


CONFIGS = {
    "binary": b"\x00\xff\xfe garbage \x01",
    "invalid utf-8": b'[cockpit]\nbase = "\xff"\n',
    "not toml": b"this is not toml at all",
    "name not a string": b'[[agent]]\nname = 1\ncommand = "x"\n',
    "command a list": b'[[agent]]\nname = "a"\ncommand = ["x"]\n',
    "agent not a table": b'agent = "x"\n',
    "deep nesting": b"x = " + b"[" * 2000 + b"]" * 2000 + b"\n",
    "huge": b"# " + b"x" * 5_000_000 + b"\n[cockpit]\nbogus = 1\n",
    "keys not strings": b"[keys]\nquit = 1\n",
    "env not strings": b'[[agent]]\nname = "a"\ncommand = "x"\nenv = { A = [1] }\n',
    "bad preset": b'[[agent]]\nname = "a"\npreset = "skynet"\n',
}


@pytest.mark.parametrize("label", sorted(CONFIGS))
def test_hostile_config_files(repo: Path, label: str) -> None:
    (repo / "cockpit.toml").write_bytes(CONFIGS[label])
    git(repo, "add", "cockpit.toml")
    git(repo, "commit", "-qm", "config")
    before = fleet_state(repo)
    result = cockpit(repo, "up", "--no-tui")
    no_traceback(result)
    assert result.returncode == 1, result.stderr
    assert b"cockpit.toml" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert fleet_state(repo) == before


LOG_CONTENTS = {
    "binary": bytes(range(256)) * 64,
    "10 MB line": b"y" * 10_000_000,
    "invalid utf-8": b"ok \xff\xfe\xc3\x28 \xe2\x82 end\n",
    "escape bomb": b"\x1b[" + b"9" * 100_000 + b"m" + b"\x1b[?1049h\x1b]0;" + b"t" * 10_000 + b"\x07" * 1000 + b"\n",
}


@pytest.mark.parametrize("label", sorted(LOG_CONTENTS))
def test_hostile_log_contents(repo: Path, label: str) -> None:
    assert cockpit(repo, "spawn", "lg", "--command", "sleep 60").returncode == 0
    log = repo / ".cockpit" / "agents" / "lg" / "session.log"
    with log.open("ab") as handle:
        handle.write(LOG_CONTENTS[label])
    result = cockpit(repo, "logs", "lg", "-n", "5")
    no_traceback(result)
    assert result.returncode == 0
    assert 0 < len(result.stdout) <= 10 * 1024 * 1024
    assert log.stat().st_size >= len(LOG_CONTENTS[label])  # cockpit never truncates it
    listing = cockpit(repo, "ls")
    assert listing.returncode == 0 and b"lg" in listing.stdout


@pytest.mark.parametrize("replacement", ["directory", "symlink", "fifo"])
def test_log_replaced_by_something_else(repo: Path, tmp_path: Path, replacement: str) -> None:
    assert cockpit(repo, "spawn", "lg", "--command", sleeper("x")).returncode == 0
    log = repo / ".cockpit" / "agents" / "lg" / "session.log"
    elsewhere = tmp_path / "secret.txt"
    elsewhere.write_text("not yours\n")
    log.unlink()
    if replacement == "directory":
        log.mkdir()
    elif replacement == "symlink":
        log.symlink_to(elsewhere)
    else:
        os.mkfifo(log)
    result = cockpit(repo, "logs", "lg")
    no_traceback(result)
    assert result.returncode == 1 and b"session.log" in result.stderr
    assert b"not yours" not in result.stdout
    assert len(result.stderr.strip().splitlines()) == 1
    listing = cockpit(repo, "ls")
    assert listing.returncode == 0 and b"lg" in listing.stdout
    assert elsewhere.read_text() == "not yours\n"


@pytest.mark.parametrize("task", ["fix the parser;", "a;", ";", "ends with escaped \\;", "semi ; in the middle"])
def test_tasks_ending_in_semicolons_reach_the_agent(repo: Path, task: str) -> None:
    result = subprocess.run([sys.executable, "-m", "cockpit", "spawn", "s", "--command",
                             "printf '%s' \"$COCKPIT_TASK\" > task.out; sleep 60", "--task", task],
                            cwd=repo, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert result.returncode == 0, result.stderr
    out = repo / ".cockpit" / "worktrees" / "s" / "task.out"
    wait_until(lambda: out.exists() and out.read_bytes() == task.encode(), message="task verbatim")
