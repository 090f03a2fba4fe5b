"""``[[host]]`` tables and ``host`` on ``[[agent]]``: validated with one-line errors; the ssh
argument lists built from them (no ssh run here: tests/test_hosts.py logs in for real)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cockpit.core.errors import ConfigError
from cockpit.core.spec import HostSpec, load_config
from cockpit.core.transport import Transport

GOOD = '''
[[host]]
name = "big"
ssh = "me@build1.example"
repo = "~/work/project"
cockpit = "~/.local/bin/cockpit"

[[host]]
name = "small-2"
ssh = "small"
repo = "/srv/x y"

[[agent]]
name = "api"
host = "big"
command = "claude"

[[agent]]
name = "web"
command = "sleep 1"
'''


def config(tmp_path: Path, text: str):
    path = tmp_path / "cockpit.toml"
    path.write_text(text)
    return load_config(path)


def test_hosts_and_agent_hosts_are_read(tmp_path: Path) -> None:
    loaded = config(tmp_path, GOOD)
    assert loaded.hosts == {
        "big": HostSpec("big", "me@build1.example", "~/work/project", "~/.local/bin/cockpit"),
        "small-2": HostSpec("small-2", "small", "/srv/x y", "cockpit"),
    }
    assert loaded.agents["api"].host == "big" and loaded.agents["web"].host is None
    assert loaded.agents["api"].to_toml()["host"] == "big" and "host" not in loaded.agents["web"].to_toml()


@pytest.mark.parametrize(("table", "expected"), [
    ('name = "local"\nssh = "a"\nrepo = "r"', "host[0] ('local').name: invalid host name 'local'"),
    ('name = "Big"\nssh = "a"\nrepo = "r"', "invalid host name 'Big'"),
    ('name = "big"\nrepo = "r"', "host[0] ('big'): missing required key 'ssh'"),
    ('name = "big"\nssh = "a"', "missing required key 'repo'"),
    ('name = "big"\nssh = "-oProxyCommand=x"\nrepo = "r"', "not an ssh destination"),
    ('name = "big"\nssh = "a b"\nrepo = "r"', "not an ssh destination"),
    ('name = "big"\nssh = "a;id"\nrepo = "r"', "not an ssh destination"),
    ('name = "big"\nssh = "a"\nrepo = "r"\ncockpit = "cockpit; rm -rf ~"', "host[0] ('big').cockpit:"),
    ('name = "big"\nssh = "a"\nrepo = "r"\ncockpit = "$(id)"', "host[0] ('big').cockpit:"),
    ('name = "big"\nssh = "a"\nrepo = "r"\nport = 22', "host[0] ('big').port: unknown key"),
    ('name = "big"\nssh = "a"\nrepo = 3', "host[0] ('big').repo: expected str, got int"),
])
def test_a_bad_host_table_is_one_line_naming_the_key(tmp_path: Path, table: str, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        config(tmp_path, f"[[host]]\n{table}\n")
    message = str(error.value)
    assert expected in message and "\n" not in message and str(tmp_path / "cockpit.toml") in message


def test_agent_host_must_be_configured_and_after_must_stay_on_one_host(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"agent\[0\] \('a'\)\.host: unknown host 'nope' \(configured: none"):
        config(tmp_path, '[[agent]]\nname = "a"\ncommand = "x"\nhost = "nope"\n')
    hosts = '[[host]]\nname = "big"\nssh = "b"\nrepo = "r"\n'
    with pytest.raises(ConfigError, match="'after' targets must be on the same host"):
        config(tmp_path, hosts + '[[agent]]\nname = "a"\ncommand = "x"\nhost = "big"\n'
                                 '[[agent]]\nname = "b"\ncommand = "x"\nafter = ["a"]\n')
    with pytest.raises(ConfigError, match="duplicate host name 'big'"):
        config(tmp_path, hosts + hosts)
    same = config(tmp_path, hosts + '[[agent]]\nname = "a"\ncommand = "x"\nhost = "big"\n'
                                    '[[agent]]\nname = "b"\ncommand = "x"\nhost = "big"\nafter = ["a"]\n')
    assert same.agents["b"].after == ("a",)


def test_ssh_argv_is_a_list_with_batch_mode_a_private_control_path_and_checking_left_on() -> None:
    link = Transport(HostSpec("big", "me@build1", "~/p; rm -rf ~", "~/bin/cockpit", "/etc/my config"))
    argv = link.cockpit_argv("_remote")
    assert argv[0] == "ssh" and argv[-4:] == ["--", "me@build1", "~/bin/cockpit", "_remote"]
    assert argv[1:3] == ["-F", "/etc/my config"]
    options = [argv[i + 1] for i, word in enumerate(argv) if word == "-o"]
    assert "BatchMode=yes" in options and "ControlMaster=auto" in options
    assert any(o.startswith("ControlPersist=") for o in options)
    path = next(o.removeprefix("ControlPath=") for o in options if o.startswith("ControlPath="))
    assert path.endswith("/ssh/%C") and len(path) + 40 < 90
    assert not any("StrictHostKeyChecking" in o or "UserKnownHostsFile" in o for o in options)
    assert not any("rm -rf" in word for word in argv), "the repository path never reaches the command line"
    assert Path(path).parent.stat().st_mode & 0o077 == 0


def test_the_cli_refuses_an_unknown_host_in_one_line_and_changes_nothing(repo: Path) -> None:
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cockpit", "-C", str(repo), *args], capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, timeout=60)
    none = run("hosts")
    assert none.returncode == 0 and none.stdout.startswith("no hosts (add [[host]] tables")
    (repo / "cockpit.toml").write_text('[[host]]\nname = "big"\nssh = "big"\nrepo = "~/r"\n')
    spawn = run("spawn", "a1", "--command", "true", "--host", "nope")
    assert spawn.returncode == 1
    assert spawn.stderr == "cockpit: no host named 'nope' in cockpit.toml (configured: big)\n"
    install = run("hosts", "install")
    assert install.returncode == 1 and "name the host" in install.stderr
    assert not (repo / ".cockpit" / "hosts.json").exists() and not (repo / ".cockpit" / "events.jsonl").exists()


@pytest.mark.tmux
def test_a_damaged_hosts_registry_is_said_kept_as_it_is_and_never_taken_for_empty(repo: Path) -> None:
    """``.cockpit/hosts.json`` is the one record here of which host each remote agent runs on:
    damaged, it was read as empty and the next spawn or unreachable host wrote over it, and every
    agent on a host vanished from ``ls`` for good, without a word."""
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cockpit", "-C", str(repo), *args], capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, timeout=60)
    (repo / "cockpit.toml").write_text('[[host]]\nname = "big"\nssh = "nowhere.invalid"\nrepo = "~/r"\n')
    assert run("spawn", "here", "--command", "sleep 600").returncode == 0
    registry = repo / ".cockpit" / "hosts.json"
    damaged = b'{"agents": {"api": "big", "web": "big"}, "unreachable": {\n'  # (cut short)
    registry.write_bytes(damaged)

    listed = run("ls")
    assert listed.returncode == 0 and "here" in listed.stdout
    assert f"{registry} is damaged (not JSON" in listed.stderr and "agents on hosts are not listed" in listed.stderr
    spawn = run("spawn", "db", "--command", "true", "--host", "big")  # would record it: refused, before any ssh
    assert spawn.returncode == 1 and spawn.stderr.count("\n") == 1
    assert spawn.stderr.startswith(f"cockpit: {registry} is damaged") and "unreachable" not in spawn.stderr
    assert run("pause", "here").returncode == 0 and run("resume", "here").returncode == 0  # this machine's agents
    down = run("down")
    assert down.returncode == 1 and "killed here" in down.stdout
    assert "agents on hosts: not stopped" in down.stderr
    assert registry.read_bytes() == damaged  # left as it was, for the user to repair
    assert not (repo / ".cockpit" / "agents" / "db").exists()
