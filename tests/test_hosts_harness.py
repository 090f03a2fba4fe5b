"""The remote-host harness itself (tests/hosts_support.py): real users behind real sshds.

Each host is a Unix user with its own home and key behind an sshd of its own on a loopback port,
named in one ssh config by an alias, host keys pinned. These tests check what later tests of
cockpit on several hosts will lean on: who a host's commands run as, an offline install of this
checkout on a host, agents that outlive their host's sshd, connection sharing and its limit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cockpit
from conftest import wait_until
from hosts_support import VENV, Lab, processes

pytestmark = pytest.mark.ssh


def agents(result: subprocess.CompletedProcess[str]) -> dict[str, dict]:
    assert result.returncode == 0, result.stderr
    return {a["name"]: a for a in json.loads(result.stdout)}


def uids_running(marker: tuple[str, ...]) -> set[int]:
    """The uids of every process on this machine whose argv is exactly ``marker``."""
    return {p.uid for p in processes() if p.argv == marker}


def accepted(host_dir: Path, user: str) -> int:
    return (host_dir / "sshd.log").read_text().count(f"Accepted publickey for {user} ")


def test_each_host_is_its_own_user_behind_its_own_sshd_with_a_pinned_key(hosts: Lab, tmp_path: Path) -> None:
    big, small = hosts.up("big", "small")
    if hosts.slot == 0:
        assert (big.user, small.user) == ("ckhost1", "ckhost2")
    for host in (big, small):
        # exactly what a user with two build hosts in ~/.ssh/config types
        out = subprocess.run(["ssh", "-F", str(hosts.config), host.alias, "id -un; echo $HOME; stat -c %a ~"],
                             capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == [host.user, host.home, "700"]
        assert os.stat(host.home).st_uid == host.uid
    assert big.port != small.port and big.uid != small.uid
    # one host cannot look into another's home
    peek = small.run(["ls", big.home])
    assert peek.returncode != 0 and "Permission denied" in peek.stderr
    # checking is on: the same config with an empty known_hosts is refused, not asked
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    refused = subprocess.run(["ssh", "-F", str(hosts.config), "-o", f"UserKnownHostsFile={empty}", "big", "true"],
                             capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)
    assert refused.returncode == 255 and "Host key verification failed" in refused.stderr
    # a list is quoted word by word: no remote shell interprets its items
    assert big.run(["echo", "$HOME; id"]).stdout == "$HOME; id\n"


@pytest.mark.tmux  # the hosts' agents and a local fleet run in tmux
def test_cockpit_installed_offline_runs_agents_as_each_host_user_and_locally_at_once(
        hosts: Lab, repo: Path) -> None:
    big, small = hosts.up("big", "small")
    started = time.monotonic()
    assert hosts.install_cockpit(big, small) == [f"{h.home}/{VENV}/bin/cockpit" for h in (big, small)]
    print(f"install on two hosts: {time.monotonic() - started:.1f}s; timings: {hosts.timings}")
    for host in (big, small):
        version = host.cockpit("--version")
        assert version.returncode == 0 and version.stdout.split() == ["cockpit", cockpit.__version__]
        # the installed package, not this checkout (which the host user could not even read)
        where = host.run([f"{host.home}/{VENV}/bin/python", "-c", "import cockpit; print(cockpit.__file__)"])
        assert where.stdout.startswith(f"{host.home}/{VENV}/lib/"), where
        host.make_repo()
    markers = {big: ("sleep", "4242"), small: ("sleep", "4243")}
    local = ("sleep", "4244")
    for host, marker in markers.items():
        spawned = host.cockpit("-C", host.repo, "spawn", "a1", "--command", " ".join(marker))
        assert spawned.returncode == 0, spawned.stderr
    spawned = subprocess.run([sys.executable, "-m", "cockpit", "-C", str(repo), "spawn", "a1", "--command",
                              " ".join(local)], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert spawned.returncode == 0, spawned.stderr
    for host, marker in markers.items():
        # the agent runs as that host's user and as nobody else
        wait_until(lambda: uids_running(marker), message=f"{host.alias}'s agent to run")
        assert uids_running(marker) == {host.uid}
        assert any(p.argv == marker for p in host.processes())
        assert agents(host.cockpit("-C", host.repo, "ls", "--json"))["a1"]["state"] == "running"
        assert os.stat(f"{host.repo}/.cockpit/worktrees/a1").st_uid == host.uid
        socket = Path(f"/tmp/cockpit-{host.uid}")
        assert socket.is_dir() and socket.stat().st_uid == host.uid
    wait_until(lambda: uids_running(local), message="the local agent to run")
    assert uids_running(local) == {os.getuid()}
    down = big.cockpit("-C", big.repo, "down")
    assert down.returncode == 0, down.stderr
    wait_until(lambda: not uids_running(markers[big]), message="big's agent to stop")
    assert uids_running(markers[small]) == {small.uid} and uids_running(local) == {os.getuid()}


@pytest.mark.tmux  # the host's agent runs in tmux
def test_a_stopped_sshd_makes_its_host_unreachable_fast_while_its_agents_run_on(hosts: Lab) -> None:
    big, small = hosts.up("big", "small")
    big.install_cockpit()
    big.make_repo()
    marker = ("sleep", "4245")
    assert big.cockpit("-C", big.repo, "spawn", "a1", "--command", " ".join(marker)).returncode == 0
    wait_until(lambda: uids_running(marker) == {big.uid}, message="the agent to run")
    assert big.run("true", master=True).returncode == 0  # a shared connection, as cockpit will hold
    big.stop_sshd()
    started = time.monotonic()
    for master in (False, True):
        down = big.run("true", master=master)
        assert down.returncode == 255 and "Connection refused" in down.stderr, down
    assert time.monotonic() - started < 3, "BatchMode and a refused port must fail at once"
    check = subprocess.run(["ssh", "-F", str(hosts.config), "-o", f"ControlPath={hosts.control_dir}/%C",
                            "-O", "check", "big"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert check.returncode != 0, "the master connection went down with the host"
    assert small.run("id -un").stdout.strip() == small.user  # the other host is unaffected
    assert uids_running(marker) == {big.uid}  # the agent runs on, seen from here (root)
    big.start_sshd()
    # reachable again, on the same port with the same host key (checking is strict)
    assert big.run("id -un").stdout.strip() == big.user
    assert agents(big.cockpit("-C", big.repo, "ls", "--json"))["a1"]["state"] == "running"


def test_a_control_master_shares_one_connection_up_to_max_sessions(hosts: Lab) -> None:
    (big,) = hosts.up("big")
    # ssh binds "PATH.<16 random chars>" first: a ControlPath must stay within 90 bytes
    assert len(f"{hosts.control_dir}/") + 40 <= 90
    before = accepted(big.dir, big.user)
    for _ in range(5):
        assert big.run("id -un", master=True).stdout.strip() == big.user
    assert accepted(big.dir, big.user) == before + 1
    # sshd's MaxSessions (10) caps the sessions of one connection; the 11th is refused by the
    # server and ssh quietly opens a connection of its own
    holders = [subprocess.Popen(big.ssh_argv("while [ ! -e ~/release ]; do sleep 0.05; done", master=True),
                                stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(10)]
    try:
        wait_until(lambda: sum("release" in p.command and p.argv[0] == "bash" for p in big.processes()) == 10,
                   message="ten sessions over the master")
        eleventh = big.run("id -un", master=True)
        assert eleventh.returncode == 0 and eleventh.stdout.strip() == big.user
        assert "Session open refused by peer" in eleventh.stderr
        assert accepted(big.dir, big.user) == before + 2
    finally:
        Path(big.home, "release").touch()  # from here: a session more would be one too many
        for holder in holders:
            assert holder.wait(30) == 0, holder.stderr.read() if holder.stderr else ""
    assert accepted(big.dir, big.user) == before + 2


@pytest.mark.tmux  # starts a tmux server as the host user
def test_clean_leaves_no_process_socket_or_file_of_a_host_behind(hosts: Lab) -> None:
    (big,) = hosts.up("big")
    big.install_cockpit()
    big.run("touch ~/scratch && tmux new-session -d -s s 'sleep 4246' && { nohup sleep 4247 >/dev/null 2>&1 & }",
            check=True)
    wait_until(lambda: uids_running(("sleep", "4246")) and uids_running(("sleep", "4247")),
               message="a tmux server and a detached process of the host user")
    assert Path(f"/tmp/tmux-{big.uid}").exists()
    hosts.clean()
    assert big.processes() == []
    assert not Path(f"/tmp/tmux-{big.uid}").exists()
    (again,) = hosts.up("small")  # the same user under another alias, its home fresh
    assert again is big and big.alias == "small"
    assert not Path(big.home, "scratch").exists() and Path(big.home, VENV, "bin", "cockpit").exists()
    assert big.run("id -un").stdout.strip() == big.user
