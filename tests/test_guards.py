"""Guard rails: scope ownership and collisions, the pre-spawn checklist, the scoped environment,
the claude-code preset and `cockpit guard`, and the 2-failure rule driven by `cockpit fail`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cockpit.core.fleet import Fleet
from cockpit.core.scope import in_scope, matches, overlap
from conftest import git, tmux, wait_until

pytestmark = pytest.mark.tmux


def cockpit(cwd: Path, *args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cockpit", *args], cwd=cwd, capture_output=True, text=True,
                          input=stdin, env={**os.environ, **(env or {})}, timeout=60)


@pytest.mark.parametrize("path, pattern, expected", [
    ("src/auth/a.py", "src/auth/**", True), ("src/auth/x/y/z.py", "src/auth/**", True),
    ("src/authz/a.py", "src/auth/**", False), ("src/a.py", "src/*.py", True), ("src/x/a.py", "src/*.py", False),
    ("docs/a.md", "*.md", True), ("a/b/test_x.py", "**/test_*.py", True), ("test_x.py", "**/test_*.py", True),
    ("src/auth/a.py", "src/auth/", True), ("README.md", "README.md", True), ("READMEXmd", "README.md", False),
])
def test_scope_globs(path: str, pattern: str, expected: bool) -> None:
    assert matches(path, pattern) is expected


def test_no_scope_owns_everything_and_overlaps() -> None:
    assert in_scope("anything/at/all", [])
    assert overlap(["src/**"], ["src/auth/**"], []) and not overlap(["src/**"], ["tests/**"], ["src/a", "tests/b"])
    assert overlap([], ["src/**"], []) and not overlap([], [], [])


def test_out_of_scope_and_collisions(fleet: Fleet, repo: Path) -> None:
    fleet.spawn("a", command="echo a > shared.txt; mkdir -p src/a; echo x > src/a/mine.txt; echo ready; sleep 60",
                scope=["src/a/**"])
    fleet.spawn("b", command="echo b > shared.txt; git add shared.txt; git commit -qm b; echo ready; sleep 60",
                scope=["shared.txt"])
    fleet.spawn("c", command="echo ready; sleep 60")
    for name in "abc":
        wait_until(lambda: "ready" in Path(fleet.agent(name).log).read_text(errors="replace"), message=f"{name} ready")
    agents = {a.name: a for a in fleet.agents(ownership=True)}
    assert agents["a"].out_of_scope == ["shared.txt"]
    assert agents["a"].collisions == [{"path": "shared.txt", "agents": ["b"]}]
    assert agents["b"].out_of_scope == [] and agents["b"].collisions == [{"path": "shared.txt", "agents": ["a"]}]
    assert agents["c"].out_of_scope == [] and agents["c"].collisions == []
    fleet.agents(ownership=True)  # a second look reports nothing new
    types = [(e.type, e.agent) for e in fleet.events.all() if e.type in ("out_of_scope", "collision")]
    assert sorted(types) == [("collision", "a"), ("collision", "b"), ("out_of_scope", "a")]

    result = cockpit(repo, "check")
    assert result.returncode == 1
    assert "a: out of scope: shared.txt" in result.stdout and "collision: shared.txt also changed by b" in result.stdout
    assert cockpit(repo, "check", "--agent", "c").returncode == 0
    listing = {a["name"]: a for a in json.loads(cockpit(repo, "ls", "--json").stdout)}
    assert listing["a"]["out_of_scope"] == ["shared.txt"]
    # Nothing outside the worktrees was touched by the check.
    assert git(repo, "status", "--porcelain") == ""


def test_checklist_announces_a_verified_batch(repo: Path) -> None:
    (repo / "cockpit.toml").write_text(
        '[[agent]]\nname = "one"\ncommand = "sleep 60"\nscope = ["src/**"]\n'
        '[[agent]]\nname = "two"\ncommand = "sleep 60"\nscope = ["src/app.py"]\n'
        '[[agent]]\nname = "three"\ncommand = "sleep 60"\nscope = ["docs/**"]\n')
    result = cockpit(repo, "up", "--no-tui")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "All 3 dispatches use isolation: worktree — verified"
    assert any("warning: scopes of one and two overlap" in line for line in lines)
    assert not any("three" in line and "warning" in line for line in lines)
    events = [json.loads(line) for line in (repo / ".cockpit" / "events.jsonl").read_text().splitlines()]
    checklist = [e for e in events if e["type"] == "checklist"]
    assert checklist[0]["data"]["message"] == "All 3 dispatches use isolation: worktree — verified"


def test_checklist_refuses_a_batch_when_an_item_fails(repo: Path) -> None:
    (repo / "cockpit.toml").write_text('[[agent]]\nname = "one"\ncommand = "sleep 60"\n'
                                       '[[agent]]\nname = "two"\ncommand = "sleep 60"\n')
    git(repo, "branch", "cockpit/two")
    result = cockpit(repo, "up", "--no-tui")
    assert result.returncode == 1
    assert "Refusing to dispatch 2 agents" in result.stderr
    assert "FAILED two: own branch: cockpit/two already exists" in result.stderr
    assert not (repo / ".cockpit" / "worktrees" / "one").exists()  # nothing of the batch started
    sessions = tmux(repo, "ls").stdout
    assert "one" not in sessions


def test_checklist_passes_on_a_repository_cockpit_was_used_in(repo: Path) -> None:
    """The event log exists after the first spawn: it is a file, and a writable one is fine."""
    assert cockpit(repo, "spawn", "solo", "--command", "sleep 60").returncode == 0
    assert (repo / ".cockpit" / "events.jsonl").is_file()
    (repo / "cockpit.toml").write_text('[[agent]]\nname = "one"\ncommand = "sleep 60"\n'
                                       '[[agent]]\nname = "two"\ncommand = "sleep 60"\n')
    result = cockpit(repo, "up", "--no-tui")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:3] == ["All 2 dispatches use isolation: worktree — verified",
                                              "one: spawned", "two: spawned"]


def test_a_batch_of_one_shows_no_failure_it_would_not_enforce(repo: Path) -> None:
    """N=1: the checklist does not apply, so it can neither refuse nor print a failed item."""
    assert cockpit(repo, "spawn", "solo", "--command", "sleep 60").returncode == 0
    (repo / "cockpit.toml").write_text('[[agent]]\nname = "one"\ncommand = "sleep 60"\n')
    result = cockpit(repo, "up", "--no-tui")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Not applicable because N=1 (the pre-spawn checklist runs for batches of two or more)", "one: spawned"]
    assert "FAILED" not in result.stdout + result.stderr


def test_checklist_refuses_what_the_spawn_would_refuse(repo: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A dangling symlink at a worktree path and a sandbox that cannot run fail the checklist,
    as they would fail the spawn: the batch is refused before any agent starts."""
    from cockpit.core import sandbox
    from cockpit.core.checklist import ChecklistFailed
    (repo / "cockpit.toml").write_text('[[agent]]\nname = "one"\ncommand = "sleep 60"\n'
                                       '[[agent]]\nname = "two"\ncommand = "sleep 60"\n'
                                       '[[agent]]\nname = "boxed"\ncommand = "sleep 60"\nsandbox = "bwrap"\n')
    link = repo / ".cockpit" / "worktrees" / "two"
    link.parent.mkdir(parents=True)
    link.symlink_to(tmp_path / "nowhere")
    bindir = tmp_path / "bin"  # git and tmux, no bwrap
    bindir.mkdir()
    for tool in ("git", "tmux"):
        (bindir / tool).symlink_to(subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True,
                                                  text=True).stdout.strip())
    monkeypatch.setenv("PATH", str(bindir))
    monkeypatch.setattr(sandbox, "_checked", {})
    fleet = Fleet(repo)
    with pytest.raises(ChecklistFailed) as refused:
        fleet.up()
    failed = {(i.agent, i.check) for i in refused.value.checklist.failures}
    assert failed == {("two", "own worktree path"), ("boxed", "write sandbox runs")}
    assert "bubblewrap" in next(i.detail for i in refused.value.checklist.failures if i.agent == "boxed")
    assert not (repo / ".cockpit" / "worktrees" / "one").exists() and fleet.agents() == []
    assert link.is_symlink()


