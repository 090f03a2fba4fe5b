"""The everyday CLI paths a new user walks first: what halted agents say, bad numbers and names
refused as usage errors, the base an agent is cut from, the command `cockpit demo` tells you to
come back with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import git, wait_until

LIT = "'''"


def cockpit(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cockpit", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL, timeout=60)


def ls(repo: Path) -> dict[str, dict]:
    return {a["name"]: a for a in json.loads(cockpit(repo, "ls", "--json").stdout)}


@pytest.mark.tmux
def test_a_halted_dependent_says_which_agent_failed(repo: Path) -> None:
    (repo / "cockpit.toml").write_text(
        '[cockpit]\nmax_failures = 1\n'
        '[[agent]]\nname = "lib"\ncommand = "exit 1"\n'
        f'[[agent]]\nname = "app"\ncommand = {LIT}sleep 600{LIT}\nafter = ["lib"]\n')
    assert cockpit(repo, "up", "--no-tui").returncode == 0
    wait_until(lambda: ls(repo).get("app", {}).get("state") == "halted", message="app halted with lib")
    agents = ls(repo)
    assert agents["app"]["reason"] == "halted because 'lib' failed" and agents["app"]["blocked_by"] == "lib"
    assert agents["app"]["failures"] == 0
    row = next(line for line in cockpit(repo, "ls").stdout.splitlines() if line.startswith("app "))
    assert "halted (lib failed)" in row

    refused = cockpit(repo, "respawn", "app")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "cockpit: agent 'app' is halted because 'lib' failed: respawn 'lib' (that releases 'app'), "
        "or change app's task (--task) or command, or use --force")
    own = cockpit(repo, "respawn", "lib")
    assert own.returncode == 1 and "agent 'lib' is halted after 1 failure(s) (max_failures = 1)" in own.stderr


def assert_usage_error(result: subprocess.CompletedProcess, text: str) -> None:
    """argparse's way: exit 2, the usage, then one error line naming the argument."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("usage: cockpit") and [line for line in lines if "error:" in line] == lines[-1:]
    assert lines[-1].startswith("cockpit") and text in lines[-1], result.stderr
    assert result.stdout == ""


@pytest.mark.tmux
def test_bad_numbers_and_directories_are_usage_errors(repo: Path, tmp_path: Path) -> None:
    assert cockpit(repo, "spawn", "a", "--command", "echo one; echo two; sleep 600").returncode == 0
    assert_usage_error(cockpit(repo, "logs", "a", "-n", "-5"),
                       "argument -n/--lines: expected a whole number, 0 or more")
    assert_usage_error(cockpit(repo, "logs", "a", "-n", "x"), "got 'x'")
    for bad in ("-1", "nan", "inf", "soon"):
        assert_usage_error(cockpit(repo, "wait", "a", "--for", "idle", "--timeout", bad),
                           f"argument --timeout: expected a number of seconds, 0 or more (got '{bad}')")
    # -C to a directory that is not there must not run in the current one (here: a repository).
    elsewhere = tmp_path / "typo"
    assert_usage_error(cockpit(repo, "-C", str(elsewhere), "ls"), f"argument -C: no such directory: '{elsewhere}'")
    assert_usage_error(cockpit(repo, "-C", str(elsewhere), "init"), "no such directory")
    assert not (repo / "cockpit.toml").exists() and not elsewhere.exists()
    assert_usage_error(cockpit(repo, "spawn", "b", "--command", "true", "--scope", ""), "scope glob cannot be empty")
    assert "b" not in ls(repo)
    # The edges that are fine: no lines, no wait.
    assert cockpit(repo, "logs", "a", "-n", "0").stdout == ""
    wait_until(lambda: "two" in cockpit(repo, "logs", "a", "-n", "1").stdout, message="a's output")
    assert cockpit(repo, "logs", "a", "-n", "1").stdout.strip().endswith("two")
    waited = cockpit(repo, "wait", "a", "--for", "exited", "--timeout", "0")
    assert waited.returncode == 1 and "Traceback" not in waited.stderr  # (a timeout, not a usage error)


@pytest.mark.tmux
def test_archives_of_an_unknown_name_is_refused(repo: Path) -> None:
    refused = cockpit(repo, "archives", "nosuch")
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.strip() == "cockpit: no agent named 'nosuch' and no archives of it (see 'cockpit ls')"
    assert cockpit(repo, "spawn", "a", "--command", "sleep 600").returncode == 0
    none_yet = cockpit(repo, "archives", "a")
    assert none_yet.returncode == 0 and none_yet.stdout.strip() == "no archives of a"
    assert cockpit(repo, "discard", "a", "--yes").returncode == 0
    listed = cockpit(repo, "archives", "a")  # a discarded agent: its archives, as before
    assert listed.returncode == 0 and listed.stdout.startswith("refs/cockpit/archive/a/1  ")


