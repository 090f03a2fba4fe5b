"""Where a fleet's tmux server lives, fixed once for every process that touches the fleet.

The CLI in a user's shell, a second SSH login, a cron job, the TUI, the watcher, tmux's exit hooks
and the agents' wrappers all run with different environments. tmux resolves ``-L NAME`` through
``$TMUX_TMPDIR`` (and a bare ``tmux`` through ``$TMUX``) in the environment of whoever runs it, so
two of them could look for one server in two places and each believe the other's agents dead.
Instead, the first cockpit that starts the fleet's server fixes an **absolute socket path** and
records it in ``.cockpit/fleet.json``; from then on every process reads it back and addresses the
server with ``tmux -S PATH``, whatever its environment.

The default place is ``/tmp/cockpit-<uid>/<12 hex of the repository path>``: short (a Unix socket
path must fit in ~104 bytes, so never inside a deep repository), private (the directory is 0700
and must be ours) and lasting — not under ``$XDG_RUNTIME_DIR`` (removed at a user's last logout,
which would orphan every agent of an SSH user), ``$TMPDIR`` or ``$HOME`` (they vary between the
environments above).

The record also keeps what tells a server that is gone from one that cannot be reached: the
server's pid and its start time (``/proc/<pid>/stat`` field 22, so a reused pid is not mistaken
for it), and the tmux binary and the cockpit command (Python and package directory) that started
the fleet, which its hooks and wrappers run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cockpit
from cockpit.core.errors import CockpitError

SOCKET_PARENT = Path("/tmp")
"""Never ``$TMPDIR``: it differs between a login shell, a cron job and an agent."""

BOOT = ("import sys; sys.path.insert(0, sys.argv.pop(1)); "
        "from cockpit.cli import main; sys.exit(main(sys.argv[1:]))")
"""What ``python -I -c BOOT PACKAGE_PARENT ARGS...`` runs: the cockpit package in PACKAGE_PARENT,
never whatever ``cockpit`` the current directory or ``$PYTHONPATH`` would offer (``-I``). It holds
no quote of either kind, so it can sit inside a shell's or tmux's quotes unchanged."""


def socket_dir() -> Path:
    return SOCKET_PARENT / f"cockpit-{os.getuid()}"


def default_socket(root: Path) -> Path:
    """The socket a new fleet of the repository at ``root`` gets."""
    digest = hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:12]
    return socket_dir() / digest


def legacy_socket_name(root: Path) -> str:
    """The ``tmux -L`` name cockpit used before sockets were fixed by path (for migration)."""
    digest = hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:12]
    return f"cockpit-{digest}"


def ensure_private_dir(directory: Path) -> None:
    """Create ``directory`` (mode 0700) or check that the existing one is ours and private.

    Refuses a directory another user owns or a symlink: a socket there could be someone else's
    server, and whoever controls the directory controls which server we talk to."""
    try:
        directory.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass
    except OSError as exc:
        raise CockpitError(f"cannot create the tmux socket directory {directory}: {exc.strerror}") from None
    try:
        info = os.lstat(directory)
    except OSError as exc:
        raise CockpitError(f"cannot use the tmux socket directory {directory}: {exc.strerror}") from None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise CockpitError(f"{directory} is not a directory (a symlink?): "
                           "refusing to put the fleet's tmux socket there")
    if info.st_uid != os.getuid():
        raise CockpitError(f"{directory} belongs to uid {info.st_uid}, not you: refusing to put the fleet's tmux "
                           "socket there (remove it, or ask its owner to)")
    if info.st_mode & 0o077:
        os.chmod(directory, 0o700)


def process_start(pid: int) -> int | None:
    """The start time of ``pid`` (clock ticks after boot), or None when it does not exist or
    has ended (a zombie nobody reaped yet)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2:].split()
    try:
        if fields[0] in (b"Z", b"X"):
            return None
        return int(fields[19])  # field 22 of stat; fields[0] is field 3
    except (IndexError, ValueError):
        return None


def cockpit_argv() -> list[str]:
    """The command that runs this very cockpit (append its arguments)."""
    package_parent = str(Path(cockpit.__file__).resolve().parent.parent)
    return [sys.executable, "-I", "-c", BOOT, package_parent]


