"""``cockpit up`` with agents on hosts: the pre-spawn checklist checks their hosts first, and
``after`` chains on one host; against real sshds and real Unix users (tests/hosts_support.py)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import git, wait_until
from hosts_support import VENV, Host, Lab, processes
from test_hosts import cockpit, configure, listing

pytestmark = [pytest.mark.ssh, pytest.mark.tmux]

AGENTS = '''
[[agent]]
name = "here"
command = "sleep 4361"

[[agent]]
name = "api"
host = "big"
command = "sleep 4362"

[[agent]]
name = "web"
host = "small"
command = "sleep 4363"
'''


def running(marker: str) -> set[int]:
    return {p.uid for p in processes() if p.argv == ("sleep", marker)}


def exists_on(host: Host, path: str) -> bool:
    return host.run(["test", "-e", path]).returncode == 0


def test_up_checks_each_host_first_and_a_failed_host_changes_nothing_anywhere(hosts: Lab, repo: Path) -> None:
    import cockpit as package
    version = package.__version__
    big, small = hosts.up("big", "small")
    hosts.install_cockpit(big, small)
    configure(repo, hosts, big, small, agents=AGENTS)
    before = git(repo, "for-each-ref")

    def nothing_changed(*hosts_untouched: Host) -> None:
        assert git(repo, "for-each-ref") == before
        assert not (repo / ".cockpit" / "worktrees" / "here").exists()
        assert not running("4361") and not running("4362") and not running("4363")
        for host in hosts_untouched:  # not even its repository created (the first spawn would)
            assert not exists_on(host, host.repo), f"{host.alias} was touched"

    # a host that does not answer: named, and nothing starts here or on the other host
    big.stop_sshd()
    refused = cockpit(repo, "up", "--no-tui")
    assert refused.returncode == 1, refused.stdout
    lines = refused.stderr.splitlines()
    assert lines[0] == "Refusing to dispatch 3 agents: 1 isolation check(s) failed", refused.stderr
    failed = [line for line in lines if line.startswith("  FAILED")]
    assert len(failed) == 1 and failed[0].startswith("  FAILED api: host big reachable: unreachable: ")
    assert "Connection refused" in failed[0] and "Traceback" not in refused.stderr
    nothing_changed(small)
    big.start_sshd()

    # a repository path there that is not a repository
    small.run(["mkdir", "-p", f"{small.repo}/junk"], check=True)
    refused = cockpit(repo, "up", "--no-tui")
    assert refused.returncode == 1
    failed = [line for line in refused.stderr.splitlines() if line.startswith("  FAILED")]
    assert failed == [f"  FAILED web: repository usable on host small: {small.repo} is not the top of a git "
                      "repository"], refused.stderr
    nothing_changed(big)
    small.run(["rm", "-r", small.repo], check=True)

    # another cockpit version there
    init = Path(big.run([f"{big.home}/{VENV}/bin/python", "-c", "import cockpit; print(cockpit.__file__)"],
                        check=True).stdout.strip())
    original = init.read_text()
    try:
        init.write_text(original.replace(version, "0.0.1"))
        refused = cockpit(repo, "up", "--no-tui")
    finally:
        init.write_text(original)
        # (the same size: a later mtime, or Python would keep the 0.0.1 bytecode it cached)
        stat = init.stat()
        os.utime(init, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert refused.returncode == 1
    failed = [line for line in refused.stderr.splitlines() if line.startswith("  FAILED")]
    assert failed == [f"  FAILED api: cockpit {version} on host big: cockpit version 0.0.1 on this host, {version} "
                      "on yours (run 'cockpit hosts install big')"], refused.stderr
    nothing_changed(big, small)
    recorded = [json.loads(line) for line in (repo / ".cockpit" / "events.jsonl").read_text().splitlines()]
    assert [e["data"]["passed"] for e in recorded if e["type"] == "checklist"] == [False, False, False]

    # every host fine: one checklist for the three, each host's state under it, all started
    big.make_repo()  # (a repository there already; small's is created by its first spawn)
    done = cockpit(repo, "up", "--no-tui")
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert out[0] == "All 3 dispatches use isolation: worktree — verified", done.stdout
    assert out[1] == f"  host big: reachable, cockpit {version}, repository {big.repo}; starting there: api"
    assert out[2] == (f"  host small: reachable, cockpit {version}, no repository at {small.repo} yet (the first "
                      "spawn there creates it); starting there: web")
    assert "api: spawned on host big" in done.stdout and "web: spawned on host small" in done.stdout
    wait_until(lambda: running("4362") == {big.uid} and running("4363") == {small.uid}, message="both remote")
    # a host that drops refuses even when its agents may all be running (it cannot say), and
    # naming only the agents of the other hosts is the way round it
    small.stop_sshd()
    again = cockpit(repo, "up", "--no-tui")
    assert again.returncode == 1 and "  FAILED web: host small reachable: unreachable: " in again.stderr
    assert again.stderr.splitlines()[0] == "Refusing to dispatch 1 agents: 1 isolation check(s) failed"
    named = cockpit(repo, "up", "here", "api", "--no-tui")
    assert named.returncode == 0, named.stderr
    assert named.stdout.splitlines() == ["here: already running", "api: left as it is on host big (running)"]

def test_after_on_one_host_waits_there_and_starts_by_itself(hosts: Lab, repo: Path, tmp_path: Path) -> None:
    """``api`` runs after ``lib``, both on ``big``: ``up`` leaves api pending there until lib
    exits 0, then the host's own watcher starts it (this machine does nothing meanwhile)."""
    (big,) = hosts.up("big")
    hosts.install_cockpit(big)
    gate = f"{big.home}/lib-may-finish"
    configure(repo, hosts, big, agents=f'''
[[agent]]
name = "lib"
host = "big"
command = "sh -c 'while [ ! -e {gate} ]; do sleep 0.1; done; exit 0'"

[[agent]]
name = "api"
host = "big"
after = ["lib"]
command = "sleep 4371"
''')
    done = cockpit(repo, "up", "--no-tui")
    assert done.returncode == 0, done.stderr + done.stdout
    assert "lib: spawned on host big" in done.stdout and "api: spawned on host big" in done.stdout
    agents = listing(repo)
    assert agents["lib"]["state"] == "running" and agents["lib"]["host"] == "big"
    assert agents["api"]["state"] == "pending" and "lib" in (agents["api"]["reason"] or ""), agents["api"]
    assert not running("4371")
    big.run(["touch", gate], check=True)
    wait_until(lambda: running("4371") == {big.uid}, timeout=60, message="api started on big by itself")
    agents = listing(repo)
    assert agents["lib"]["state"] in ("exited", "done") and agents["lib"]["exit_code"] == 0, agents["lib"]
    assert agents["api"]["state"] == "running"
    # it was cut there from lib's finished branch or base, on big, as big's own agent
    on_big = subprocess.run(["runuser", "-u", big.user, "--", "env", "-i", f"HOME={big.home}",
                             "PATH=/usr/local/bin:/usr/bin:/bin", f"{big.home}/{VENV}/bin/cockpit", "-C", big.repo,
                             "ls", "--json"], capture_output=True, text=True, timeout=60)
    assert on_big.returncode == 0, on_big.stderr
    assert {a["name"]: a["state"] for a in json.loads(on_big.stdout)}["api"] == "running"