@pytest.mark.tmux
def test_base_resolves_to_a_branch_or_is_refused_at_spawn(repo: Path) -> None:
    git(repo, "tag", "v1")
    main = git(repo, "rev-parse", "main")
    for ref, what in (("HEAD~0", "is a commit, not a branch"), ("v1", "is a tag"), (main, "is a commit")):
        refused = cockpit(repo, "spawn", "x", "--command", "true", "--base", ref)
        assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
        assert f"base {ref!r} {what}" in refused.stderr
        assert "use a local branch ('main' is checked out)" in refused.stderr
        assert f"git branch NAME {main[:12]}" in refused.stderr
    assert "x" not in ls(repo) and git(repo, "branch", "--list", "cockpit/x") == ""
    usage = cockpit(repo, "spawn", "x", "--command", "true", "--base", "")
    assert usage.returncode == 2 and "argument --base: a ref cannot be empty" in usage.stderr

    # A symbolic name is the branch it names, and what is recorded is that branch: merge can land it.
    script = "echo work > work.txt && git add work.txt && git commit -qm work && exit 0"
    assert cockpit(repo, "spawn", "a", "--command", script, "--base", "HEAD").returncode == 0
    assert cockpit(repo, "spawn", "b", "--command", "sleep 600", "--base", "refs/heads/main").returncode == 0
    assert {n: a["base"] for n, a in ls(repo).items()} == {"a": "main", "b": "main"}
    wait_until(lambda: ls(repo)["a"]["state"] == "exited", message="a committed and exited")
    merged = cockpit(repo, "merge", "a")
    assert merged.returncode == 0 and "a: merged into main" in merged.stdout, (merged.stdout, merged.stderr)
    assert git(repo, "show", "main:work.txt") == "work"


@pytest.mark.tmux
def test_a_base_in_cockpit_toml_is_held_to_the_same_rule(repo: Path) -> None:
    git(repo, "tag", "v1")
    (repo / "cockpit.toml").write_text('[cockpit]\nbase = "v1"\n[[agent]]\nname = "a"\ncommand = "sleep 600"\n')
    refused = cockpit(repo, "up", "--no-tui")
    assert refused.returncode == 1 and "a: not started: base = 'v1' in cockpit.toml is a tag" in refused.stderr
    (repo / "cockpit.toml").write_text('[cockpit]\nbase = "HEAD"\n[[agent]]\nname = "a"\ncommand = "sleep 600"\n')
    assert cockpit(repo, "up", "--no-tui").returncode == 0
    assert ls(repo)["a"]["base"] == "main"


@pytest.mark.tmux
def test_demo_says_how_to_come_back_with_a_command_that_works(tmp_path: Path) -> None:
    """`make demo` runs .venv/bin/cockpit, which is not on the user's PATH: the hint must work
    from their shell as printed, and say plain `cockpit` only when that is this cockpit."""
    import shlex
    entry = Path(sys.executable).parent / "cockpit"  # the venv's entry point, as `make demo` runs it
    if not entry.is_file():
        import pytest
        pytest.skip("no cockpit entry point beside this interpreter")
    other_path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                 if Path(p).resolve() != entry.parent.resolve())
    demo = tmp_path / "demo"
    result = subprocess.run([str(entry), "demo", "--dir", str(demo), "--no-tui"], capture_output=True, text=True,
                            env={**os.environ, "PATH": other_path}, stdin=subprocess.DEVNULL, timeout=120)
    assert result.returncode == 0, result.stderr
    hint = next(line for line in result.stdout.splitlines() if line.startswith("come back later with: "))
    again = f"{entry} -C {demo}"
    assert hint == f"come back later with: {again}   (stop the agents: {again} down)"
    listed = subprocess.run(shlex.split(again) + ["ls"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PATH": other_path}, cwd=tmp_path)
    assert listed.returncode == 0 and "builder" in listed.stdout
    stopped = subprocess.run(shlex.split(again) + ["down"], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "PATH": other_path}, cwd=tmp_path)
    assert stopped.returncode == 0 and "agent(s) stopped" in stopped.stdout

    on_path = subprocess.run([str(entry), "demo", "--dir", str(tmp_path / "demo2"), "--no-tui"],
                             capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
                             env={**os.environ, "PATH": os.pathsep.join([str(entry.parent), other_path])})
    assert f"come back later with: cockpit -C {tmp_path / 'demo2'}   " in on_path.stdout


def test_the_commands_page_names_every_field_of_ls_json_once() -> None:
    import dataclasses
    import re

    from cockpit.core.agent import Agent
    page = (Path(__file__).resolve().parents[1] / "docs" / "commands.md").read_text()
    section = page.split("### `cockpit ls --json`", 1)[1].split("\n\n", 2)[1]  # its first paragraph
    assert section.startswith("One object per agent:")
    fields_only = re.sub(r"\([^()]*\)", "", section.replace("\n", " "))  # not the words in parentheses
    named = [name for span in re.findall(r"`([^`]*)`", fields_only) for name in re.findall(r"\b[a-z_]+\b", span)]
    fields = [f.name for f in dataclasses.fields(Agent) if f.name != "pid"]  # (to_json drops pid)
    assert sorted(named) == sorted(fields)
