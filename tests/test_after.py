"""``after``: an agent waits (``pending``) until its upstreams have finished, then starts by itself
— through the watcher, with no TUI open — from a merge of base's tip and their tips."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from cockpit.core.fleet import Fleet
from conftest import git, sleeper, wait_until

pytestmark = pytest.mark.tmux


def cockpit(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cockpit", *args], cwd=repo, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL, timeout=120)


def ls(repo: Path) -> dict[str, dict]:
    result = cockpit(repo, "ls", "--json")
    assert result.returncode == 0, result.stderr
    return {a["name"]: a for a in json.loads(result.stdout)}


def finisher(flag: Path, path: str, text: str, code: int = 0) -> str:
    """An agent that waits for ``flag``, then commits ``path`` and exits ``code``."""
    return (f"while [ ! -e {shlex.quote(str(flag))} ]; do sleep 0.1; done; "
            f"mkdir -p $(dirname {path}); printf '%s\\n' {shlex.quote(text)} > {path}; git add {path}; "
            f"git commit -qm {shlex.quote('commit ' + path)}; exit {code}")


def toml(*agents: dict) -> str:
    lines = ["[cockpit]", 'base = "main"', ""]
    for agent in agents:
        lines.append("[[agent]]")
        for key, value in agent.items():
            lines.append(f"{key} = {json.dumps(value)}")
        lines.append("")
    return "\n".join(lines)


def test_a_dependent_waits_then_starts_by_itself_from_a_merge_of_base_and_its_upstream(
        repo: Path, tmp_path: Path) -> None:
    flag = tmp_path / "lib-done"
    (repo / "cockpit.toml").write_text(toml(
        {"name": "lib", "command": finisher(flag, "lib/lib.txt", "the library"), "scope": ["lib/**"]},
        {"name": "api", "command": "git log -1 --format=%P; cat lib/lib.txt; echo api > api.txt; " + sleeper("api"),
         "scope": ["api.txt"], "after": ["lib"]}))
    git(repo, "add", "cockpit.toml")
    git(repo, "commit", "-qm", "config")
    main_tip = git(repo, "rev-parse", "main")
    up = cockpit(repo, "up", "--no-tui")
    assert up.returncode == 0, up.stderr
    assert "lib: spawned" in up.stdout and "api: pending: waits for 'lib' (running)" in up.stdout
    api = ls(repo)["api"]
    assert (api["state"], api["worktree"], api["branch"], api["blocked_by"]) == ("pending", None, None, "lib")
    assert not (repo / ".cockpit" / "worktrees" / "api").exists()

    flag.touch()  # lib commits and exits 0; the watcher, not a cockpit command, starts api
    wait_until(lambda: ls(repo)["api"]["state"] == "running", timeout=30, message="api started by the watcher")
    agents = ls(repo)
    lib_tip = git(repo, "rev-parse", agents["lib"]["branch"])
    cut = agents["api"]["base_sha"]
    assert git(repo, "log", "-1", "--format=%P", cut).split() == [main_tip, lib_tip]
    log = Path(agents["api"]["log"])
    wait_until(lambda: "the library" in log.read_text(errors="replace"), message="api sees lib's work")
    # its own work only: lib's file is neither in its diff nor out of its scope
    wait_until(lambda: (Path(agents["api"]["worktree"]) / "api.txt").exists(), message="api writes")
    stat = cockpit(repo, "diff", "api", "--stat")
    assert "api.txt" in stat.stdout and "lib.txt" not in stat.stdout, stat.stdout
    check = json.loads(cockpit(repo, "check", "--agent", "api", "--json").stdout)
    assert [{k: v for k, v in a.items() if k != "conflicts"} for a in check] == [
        {"name": "api", "host": None, "out_of_scope": [], "collisions": []}]
    assert check[0]["conflicts"] in (None, [])  # (unknown until the watcher's first round: never lib's file)


def test_upstreams_that_conflict_keep_it_pending_and_force_starts_it_from_base(repo: Path, tmp_path: Path) -> None:
    flag = tmp_path / "go"
    (repo / "cockpit.toml").write_text(toml(
        {"name": "one", "command": finisher(flag, "README.md", "one's words")},
        {"name": "two", "command": finisher(flag, "README.md", "two's words")},
        {"name": "both", "command": sleeper("both"), "after": ["one", "two"]}))
    assert cockpit(repo, "up", "--no-tui").returncode == 0
    flag.touch()
    wait_until(lambda: "conflict" in (ls(repo)["both"]["reason"] or ""), timeout=30, message="the conflict reported")
    both = ls(repo)["both"]
    assert both["state"] == "pending" and "README.md" in both["reason"] and "--force" in both["reason"]
    refused = cockpit(repo, "respawn", "both")
    assert refused.returncode == 1 and "pending" in refused.stderr
    forced = cockpit(repo, "respawn", "both", "--force")
    assert forced.returncode == 0, forced.stderr
    both = ls(repo)["both"]
    assert both["state"] == "running" and both["base_sha"] == git(repo, "rev-parse", "main")


def test_two_failures_of_an_upstream_halt_its_pending_dependent(fleet: Fleet, repo: Path) -> None:
    (repo / "cockpit.toml").write_text(toml({"name": "lib", "command": "exit 3"},
                                            {"name": "api", "command": sleeper(), "after": ["lib"]}))
    fleet.up()
    wait_until(lambda: fleet.agent("lib").state == "failed", message="lib fails once")
    assert fleet.agent("api").state == "pending"
    fleet.respawn("lib")
    wait_until(lambda: fleet.agent("api").state == "halted", message="api halted with lib")
    api = fleet.agent("api")
    assert api.blocked_by == "lib" and "'lib' failed" in (api.reason or "") and api.worktree is None


def test_pass_env_is_captured_by_up_and_held_in_memory_never_on_disk(repo: Path, tmp_path: Path) -> None:
    flag = tmp_path / "go"
    secret = "s3cr3t-value-0x5eed"
    digest = hashlib.sha256(secret.encode()).hexdigest()[:16]  # the command names only its hash
    (repo / "cockpit.toml").write_text(toml(
        {"name": "lib", "command": finisher(flag, "lib.txt", "lib")},
        {"name": "api", "command": f"[ \"$(printf %s \"$API_TOKEN\" | sha256sum | cut -c1-16)\" = {digest} ] "
                                   "&& echo token-ok; " + sleeper(),
         "after": ["lib"], "pass_env": ["API_TOKEN"]}))
    assert cockpit(repo, "up", "--no-tui", env={"API_TOKEN": secret}).returncode == 0
    assert ls(repo)["api"]["state"] == "pending"

    def on_disk() -> list[str]:
        found = []
        for path in (repo / ".cockpit").rglob("*"):
            if path.is_file() and not path.is_symlink() and secret.encode() in path.read_bytes():
                found.append(str(path))
        return found

    assert on_disk() == []
    flag.touch()
    wait_until(lambda: ls(repo)["api"]["state"] == "running", timeout=30, message="api started")
    log = Path(ls(repo)["api"]["log"])
    wait_until(lambda: "token-ok" in log.read_text(errors="replace"), message="the agent got its pass_env value")
    assert [p for p in on_disk() if not p.endswith("session.log")] == []


def test_down_cancels_a_pending_agent_and_up_plans_it_again(repo: Path, tmp_path: Path) -> None:
    flag = tmp_path / "go"
    (repo / "cockpit.toml").write_text(toml({"name": "lib", "command": finisher(flag, "lib.txt", "lib")},
                                            {"name": "api", "command": sleeper(), "after": ["lib"]}))
    assert cockpit(repo, "up", "--no-tui").returncode == 0
    down = cockpit(repo, "down")
    assert down.returncode == 0, down.stderr
    api = ls(repo)["api"]
    assert api["state"] == "killed" and "while pending" in api["reason"] and api["worktree"] is None
    again = cockpit(repo, "up", "--no-tui")
    assert again.returncode == 0, again.stderr
    assert "api: pending" in again.stdout and "lib: restarted" in again.stdout
    flag.touch()
    wait_until(lambda: ls(repo)["api"]["state"] == "running", timeout=30, message="api started after up")


def test_kill_cancels_and_discard_forgets_a_pending_agent(fleet: Fleet, repo: Path) -> None:
    (repo / "cockpit.toml").write_text(toml({"name": "lib", "command": sleeper("lib")},
                                            {"name": "api", "command": sleeper(), "after": ["lib"]},
                                            {"name": "web", "command": sleeper(), "after": ["lib"]}))
    fleet.up()
    assert fleet.agent("api").state == "pending"
    with pytest.raises(Exception, match="not running"):
        fleet.pause("api")
    fleet.kill("api")
    assert fleet.agent("api").state == "killed"
    assert fleet.discard("web") is None  # nothing to archive: it never had a worktree
    assert "web" not in {a.name for a in fleet.agents()}
    assert fleet.agent("lib").state == "running"


def test_spawn_of_a_configured_dependent_waits_too(fleet: Fleet, repo: Path) -> None:
    (repo / "cockpit.toml").write_text(toml({"name": "lib", "command": "true"},
                                            {"name": "api", "command": sleeper(), "after": ["lib"]}))
    agent = fleet.spawn("api")
    assert agent.state == "pending" and "'lib' (not started yet)" in (agent.reason or "")
    fleet.spawn("lib")  # exits 0 at once (no commit: its tip is base)
    wait_until(lambda: fleet.agent("api").state == "running", timeout=30, message="api started")
    assert fleet.agent("api").base_sha == git(repo, "rev-parse", "main")  # nothing to merge: base itself


def test_after_is_refused_with_the_reason_on_git_older_than_2_38(repo: Path, tmp_path: Path) -> None:
    real = subprocess.run(["sh", "-c", "command -v git"], capture_output=True, text=True).stdout.strip()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "git"
    fake.write_text('#!/bin/sh\nif [ "$1" = "--version" ]; then echo "git version 2.37.1"; exit 0; fi\n'
                    f'exec {real} "$@"\n')
    fake.chmod(0o755)
    (repo / "cockpit.toml").write_text(toml({"name": "lib", "command": "true"},
                                            {"name": "api", "command": "true", "after": ["lib"]}))
    result = cockpit(repo, "up", "--no-tui", env={"PATH": f"{bindir}:{os.environ['PATH']}"})
    assert result.returncode == 1 and "'after' needs git >= 2.38" in result.stderr and "2.37" in result.stderr
    assert not (repo / ".cockpit" / "worktrees").exists()


async def test_a_pending_tile_says_what_it_waits_for(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    from cockpit.ui.app import make_app
    from ui_support import tile_subtitle, wait_for
    (repo / "cockpit.toml").write_text(toml({"name": "lib", "command": sleeper("lib")},
                                            {"name": "api", "command": sleeper(), "after": ["lib"]}))
    fleet.up()
    app = make_app(fleet, clock=None, include_user_themes=False, user_config=tmp_path / "none.toml")
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: "waits for lib" in tile_subtitle(app, "api"), message="the pending tile")
        assert "pending" in tile_subtitle(app, "api")