@dataclass(frozen=True)
class Address:
    """How every process reaches one fleet: what ``.cockpit/fleet.json`` holds."""

    socket: str
    tmux: str = ""                 # the tmux binary that started the server ("" = from PATH)
    cockpit: list[str] = field(default_factory=list)  # the command hooks and wrappers run
    server_pid: int | None = None
    server_start: int | None = None

    def server_alive(self) -> bool:
        """Whether the server recorded here is still running (pid and start time both match)."""
        return (self.server_pid is not None and self.server_start is not None
                and process_start(self.server_pid) == self.server_start)


class AddressBook:
    """Reads and writes one repository's ``.cockpit/fleet.json``.

    Reads are cached by the file's modification time, so a process sees a server restarted by
    another at once, and costs one ``stat`` when nothing changed."""

    def __init__(self, root: Path, path: Path) -> None:
        self.root = root
        self.path = path
        self._cached: tuple[int, Address] | None = None

    def read(self) -> Address | None:
        try:
            mtime = self.path.stat().st_mtime_ns
        except OSError:
            return None
        if self._cached is not None and self._cached[0] == mtime:
            return self._cached[1]
        try:
            raw = json.loads(self.path.read_text())
            address = Address(socket=str(raw["socket"]), tmux=str(raw.get("tmux") or ""),
                              cockpit=[str(a) for a in raw.get("cockpit") or []],
                              server_pid=_int(raw.get("server_pid")), server_start=_int(raw.get("server_start")))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not os.path.isabs(address.socket):
            return None
        self._cached = (mtime, address)
        return address

    def write(self, address: Address) -> None:
        """Replace the record atomically (a reader sees the old or the new one, never half)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(address), indent=2) + "\n")
        os.replace(tmp, self.path)
        self._cached = None

    def current(self) -> Address:
        """The recorded address, else an old cockpit's server (adopted and recorded), else the
        default for a new fleet (recorded only when its server starts: :meth:`started`)."""
        found = self.read()
        if found is not None:
            return found
        legacy = self._legacy()
        if legacy is not None:
            self.write(legacy)
            return legacy
        return Address(socket=str(default_socket(self.root)))

    def _legacy(self) -> Address | None:
        """A server an older cockpit started with ``tmux -L cockpit-<hash>``: its socket is in
        ``/tmp/tmux-UID/`` (servers were started with a minimal environment) or, for one started
        some other way, under ``$TMUX_TMPDIR``. Found by path, then reached by ``-S`` like any."""
        if not self.path.parent.is_dir():  # no fleet was ever here
            return None
        name = legacy_socket_name(self.root)
        places = [Path("/tmp")]
        if os.environ.get("TMUX_TMPDIR"):
            places.append(Path(os.environ["TMUX_TMPDIR"]))
        for place in places:
            candidate = place / f"tmux-{os.getuid()}" / name
            try:
                if stat.S_ISSOCK(os.lstat(candidate).st_mode):
                    return Address(socket=str(candidate), tmux=shutil.which("tmux") or "",
                                   cockpit=cockpit_argv())
            except OSError:
                continue
        return None

    def started(self, address: Address, pid: int) -> Address:
        """Record that the server at ``address`` runs as ``pid`` (it just started, or a reader
        learned it). Also fixes the tmux binary and the cockpit command the fleet runs."""
        updated = replace(address, server_pid=pid, server_start=process_start(pid),
                          tmux=address.tmux or shutil.which("tmux") or "",
                          cockpit=address.cockpit if runnable(address.cockpit) else cockpit_argv())
        if updated != self.read():
            self.write(updated)
        return updated


def runnable(argv: list[str]) -> bool:
    """Whether a recorded cockpit command (:func:`cockpit_argv`) can still run: its Python and
    its package are still there (a deleted virtualenv, an uninstalled checkout)."""
    return (len(argv) == 5 and argv[1:4] == ["-I", "-c", BOOT] and os.access(argv[0], os.X_OK)
            and (Path(argv[4]) / "cockpit" / "cli.py").is_file())


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def find_server_pid(socket: str) -> int | None:
    """A running tmux server bound to ``socket``, found by its command line (a server keeps the
    argv of the client that started it). For a server started without a record; rare path."""
    uid = os.getuid()
    wanted = [("-S", socket)]
    path = Path(socket)
    if path.parent.name == f"tmux-{uid}":  # an older cockpit's server, started with -L NAME
        wanted.append(("-L", path.name))
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
        except OSError:
            continue
        if not comm.startswith("tmux"):
            continue
        args = [a.decode(errors="replace") for a in argv]
        for flag, value in wanted:
            for i, arg in enumerate(args):
                if arg == f"{flag}{value}" or (arg == flag and i + 1 < len(args) and args[i + 1] == value):
                    return int(entry)
    return None
