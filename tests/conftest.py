"""Shared fixtures: a real git repository in a temp dir and a real tmux server on a private
socket per test. Never the user's tmux server, never their repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import pytest

from cockpit.core.fleet import Fleet

if TYPE_CHECKING:
    from hosts_support import Lab

PY = sys.executable
GIT_ENV = {
    "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
}


def wait_until(condition: Callable[[], object], timeout: float = 20.0, interval: float = 0.05,
               message: str = "condition") -> object:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout.strip()


@pytest.fixture(autouse=True)
def _private_tmux(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Every test's fleets are private by construction: a fleet's tmux socket is derived from its
    repository's path (``/tmp/cockpit-UID/<hash>``, recorded in ``.cockpit/fleet.json``), and
    every test's repositories live in its own ``tmp_path``. After the test, every fleet server
    started under ``tmp_path`` is killed and its socket removed."""
    monkeypatch.delenv("TMUX", raising=False)
    yield
    stop_fleets_under(tmp_path)


def fleet_socket(root: Path) -> str:
    """The absolute tmux socket of the fleet of the repository at ``root``."""
    return Fleet(root).tmux.socket


def tmux(root: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run a tmux command on the fleet's own server, as a user would by hand (``tmux -S``)."""
    return subprocess.run(["tmux", "-S", fleet_socket(root), *args], capture_output=True, text=True, check=check)


def stop_fleets_under(path: Path) -> None:
    """Kill the tmux server of every fleet whose repository is under ``path`` (two levels deep)
    and remove its socket file (tmux leaves it behind: do not litter /tmp)."""
    import json
    from cockpit.core.server import default_socket
    sockets: set[str] = set()
    for depth in ("*", "*/*", "*/*/*"):
        for record in path.glob(f"{depth}/.cockpit/fleet.json"):
            try:
                sockets.add(json.loads(record.read_text())["socket"])
            except (OSError, ValueError, KeyError):
                pass
        for dot_git in path.glob(f"{depth}/.git"):  # a server started by hand, never recorded
            sockets.add(str(default_socket(dot_git.parent)))
    for socket in sockets:
        kill_tmux_server(socket)


def kill_tmux_server(socket: str) -> None:
    """Kill the tmux server at ``socket`` (an absolute path, or a name under tmux's default
    directory for the plain test servers some tests start) and remove its socket file."""
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


def sleeper(tag: str = "alive") -> str:
    """An agent command that prints a line every 0.1 s forever."""
    return f"{PY} -u -c \"import time,itertools\nfor i in itertools.count(): print('{tag}', i, flush=True); time.sleep(0.1)\""


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


def has_tmux() -> bool:
    return shutil.which("tmux") is not None


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
def sshd(tmp_path: Path) -> Iterator[SSHServer]:
    """A real sshd on a loopback port for this test (``make`` installs openssh-server)."""
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
