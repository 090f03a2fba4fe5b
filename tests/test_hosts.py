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


def cockpit(repo: Path, *args: str, timeout: float = 120,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
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
        # "0.0.1" is as long as the version it stands for: written back within the second, the
        # file has the size and mtime the host's cached bytecode of the changed one records, and
        # every later test would meet version 0.0.1 there
        for stale in (init.parent / "__pycache__").glob("__init__.*.pyc"):
            stale.unlink()
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
    # a cockpit path whose virtualenv would be the home, or a directory that is not a venv: refused
    config = (repo / "cockpit.toml").read_text()
    Path(big.home, "keep.txt").write_text("mine\n")
    (repo / "cockpit.toml").write_text(config.replace("~/tools/ck/bin/cockpit", "~/bin/cockpit"))
    home = cockpit(repo, "hosts", "install", "big")
    assert home.returncode == 1 and "would make '~' the virtualenv" in home.stderr
    (repo / "cockpit.toml").write_text(config.replace("~/tools/ck/bin/cockpit", "~/.ssh/bin/cockpit"))
    ssh_dir = cockpit(repo, "hosts", "install", "big", timeout=900)
    assert ssh_dir.returncode == 1 and ".ssh exists and is not a virtualenv" in ssh_dir.stderr, ssh_dir.stderr
    assert Path(big.home, "keep.txt").read_text() == "mine\n" and Path(big.home, ".ssh", "authorized_keys").exists()
    (repo / "cockpit.toml").write_text(config)
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


def test_every_agent_command_works_on_a_remote_agent(two_hosts: tuple[Host, Host], repo: Path) -> None:
    big, small = two_hosts
    # the host's shell, not our python: the host user cannot run this machine's venv
    agent = "sh -c 'i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.1; done'"
    ok(cockpit(repo, "spawn", "w1", "--command", agent, "--task", "add a file", "--host", "big",
               "--scope", "src/**"))
    ok(cockpit(repo, "spawn", "w2", "--command", "sleep 4320", "--host", "big"))
    wt = Path(big.repo, ".cockpit", "worktrees", "w1")
    assert listing(repo)["w1"]["state"] == "running"
    # logs: the host's session.log, through the same command
    wait_until(lambda: "tick 3" in cockpit(repo, "logs", "w1", "-n", "100").stdout, message="w1's output")
    # pause / resume freeze and thaw the processes there
    assert ok(cockpit(repo, "pause", "w1")).strip() == "paused w1"
    assert listing(repo)["w1"]["state"] == "paused"
    assert any(p.state == "T" for p in big.processes() if p.argv[:1] == ("sh",) and "tick" in p.command)
    assert ok(cockpit(repo, "resume", "w1")).strip() == "resumed w1"
    assert listing(repo)["w1"]["state"] == "running"
    # wait, diff: work made there is seen from here
    (wt / "new.txt").write_text("from big\n")
    os.chown(wt / "new.txt", big.uid, big.gid)
    assert "new.txt" in ok(cockpit(repo, "diff", "w1", "--stat"))
    checked = cockpit(repo, "check", "--agent", "w1", "--json")
    assert checked.returncode == 1, checked.stderr  # a finding
    assert [{**c, "conflicts": c["conflicts"] or []} for c in json.loads(checked.stdout)] == [
        {"name": "w1", "host": "big", "out_of_scope": ["new.txt"], "collisions": [], "conflicts": []}]
    # (conflicts None: no radar round yet)
    every = cockpit(repo, "check")
    assert every.returncode == 1 and "w1: out of scope: new.txt (scope: src/**)" in every.stdout
    timed_out = cockpit(repo, "wait", "w1", "--for", "exited", "--timeout", "0.5")
    assert timed_out.returncode == 1 and "timed out after 0.5s" in timed_out.stderr
    # kill keeps the worktree there; respawn --keep runs it again in it
    assert ok(cockpit(repo, "kill", "w1")).startswith("killed w1")
    assert listing(repo)["w1"]["state"] == "killed" and (wt / "new.txt").exists()
    ok(cockpit(repo, "wait", "w1", "--for", "exited", "--timeout", "30"))
    assert "attempt 2" in ok(cockpit(repo, "respawn", "w1", "--keep"))
    assert listing(repo)["w1"]["state"] == "running"
    # fail counts towards max_failures there
    assert "marked w1 failed (1/2)" in ok(cockpit(repo, "fail", "w1"))
    # discard archives on the host; without a terminal it asks for --yes
    refused = cockpit(repo, "discard", "w1")
    assert refused.returncode == 1 and "add --yes" in refused.stderr and wt.exists()
    w2_before = tree_state(big, "w2")
    discarded = ok(cockpit(repo, "discard", "w1", "--yes"))
    assert "archived at refs/cockpit/archive/w1/1" in discarded and not wt.exists()
    assert big.run(["git", "-C", big.repo, "rev-parse", "--verify", "refs/cockpit/archive/w1/1"]).returncode == 0
    assert tree_state(big, "w2") == w2_before
    assert "refs/cockpit/archive/w1/1" in ok(cockpit(repo, "archives", "w1"))
    assert "w1" not in listing(repo) and listing(repo)["w2"]["state"] == "running"
    # restore brings the file back there, byte for byte
    assert "restored w1" in ok(cockpit(repo, "restore", "w1"))
    assert (wt / "new.txt").read_text() == "from big\n"
    # a name discarded on a host can be spawned here: from then on it is this machine's agent
    ok(cockpit(repo, "discard", "w2", "--yes"))
    ok(cockpit(repo, "spawn", "w2", "--command", "sleep 4321"))
    assert ok(cockpit(repo, "pause", "w2")).strip() == "paused w2"
    assert (listing(repo)["w2"]["host"], listing(repo)["w2"]["state"]) == (None, "paused")
    assert uids_running(("sleep", "4321")) == {os.getuid()}
    # an unknown agent is one line, as locally
    missing = cockpit(repo, "pause", "nobody")
    assert missing.returncode == 1 and "no agent named 'nobody'" in missing.stderr


def tree_state(host: Host, name: str) -> dict[str, str]:
    from conftest import tree_hashes
    return tree_hashes(Path(host.repo, ".cockpit", "worktrees", name))


def test_a_host_that_drops_makes_its_agents_unknown_not_killed_and_its_missed_events_come_once(
        two_hosts: tuple[Host, Host], repo: Path) -> None:
    from cockpit.core.fleet import Fleet
    from cockpit.core.remote_logs import HostLogStream
    big, small = two_hosts
    ok(cockpit(repo, "spawn", "b1", "--command", "sleep 4331", "--host", "big"))
    ok(cockpit(repo, "spawn", "s1", "--command", "sleep 4332", "--host", "small"))
    stream = HostLogStream(Fleet(repo), "big", on_data=lambda name: None)
    stream.start()
    events: list = []

    def got(kind: str) -> int:
        events.extend(stream.drain_events())
        return sum(1 for e in events if (e.type, e.agent) == (kind, "b1"))
    try:
        wait_until(lambda: stream.connected, message="the stream to start")  # (the event log: from its end on)
        ok(cockpit(repo, "pause", "b1"))
        wait_until(lambda: got("paused"), message="the 'paused' event streamed")
        big.stop_sshd()
        result = cockpit(repo, "ls", "--json")
        assert result.returncode == 0, result.stderr
        agents = {a["name"]: a for a in json.loads(result.stdout)}
        assert agents["b1"]["state"] == "unknown" and agents["b1"]["host"] == "big"
        assert agents["b1"]["reason"].startswith("host big unreachable since ")
        since = agents["b1"]["reason"].rsplit(" ", 1)[1]
        assert len(since) == 5 and since[2] == ":"
        assert agents["s1"]["state"] == "running"
        assert "host big unreachable" in result.stderr and "Connection refused" in result.stderr
        table = ok(cockpit(repo, "ls"))
        row = next(line for line in table.splitlines() if line.startswith("b1 "))
        assert row.split()[:9] == ["b1", "big", "unknown", "host", "big", "unreachable", "since", since, "-"]
        assert uids_running(("sleep", "4331")) == {big.uid}, "the agent runs on there"
        # the stream says why, and retries with a growing wait
        wait_until(lambda: "unreachable" in (stream.error or ""), message="the stream to notice")
        wait_until(lambda: len(stream.delays) >= 3, timeout=30, message="three retries")
        assert stream.delays[-3:] == [1.0, 2.0, 4.0], stream.delays
        # meanwhile on the host (its own cockpit, as its user, from its console): events not seen here
        for command in ("resume", "kill"):
            on_console = subprocess.run(["runuser", "-u", big.user, "--", "env", "-i", f"HOME={big.home}",
                                         "PATH=/usr/local/bin:/usr/bin:/bin", f"{big.home}/{VENV}/bin/cockpit",
                                         "-C", big.repo, command, "b1"], capture_output=True, text=True, timeout=60)
            assert on_console.returncode == 0, on_console.stderr
        # the same "since" until it answers again
        later = {a["name"]: a for a in json.loads(ok(cockpit(repo, "ls", "--json")))}
        assert later["b1"]["reason"] == agents["b1"]["reason"]
        big.start_sshd()
        wait_until(lambda: got("killed"), timeout=60, message="the missed events")
        assert got("paused") == 1 and got("resumed") == 1 and got("killed") == 1
        assert stream.error is None
        keys = [(e.seq, e.type) for e in events]
        assert len(keys) == len(set(keys)) and [k[0] for k in keys] == sorted(k[0] for k in keys)
    finally:
        stream.stop()
    again = listing(repo)
    assert again["b1"]["state"] == "killed" and again["b1"]["reason"] != agents["b1"]["reason"]
    assert again["s1"]["state"] == "running"


def test_hostile_repo_values_reach_no_shell(hosts: Lab, repo: Path) -> None:
    big, small = hosts.up("big", "small")
    hosts.install_cockpit(big, small)
    outside = f"/tmp/ck outside {big.user}"
    subprocess.run(["rm", "-rf", outside], check=True)
    paths = {"big": "~/; rm -rf ~; touch ~/pwned $(touch ~/pwned2)", "small": "~/with space/and 'quote\""}
    configure(repo, hosts, big, small, repo_paths=paths)
    Path(big.home, "canary").write_text("still here\n")
    ok(cockpit(repo, "spawn", "h1", "--command", "sleep 4341", "--host", "big"))
    ok(cockpit(repo, "spawn", "h2", "--command", "sleep 4342", "--host", "small"))
    assert Path(big.home, "canary").read_text() == "still here\n"
    assert not Path(big.home, "pwned").exists() and not Path(big.home, "pwned2").exists()
    # the path is taken literally, `~` expanded there
    literal = Path(big.home, "; rm -rf ~; touch ~", "pwned $(touch ~", "pwned2)")
    assert (literal / ".cockpit" / "worktrees" / "h1").is_dir()
    assert (Path(small.home, "with space", "and 'quote\"") / ".cockpit" / "worktrees" / "h2").is_dir()
    assert listing(repo)["h1"]["state"] == "running" and listing(repo)["h2"]["state"] == "running"
    wait_until(lambda: uids_running(("sleep", "4341")) == {big.uid}, message="h1 to run")
    # a path outside the user's home: used if the user may create it, a clear error if not
    configure(repo, hosts, big, small, repo_paths={"big": outside, "small": "/root/not-yours"})
    ok(cockpit(repo, "spawn", "h3", "--command", "sleep 4343", "--host", "big"))
    assert os.stat(f"{outside}/.cockpit/worktrees/h3").st_uid == big.uid
    refused = cockpit(repo, "spawn", "h4", "--command", "sleep 4344", "--host", "small")
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.startswith("cockpit: host small: /root/not-yours: Permission denied"), refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    subprocess.run(["rm", "-rf", outside], check=True)


def test_up_spreads_agents_as_configured_and_down_stops_every_host(hosts: Lab, repo: Path) -> None:
    big, small = hosts.up("big", "small")
    hosts.install_cockpit(big, small)
    configure(repo, hosts, big, small, agents='''
[[agent]]
name = "here"
command = "sleep 4351"

[[agent]]
name = "api"
host = "big"
command = "sleep 4352"
env = { MARK = "a b; $(id)" }
pass_env = ["SECRET_FOR_TEST"]
task = "it's \\"quoted\\"; rm -rf ~"

[[agent]]
name = "web"
host = "small"
command = "sleep 4353"
''')
    env = {**os.environ, "SECRET_FOR_TEST": "s3cr3t value"}
    up = subprocess.run([sys.executable, "-m", "cockpit", "-C", str(repo), "up", "--no-tui"], capture_output=True,
                        text=True, env=env, stdin=subprocess.DEVNULL, timeout=180)
    assert up.returncode == 0, up.stderr + up.stdout
    assert "api: spawned on host big" in up.stdout and "web: spawned on host small" in up.stdout
    agents = listing(repo)
    assert {n: (a["host"], a["state"]) for n, a in agents.items()} == {
        "api": ("big", "running"), "here": (None, "running"), "web": ("small", "running")}
    assert agents["api"]["task"] == "it's \"quoted\"; rm -rf ~"
    wait_until(lambda: uids_running(("sleep", "4352")) == {big.uid}, message="api on big")
    (pid,) = [p.pid for p in processes() if p.argv == ("sleep", "4352")]
    environ = dict(item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in item)
    assert environ["MARK"] == "a b; $(id)" and environ["SECRET_FOR_TEST"] == "s3cr3t value"
    assert environ["COCKPIT_TASK"] == "it's \"quoted\"; rm -rf ~"
    # the pass_env value is nowhere in the host's files (it lives in the tmux server's memory)
    found = subprocess.run(["grep", "-rl", "s3cr3t", big.repo], capture_output=True, text=True)
    assert found.stdout == "", found.stdout
    # a killed remote agent is restarted in place by the next up
    ok(cockpit(repo, "kill", "web"))
    again = ok(cockpit(repo, "up", "--no-tui"))
    assert "web: restarted on host small" in again and "api: left as it is on host big (running)" in again
    assert listing(repo)["web"]["state"] == "running"
    down = cockpit(repo, "down")
    assert down.returncode == 0, down.stderr
    for marker in (("sleep", "4351"), ("sleep", "4352"), ("sleep", "4353")):
        wait_until(lambda: not uids_running(marker), message=f"{marker} to stop")
    assert {a["state"] for a in listing(repo).values()} == {"killed"}


def test_logs_follow_streams_a_remote_agent(two_hosts: tuple[Host, Host], repo: Path) -> None:
    big, _ = two_hosts
    ok(cockpit(repo, "spawn", "f1", "--command", "sh -c 'echo started; read x; echo got $x; sleep 600'",
               "--host", "big"))
    wait_until(lambda: "started" in cockpit(repo, "logs", "f1").stdout, message="f1's first line")
    follower = subprocess.Popen([sys.executable, "-m", "cockpit", "-C", str(repo), "logs", "f1", "-f"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert follower.stdout is not None
        os.set_blocking(follower.stdout.fileno(), False)
        seen = b""

        def saw(text: bytes) -> bool:
            nonlocal seen
            seen += follower.stdout.read() or b""
            return text in seen
        wait_until(lambda: saw(b"started"), message="the log so far")
        # input reaches the agent on the host (its own tmux there), its answer streams here
        sock = listing(repo)["f1"]["tmux_socket"]
        big.run(["tmux", "-S", sock, "send-keys", "-t", "=f1:", "hello", "Enter"], check=True)
        wait_until(lambda: saw(b"got hello"), message="the new line, streamed")
        assert follower.poll() is None
    finally:
        follower.terminate()
        follower.wait(10)


def test_merge_lands_a_remote_agents_committed_work_on_local_base_through_the_gates(
        hosts: Lab, repo: Path) -> None:
    (big,) = hosts.up("big")
    hosts.install_cockpit(big)
    configure(repo, hosts, big, agents='[cockpit]\ngates = ["test -f remote.txt", "! test -f dirty.txt"]\n')
    commit = ("sh -c 'echo {text} > {file} && git add {file} && "
              "git -c user.name=agent -c user.email=agent@example.invalid commit -qm \"{file} on big\" && sleep 600'")
    ok(cockpit(repo, "spawn", "r1", "--command", commit.format(text="from big", file="remote.txt"), "--host", "big"))
    ok(cockpit(repo, "spawn", "r2", "--command", "sh -c 'echo wip > wip.txt; sleep 600'", "--host", "big"))
    wt = Path(big.repo, ".cockpit", "worktrees")
    wait_until(lambda: last_commit(big, wt / "r1").endswith("remote.txt on big"), message="r1's commit")
    wait_until(lambda: (wt / "r2" / "wip.txt").exists(), message="r2's uncommitted file")
    before = git(repo, "rev-parse", "main")
    merged = cockpit(repo, "merge", "r1")
    assert merged.returncode == 0, merged.stderr + merged.stdout
    said = merged.stdout.splitlines()
    assert said[0] == "r1@big: queued (position 1)" and said[1].startswith("r1@big: merged into main at ")
    assert git(repo, "show", "main:remote.txt") == "from big"
    assert git(repo, "merge-base", "--is-ancestor", before, "main") == ""  # a fast-forward of base
    fetched = git(repo, "rev-parse", "refs/cockpit/hosts/big/r1")
    assert git(repo, "merge-base", "--is-ancestor", fetched, "main") == ""
    assert (repo / "remote.txt").read_text() == "from big\n"  # the checkout of main moved with it
    # uncommitted work on the host blocks, as for a local agent; base unchanged
    tip = git(repo, "rev-parse", "main")
    blocked = cockpit(repo, "merge", "r2")
    assert blocked.returncode == 1 and "uncommitted changes on host big: wip.txt" in blocked.stdout
    assert git(repo, "rev-parse", "main") == tip
    # a red gate rejects it; base unchanged
    ok(cockpit(repo, "spawn", "r3", "--command", commit.format(text="x", file="dirty.txt"), "--host", "big"))
    wait_until(lambda: last_commit(big, wt / "r3").endswith("dirty.txt on big"), message="r3's commit")
    rejected = cockpit(repo, "merge", "r3")
    assert rejected.returncode == 1 and "r3@big: rejected by gate '! test -f dirty.txt'" in rejected.stdout
    assert git(repo, "rev-parse", "main") == tip


def last_commit(host: Host, worktree: Path) -> str:
    return host.run(["git", "-C", str(worktree), "log", "--oneline", "-1"]).stdout.strip()


def test_attach_opens_the_remote_agents_tmux_session_over_ssh_t(two_hosts: tuple[Host, Host], repo: Path,
                                                                 tmp_path: Path) -> None:
    big, _ = two_hosts
    ok(cockpit(repo, "spawn", "t1", "--command", "sh -c 'echo remote-screen-marker; cat'", "--host", "big"))
    wait_until(lambda: "remote-screen-marker" in cockpit(repo, "logs", "t1").stdout, message="t1's output")
    sock = str(tmp_path / "outer.sock")
    subprocess.run(["tmux", "-S", sock, "new-session", "-d", "-x", "100", "-y", "30", "--",
                    sys.executable, "-m", "cockpit", "-C", str(repo), "attach", "t1"], check=True,
                   env={k: v for k, v in os.environ.items() if k != "TMUX"})
    try:
        def screen() -> str:
            return subprocess.run(["tmux", "-S", sock, "capture-pane", "-p"], capture_output=True, text=True).stdout
        wait_until(lambda: "remote-screen-marker" in screen(), message="the remote session on this terminal")
        # keys typed here reach the agent there
        subprocess.run(["tmux", "-S", sock, "send-keys", "typed-here", "Enter"], check=True)
        wait_until(lambda: "typed-here" in cockpit(repo, "logs", "t1").stdout, message="the key on the host")
        assert any(p.argv[:1] == ("ssh",) and "-t" in p.argv and "attach-session" in p.argv for p in processes())
    finally:
        subprocess.run(["tmux", "-S", sock, "kill-server"], capture_output=True)


async def test_the_tui_shows_remote_tiles_streams_their_logs_and_discards_from_the_keyboard(
        two_hosts: tuple[Host, Host], repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TMUX", raising=False)  # (a plain attach: inside a tmux it would be a popup of it)
    from cockpit.core.fleet import Fleet
    from cockpit.ui.app import make_app
    from cockpit.ui.dialogs import DiscardDialog
    from conftest import sleeper
    from ui_support import focus, tile_text, tiles, wait_for
    big, small = two_hosts
    fleet = Fleet(repo)
    fleet.spawn("here", command=sleeper("local-line"))
    ticker = "sh -c 'i=0; while :; do echo {tag} $i; i=$((i+1)); sleep 0.2; done'"
    ok(cockpit(repo, "spawn", "rb", "--command", ticker.format(tag="big-line"), "--host", "big"))
    ok(cockpit(repo, "spawn", "rs", "--command", ticker.format(tag="small-line"), "--host", "small"))
    (Path(big.repo, ".cockpit", "worktrees", "rb") / "wip.txt").write_text("unsaved\n")
    os.chown(Path(big.repo, ".cockpit", "worktrees", "rb", "wip.txt"), big.uid, big.gid)
    small_before = tree_state(small, "rs")
    from conftest import tree_hashes

    def local_state() -> tuple:  # (refs/cockpit/snapshot/ moves with the local agent's own work: not compared)
        return (tree_hashes(repo), tree_hashes(fleet.layout.worktree("here")),
                git(repo, "for-each-ref", "refs/heads", "refs/cockpit/archive"))
    local_before = local_state()
    attached: list[list[str]] = []

    def attach_runner(argv: list[str], env: dict[str, str]) -> int:  # the terminal handover, recorded
        attached.append(argv)
        return 0
    app = make_app(fleet, clock=None, include_user_themes=False, user_config=tmp_path / "none.toml",
                   attach_runner=attach_runner)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: {"here", "rb", "rs"} <= set(tiles(app)), message="all three tiles")
        assert tiles(app)["rb"].border_title == "rb @ big" and tiles(app)["here"].border_title == "here"
        # the remote logs stream in, live
        await wait_for(pilot, lambda: "big-line" in tile_text(app, "rb"), message="rb's log streamed")
        await wait_for(pilot, lambda: "small-line" in tile_text(app, "rs"), message="rs's log streamed")
        seen = tile_text(app, "rb")
        await wait_for(pilot, lambda: tile_text(app, "rb") != seen, message="rb's log to move on")
        assert len(app.log_streams) == 2
        # attach: ssh -t to the session on its host
        import contextlib

        @contextlib.contextmanager
        def fake_suspend():  # headless drivers cannot suspend (as in test_ui_actions; the real one: above)
            yield
        app.suspend = fake_suspend  # type: ignore[method-assign]
        await focus(pilot, app, "rs")
        await pilot.press("a")
        await wait_for(pilot, lambda: attached or app.reported, message="the attach")
        assert not app.reported, app.reported
        (argv,) = attached
        assert argv[0] == "ssh" and "-t" in argv and argv[argv.index("--") + 1] == "small"
        assert argv[-3:] == ["attach-session", "-t", "=rs"]
        # discard on a host from the keyboard: the host's preview, then its archive
        await focus(pilot, app, "rb")
        await pilot.press("d")
        # (the screen is pushed before its widgets are mounted: wait for the preview's lines)
        dialog = await wait_for(pilot, lambda: isinstance(app.screen, DiscardDialog)
                                and app.screen.query("#uncommitted") and app.screen, message="the discard dialog")
        assert "wip.txt" in str(dialog.query_one("#uncommitted").content)
        assert "refs/cockpit/archive/rb/1" in str(dialog.query_one("#archive").content)
        await pilot.press("tab", "enter")
        await wait_for(pilot, lambda: "rb" not in tiles(app), timeout=30, message="rb's tile to go")
        assert {"here", "rs"} <= set(tiles(app))
    assert big.run(["git", "-C", big.repo, "rev-parse", "--verify", "refs/cockpit/archive/rb/1"]).returncode == 0
    assert not Path(big.repo, ".cockpit", "worktrees", "rb").exists()
    assert tree_state(small, "rs") == small_before
    assert local_state() == local_before
    assert fleet.tmux.has_session("here")


async def test_the_tui_through_a_host_that_drops_and_comes_back(two_hosts: tuple[Host, Host], repo: Path,
                                                                 tmp_path: Path) -> None:
    import re

    from cockpit.core.fleet import Fleet
    from cockpit.ui.app import make_app
    from ui_support import tile_text, tiles, wait_for
    big, small = two_hosts
    ticker = "sh -c 'i=0; while :; do echo {tag} $i; i=$((i+1)); sleep 0.2; done'"
    ok(cockpit(repo, "spawn", "rb", "--command", ticker.format(tag="big-line"), "--host", "big"))
    ok(cockpit(repo, "spawn", "rs", "--command", ticker.format(tag="small-line"), "--host", "small"))
    app = make_app(Fleet(repo), clock=None, include_user_themes=False, user_config=tmp_path / "none.toml")

    def seen(kind: str, name: str) -> int:
        return sum(1 for e in app.host_events if (e.type, e.agent) == (kind, name))

    def ticks(name: str) -> list[int]:
        return [int(n) for n in re.findall(r"-line (\d+)", tile_text(app, name))]
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: ticks("rb") and ticks("rs"), message="both remote logs streaming")
        ok(cockpit(repo, "pause", "rb"))
        await wait_for(pilot, lambda: seen("paused", "rb"), timeout=30, message="the host's 'paused' event")
        big.stop_sshd()
        await wait_for(pilot, lambda: tiles(app)["rb"].agent.state == "unknown", timeout=30,
                       message="rb unknown while its host is down")
        assert (tiles(app)["rb"].agent.reason or "").startswith("host big unreachable since ")
        assert tiles(app)["rs"].agent.state == "running"
        before = max(ticks("rb"))
        # on big's console meanwhile: the agent runs on, and is resumed there
        on_console = subprocess.run(["runuser", "-u", big.user, "--", "env", "-i", f"HOME={big.home}",
                                     "PATH=/usr/local/bin:/usr/bin:/bin", f"{big.home}/{VENV}/bin/cockpit", "-C",
                                     big.repo, "resume", "rb"], capture_output=True, text=True, timeout=60)
        assert on_console.returncode == 0, on_console.stderr
        big.start_sshd()
        await wait_for(pilot, lambda: tiles(app)["rb"].agent.state == "running", timeout=60,
                       message="rb running again once its host answers")
        await wait_for(pilot, lambda: seen("resumed", "rb"), timeout=60, message="the missed 'resumed' event")
        await wait_for(pilot, lambda: max(ticks("rb")) > before + 5, timeout=60, message="rb's log caught up")
        shown = ticks("rb")
        assert shown == list(range(shown[0], shown[0] + len(shown))), f"lines lost or twice: {shown}"
        assert seen("paused", "rb") == 1 and seen("resumed", "rb") == 1
        keys = [(e.seq, e.ts, e.type, e.agent) for e in app.host_events]
        assert len(keys) == len(set(keys)), "an event delivered twice"


async def test_the_tui_merges_a_remote_agent_from_the_keyboard(hosts: Lab, repo: Path, tmp_path: Path) -> None:
    from cockpit.core.fleet import Fleet
    from cockpit.ui.app import make_app
    from cockpit.ui.dialogs import ConfirmDialog
    from ui_support import focus, tiles, wait_for
    (big,) = hosts.up("big")
    hosts.install_cockpit(big)
    go = tmp_path / "go"  # the second gate holds the merge until the test has seen it queued
    configure(repo, hosts, big, agents=f'[cockpit]\ngates = ["test -f feature.txt", '
                                       f'"while [ ! -f {go} ]; do sleep 0.05; done"]\n')
    ok(cockpit(repo, "spawn", "m1", "--host", "big", "--command",
               "sh -c 'echo done > feature.txt && git add feature.txt && git -c user.name=a "
               "-c user.email=a@example.invalid commit -qm feature && sleep 600'"))
    wt = Path(big.repo, ".cockpit", "worktrees", "m1")
    wait_until(lambda: last_commit(big, wt).endswith("feature"), message="m1's commit")
    before = git(repo, "rev-parse", "main")
    app = make_app(Fleet(repo), clock=None, include_user_themes=False, user_config=tmp_path / "none.toml")
    async with app.run_test(size=(160, 48)) as pilot:
        await focus(pilot, app, "m1")
        await pilot.press("m")
        dialog = await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog) and app.screen,
                                message="the merge question")
        assert "Merge m1 (host big) into main here?" in str(dialog.query_one("#title").content)
        await pilot.press("tab", "enter")
        # in the merge queue like a local agent: the header names it with its host, its tile says queued
        await wait_for(pilot, lambda: "merge queue: m1@big" in str(app.query_one("#header").content), timeout=60,
                       message="the remote agent in the header's merge queue")
        await wait_for(pilot, lambda: tiles(app)["m1"].agent.state == "queued", timeout=60,
                       message="m1's tile queued")
        assert git(repo, "rev-parse", "main") == before
        go.touch()
        await wait_for(pilot, lambda: git(repo, "rev-parse", "main") != before, timeout=60, message="main to move")
        await wait_for(pilot, lambda: "merge queue" not in str(app.query_one("#header").content), timeout=60,
                       message="the queue empty in the header")
        assert app.is_running and not app.reported
    assert git(repo, "show", "main:feature.txt") == "done"
    recorded = [json.loads(line) for line in (repo / ".cockpit" / "events.jsonl").read_text().splitlines()]
    assert [(e["data"]["agent_name"], e["data"]["host"], e["data"]["state"]) for e in recorded
            if e["type"] == "remote.merge"] == [("m1", "big", "merged")]
    assert [e["data"]["agent_name"] for e in recorded if e["type"] == "remote.queued"] == ["m1"]
