"""The everyday CLI paths a new user walks first: what halted agents say, bad numbers and names
refused as usage errors, the base an agent is cut from, the command `cockpit demo` tells you to
come back with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import wait_until

LIT = "'''"


def cockpit(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cockpit", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL, timeout=60)


def ls(repo: Path) -> dict[str, dict]:
    return {a["name"]: a for a in json.loads(cockpit(repo, "ls", "--json").stdout)}


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
