"""Agents on several hosts over ssh, against real hosts: a Unix user and an sshd of its own per
host (tests/hosts_support.py), this checkout's cockpit installed there offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import git, wait_until
from hosts_support import VENV, Host, Lab, processes

pytestmark = [pytest.mark.ssh, pytest.mark.tmux]


def configure(repo: Path, lab: Lab, *hosts: Host, repo_paths: dict[str, str] | None = None,
              agents: str = "") -> None:
    """cockpit.toml naming ``hosts`` by their ssh aliases, the harness's ssh config and the
    harness's cockpit install on each."""
    blocks = []
    for host in hosts:
        path = (repo_paths or {}).get(host.alias, "~/repo")
        blocks.append(f'[[host]]\nname = "{host.alias}"\nssh = "{host.alias}"\nrepo = {json.dumps(path)}\n'
                      f'cockpit = "~/{VENV}/bin/cockpit"\nssh_config = "{lab.config}"\n')
    (repo / "cockpit.toml").write_text("\n".join(blocks) + agents)


def cockpit(repo: Path, *args: str, timeout: float = 120, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cockpit", "-C", str(repo), *args], capture_output=True, text=True,
                          timeout=timeout, input=input, stdin=None if input is not None else subprocess.DEVNULL)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}{result.stdout}"
    return result.stdout


def listing(repo: Path) -> dict[str, dict]:
    return {a["name"]: a for a in json.loads(ok(cockpit(repo, "ls", "--json")))}


def uids_running(marker: tuple[str, ...]) -> set[int]:
    return {p.uid for p in processes() if p.argv == marker}


def sleep_command(n: int) -> str:
    return f"sleep {n}"


@pytest.fixture
def two_hosts(hosts: Lab, repo: Path) -> tuple[Host, Host]:
    big, small = hosts.up("big", "small")
    hosts.install_cockpit(big, small)
    configure(repo, hosts, big, small)
    return big, small


