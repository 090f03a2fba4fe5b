"""The conflict radar and collisions across hosts, against real hosts (tests/hosts_support.py):
agents here and on hosts edit one file; ``check --json`` names what crosses machines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import git, tree_hashes, wait_until
from hosts_support import Host, Lab
from test_hosts import cockpit, configure, ok

pytestmark = [pytest.mark.ssh, pytest.mark.tmux]

SHARED = "".join(f"line {i}\n" for i in range(1, 13))


def edit(line: int, text: str) -> str:
    """An agent that rewrites line ``line`` of shared.txt (uncommitted), says so, and waits."""
    return f"sh -c \"sed -i 's/^line {line}$/{text}/' shared.txt; echo edited; sleep 600\""


def with_shared_file(repo: Path) -> None:
    (repo / "shared.txt").write_text(SHARED)
    git(repo, "add", "shared.txt")
    git(repo, "commit", "--quiet", "-m", "shared.txt")


def check_json(repo: Path) -> tuple[int, dict[str, dict]]:
    result = cockpit(repo, "check", "--json")
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, {a["name"]: a for a in json.loads(result.stdout)}


def conflicts_with(found: dict[str, dict], name: str) -> set[str]:
    return {c["with"] for c in found.get(name, {}).get("conflicts") or []}


def collides_with(found: dict[str, dict], name: str) -> set[str]:
    return {o for c in found.get(name, {}).get("collisions") or [] for o in c["agents"]}


def remote_tree(host: Host, name: str) -> dict[str, str]:
    return tree_hashes(Path(host.repo, ".cockpit", "worktrees", name))


def index_and_head(host: Host, name: str) -> tuple[str, str]:
    worktree = Path(host.repo, ".cockpit", "worktrees", name)
    head = host.run(["git", "-C", str(worktree), "rev-parse", "HEAD"], check=True).stdout.strip()
    index = host.run(["sha256sum", f"{host.repo}/.git/worktrees/{name}/index"], check=True).stdout.split()[0]
    return head, index


def test_radar_a_local_and_a_remote_agent_on_the_same_lines_conflict_other_lines_only_collide(
        hosts: Lab, repo: Path) -> None:
    (big,) = hosts.up("big")
    hosts.install_cockpit(big)
    with_shared_file(repo)
    configure(repo, hosts, big, agents="[cockpit]\nradar_interval = 0.5\n")
    ok(cockpit(repo, "spawn", "far", "--command", edit(2, "line 2 on big"), "--host", "big"))
    ok(cockpit(repo, "spawn", "near", "--command", edit(2, "line 2 here")))
    ok(cockpit(repo, "spawn", "other", "--command", edit(11, "line 11 here")))
    wait_until(lambda: "line 2 on big" in Path(big.repo, ".cockpit/worktrees/far/shared.txt").read_text(),
               message="far's edit on big")
    before = remote_tree(big, "far"), index_and_head(big, "far")

    def seen() -> bool:
        _, found = check_json(repo)
        return "far" in conflicts_with(found, "near") and "near" in conflicts_with(found, "far")
    wait_until(seen, timeout=90, message="the watcher's round to predict the cross-host conflict")
    status, found = check_json(repo)
    assert status == 1
    assert found["far"]["host"] == "big" and found["near"]["host"] is None
    far_conflict = next(c for c in found["near"]["conflicts"] if c["with"] == "far")
    assert far_conflict["host"] == "big" and far_conflict["paths"] == ["shared.txt"]
    assert far_conflict["lines"] == {"shared.txt": [[2, 2]]}
    # other lines of the same file: a collision, not a conflict
    assert "far" in collides_with(found, "other") and "other" in collides_with(found, "far")
    assert "far" not in conflicts_with(found, "other") and "other" not in conflicts_with(found, "far")
    assert "near" in collides_with(found, "far")
    # the text output and ls --json say the same
    text = cockpit(repo, "check")
    assert text.returncode == 1
    assert "near: conflict with far (host big): shared.txt (lines 2)" in text.stdout
    assert "other: collision: shared.txt also changed by far, near" in text.stdout
    listed = {a["name"]: a for a in json.loads(ok(cockpit(repo, "ls", "--json")))}
    assert {c["with"] for c in listed["far"]["conflicts"]} == {"near"}
    assert "other" in {o for c in listed["far"]["collisions"] for o in c["agents"]}
    # fetched into a cockpit-owned ref here; the agent's worktree, index and HEAD there untouched
    snapshot = git(repo, "rev-parse", "refs/cockpit/remote-snapshot/big/far")
    assert "line 2 on big" in git(repo, "show", f"{snapshot}:shared.txt")
    assert (remote_tree(big, "far"), index_and_head(big, "far")) == before
    status_there = big.run(["git", "-C", f"{big.repo}/.cockpit/worktrees/far", "status", "--porcelain"], check=True)
    assert status_there.stdout.strip() == "M shared.txt"  # still uncommitted there
    # a local agent given the remote one's name (a local spawn does not ask the hosts): the name
    # means the local agent, as for the agent commands; the remote one gets no cross-host finding
    ok(cockpit(repo, "spawn", "far", "--command", edit(7, "line 7 here")))

    def both() -> list[dict]:
        result = cockpit(repo, "check", "--json")
        return [a for a in json.loads(result.stdout) if a["name"] == "far"]
    wait_until(lambda: any(a["host"] is None and a["conflicts"] is not None for a in both()), timeout=90,
               message="a round with the local far")
    there = next(a for a in both() if a["host"] == "big")
    assert not there["conflicts"] and not there["collisions"], there
    _, found = check_json(repo)
    assert conflicts_with(found, "near") == set(), found["near"]  # far here edits line 7: no conflict


def test_radar_agents_on_two_hosts_conflict_and_an_unreachable_host_is_left_out(hosts: Lab, repo: Path) -> None:
    from cockpit.core import radar, remote_radar
    from cockpit.core.fleet import Fleet
    from cockpit.ui.sync import FleetSync
    big, small = hosts.up("big", "small")
    hosts.install_cockpit(big, small)
    with_shared_file(repo)
    configure(repo, hosts, big, small, agents="[cockpit]\nradar_interval = 0.5\n")
    ok(cockpit(repo, "spawn", "b1", "--command", edit(5, "five on big"), "--host", "big"))
    ok(cockpit(repo, "spawn", "s1", "--command", edit(5, "five on small"), "--host", "small"))
    for host, name in ((big, "b1"), (small, "s1")):
        wait_until(lambda h=host, n=name: "on" in Path(h.repo, f".cockpit/worktrees/{n}/shared.txt").read_text()
                   .splitlines()[4], message=f"{name}'s edit")

    def seen() -> bool:  # no agent runs here: the watcher the remote spawn started does the rounds
        _, found = check_json(repo)
        return conflicts_with(found, "b1") == {"s1"} and conflicts_with(found, "s1") == {"b1"}
    wait_until(seen, timeout=90, message="the cross-host conflict between two hosts")
    status, found = check_json(repo)
    assert status == 1 and collides_with(found, "b1") == {"s1"}
    # a remote tile gets its diff counts from the round
    fleet = Fleet(repo)
    sync = FleetSync(fleet)
    sync.poll(set())
    snap = sync.poll(set(), force=True)
    assert snap.diffs is not None and snap.diffs["b1"] == (1, 1, 1), snap.diffs
    tiles = {a.name: a for a in snap.agents or []}  # what the tiles' badges read
    assert {c["with"] for c in tiles["b1"].conflicts or []} == {"s1"} and tiles["b1"].host == "big"
    assert tiles["s1"].collisions == [{"path": "shared.txt", "agents": ["b1"]}]
    # big stops answering: its agents are left out of the round, with the reason; nothing fails
    big.stop_sshd()
    source = remote_radar.HostSnapshots(fleet)
    done = radar.Radar(fleet, remote=source).run_round()
    data = radar.read(fleet)
    assert data is not None and "unreachable" in data["hosts"]["big"]["reason"]
    assert data["hosts"]["small"]["reason"] is None and "b1" not in done.agents and "s1" in done.agents
    assert done.agents["s1"] == []  # its only conflict was with b1, which this round could not see
    result = cockpit(repo, "check", "--json")
    assert result.returncode == 1 and "host big unreachable" in result.stderr
    assert "left out of the last conflict round" in result.stderr
    listed = {a["name"]: a for a in json.loads(result.stdout)}
    assert listed["b1"]["conflicts"] is None and listed["s1"]["conflicts"] == []


def test_radar_a_host_that_never_answers_does_not_hold_the_watchers_tick(repo: Path, tmp_path: Path) -> None:
    """ssh to a port that accepts and then says nothing waits for the host's banner: the round
    goes on a tick at a time (each step returns at once), and the host is left out once it fails."""
    import socket
    import time

    from cockpit.core import radar, remote_radar
    from cockpit.core.fleet import Fleet
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    config = tmp_path / "ssh_config"
    config.write_text(f"Host mute\n  HostName 127.0.0.1\n  Port {silent.getsockname()[1]}\n"
                      f"  UserKnownHostsFile {tmp_path / 'known_hosts'}\n")
    (repo / "cockpit.toml").write_text(f'[[host]]\nname = "mute"\nssh = "mute"\nrepo = "~/repo"\n'
                                       f'ssh_config = "{config}"\n')
    (repo / ".cockpit").mkdir()
    (repo / ".cockpit" / "hosts.json").write_text('{"agents": {"quiet": "mute"}, "unreachable": {}}')
    fleet = Fleet(repo)
    round_ = radar.Radar(fleet, interval=0, remote=remote_radar.HostSnapshots(fleet))
    steps = []
    try:
        for _ in range(5):
            started = time.monotonic()
            assert round_.step(radar.BUDGET_S) is None
            steps.append(time.monotonic() - started)
            assert round_.busy  # still waiting for the host
            time.sleep(0.1)  # (the watcher's tick)
    finally:
        silent.close()  # the host goes away: ssh fails, and the round finishes without it
    done = wait_until(lambda: round_.step(radar.BUDGET_S), 30, message="the round to finish without the host")
    # Not a speed check: the host never answers while `silent` is open, so a step that waited for it
    # would last for as long as the host stays silent; 5 s leaves room for a loaded machine.
    assert max(steps) < 5, steps
    assert done is not None and done.agents == {}
    reason = (radar.read(fleet) or {})["hosts"]["mute"]["reason"]
    assert reason.startswith("host mute unreachable"), reason
