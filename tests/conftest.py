"""Shared fixtures: a real git repository in a temp dir and a real tmux server on a private
socket per test. Never the user's tmux server, never their repository.

Tests import the helpers below as ``from conftest import ...``: the very module pytest loaded
(``tests/`` is on ``sys.path``). Importing it as ``tests.conftest`` would make a second copy of
it, so that is refused.

The markers mean what they say, and this file checks them: a test that starts a tmux server must
be marked ``tmux``, one that logs in over ssh ``ssh``, one that compares a screenshot ``snapshot``
(``make test-unit`` runs ``-m "not tmux and not ssh"`` and must pass without tmux)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cockpit.core.fleet import Fleet
from devsupport.polling import wait_until  # the tests take it from here; shared with the benchmarks

if TYPE_CHECKING:
    from hosts_support import Lab

if __name__ != "conftest":
    raise ImportError(f"import the test helpers as `from conftest import ...`, not as {__name__}: "
                      "that would be a second copy of tests/conftest.py")

PY = sys.executable
GIT_ENV = {
    "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout.strip()


MARKED_BY_FIXTURE = {"sshd": "ssh", "hosts": "ssh", "host_lab": "ssh", "snap_compare": "snapshot"}
"""A test that uses one of these fixtures must carry the marker (checked at collection)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse to run a test whose fixtures need a marker it does not carry: ``-m`` would select
    it wrongly (``make test-unit`` would log in over ssh, a run without snapshots would compare one)."""
    unmarked = [f"{item.nodeid} uses the {fixture} fixture but is not marked {marker}"
                for item in items for fixture, marker in MARKED_BY_FIXTURE.items()
                if fixture in getattr(item, "fixturenames", ()) and item.get_closest_marker(marker) is None]
    if unmarked:
        raise pytest.UsageError("\n".join(unmarked))


def require_marker(request: pytest.FixtureRequest, marker: str, what: str) -> None:
    """Fail the test now if it is not marked ``marker`` (for fixtures a test may request late,
    through ``request.getfixturevalue``, which collection cannot see)."""
    if request.node.get_closest_marker(marker) is None:
        pytest.fail(f"{request.node.nodeid} {what} but is not marked {marker}: add @pytest.mark.{marker} "
                    f"(or pytest.param(..., marks=pytest.mark.{marker}))", pytrace=False)


@pytest.fixture(autouse=True)
def _private_tmux(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Every test's fleets are private by construction: a fleet's tmux socket is derived from its
    repository's path (``/tmp/cockpit-UID/<hash>``, recorded in ``.cockpit/fleet.json``), and
    every test's repositories live in its own ``tmp_path``. After the test, every fleet server
    started under ``tmp_path`` is killed and its socket removed; a test that started one without
    being marked ``tmux`` fails (it would break ``make test-unit`` on a machine without tmux)."""
    monkeypatch.delenv("TMUX", raising=False)
    yield
    started = stop_fleets_under(tmp_path)
    if started and request.node.get_closest_marker("tmux") is None:
        pytest.fail(f"{request.node.nodeid} started a tmux server ({', '.join(sorted(started))}) but is not "
                    "marked tmux: add @pytest.mark.tmux (or pytestmark = pytest.mark.tmux), so that "
                    "`make test-unit` leaves it out", pytrace=False)


def fleet_socket(root: Path) -> str:
    """The absolute tmux socket of the fleet of the repository at ``root``."""
    return Fleet(root).tmux.socket


def tmux(root: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run a tmux command on the fleet's own server, as a user would by hand (``tmux -S``)."""
    return subprocess.run(["tmux", "-S", fleet_socket(root), *args], capture_output=True, text=True, check=check)


def stop_fleets_under(path: Path) -> set[str]:
    """Kill the tmux server of every fleet whose repository is under ``path`` (up to three levels
    deep) and remove its socket file (tmux leaves it behind: do not litter /tmp). Returns the
    fleets that had been started: those with a ``.cockpit/fleet.json`` (written only when a
    fleet's server starts) and those whose socket file exists (a server started by hand)."""
    import json

    from cockpit.core.server import default_socket
    sockets: set[str] = set()
    started: set[str] = set()
    for depth in ("*", "*/*", "*/*/*"):
        for record in path.glob(f"{depth}/.cockpit/fleet.json"):
            started.add(str(record.parent.parent))
            try:
                sockets.add(json.loads(record.read_text())["socket"])
            except (OSError, ValueError, KeyError):
                pass
        for dot_git in path.glob(f"{depth}/.git"):  # a server started by hand, never recorded
            socket = default_socket(dot_git.parent)
            if socket.exists():
                started.add(str(dot_git.parent))
            sockets.add(str(socket))
    for socket in sockets:
        kill_tmux_server(socket)
    _release_ports_under(path)
    return started


def _release_ports_under(path: Path) -> None:
    """Give back the TCP port blocks of every repository under ``path`` (the registry is the
    machine's: a test must not keep ports from the next run until pytest deletes its tmp dir)."""
    from cockpit.core import ports
    if not ports.registry_path().exists():
        return
    for depth in ("*", "*/*", "*/*/*"):
        for home in path.glob(f"{depth}/.cockpit"):
            ports.release_repository(home.parent)


def kill_tmux_server(socket: str) -> None:
    """Kill the tmux server at ``socket`` (an absolute path, or a name under tmux's default
    directory for the plain test servers some tests start) and remove its socket file. Without
    tmux installed there is no server to kill: only the file goes."""
    if shutil.which("tmux") is None:
        if os.path.isabs(socket):
            Path(socket).unlink(missing_ok=True)
        return
    if os.path.isabs(socket):
        subprocess.run(["tmux", "-S", socket, "kill-server"], capture_output=True)
        Path(socket).unlink(missing_ok=True)
        return
    subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
    tmpdir = Path(os.environ.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.getuid()}"
    (tmpdir / socket).unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def _code_under_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """``python -m cockpit`` in a subprocess imports this tree, not whatever checkout the venv's
    editable install points at (a worktree of the project would otherwise test another tree)."""
    tree = str(Path(__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [tree, os.environ.get("PYTHONPATH")])))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with one commit on ``main``."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "--quiet", "--initial-branch=main")
    git(root, "config", "user.name", "test")  # agents commit; CI may have no global identity
    git(root, "config", "user.email", "test@example.invalid")
    (root / "README.md").write_text("hello\n")
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text("print('app')\n")
    git(root, "add", "-A")
    git(root, "commit", "--quiet", "-m", "initial")
    return root


