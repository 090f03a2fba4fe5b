"""The host side of a kept session (``cockpit _remote`` with a ``serve`` request), run here as a
plain process on a real repository: no ssh. A session answers many requests, each exactly as a
one-shot ``_remote`` would, and nothing a request runs can write into its channel or read the
next request from it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cockpit import __version__
from cockpit.core.transport import MISMATCH_EXIT, PROTOCOL
from conftest import git, wait_until

PROJECT = Path(__file__).resolve().parent.parent


def one_shot(repo: Path, request: dict) -> subprocess.CompletedProcess[str]:
    body = json.dumps({"protocol": PROTOCOL, "version": __version__, "repo": str(repo), **request})
    return subprocess.run([sys.executable, "-m", "cockpit", "_remote"], input=body, capture_output=True, text=True,
                          timeout=60, cwd=PROJECT)


class Served:
    """A ``cockpit _remote`` serving a session on pipes; ``ask`` sends one request, returns its
    answer."""

    def __init__(self, repo: Path, env: dict[str, str] | None = None) -> None:
        self.repo = repo
        self.proc = subprocess.Popen([sys.executable, "-m", "cockpit", "_remote"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=PROJECT,
                                     env=env)
        self.hello = self.send({"op": "serve"})

    def send(self, request: dict) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        body = {"protocol": PROTOCOL, "version": __version__, "repo": str(self.repo), **request}
        self.proc.stdin.write(json.dumps(body).encode() + b"\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"the session ended: {self.proc.stderr.read().decode() if self.proc.stderr else ''}"
        return json.loads(line)

    def close(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(30)


@pytest.fixture
def served(repo: Path):
    session = Served(repo)
    yield session
    if session.proc.poll() is None:
        session.close()


def test_a_session_answers_many_requests_as_one_shots_would(served: Served, repo: Path) -> None:
    assert served.hello == {"ready": True, "version": __version__}
    for request in ({"op": "run", "argv": ["ls", "--json"]},
                    {"op": "run", "argv": ["pause", "nobody"]},  # refused: exit 1, one line
                    {"op": "run", "argv": ["ls", "--bogus"]},  # argparse's refusal: exit 2
                    {"op": "run", "argv": ["init"]},  # not a command another cockpit may run
                    {"op": "probe"},
                    {"op": "status", "name": "nobody"}):
        kept, alone = served.send(request), one_shot(repo, request)
        assert (kept["status"], kept["stdout"], kept["stderr"]) == (alone.returncode, alone.stdout, alone.stderr), \
            request
    assert served.send({"op": "run", "argv": ["pause", "nobody"]})["stderr"] == \
        "cockpit: no agent named 'nobody' (see 'cockpit ls')\n"
    # a request that is no JSON, or a stream, is an answer of its own; the session goes on
    assert served.send({"op": "follow"})["status"] == 1
    assert served.send({"op": "serve"})["status"] == 1
    assert served.send({"op": "run", "argv": ["ls", "--json"]}) == {"status": 0, "stdout": "[]\n", "stderr": ""}
    assert served.close() == 0


@pytest.mark.tmux
def test_a_session_serves_real_work_and_each_answer_stays_one_line(served: Served, repo: Path) -> None:
    """An agent whose command writes to its stdout and reads stdin, spawned in the session; its
    diff (git runs); ls; kill: every answer is one line and the next request is answered. (What
    cockpit starts already has its own stdin and stdout; the session's file descriptors 0-2 keep
    it so for anything that would not.)"""
    spec = {"name": "a1", "command": "echo spawned; cat; sleep 600"}
    spawned = served.send({"op": "spawn", "name": "a1", "spec": spec, "base": "main",
                           "pass_values": {}})
    assert spawned["status"] == 0, spawned
    assert json.loads(spawned["stdout"])["name"] == "a1"
    (repo / ".cockpit" / "worktrees" / "a1" / "new.txt").write_text("hello\n")
    diff = served.send({"op": "run", "argv": ["diff", "a1"]})
    assert diff["status"] == 0 and "new.txt" in diff["stdout"], diff
    listed = served.send({"op": "run", "argv": ["ls", "--json"]})
    assert [a["name"] for a in json.loads(listed["stdout"])] == ["a1"]
    assert served.send({"op": "run", "argv": ["kill", "a1"]})["status"] == 0


@pytest.mark.tmux
def test_a_spawns_pass_env_values_stay_with_that_spawn(served: Served, repo: Path) -> None:
    command = 'echo "secret=${COCKPIT_T_SECRET:-none}"; sleep 600'
    for name, values in (("a1", {"COCKPIT_T_SECRET": "s3"}), ("a2", {})):
        answer = served.send({"op": "spawn", "name": name, "base": "main", "pass_values": values,
                              "spec": {"name": name, "command": command, "pass_env": ["COCKPIT_T_SECRET"]}})
        assert answer["status"] == 0, answer
    logs = {name: repo / ".cockpit" / "agents" / name / "session.log" for name in ("a1", "a2")}
    wait_until(lambda: all("secret=" in log.read_text(errors="replace") for log in logs.values()),
               message="both agents' first line")
    assert "secret=s3" in logs["a1"].read_text()
    assert "secret=none" in logs["a2"].read_text(), "the first spawn's value outlived it"
    assert served.send({"op": "run", "argv": ["down"]})["status"] == 0


def test_another_version_is_refused_before_a_session_starts(repo: Path) -> None:
    body = json.dumps({"protocol": PROTOCOL, "version": "0.0.0-other", "repo": str(repo), "op": "serve"})
    result = subprocess.run([sys.executable, "-m", "cockpit", "_remote"], input=body + "\n", capture_output=True,
                            text=True, timeout=60, cwd=PROJECT)
    assert result.returncode == MISMATCH_EXIT and result.stdout == ""
    assert "cockpit version" in result.stderr


def test_a_session_runs_in_a_repository_that_is_not_its_working_directory(tmp_path: Path, repo: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    git(other, "init", "--quiet")
    session = Served(repo, env={**os.environ, "PWD": str(other)})
    try:
        assert session.send({"op": "run", "argv": ["ls", "--json"]})["stdout"] == "[]\n"
    finally:
        session.close()


@pytest.mark.tmux
def test_a_session_keeps_one_fleet_and_sees_what_others_did_between_requests(served: Served, repo: Path) -> None:
    """The session serves every request with one fleet (the event log read on from where it
    stopped, as the TUI's fleet reads it): what another process did between two requests shows in
    the next answer, and an agent's files are looked at again on each ``ls`` (nothing here tells
    the session's fleet that a worktree changed)."""
    from cockpit.core.fleet import Fleet
    fleet = Fleet(repo)

    def listed() -> dict[str, dict]:
        answer = served.send({"op": "run", "argv": ["ls", "--json"]})
        assert answer["status"] == 0, answer
        return {a["name"]: a for a in json.loads(answer["stdout"])}

    assert listed() == {}
    fleet.spawn("a1", command="sleep 600", scope=["src/**"])  # another cockpit, not the session
    assert listed()["a1"]["out_of_scope"] == []
    (repo / ".cockpit" / "worktrees" / "a1" / "outside.txt").write_text("out of scope\n")
    assert listed()["a1"]["out_of_scope"] == ["outside.txt"]
    assert served.send({"op": "run", "argv": ["pause", "a1"]})["status"] == 0
    assert fleet.agent("a1").state == "paused"
    fleet.resume("a1")  # behind the session's back: it must not say "already running" from memory
    assert served.send({"op": "run", "argv": ["resume", "a1"]})["stderr"] == "cockpit: agent 'a1' is not paused\n"
    fleet.discard("a1")
    assert listed() == {}
    assert served.send({"op": "run", "argv": ["pause", "a1"]})["stderr"] == \
        "cockpit: no agent named 'a1' (see 'cockpit ls')\n"