def test_spawn_on_two_hosts_and_locally_at_once(two_hosts: tuple[Host, Host], repo: Path) -> None:
    big, small = two_hosts
    procs = {name: subprocess.Popen([sys.executable, "-m", "cockpit", "-C", str(repo), "spawn", name, "--command",
                                     f"sleep {n}", *(["--host", host] if host else [])],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
             for name, n, host in (("on-big", 4301, "big"), ("on-small", 4302, "small"), ("here", 4303, None))}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{name}: {err}{out}"
    # each agent runs as its host's user and as nobody else
    wait_until(lambda: uids_running(("sleep", "4301")) == {big.uid}, message="big's agent")
    wait_until(lambda: uids_running(("sleep", "4302")) == {small.uid}, message="small's agent")
    wait_until(lambda: uids_running(("sleep", "4303")) == {os.getuid()}, message="the local agent")
    # the host's repository was created there (git init) and holds this machine's base commit
    head = git(repo, "rev-parse", "main")
    for host in (big, small):
        there = host.run(["git", "-C", host.repo, "rev-parse", "refs/heads/cockpit-base/main"], check=True)
        assert there.stdout.strip() == head
        assert os.stat(f"{host.repo}/.cockpit/worktrees/on-{host.alias}").st_uid == host.uid
    agents = listing(repo)
    assert {n: (a["host"], a["state"]) for n, a in agents.items()} == {
        "here": (None, "running"), "on-big": ("big", "running"), "on-small": ("small", "running")}
    assert agents["on-big"]["worktree"] == f"{big.home}/repo/.cockpit/worktrees/on-big"
    table = ok(cockpit(repo, "ls"))
    assert table.splitlines()[0].split()[:3] == ["NAME", "HOST", "STATE"]
    assert [line.split()[:3] for line in table.splitlines()[1:]] == [
        ["here", "-", "running"], ["on-big", "big", "running"], ["on-small", "small", "running"]]
    # a name is one agent across hosts
    again = cockpit(repo, "spawn", "on-big", "--command", "true", "--host", "small")
    assert again.returncode == 1 and "exists on host big" in again.stderr


def test_hosts_lists_what_each_host_has_and_a_version_mismatch_is_a_clear_error(
        two_hosts: tuple[Host, Host], repo: Path, hosts: Lab) -> None:
    import cockpit as package
    big, small = two_hosts
    big.make_repo()
    report = {h["name"]: h for h in json.loads(ok(cockpit(repo, "hosts", "--json")))}
    for host in (big, small):
        found = report[host.alias]
        assert found["reachable"] and found["cockpit"] == package.__version__
        assert found["git"].startswith("git version") and found["tmux"].startswith("tmux 3.")
        assert tuple(int(x) for x in found["python"].split(".")[:2]) >= (3, 11)
    assert report["big"]["repo"] == big.repo and report["big"]["base"] == "main" and not report["big"]["problems"]
    assert report["small"]["repo"] is None and "the first spawn there creates it" in report["small"]["problems"][0]
    table = cockpit(repo, "hosts")
    assert table.returncode == 0, table.stderr
    assert table.stdout.split("\n")[0].split() == ["HOST", "SSH", "REACHABLE", "GIT", "TMUX", "PYTHON", "COCKPIT",
                                                   "REPO", "BASE"]
    # another version of cockpit on the host: said in one line, with what to do, and nothing runs
    init = Path(big.run([f"{big.home}/{VENV}/bin/python", "-c", "import cockpit; print(cockpit.__file__)"],
                        check=True).stdout.strip())
    original = init.read_text()
    try:
        init.write_text(original.replace(package.__version__, "0.0.1"))
        mismatch = cockpit(repo, "hosts")
        assert mismatch.returncode == 1
        assert (f"cockpit: host big: cockpit version 0.0.1 on this host, {package.__version__} on yours "
                f"(run 'cockpit hosts install big')") in mismatch.stderr
        spawn = cockpit(repo, "spawn", "a1", "--command", "sleep 4310", "--host", "big")
        assert spawn.returncode == 1 and "cockpit version 0.0.1" in spawn.stderr
        assert len(spawn.stderr.strip().splitlines()) == 1 and "Traceback" not in spawn.stderr
    finally:
        init.write_text(original)
    # a host that does not answer: unreachable, fast, exit 1
    small.stop_sshd()
    down = cockpit(repo, "hosts", "--json")
    assert down.returncode == 1
    assert {h["name"]: h["reachable"] for h in json.loads(down.stdout)} == {"big": True, "small": False}
    assert "host small: unreachable:" in down.stderr and "Connection refused" in down.stderr


def test_hosts_install_puts_this_cockpit_on_a_host_that_cannot_reach_an_index(hosts: Lab, repo: Path) -> None:
    import cockpit as package
    (big,) = hosts.up("big")
    big.reset_home(keep_venv=False)
    (repo / "cockpit.toml").write_text(f'[[host]]\nname = "big"\nssh = "big"\nrepo = "~/repo"\n'
                                       f'cockpit = "~/tools/ck/bin/cockpit"\nssh_config = "{hosts.config}"\n')
    before = cockpit(repo, "hosts", "--json")
    assert before.returncode == 1 and "no cockpit at '~/tools/ck/bin/cockpit' there" in before.stderr
    # the host's pip sees no index and no config: only what we copy can be installed
    (Path(big.home) / ".config" / "pip").mkdir(parents=True)
    (Path(big.home) / ".config" / "pip" / "pip.conf").write_text("[global]\nindex-url = http://127.0.0.1:9/\n")
    installed = cockpit(repo, "hosts", "install", "big", timeout=900)
    assert installed.returncode == 0, installed.stderr + installed.stdout
    assert f"cockpit {package.__version__}" in installed.stdout
    version = big.run(["tools/ck/bin/cockpit", "--version"], check=True).stdout.split()
    assert version == ["cockpit", package.__version__]
    assert os.stat(f"{big.home}/tools/ck/bin/cockpit").st_uid == big.uid
    report = json.loads(ok(cockpit(repo, "hosts", "--json")))
    assert report[0]["cockpit"] == package.__version__