@pytest.fixture
def fleet(repo: Path) -> Fleet:
    return Fleet(repo)


def watcher_noticed(fleet: Fleet, name: str) -> None:
    """Wait for the fleet's watcher to record agent ``name``'s first activity: it does so on its
    own schedule, so a test that checks nothing new is recorded must let it have its say first."""
    wait_until(lambda: any(e.type == "activity" and e.agent == name for e in fleet.events.all()),
               message=f"the watcher's first activity event of {name}")


def sleeper(tag: str = "alive") -> str:
    """An agent command that prints a line every 0.1 s forever."""
    return (f"{PY} -u -c \"import time,itertools\n"
            f"for i in itertools.count(): print('{tag}', i, flush=True); time.sleep(0.1)\"")


def tree_hashes(root: Path) -> dict[str, str]:
    """Content hash of every file under ``root`` (ignoring .git internals and .cockpit)."""
    import hashlib
    hashes: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts and rel.parts[0] in (".git", ".cockpit"):
            continue
        if path.is_file() and not path.is_symlink():
            hashes[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


# -- a real sshd on a loopback port --------------------------------------------------------------
SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)


class SSHServer:
    """An sshd of this test, on 127.0.0.1, that lets the current user in with a key of its own;
    its host key is pinned in a known_hosts file, so checking stays on, as a user's ssh has it."""

    def __init__(self, directory: Path) -> None:
        import getpass
        import socket as socket_mod
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.user = getpass.getuser()
        self.key = directory / "id_ed25519"
        host_key = directory / "host_ed25519"
        for key in (self.key, host_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True,
                           stdin=subprocess.DEVNULL)
        (directory / "authorized_keys").write_text((directory / "id_ed25519.pub").read_text())
        with socket_mod.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.known_hosts = directory / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {(directory / 'host_ed25519.pub').read_text()}")
        config = directory / "sshd_config"
        config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}",
            f"PidFile {directory / 'sshd.pid'}", f"AuthorizedKeysFile {directory / 'authorized_keys'}",
            "StrictModes no", "UsePAM no", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes", "PermitRootLogin prohibit-password", f"AllowUsers {self.user}",
            "PermitUserEnvironment no", "PrintMotd no", "Subsystem sftp internal-sftp", ""]))
        if os.getuid() == 0:
            Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
        self.process = subprocess.Popen([SSHD, "-D", "-f", str(config), "-E", str(directory / "sshd.log")],
                                        stdin=subprocess.DEVNULL)
        wait_until(lambda: self.run("true").returncode == 0 or self.process.poll() is not None,
                   message="sshd to let us in")
        if self.process.poll() is not None:
            raise RuntimeError(f"sshd exited: {(directory / 'sshd.log').read_text()}")

    def argv(self, command: str, tty: bool = False) -> list[str]:
        """ssh to this server running ``command`` (a string, for the remote shell)."""
        return ["ssh", "-F", "/dev/null", "-p", str(self.port), "-i", str(self.key), "-o", "BatchMode=yes",
                "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR", "-tt" if tty else "-T",
                f"{self.user}@127.0.0.1", command]

    def run(self, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(command), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture
def sshd(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SSHServer]:
    """A real sshd on a loopback port for this test (``make`` installs openssh-server)."""
    require_marker(request, "ssh", "logs in over ssh (the sshd fixture)")
    if SSHD is None:
        pytest.skip("sshd is not installed (apt-get install -y openssh-server; 'make test' does)")
    server = SSHServer(tmp_path / "sshd")
    yield server
    server.stop()


# -- remote hosts: a Unix user and an sshd of its own per host (tests/hosts_support.py) -------------
@pytest.fixture(scope="session")
def host_lab() -> Iterator[Lab]:
    """This test process's slot of host users and their sshds (created once, stopped at the end)."""
    from hosts_support import Lab, unavailable
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    lab = Lab()
    yield lab
    lab.close()


@pytest.fixture
def hosts(host_lab: Lab) -> Iterator[Lab]:
    """``big, small = hosts.up("big", "small")``: real hosts reached as ``ssh -F hosts.config big``.
    After the test every process of every host user is killed and their /tmp files removed."""
    yield host_lab
    host_lab.clean()