def test_checklist_names_a_session_squatting_on_an_agents_name(fleet: Fleet, repo: Path) -> None:
    (repo / "cockpit.toml").write_text('[[agent]]\nname = "one"\ncommand = "sleep 60"\n'
                                       '[[agent]]\nname = "two"\ncommand = "sleep 60"\n')
    fleet.tmux.cmd("new-session", "-d", "-s", "two", "sleep 600")  # not a cockpit agent
    result = cockpit(repo, "up", "--no-tui")
    assert result.returncode == 1, result.stderr
    assert (f"FAILED two: own tmux session: session 'two' already exists on the fleet's tmux server "
            f"({fleet.tmux.socket})") in result.stderr
    assert fleet.tmux.has_session("two") and fleet.agents() == []


def test_single_spawn_is_not_applicable_and_says_why(repo: Path) -> None:
    result = cockpit(repo, "spawn", "solo", "--command", "sleep 60")
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == ("Not applicable because N=1 "
                                             "(the pre-spawn checklist runs for batches of two or more)")
    # The announcement is written once, in the checklist, not copied where it is printed.
    package = Path(__file__).resolve().parents[1] / "cockpit"
    copies = [p for p in package.rglob("*.py") if "Not applicable because" in p.read_text()]
    assert copies == [package / "core" / "checklist.py"]


