"""Real remote hosts for tests: each host is a Unix user of its own behind an sshd of its own.

A test asks for hosts by the names it wants to type (``big, small = hosts.up("big", "small")``)
and gets, per host, a Unix user (``ckhost1``, ``ckhost2``, ...; created once, kept between test
sessions) with a private home (0700), a key of its own, a repository path in that home, and an
sshd on a loopback port that lets only that user in. One ssh config for the local user names
every host by its alias, host keys pinned, checking on, ``BatchMode`` on, so a test runs
``ssh -F CONFIG big 'id -un'`` exactly as a user with two build hosts in ``~/.ssh/config`` does.

What lasts how long:

* users and their homes: across sessions (``useradd`` once). Each test starts from a fresh home
  (``/etc/skel`` + ``~/.ssh/authorized_keys``); only the harness's cockpit venv is kept.
* keys, host keys, ports, sshds: one test session. A test may stop and start a host's sshd (same
  port, same host key); the next test gets it running again.
* processes: one test. After each test every process of every host user is killed and their
  files in /tmp (tmux and cockpit sockets: ``/tmp/tmux-UID``, ``/tmp/cockpit-UID``) removed.
* the wheelhouse (this checkout's cockpit and its dependencies, built locally): keyed by a hash of
  the sources, shared by sessions and xdist workers.

xdist workers and concurrent sessions (two worktrees on one machine) never share a user: each
process claims a *slot* (a lock file held for its lifetime); slot 0 has ``ckhost1..``, slot 1
``ck1host1..``. Everything here needs root (useradd, sshd); :func:`unavailable` says why not.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pwd
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from devsupport.polling import wait_until

PROJECT = Path(__file__).resolve().parents[1]
STATE = Path("/tmp/cockpit-hosts")
"""Short on purpose: a ControlPath ``STATE/sN/cm/%C`` must stay under ssh's 90-byte limit."""
SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
VENV = ".venv-cockpit"
"""The harness's install of this checkout on a host (``~/.venv-cockpit/bin/cockpit``), kept
between tests. A test of ``cockpit hosts install`` must not find its own work here: install
elsewhere, or call ``host.reset_home(keep_venv=False)`` first."""
PYTHONS = ("python3", "python3.13", "python3.12", "python3.11")
SLOTS = 16
HOSTS_PER_SLOT = 9
ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,30}\Z")
NO_NETWORK = {"PIP_CONFIG_FILE": "/dev/null", "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
              "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}
"""The host side's pip sees no index and no config, and any attempt to reach one fails."""


def unavailable() -> str | None:
    """Why hosts cannot be made here, or None."""
    if os.geteuid() != 0:
        return "test hosts need root (they create Unix users and run sshd for them)"
    for tool in ("useradd", "usermod", "ssh", "ssh-keygen", "tar"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if SSHD is None:
        return "sshd is not installed (apt-get install -y openssh-server; 'make test' does)"
    return None


# -- processes ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    uid: int
    state: str
    argv: tuple[str, ...]

    @property
    def command(self) -> str:
        return " ".join(self.argv)


def processes() -> list[Process]:
    """Every process on the machine (real uid, state letter, argv), read from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
            with open(f"/proc/{entry}/status") as f:
                uid = next(int(line.split()[1]) for line in f if line.startswith("Uid:"))
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = tuple(a.decode(errors="replace") for a in f.read().split(b"\0") if a)
        except (OSError, StopIteration):
            continue  # gone meanwhile
        fields = stat[stat.rindex(")") + 2:].split()
        found.append(Process(int(entry), int(fields[1]), uid, fields[0], argv))
    return found


def kill_user_processes(uid: int, timeout: float = 10.0) -> None:
    """SIGKILL every process whose real uid is ``uid`` until none is left (zombies aside)."""
    def gone() -> bool:
        alive = [p for p in processes() if p.uid == uid and p.state != "Z"]
        for p in alive:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return not alive
    wait_until(gone, timeout, message=f"every process of uid {uid} to die")


def remove_tmp_files(uid: int) -> None:
    """Remove what ``uid`` left at the top of /tmp, /var/tmp and /dev/shm (tmux and cockpit
    socket directories above all)."""
    for base in ("/tmp", "/var/tmp", "/dev/shm"):
        try:
            entries = list(os.scandir(base))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
            except FileNotFoundError:
                pass


# -- the wheelhouse -----------------------------------------------------------------------------
def source_digest(root: Path = PROJECT) -> str:
    """A hash of everything that goes into cockpit's wheel, and of this file (how the wheelhouse
    is made): same digest, same wheelhouse."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    paths = [root / "pyproject.toml", root / "README.md"]
    for top in ("cockpit", "themes"):
        paths += [p for p in (root / top).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    for path in sorted(paths):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def wheelhouse(timings: dict[str, list[float]] | None = None) -> Path:
    """Wheels of this checkout's cockpit and of all its dependencies, built on this side (which
    may use the network or the local pip's index and cache). Built once per source digest,
    under a lock, so xdist workers and later sessions share it."""
    from cockpit.core.server import ensure_private_dir
    ensure_private_dir(STATE)
    target = STATE / f"wheels-{source_digest()}"
    with open(STATE / "wheels.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "COMPLETE").exists():
            return target
        started = time.monotonic()
        building = STATE / f"{target.name}.building"
        shutil.rmtree(building, ignore_errors=True)
        result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
                                 str(PROJECT), "-w", str(building)], capture_output=True, text=True,
                                stdin=subprocess.DEVNULL)
        if result.returncode == 0:  # pip itself, run from its wheel on the host (no ensurepip: 2-3 s)
            result = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                                     "--no-deps", "--only-binary=:all:", "pip", "-d", str(building)],
                                    capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise RuntimeError(f"building the wheelhouse failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        (building / "COMPLETE").write_text("")
        for old in STATE.glob("wheels-*"):  # other sources' wheelhouses, unused for a day
            if old.is_dir() and time.time() - old.stat().st_mtime > 86400:
                shutil.rmtree(old, ignore_errors=True)
        building.rename(target)
        if timings is not None:
            timings.setdefault("wheelhouse build", []).append(time.monotonic() - started)
        return target


def wheel_named(house: Path, project: str) -> str:
    (wheel,) = house.glob(f"{project}-*.whl")
    return wheel.name


# -- users --------------------------------------------------------------------------------------
def ensure_user(name: str) -> pwd.struct_passwd:
    """Create the Unix user ``name`` with a home, unlocked for key logins (with ``UsePAM no``,
    sshd refuses an account whose password field is ``!``). Idempotent; serialised between
    processes (useradd locks /etc/passwd and gives up when another one holds it)."""
    with open(STATE / "users.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            pwd.getpwnam(name)
        except KeyError:
            run_root(["useradd", "--create-home", "--shell", "/bin/bash", "--comment", "cockpit test host", name])
        run_root(["usermod", "-p", "*", name])
    return pwd.getpwnam(name)


def run_root(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited {result.returncode}: {result.stderr.strip()}")


def remove_users() -> list[str]:
    """Delete every harness user and its home (``python tests/hosts_support.py remove-users``)."""
    names = [p.pw_name for p in pwd.getpwall() if re.fullmatch(r"ck\d*host\d+", p.pw_name)
             and p.pw_gecos == "cockpit test host"]
    for name in names:
        uid = pwd.getpwnam(name).pw_uid
        kill_user_processes(uid)
        remove_tmp_files(uid)
        run_root(["userdel", "--remove", name])
    return names


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range: a client's connect() never takes
    it, so a stopped sshd can get it back."""
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    candidates = [*range(20000, low), *range(high + 1, 65536)]
    for port in random.sample(candidates, min(200, len(candidates))):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port")


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
                   check=True, stdin=subprocess.DEVNULL)


# -- a host -------------------------------------------------------------------------------------
class Host:
    """One remote host: a user of its own, reached through its own sshd as ``ssh -F CONFIG ALIAS``."""

    def __init__(self, lab: Lab, user: str) -> None:
        self.lab = lab
        self.user = user
        self.alias = user
        self.dir = lab.dir / user
        self.dir.mkdir(mode=0o700)
        started = time.monotonic()
        entry = ensure_user(user)
        lab.timings.setdefault("create user", []).append(time.monotonic() - started)
        self.uid, self.gid, self.home = entry.pw_uid, entry.pw_gid, entry.pw_dir
        self.repo = f"{self.home}/repo"
        """Where :meth:`make_repo` puts the host's repository."""
        self.key = self.dir / "id_ed25519"
        self.host_key = self.dir / "host_ed25519"
        keygen(self.key)
        keygen(self.host_key)
        self.port = free_port()
        self.sshd: subprocess.Popen[bytes] | None = None
        self._python: str | None = None
        kill_user_processes(self.uid)  # left by a session that crashed
        remove_tmp_files(self.uid)
        (self.dir / "sshd_config").write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.host_key}",
            f"PidFile {self.dir / 'sshd.pid'}", "UsePAM no", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "PubkeyAuthentication yes", "PermitRootLogin no",
            f"AllowUsers {user}", "StrictModes yes", "AuthorizedKeysFile .ssh/authorized_keys",
            "PrintMotd no", "Subsystem sftp internal-sftp", ""]))

    def __repr__(self) -> str:
        return f"Host({self.alias!r}, user={self.user!r}, port={self.port})"

    # -- ssh ------------------------------------------------------------------------------------
    def ssh_argv(self, command: str | Sequence[str], *, master: bool = False) -> list[str]:
        """``ssh -F CONFIG ALIAS COMMAND``. A string is shell text for the remote shell; a list
        is quoted word by word (no remote shell interprets its items). ``master`` shares one
        connection through a ControlMaster in the lab's private control directory."""
        text = command if isinstance(command, str) else shlex.join(command)
        options = ["-o", "ControlMaster=auto", "-o", f"ControlPath={self.lab.control_dir}/%C",
                   "-o", "ControlPersist=60"] if master else []
        return ["ssh", "-F", str(self.lab.config), *options, self.alias, text]

    def run(self, command: str | Sequence[str], *, input: str | None = None, stdin: IO[bytes] | None = None,
            timeout: float = 60, check: bool = False, master: bool = False) -> subprocess.CompletedProcess[str]:
        """Run ``command`` on the host; stdin is empty unless ``input`` or ``stdin`` is given.
        ``check`` fails with the host's stderr in the message."""
        result = subprocess.run(self.ssh_argv(command, master=master), input=input,
                                stdin=stdin if stdin is not None or input is not None else subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{self.alias}: {command!r} exited {result.returncode}: "
                                 f"{result.stderr.strip() or result.stdout.strip()}")
        return result

    # -- sshd -----------------------------------------------------------------------------------
    def start_sshd(self) -> None:
        """Start this host's sshd (same port, same host key as before) and wait until it listens."""
        if self.sshd_running():
            return
        started = time.monotonic()
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
        log = self.dir / "sshd.log"
        offset = log.stat().st_size if log.exists() else 0  # -E appends: skip the last run's lines
        self.sshd = subprocess.Popen([SSHD, "-D", "-f", str(self.dir / "sshd_config"), "-E", str(log)],
                                     stdin=subprocess.DEVNULL)

        def listening() -> bool:
            if self.sshd is None or self.sshd.poll() is not None:
                raise RuntimeError(f"sshd of {self.user} exited: {log.read_text()[-2000:]}")
            if not log.exists():
                return False
            with open(log, "rb") as f:
                f.seek(offset)
                return f"Server listening on 127.0.0.1 port {self.port}.".encode() in f.read()
        wait_until(listening, 10, message=f"sshd of {self.user} to listen")
        self.lab.timings.setdefault("start sshd", []).append(time.monotonic() - started)

    def stop_sshd(self, drop_connections: bool = True) -> None:
        """Stop this host's sshd. ``drop_connections`` also ends the connections it serves (as a
        host that goes down does; ``systemctl stop ssh`` would keep them), ControlMasters
        included. The host's other processes (agents, tmux) keep running."""
        if self.sshd is None:
            return
        sessions = [p.pid for p in processes() if p.ppid == self.sshd.pid]
        self.sshd.terminate()
        self.sshd.wait(10)
        self.sshd = None
        if drop_connections:
            for pid in sessions:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            wait_until(lambda: not any(p.pid in sessions and p.state != "Z" for p in processes()), 10,
                       message=f"{self.user}'s ssh connections to end")

    def sshd_running(self) -> bool:
        return self.sshd is not None and self.sshd.poll() is None

    # -- the host's side ------------------------------------------------------------------------
    def processes(self) -> list[Process]:
        """Every live process of this host's user (ssh sessions of the moment included)."""
        return [p for p in processes() if p.uid == self.uid and p.state != "Z"]

    def reset_home(self, keep_venv: bool = True) -> None:
        """A fresh home: /etc/skel, the authorised key, mode 0700 (sshd's StrictModes checks it);
        the harness venv is kept unless ``keep_venv`` is false."""
        home = Path(self.home)
        home.mkdir(mode=0o700, exist_ok=True)
        for entry in list(home.iterdir()):
            if keep_venv and entry.name == VENV:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        shutil.copytree("/etc/skel", home, symlinks=True, dirs_exist_ok=True)
        ssh_dir = home / ".ssh"
        ssh_dir.mkdir(mode=0o700)
        (ssh_dir / "authorized_keys").write_text(self.key.with_suffix(".pub").read_text())
        (ssh_dir / "authorized_keys").chmod(0o600)
        for entry in home.iterdir():
            if entry.name == VENV:
                continue
            inside = entry.rglob("*") if entry.is_dir() and not entry.is_symlink() else ()
            for path in (entry, *inside):
                os.chown(path, self.uid, self.gid, follow_symlinks=False)
        os.chown(home, self.uid, self.gid)
        home.chmod(0o700)

    def python(self) -> str:
        """The first Python >= 3.11 with venv that this host's user can run from its ssh $PATH
        (a root venv's interpreter under /root is not one: /root is 0700). ensurepip is not
        needed: the harness makes ``--without-pip`` venvs."""
        if self._python is None:
            script = (f"for p in {' '.join(PYTHONS)}; do path=$(command -v \"$p\") || continue; "
                      "\"$path\" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' "
                      "2>/dev/null && { echo \"$path\"; exit 0; }; done; exit 1")
            result = self.run(script)
            if result.returncode != 0:
                raise RuntimeError(f"{self.user} can run no Python >= 3.11 with venv ({', '.join(PYTHONS)} "
                                   "on $PATH over ssh); 'make setup' installs one")
            self._python = result.stdout.strip()
        return self._python

    def install_cockpit(self) -> str:
        """Install this checkout of cockpit in ``~/.venv-cockpit`` of the host, offline on the host
        side: the wheels are built here, copied over ssh (a tar stream) and installed with
        ``pip install --no-index`` (pip run from its wheel in a ``--without-pip`` venv, no index,
        no pip config, proxies that refuse). Skipped when that venv already holds this very
        wheelhouse.
        Returns the host's ``cockpit`` executable."""
        house = wheelhouse(self.lab.timings)
        venv = f"{self.home}/{VENV}"
        stamp = f"{venv}/.installed-from"
        started = time.monotonic()
        if self.run(["cat", stamp]).stdout.strip() == house.name:
            self.lab.timings.setdefault("install cockpit (cached)", []).append(time.monotonic() - started)
            return f"{venv}/bin/cockpit"
        wheels = f"{self.home}/.cockpit-wheels"
        with subprocess.Popen(["tar", "-C", str(house), "-cf", "-", "--exclude", "COMPLETE", "."],
                              stdout=subprocess.PIPE) as tar:
            assert tar.stdout is not None
            self.run(f"rm -rf {shlex.quote(wheels)} && mkdir {shlex.quote(wheels)} && "
                     f"tar -C {shlex.quote(wheels)} -xf -", stdin=tar.stdout, check=True)
        if tar.returncode != 0:
            raise RuntimeError(f"tar of {house} failed")
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in NO_NETWORK.items())
        pip = f"{wheels}/{wheel_named(house, 'pip')}/pip"  # pip runs from its wheel
        self.run(f"rm -rf {shlex.quote(venv)} && "
                 f"{shlex.quote(self.python())} -m venv --without-pip {shlex.quote(venv)} && "
                 f"env {env} {shlex.quote(venv)}/bin/python {shlex.quote(pip)} install --quiet --no-index "
                 f"--find-links {shlex.quote(wheels)} {shlex.quote(wheels + '/' + wheel_named(house, 'cockpit'))} && "
                 f"echo {house.name} > {shlex.quote(stamp)} && rm -rf {shlex.quote(wheels)}",
                 timeout=300, check=True)
        self.lab.timings.setdefault("install cockpit (first)", []).append(time.monotonic() - started)
        return f"{venv}/bin/cockpit"

    def cockpit_argv(self, *args: str, master: bool = False) -> list[str]:
        """ssh argv running the host's installed cockpit with ``args`` (each quoted)."""
        return self.ssh_argv([f"{self.home}/{VENV}/bin/cockpit", *args], master=master)

    def cockpit(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.cockpit_argv(*args), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def make_repo(self, path: str | None = None) -> str:
        """A git repository with one commit on ``main``, created over ssh (default: :attr:`repo`)."""
        path = path or self.repo
        self.run(" && ".join([f"mkdir -p {shlex.quote(path)}", f"cd {shlex.quote(path)}",
                              "git init --quiet --initial-branch=main", "git config user.name test",
                              "git config user.email test@example.invalid", "echo hello > README.md",
                              "git add -A", "git commit --quiet -m initial"]), check=True)
        return path


# -- the lab: this process's slot of hosts ---------------------------------------------------------
class Lab:
    """The hosts of this test process: a claimed slot of users, their sshds, one ssh config."""

    def __init__(self) -> None:
        from cockpit.core.server import ensure_private_dir
        ensure_private_dir(STATE)
        self.timings: dict[str, list[float]] = {}
        self._lock = self._claim_slot()
        self.dir = STATE / f"s{self.slot}"
        self._stop_stale_sshds()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(mode=0o700)
        self.control_dir = self.dir / "cm"
        """A short private directory for ControlPath sockets: ``control_dir/%C`` is ~65 bytes;
        ssh refuses a ControlPath over 90 (it binds ``PATH.<16 random chars>`` first)."""
        self.control_dir.mkdir(mode=0o700)
        self.config = self.dir / "ssh_config"
        self.known_hosts = self.dir / "known_hosts"
        self.hosts: list[Host] = []
        self._fresh: set[str] = set()

    def _claim_slot(self) -> IO[str]:
        for slot in range(SLOTS):
            lock = open(STATE / f"s{slot}.lock", "w")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                continue
            self.slot = slot
            return lock
        raise RuntimeError(f"all {SLOTS} host slots are taken by other test processes")

    def _stop_stale_sshds(self) -> None:
        """A crashed session of this slot may have left its sshds running."""
        for pidfile in self.dir.glob("*/sshd.pid"):
            try:
                pid = int(pidfile.read_text())
                if str(pidfile.parent / "sshd_config") in Path(f"/proc/{pid}/cmdline").read_text():
                    os.kill(pid, signal.SIGTERM)
            except (OSError, ValueError):
                pass

    def user_name(self, index: int) -> str:
        return f"ckhost{index}" if self.slot == 0 else f"ck{self.slot}host{index}"

    def up(self, *aliases: str) -> list[Host]:
        """Hosts named ``aliases`` in the ssh config, each with a fresh home and its sshd running.
        The first alias is ``ckhost1`` (in slot 0), the second ``ckhost2``, ..."""
        if not aliases or len(aliases) > HOSTS_PER_SLOT:
            raise ValueError(f"ask for 1 to {HOSTS_PER_SLOT} hosts")
        users = {self.user_name(i + 1) for i in range(HOSTS_PER_SLOT)}
        for i, alias in enumerate(aliases):
            taken = alias in users and alias != self.user_name(i + 1)  # another slot's user name
            if not ALIAS.match(alias) or aliases.count(alias) > 1 or taken:
                raise ValueError(f"bad host alias: {alias!r}")
        while len(self.hosts) < len(aliases):
            self.hosts.append(Host(self, self.user_name(len(self.hosts) + 1)))
        chosen = self.hosts[:len(aliases)]
        for host, alias in zip(chosen, aliases, strict=True):
            host.alias = alias
            if host.user not in self._fresh:
                host.reset_home()
                self._fresh.add(host.user)
        self.write_config()
        for host in chosen:
            if not host.sshd_running():
                host.start_sshd()
                host.run("true", check=True)  # the key, the account and the pinned host key all work
        return chosen

    def write_config(self) -> None:
        """The local user's ssh config and known_hosts: every host under its alias and its user
        name, checking on, no prompts, a short connect timeout."""
        self.known_hosts.write_text("".join(
            f"[127.0.0.1]:{h.port} {h.host_key.with_suffix('.pub').read_text()}" for h in self.hosts))
        blocks = []
        for h in self.hosts:
            names = h.alias if h.alias == h.user else f"{h.alias} {h.user}"
            blocks.append("\n".join([
                f"Host {names}", "    HostName 127.0.0.1", f"    Port {h.port}", f"    User {h.user}",
                f"    IdentityFile {h.key}", "    IdentitiesOnly yes", f"    UserKnownHostsFile {self.known_hosts}",
                "    GlobalKnownHostsFile /dev/null", "    StrictHostKeyChecking yes", "    BatchMode yes",
                "    ConnectTimeout 5", "    LogLevel ERROR", ""]))
        self.config.write_text("\n".join(blocks))

    def install_cockpit(self, *hosts: Host) -> list[str]:
        """:meth:`Host.install_cockpit` on several hosts at once."""
        wheelhouse(self.timings)
        with ThreadPoolExecutor(len(hosts)) as pool:
            return list(pool.map(Host.install_cockpit, hosts))

    def clean(self) -> None:
        """After a test: close ControlMasters, kill every process of every host user, remove their
        /tmp files (tmux and cockpit sockets); aliases fall back to user names."""
        for socket_path in self.control_dir.iterdir():
            subprocess.run(["ssh", "-F", "/dev/null", "-o", f"ControlPath={socket_path}", "-O", "exit", "x"],
                           capture_output=True, stdin=subprocess.DEVNULL, timeout=10)
            socket_path.unlink(missing_ok=True)
        for host in self.hosts:
            kill_user_processes(host.uid)
            remove_tmp_files(host.uid)
            host.alias = host.user
        self._fresh.clear()
        self.write_config()

    def close(self) -> None:
        """End of the session: everything of :meth:`clean`, the sshds stopped, the slot freed.
        Users and homes stay for the next session."""
        try:
            self.clean()
            for host in self.hosts:
                host.stop_sshd()
                kill_user_processes(host.uid)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            self._lock.close()


if __name__ == "__main__":
    if sys.argv[1:] == ["remove-users"]:
        print("removed:", " ".join(remove_users()) or "none")
    else:
        sys.exit("usage: python tests/hosts_support.py remove-users")
