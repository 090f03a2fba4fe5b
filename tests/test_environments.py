"""One fleet from every environment a user's processes run in.

The fleet is started from a shell whose profile sets ``TMUX_TMPDIR``; then every other
environment — ``TMUX_TMPDIR`` different or unset, inside another tmux session, a cron-like
``env -i``, ``LANG=C``, a subdirectory, an agent's worktree, and a second login over SSH — looks
at it, pauses and resumes an agent, sees another exit with its code, attaches, opens the TUI and
stops everything with ``cockpit down``. Real tmux, real processes, a real sshd.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import cockpit
from cockpit.core.fleet import Fleet
from cockpit.core.server import default_socket, legacy_socket_name
from conftest import SSHServer, git, wait_until

pytestmark = pytest.mark.tmux
PROJECT = Path(cockpit.__file__).resolve().parent.parent
LOOP = "while :; do echo tick; sleep 0.3; done"


@dataclass
class Shell:
    """One environment cockpit is run from: its variables, its directory, or a login over ssh."""

    name: str
    env: dict[str, str]
    cwd: Path
    ssh: SSHServer | None = None
    notes: list[str] = field(default_factory=list)

    def command(self, *args: str) -> str:
        """The command line a user would type in this environment."""
        return f"cd {shlex.quote(str(self.cwd))} && " + shlex.join([sys.executable, "-m", "cockpit", *args])

    def argv(self, *args: str, tty: bool = False) -> list[str]:
        if self.ssh is not None:
            # The remote login's own environment; the tree under test is on PYTHONPATH, as an
            # install would put it on sys.path.
            return self.ssh.argv(f"PYTHONPATH={shlex.quote(str(PROJECT))} && export PYTHONPATH && "
                                 + self.command(*args), tty=tty)
        return [sys.executable, "-m", "cockpit", *args]

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), env=self.env, cwd=self.cwd if self.ssh is None else None,
                              capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout)


def base_env(**extra: str) -> dict[str, str]:
    """The test runner's environment without tmux's variables, plus ``extra``; the code under
    test on PYTHONPATH (what an install does for a user)."""
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE", "TMUX_TMPDIR")}
    env["PYTHONPATH"] = str(PROJECT)
    env.update(extra)
    return env


class Terminal:
    """A tmux server of the test standing in for the user's terminal (never the fleet's)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.socket = f"/tmp/cockpit-test-term-{uuid.uuid4().hex[:10]}"
        self.env = env

    def open(self, command: str) -> None:
        subprocess.run(["tmux", "-S", self.socket, "-f", "/dev/null", "new-session", "-d", "-s", "term",
                        "-x", "120", "-y", "32", command], check=True, env=self.env)

    def screen(self) -> str:
        return subprocess.run(["tmux", "-S", self.socket, "capture-pane", "-p", "-t", "=term:"],
                              capture_output=True, text=True).stdout

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "-S", self.socket, "send-keys", "-t", "=term:", *keys], check=True)

    def pid(self) -> int:
        return int(subprocess.run(["tmux", "-S", self.socket, "display-message", "-p", "#{pid}"],
                                  capture_output=True, text=True, check=True).stdout.strip())

    def close(self) -> None:
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True)
        Path(self.socket).unlink(missing_ok=True)


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for terminal in opened:
        terminal.close()