def test_pass_env_lets_named_variables_through(fleet: Fleet, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COCKPIT_TEST_TOKEN", "visible-token")
    monkeypatch.setenv("COCKPIT_TEST_SECRET", "hidden-secret")
    (repo / "cockpit.toml").write_text('[[agent]]\nname = "e"\ncommand = "env > env.out; sleep 60"\n'
                                       'pass_env = ["COCKPIT_TEST_TOKEN"]\nenv = { EXTRA = "1" }\n')
    fleet.spawn("e")
    out = repo / ".cockpit" / "worktrees" / "e" / "env.out"
    wait_until(lambda: out.exists() and "COCKPIT_AGENT" in out.read_text(), message="env written")
    text = out.read_text()
    assert "COCKPIT_TEST_TOKEN=visible-token" in text and "EXTRA=1" in text
    assert "hidden-secret" not in text


def test_an_agents_own_path_reaches_it(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    """tmux gives a new session the PATH of the client that creates it, not the one of ``-e``."""
    bindir = tmp_path / "mybin"
    bindir.mkdir()
    (bindir / "mytool").write_text("#!/bin/sh\necho found-my-tool\n")
    (bindir / "mytool").chmod(0o755)
    (repo / "cockpit.toml").write_text(f'[[agent]]\nname = "p"\ncommand = "mytool > out.txt; sleep 60"\n'
                                       f'env = {{ PATH = "{bindir}:/usr/bin:/bin" }}\n')
    fleet.spawn("p")
    out = repo / ".cockpit" / "worktrees" / "p" / "out.txt"
    wait_until(lambda: out.exists() and out.read_text(), message="the tool ran")
    assert out.read_text() == "found-my-tool\n"


def test_claude_code_preset_writes_settings_outside_the_worktree(fleet: Fleet, repo: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "claude"  # stands in for Claude Code: records how it was started
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > args.out\nsleep 60\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    (repo / "cockpit.toml").write_text('[[agent]]\nname = "cc"\npreset = "claude-code"\ntask = "fix it"\n'
                                       'scope = ["src/**"]\n')
    fleet.spawn("cc")
    worktree = repo / ".cockpit" / "worktrees" / "cc"
    args_file = worktree / "args.out"
    wait_until(lambda: args_file.exists() and args_file.read_text().count("\n") >= 3, message="claude started")
    settings_path = repo / ".cockpit" / "agents" / "cc" / "claude-settings.json"
    assert args_file.read_text().splitlines() == ["fix it", "--settings", str(settings_path)]
    settings = json.loads(settings_path.read_text())
    assert "Bash(git push:*)" in settings["permissions"]["ask"]
    assert "Bash(git push --force:*)" in settings["permissions"]["deny"]
    assert "Bash(git reset --hard:*)" in settings["permissions"]["deny"]
    assert f"Edit(/{repo}/src/**)" in settings["permissions"]["deny"]
    assert not any(".cockpit" in rule for rule in settings["permissions"]["deny"])
    pre = settings["hooks"]["PreToolUse"][0]
    assert pre["matcher"].startswith("Edit|Write") and "guard --agent cc" in pre["hooks"][0]["command"]
    assert "check --agent cc" in settings["hooks"]["Stop"][0]["hooks"][0]["command"]
    from cockpit.core.hook_record import EVENTS
    for event in EVENTS:  # the recorder of the agent's status, on every event, beside the guard and the check
        recorders = [h["command"] for group in settings["hooks"][event] for h in group["hooks"]
                     if "hook_record" in h["command"]]
        assert len(recorders) == 1 and recorders[0].endswith(str(repo / ".cockpit" / "agents" / "cc")), event
        assert " -I -S -c " in recorders[0]
    assert "disableAllHooks" not in settings  # the user's choice stands (docs/presets.md)
    assert git(worktree, "status", "--porcelain") == "?? args.out"  # the settings never dirty the worktree


def test_guard_answers_the_hook(fleet: Fleet, repo: Path) -> None:
    fleet.spawn("g", command="sleep 60", scope=["src/**"])
    worktree = repo / ".cockpit" / "worktrees" / "g"

    def guard(file_path: str, *extra: str) -> subprocess.CompletedProcess:
        payload = {"tool_name": "Edit", "tool_input": {"file_path": file_path}, "cwd": str(worktree)}
        return cockpit(worktree, "guard", *extra, stdin=json.dumps(payload))

    allowed = guard("src/app.py")
    assert allowed.returncode == 0 and allowed.stdout == ""
    for target, why in (("README.md", "outside agent 'g''s scope"),
                        (str(repo / "src" / "app.py"), "outside agent 'g''s worktree"), ("../other/x.py", "worktree")):
        answer = guard(target)
        assert answer.returncode == 0
        decision = json.loads(answer.stdout)["hookSpecificOutput"]
        assert decision["hookEventName"] == "PreToolUse" and decision["permissionDecision"] == "deny"
        assert why in decision["permissionDecisionReason"]
    assert json.loads(guard("README.md", "--agent", "g").stdout)["hookSpecificOutput"]["permissionDecision"] == "deny"
    bad = cockpit(worktree, "guard", stdin="not json")
    assert bad.returncode == 1 and "not the hook's JSON" in bad.stderr


def test_marking_failed_twice_halts_and_blocks_dependents(repo: Path) -> None:
    (repo / "cockpit.toml").write_text('[[agent]]\nname = "base"\ncommand = "sleep 60"\n'
                                       '[[agent]]\nname = "mid"\ncommand = "sleep 60"\nafter = ["base"]\n'
                                       '[[agent]]\nname = "top"\ncommand = "sleep 60"\nafter = ["mid"]\n'
                                       '[[agent]]\nname = "solo"\ncommand = "sleep 60"\n')
    assert cockpit(repo, "up", "--no-tui").returncode == 0
    assert cockpit(repo, "fail", "base").returncode == 0
    assert cockpit(repo, "respawn", "base", "--keep").returncode == 0
    assert "halted" in cockpit(repo, "fail", "base").stdout
    listing = {a["name"]: a for a in json.loads(cockpit(repo, "ls", "--json").stdout)}
    assert listing["base"]["state"] == "halted"
    assert listing["mid"]["state"] == "halted" and listing["mid"]["blocked_by"] == "base"
    assert listing["top"]["state"] == "halted" and listing["top"]["blocked_by"] == "base"
    assert listing["solo"]["state"] == "running"
    refused = cockpit(repo, "respawn", "base")
    assert refused.returncode == 1 and "--force" in refused.stderr
    assert cockpit(repo, "respawn", "base", "--force").returncode == 0
    listing = {a["name"]: a for a in json.loads(cockpit(repo, "ls", "--json").stdout)}
    assert listing["mid"]["state"] == "killed" and listing["mid"]["blocked_by"] is None