def fleet_tmux(socket: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tmux", "-S", socket, *args], capture_output=True, text=True)


def carrying(name: str, repo: Path) -> list[int]:
    """Processes whose environment names the agent (as /proc shows them)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"COCKPIT_AGENT={name}".encode() in environ and f"COCKPIT_REPO={repo}".encode() in environ:
                found.append(int(entry))
    return found


def watchers(repo: Path) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"_watch" in argv and str(repo).encode() in argv:
                found.append(int(entry))
    return found


def agents(shell: Shell) -> dict[str, dict]:
    result = shell.run("ls", "--json")
    assert result.returncode == 0, (shell.name, result.stderr)
    return {a["name"]: a for a in json.loads(result.stdout)}


def start_fleet(repo: Path, stop: Path) -> tuple[Shell, str]:
    """Spawn two agents from a login shell whose profile sets TMUX_TMPDIR (the issue's report)."""
    tmpdir = repo.parent / "profile-tmux"
    tmpdir.mkdir(exist_ok=True)
    profile = Shell("profile", base_env(TMUX_TMPDIR=str(tmpdir)), repo)
    for name, command in (("docs", LOOP), ("ender", f"while [ ! -e {shlex.quote(str(stop))} ]; do sleep 0.1; done; "
                                                      "echo ending; exit 3")):
        result = profile.run("spawn", name, "--command", command)
        assert result.returncode == 0, result.stderr
    socket = json.loads((repo / ".cockpit" / "fleet.json").read_text())["socket"]
    assert socket == str(default_socket(repo)) and len(socket) < 100
    return profile, socket


def exercise(shell: Shell, repo: Path, socket: str, stop: Path, terminals: list[Terminal]) -> None:
    """Everything a user does from ``shell``, each step asserted."""
    seen = agents(shell)
    assert {n: a["state"] for n, a in seen.items()} == {"docs": "running", "ender": "running"}, (shell.name, seen)
    assert seen["docs"]["tmux_socket"] == socket
    log = repo / ".cockpit" / "agents" / "docs" / "session.log"
    size = log.stat().st_size
    wait_until(lambda: log.stat().st_size > size, message=f"{shell.name}: the log keeps growing")
    assert "tick" in shell.run("logs", "docs", "-n", "3").stdout

    assert shell.run("pause", "docs").returncode == 0
    assert agents(shell)["docs"]["state"] == "paused"
    assert shell.run("resume", "docs").returncode == 0
    assert agents(shell)["docs"]["state"] == "running"

    stop.touch()  # ender exits 3: recorded by the hooks in the server's environment, read from this one
    waited = shell.run("wait", "ender", "--for", "exited", "--timeout", "30")
    assert waited.returncode == 0, (shell.name, waited.stderr)
    ender = agents(shell)["ender"]
    assert (ender["state"], ender["exit_code"]) == ("failed", 3), (shell.name, ender)

    # attach from a terminal in this environment; detached by the fleet's server, as C-b d would
    terminal = Terminal(shell.env)
    terminals.append(terminal)
    attach = shlex.join(shell.argv("attach", "docs", tty=True)) if shell.ssh else \
        f"cd {shlex.quote(str(shell.cwd))} && {shlex.join(shell.argv('attach', 'docs'))}"
    terminal.open(f"{attach}; echo ATTACH-EXIT-$?; sleep 600")
    wait_until(lambda: "docs" in fleet_tmux(socket, "list-clients", "-F", "#{session_name}").stdout,
               message=f"{shell.name}: a client attached to docs")
    wait_until(lambda: "tick" in terminal.screen(), message=f"{shell.name}: the agent's screen in the terminal")
    fleet_tmux(socket, "detach-client", "-s", "=docs")
    wait_until(lambda: "ATTACH-EXIT-0" in terminal.screen(), message=f"{shell.name}: attach returns after detach")
    terminal.close()

    # the TUI, in a terminal in this environment
    tui = Terminal(shell.env)
    terminals.append(tui)
    command = shlex.join(shell.argv(tty=True)) if shell.ssh else \
        f"cd {shlex.quote(str(shell.cwd))} && {shlex.join(shell.argv())}"
    tui.open(f"TERM=xterm-256color {command}; echo TUI-EXIT-$?; sleep 600")
    wait_until(lambda: "docs" in tui.screen() and "running" in tui.screen() and "failed" in tui.screen(),
               timeout=40, message=f"{shell.name}: the TUI shows the fleet")
    assert "killed" not in tui.screen() and "unknown" not in tui.screen()
    tui.keys("q")
    wait_until(lambda: "TUI-EXIT-0" in tui.screen(), message=f"{shell.name}: the TUI quits")
    tui.close()

    down = shell.run("down")
    assert down.returncode == 0, (shell.name, down.stderr)
    assert "killed docs" in down.stdout
    assert carrying("docs", repo) == [] and carrying("ender", repo) == [], shell.name
    assert watchers(repo) == [], shell.name
    assert not os.path.exists(socket), shell.name
    assert fleet_tmux(socket, "ls").returncode != 0
    assert agents(shell)["docs"]["state"] == "killed"


SHELLS = ["profile", "other-tmpdir", "no-tmpdir", "inside-tmux", "cron", "c-locale", "subdirectory", "worktree",
          pytest.param("ssh", marks=pytest.mark.ssh)]


@pytest.mark.parametrize("where", SHELLS)
def test_one_fleet_from_every_environment(repo: Path, tmp_path: Path, where: str, terminals: list[Terminal],
                                          request: pytest.FixtureRequest) -> None:
    stop = tmp_path / "ender-stop"
    profile, socket = start_fleet(repo, stop)
    other = tmp_path / "other-tmux"
    other.mkdir()
    empty_home = tmp_path / "home"
    empty_home.mkdir()
    if where == "profile":
        shell = profile
    elif where == "other-tmpdir":
        shell = Shell(where, base_env(TMUX_TMPDIR=str(other)), repo)
    elif where == "no-tmpdir":
        shell = Shell(where, base_env(), repo)
    elif where == "inside-tmux":
        outer = Terminal(base_env())  # the user's own tmux, that cockpit is run inside
        terminals.append(outer)
        outer.open("sleep 600")
        shell = Shell(where, base_env(TMUX=f"{outer.socket},{outer.pid()},0", TMUX_PANE="%0"), repo)
    elif where == "cron":
        shell = Shell(where, {"PATH": "/usr/bin:/bin", "HOME": str(empty_home), "PYTHONPATH": str(PROJECT)}, repo)
    elif where == "c-locale":
        shell = Shell(where, base_env(LANG="C", LC_ALL="C"), repo)
    elif where == "subdirectory":
        shell = Shell(where, base_env(), repo / "src")
    elif where == "worktree":
        shell = Shell(where, base_env(), repo / ".cockpit" / "worktrees" / "docs")
    else:
        server: SSHServer = request.getfixturevalue("sshd")
        shell = Shell(where, base_env(), repo, ssh=server)
    exercise(shell, repo, socket, stop, terminals)


def test_started_from_cron_seen_from_a_profile_and_c_locale(repo: Path, tmp_path: Path) -> None:
    """The other way round: a fleet started by a cron-like job (no TMUX_TMPDIR, an empty HOME)."""
    home = tmp_path / "home"
    home.mkdir()
    cron = Shell("cron", {"PATH": "/usr/bin:/bin", "HOME": str(home), "PYTHONPATH": str(PROJECT)}, repo)
    assert cron.run("spawn", "docs", "--command", LOOP).returncode == 0
    tmpdir = tmp_path / "tmux"
    tmpdir.mkdir()
    for shell in (Shell("profile", base_env(TMUX_TMPDIR=str(tmpdir)), repo),
                  Shell("C", base_env(LANG="C", LC_ALL="C"), repo)):
        assert agents(shell)["docs"]["state"] == "running", shell.name
    down = Shell("C", base_env(LANG="C", LC_ALL="C"), repo).run("down")
    assert down.returncode == 0, down.stderr
    assert carrying("docs", repo) == []


# -- never report a live agent as gone --------------------------------------------------------------
def events_of(repo: Path, type: str) -> list[dict]:
    path = repo / ".cockpit" / "events.jsonl"
    return [e for e in map(json.loads, path.read_text().splitlines()) if e["type"] == type]


@pytest.mark.parametrize("how", ["kill-server", "SIGKILL"])
def test_a_server_that_is_gone_makes_its_agents_killed(fleet: Fleet, how: str) -> None:
    fleet.spawn("docs", command=LOOP)
    address = fleet.tmux.address
    assert address.server_alive() and address.socket == str(default_socket(fleet.root))
    if how == "kill-server":
        fleet_tmux(address.socket, "kill-server")
    else:
        os.kill(address.server_pid, signal.SIGKILL)  # the socket file stays behind
    wait_until(lambda: not address.server_alive(), message="the server gone")
    agent = Fleet(fleet.root).agent("docs")
    assert agent.state == "killed" and "not watching" in (agent.reason or "")


def test_a_server_exiting_after_its_last_session_is_gone_not_unknown(fleet: Fleet) -> None:
    """The moment between a server's last session ending and the server exiting (the watcher
    ends itself, the last agent is discarded), tmux answers ``list-panes -a`` with "no current
    target". That is a server on its way out: no agents, never "cannot tell"."""
    fleet.spawn("docs", command=LOOP)
    socket = fleet.tmux.socket
    fleet_tmux(socket, "kill-server")
    wait_until(lambda: not fleet.tmux.address.server_alive(), message="the server gone")
    tmux = ["tmux", "-S", socket, "-f", "/dev/null"]
    for _ in range(40):
        subprocess.run([*tmux, "new-session", "-d", "-s", "last", "sleep 100"], check=True, capture_output=True)
        ending = subprocess.Popen([*tmux, "kill-session", "-t", "=last"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            for _ in range(5):
                assert set(fleet.tmux.panes()) <= {"last"}  # (raised ServerUnknown: "no current target")
        finally:
            ending.wait(10)


def test_a_socket_deleted_by_a_cleaner_is_found_again_and_nothing_recorded(fleet: Fleet) -> None:
    fleet.spawn("docs", command=LOOP)
    socket = fleet.tmux.socket
    moved = socket + ".cleaned"
    os.rename(socket, moved)  # a /tmp cleaner removed it; the server still runs
    try:
        fresh = Fleet(fleet.root)
        assert fresh.agent("docs").state == "running"  # cockpit had the server make its socket again
        assert os.path.exists(socket)
        assert events_of(fleet.root, "killed") == [] and events_of(fleet.root, "exited") == []
    finally:
        Path(moved).unlink(missing_ok=True)


def test_a_server_that_cannot_be_reached_is_unknown_not_dead(fleet: Fleet, repo: Path) -> None:
    """Socket gone and the server unable to answer SIGUSR1 (stopped): cockpit cannot tell, so
    nothing is recorded, the agent is 'unknown' with the reason, and pause, kill and down refuse;
    wait keeps waiting. Once the server answers again, all is as before."""
    fleet.spawn("docs", command=LOOP)
    address = fleet.tmux.address
    os.kill(address.server_pid, signal.SIGSTOP)
    os.rename(address.socket, address.socket + ".gone")
    env = base_env()
    try:
        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "cockpit", *args], cwd=repo, env=env, capture_output=True,
                                  text=True, stdin=subprocess.DEVNULL, timeout=60)

        listed = {a["name"]: a for a in json.loads(cli("ls", "--json").stdout)}
        assert listed["docs"]["state"] == "unknown"
        assert "is running but cannot be reached" in listed["docs"]["reason"]
        for args in (["pause", "docs"], ["kill", "docs"], ["down"]):
            result = cli(*args)
            assert result.returncode == 1 and "cannot be reached" in result.stderr, (args, result.stderr)
            assert len(result.stderr.strip().splitlines()) == 1
        waited = cli("wait", "docs", "--for", "exited", "--timeout", "1")
        assert waited.returncode == 1 and "timed out" in waited.stderr
        assert events_of(repo, "killed") == [] and events_of(repo, "exited") == []
    finally:
        Path(address.socket + ".gone").unlink(missing_ok=True)
        os.kill(address.server_pid, signal.SIGCONT)  # it handles the SIGUSR1 cockpit sent: the socket is back
    assert Fleet(repo).agent("docs").state == "running"


def test_a_fleet_of_an_older_cockpit_is_found_and_adopted(fleet: Fleet, repo: Path) -> None:
    """An older cockpit addressed its server by name (tmux -L cockpit-<hash>, socket in
    /tmp/tmux-UID/) and recorded no path: its agents are found there, not taken for killed."""
    fleet.spawn("docs", command=LOOP)
    legacy_dir = Path(f"/tmp/tmux-{os.getuid()}")
    legacy_dir.mkdir(mode=0o700, exist_ok=True)
    legacy = legacy_dir / legacy_socket_name(repo)
    os.rename(fleet.tmux.socket, legacy)  # the server listens where an older cockpit put it...
    (repo / ".cockpit" / "fleet.json").unlink()  # ...and nothing recorded a path
    try:
        older = Fleet(repo)
        assert older.agent("docs").state == "running"
        assert older.tmux.socket == str(legacy)
        assert json.loads((repo / ".cockpit" / "fleet.json").read_text())["socket"] == str(legacy)
        assert events_of(repo, "killed") == []
        assert older.down() == ["docs"]
        assert not legacy.exists() and carrying("docs", repo) == []
    finally:
        fleet_tmux(str(legacy), "kill-server")
        legacy.unlink(missing_ok=True)


def test_down_leaves_nothing_running(fleet: Fleet, repo: Path) -> None:
    """Live, paused, exited (its pane kept by remain-on-exit) and a process that left the tree."""
    fleet.spawn("live", command=LOOP)
    fleet.spawn("frozen", command=LOOP)
    fleet.spawn("done", command="echo bye; exit 0")
    fleet.spawn("daemon", command="setsid sh -c 'while :; do sleep 1; done' & " + LOOP)
    fleet.pause("frozen")
    wait_until(lambda: fleet.agent("done").state == "exited", message="done exits")
    wait_until(lambda: len(carrying("daemon", repo)) >= 3, message="the daemon's processes")
    socket = fleet.tmux.socket
    stopped = fleet.down()
    assert sorted(stopped) == ["daemon", "frozen", "live"]
    for name in ("live", "frozen", "done", "daemon"):
        assert carrying(name, repo) == [], name
    assert watchers(repo) == [] and not os.path.exists(socket)
    assert {a.name: a.state for a in fleet.agents()} == {"daemon": "killed", "done": "exited", "frozen": "killed",
                                                          "live": "killed"}
    assert git(repo, "worktree", "list").count(".cockpit/worktrees") == 4  # worktrees kept
    assert fleet.down() == []  # again: nothing to do, no error
