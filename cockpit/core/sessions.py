"""tmux: one private server per repository, one session per agent, its output piped to a log.

The server runs with ``-f /dev/null`` (the user's ``.tmux.conf`` cannot break it) and is started
with a minimal environment, so an agent sees only what cockpit hands it. Every client call names
the server by its absolute socket path (``-S``, :mod:`cockpit.core.server`) and forces UTF-8
output (``-u``): under ``LANG=C`` tmux would otherwise turn the tabs of its formats into ``_``.

"Not running" needs evidence. A call that cannot reach the server says the server is gone only
when its recorded process is gone too; when the process lives (its socket was deleted by a /tmp
cleaner: ``SIGUSR1`` makes tmux create it again) or the socket cannot be opened, it raises
:class:`ServerUnknown` and the caller records nothing.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cockpit.core import attach
from cockpit.core.attach import DETACH_KEYS, AttachPlan
from cockpit.core.errors import CockpitError
from cockpit.core.server import Address, AddressBook, ensure_private_dir, find_server_pid, process_start
from cockpit.core.tmux_setup import base_environment, lower_priority, wrapper

__all__ = ["AttachPlan", "PaneState", "ServerUnknown", "Tmux"]


def _literal(arg: str) -> str:
    """tmux reads an argument ending in ``;`` as a command separator (``cmd ; cmd``); ``\\;``
    keeps it literal, and tmux removes the backslash. A task may well end in a semicolon."""
    return arg[:-1] + "\\;" if arg.endswith(";") else arg


@dataclass(frozen=True)
class PaneState:
    session: str
    pid: int | None
    dead: bool
    exit_status: int | None
    activity: float | None  # epoch seconds of the session's last activity
    piped: bool


_LIST_PANES = ("list-panes", "-a", "-F", "\t".join([
    "#{session_name}", "#{pane_pid}", "#{pane_dead}", "#{pane_dead_status}", "#{session_activity}",
    "#{pane_pipe}", "#{window_index}.#{pane_index}", "server #{pid}"]))


def _parse_panes(lines: list[str]) -> dict[str, PaneState]:
    panes: dict[str, PaneState] = {}
    for line in lines:
        parts = line.split("\t")
        if len(parts) < 8 or parts[0] in panes:
            continue
        name, pid, dead, status, activity, piped, _, _ = parts
        panes[name] = PaneState(
            session=name,
            pid=int(pid) if pid.isdigit() else None,
            dead=dead == "1",
            exit_status=int(status) if status.lstrip("-").isdigit() else None,
            activity=float(activity) if activity.isdigit() else None,
            piped=piped == "1",
        )
    return panes


class ServerUnknown(CockpitError):
    """cockpit cannot tell whether the fleet's tmux server (and so its agents) still runs.

    Nothing may be concluded from it: no agent is recorded as killed or exited, and operations
    that need the server refuse with this message."""


# What a tmux *client* prints when it cannot talk to the server at all (as opposed to the
# server's answer to a command, such as "can't find session").
_NO_SERVER = ("no server running", "error connecting to", "server exited unexpectedly", "lost server")
_EXITING = "no current target"
"""What a server answers (to ``list-panes -a``, for one) between its last session ending and its
exit: it is on its way out, to be waited for like one that refuses connections."""
_REACH_TIMEOUT = 30.0
"""Seconds a tmux call may take before the server counts as not answering."""
_UNREACHABLE_GRACE = 3.0
"""Seconds a server whose process runs may refuse connections (exiting, or its socket being
made again) before cockpit says it cannot tell."""


def _server_pid_of(lines: list[str]) -> int | None:
    """The pid from a trailing ``server <pid>`` field or line of our own formats."""
    for line in reversed(lines):
        field = line.rsplit("\t", 1)[-1]
        if field.startswith("server ") and field[7:].isdigit():
            return int(field[7:])
    return None


class Tmux:
    """The fleet's private tmux server, addressed by the absolute socket path its
    :class:`~cockpit.core.server.AddressBook` holds (``tmux -S PATH``)."""

    def __init__(self, book: AddressBook) -> None:
        self.book = book

    @property
    def address(self) -> Address:
        return self.book.current()

    @property
    def socket(self) -> str:
        """The server's socket: absolute, the same for every process that touches the fleet."""
        return self.address.socket

    def _client_argv(self, address: Address | None = None) -> list[str]:
        address = address or self.address
        binary = address.tmux if address.tmux and os.access(address.tmux, os.X_OK) else "tmux"
        return [binary, "-u", "-S", address.socket, "-f", "/dev/null"]

    def _run(self, args: tuple[str, ...], address: Address,
             input: str | None = None) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(self._client_argv(address) + list(args), capture_output=True, text=True,
                                  errors="replace", input=input, timeout=_REACH_TIMEOUT,
                                  stdin=subprocess.DEVNULL if input is None else None)
        except FileNotFoundError:
            raise CockpitError("tmux is not installed: cockpit needs tmux >= 3.2 (apt-get install -y tmux)") from None
        except subprocess.TimeoutExpired:
            raise ServerUnknown(f"the fleet's tmux server ({address.socket}) did not answer within "
                                f"{_REACH_TIMEOUT:.0f} s") from None

    def _live_server(self, address: Address) -> int | None:
        """The pid of the fleet's server if its process runs (whether or not its socket works)."""
        if address.server_alive():
            return address.server_pid
        if address.server_pid is None:  # never recorded (a server an older cockpit started)
            return find_server_pid(address.socket)
        return None

    def _reach(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str] | None:
        """Run one command on the server. None when no server runs (evidence: its process is
        gone, or there never was one). Raises :class:`ServerUnknown` when it runs, or may, but
        cannot be reached within a few seconds (a server that is exiting is waited for)."""
        deadline = time.monotonic() + _UNREACHABLE_GRACE
        signalled = False
        pause = 0.02
        while True:
            address = self.address
            result = self._run(args, address, input)
            error = result.stderr
            exiting = _EXITING in error
            if result.returncode == 0 or not (exiting or any(marker in error for marker in _NO_SERVER)):
                return result
            if "Permission denied" in error:
                raise ServerUnknown(f"cannot reach the fleet's tmux server: {address.socket}: permission denied")
            pid = self._live_server(address)
            if pid is None:
                if self.book.read() not in (None, address):
                    continue  # another process recorded a new server meanwhile: ask that one
                return None
            if time.monotonic() > deadline:
                raise ServerUnknown(f"the fleet's tmux server (pid {pid}) is running but cannot be reached at "
                                    f"{address.socket} (deleted by a /tmp cleaner? 'kill -USR1 {pid}' makes "
                                    "tmux create it again)")
            if not signalled and not exiting:  # its socket was removed (a /tmp cleaner): SIGUSR1 makes it again
                signalled = self._recreate_socket(pid, address.socket)
            time.sleep(pause)  # or it is exiting (its last session ended): then it is gone soon
            pause = min(pause * 2, 0.2)

    @staticmethod
    def _recreate_socket(pid: int, socket: str, timeout: float = 2.0) -> bool:
        """Ask a running server to create its socket again (tmux does on SIGUSR1); True once
        the socket is back."""
        try:
            os.kill(pid, signal.SIGUSR1)
        except OSError:
            return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if stat.S_ISSOCK(os.lstat(socket).st_mode):
                    return True
            except OSError:
                pass
            time.sleep(0.02)
        return False

    def _learn(self, address: Address, lines: list[str]) -> None:
        """Record the server's pid when the record lacks it or names a server that is gone
        (never over a live record: a late reader must not overwrite a newer server's)."""
        pid = _server_pid_of(lines)
        if pid is None or pid == address.server_pid or address.server_alive():
            return
        if self.book.path.parent.is_dir():
            self.book.started(address, pid)

    # -- raw commands -------------------------------------------------------------------------
    def cmd(self, *args: str) -> list[str]:
        """Run one tmux command (or several joined by ``";"``); return stdout lines or raise."""
        result = self._reach(*args)
        if result is None:
            raise CockpitError(f"tmux {args[0]} failed: the fleet's tmux server is not running ({self.socket})")
        if result.returncode != 0:
            message = "; ".join(line for line in result.stderr.splitlines() if line) or f"exit {result.returncode}"
            raise CockpitError(f"tmux {args[0]} failed: {message}")
        return result.stdout.splitlines()

    # -- queries --------------------------------------------------------------------------------
    def panes(self) -> dict[str, PaneState]:
        """Every session's first pane, in one tmux call. Empty when no server runs; raises
        :class:`ServerUnknown` when that cannot be told."""
        address = self.address
        result = self._reach(*_LIST_PANES)
        if result is None:
            return {}
        if result.returncode != 0:
            raise ServerUnknown(f"tmux list-panes failed: {result.stderr.strip() or result.returncode}")
        lines = result.stdout.splitlines()
        self._learn(address, lines)
        return _parse_panes(lines)

    def pane(self, name: str) -> PaneState | None:
        return self.panes().get(name)

    def has_session(self, name: str) -> bool:
        result = self._reach("has-session", "-t", f"={name}")
        return result is not None and result.returncode == 0

    def running(self) -> bool:
        """Whether the server runs (raises :class:`ServerUnknown` when that cannot be told)."""
        return self._reach("display-message", "-p", "#{pid}") is not None

    # -- actions --------------------------------------------------------------------------------
    def _prepare_start(self, address: Address) -> None:
        """Before a command that starts the server if none runs: the socket's directory exists
        and is private, and a running server whose socket vanished gets it back first (else tmux
        would start a second server on the same path, splitting the fleet)."""
        socket = Path(address.socket)
        ensure_private_dir(socket.parent)
        if not socket.exists():
            pid = self._live_server(address)
            if pid is not None and not self._recreate_socket(pid, address.socket):
                raise ServerUnknown(f"the fleet's tmux server (pid {pid}) is running but its socket "
                                    f"{address.socket} is gone and did not come back")

    def start(self, name: str, cwd: Path, env: dict[str, str], log: Path,
              width: int = 200, height: int = 50, hook: str | None = None,
              prefix: list[str] | None = None, nice: int = 0,
              on_exit: list[str] | None = None, setup: list[str] | None = None,
              setup_status: Path | None = None) -> dict[str, PaneState]:
        """Create the session running the agent, keep it on exit, and pipe it to ``log``.

        One tmux invocation: the pipe is in place before the agent's first byte, and
        remain-on-exit before it can exit. It ends by listing the panes, as :meth:`panes`
        does, and returns them (what the caller would otherwise ask tmux for next). ``nice``
        > 0 lowers the server's priority (:func:`lower_priority`); ``hook`` is the server's
        ``pane-died`` hook, ``on_exit`` what the pane runs after the agent and ``setup`` what it
        runs before, reporting to ``setup_status`` (:func:`wrapper`).
        """
        address = self.address
        self._prepare_start(address)
        argv = self._client_argv(address) + ["new-session", "-d", "-s", name, "-c", _literal(str(cwd)),
                                             "-x", str(width), "-y", str(height)]
        for key, value in env.items():
            argv += ["-e", _literal(f"{key}={value}")]
        argv += ["/bin/sh", "-c", wrapper(on_exit, setup, str(setup_status) if setup_status else None)]
        if prefix:
            argv += ["cockpit-agent", *prefix]  # $0, then "$@" in the wrapper
        target = f"={name}:"
        argv += [";", "set-option", "-w", "-t", target, "remain-on-exit", "on",
                 ";", "set-option", "-t", target, "status-left", f"[cockpit:{name}] ",
                 ";", "set-option", "-t", target, "status-left-length", "60",
                 ";", "set-option", "-t", target, "status-right", f"detach: {DETACH_KEYS} ",
                 ";", "set-option", "-t", target, "history-limit", "10000",
                 ";", "pipe-pane", "-t", target, f"cat >> {shlex.quote(str(log))}"]
        if hook:
            # tmux single quotes take no escapes; the hook command holds none (Fleet.exit_hook).
            argv += [";", "set-hook", "-g", "pane-died", f"run-shell -b '{hook}'"]
        argv += [";", *_LIST_PANES, ";", "display-message", "-p", "server #{pid}"]
        # tmux gives a new session's first pane the PATH of the client that creates it, whatever
        # -e says: an agent's own PATH (its env table) must be the client's.
        result = self._start(argv, name, address, path=env.get("PATH"))
        lines = result.stdout.splitlines()
        pid = _server_pid_of(lines)
        if pid is not None:
            if pid != address.server_pid or not address.server_alive() or self.book.read() is None:
                self.book.started(address, pid)
            if nice > 0:
                lower_priority(pid, nice)
        return _parse_panes(lines)

    def _start(self, argv: list[str], name: str, address: Address,
               path: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a ``new-session`` command line (which starts the server when none runs), from a
        client whose PATH is ``path`` when given."""
        client_env = base_environment()
        if path is not None:
            client_env["PATH"] = path
            if not os.path.isabs(argv[0]):  # found on our PATH, not the agent's
                argv = [shutil.which(argv[0]) or argv[0], *argv[1:]]
        for attempt in range(5):
            try:
                result = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                                        env=client_env, stdin=subprocess.DEVNULL, timeout=_REACH_TIMEOUT)
            except FileNotFoundError:
                raise CockpitError("tmux is not installed: cockpit needs tmux >= 3.2 "
                                   "(apt-get install -y tmux)") from None
            except subprocess.TimeoutExpired:
                raise ServerUnknown(f"the fleet's tmux server ({address.socket}) did not answer within "
                                    f"{_REACH_TIMEOUT:.0f} s") from None
            # Killing the last session makes the server exit; a client that connects while it
            # is going away fails. Nothing was created then: wait for the socket and retry.
            if attempt == 0 and result.returncode != 0 and "duplicate session" in result.stderr:
                # (new-session checks this itself: no has-session call first, one process
                # less per spawn). Someone else's session: never killed here.
                raise CockpitError(f"tmux session {name!r} already exists on the fleet's server ({address.socket})")
            dying = any(word in result.stderr for word in ("server exited", "lost server", "error connecting"))
            if result.returncode == 0 or not dying or self.has_session(name):
                break
            time.sleep(0.1 * (attempt + 1))
        if result.returncode != 0:
            if self.has_session(name):
                self.kill(name)
            message = result.stderr.strip().splitlines()
            raise CockpitError(f"tmux new-session failed: {message[-1] if message else result.returncode}")
        return result

    def start_hidden(self, name: str, cwd: Path, env: dict[str, str], argv: list[str],
                     width: int = 80, height: int = 24) -> bool:
        """Start a session for cockpit's own use (the watcher) on a server that runs already.
        True when this call created it, False when it existed."""
        address = self.address
        command = self._client_argv(address) + ["new-session", "-d", "-s", name, "-c", str(cwd),
                                                "-x", str(width), "-y", str(height)]
        for key, value in env.items():
            command += ["-e", f"{key}={value}"]
        try:
            result = subprocess.run(command + argv, capture_output=True, text=True, errors="replace",
                                    env=base_environment(), stdin=subprocess.DEVNULL, timeout=_REACH_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CockpitError(f"tmux new-session failed: {exc}") from None
        if result.returncode != 0:
            if self.has_session(name):
                return False
            raise CockpitError(f"tmux new-session failed: {result.stderr.strip() or result.returncode}")
        return True

    def repipe(self, name: str, log: Path) -> None:
        """Re-open the log pipe (after the log was deleted or renamed). Without ``-o``: replaces."""
        self.cmd("pipe-pane", "-t", f"={name}:", f"cat >> {shlex.quote(str(log))}")

    def kill(self, name: str) -> None:
        result = self._reach("kill-session", "-t", f"={name}")
        if result is not None and result.returncode != 0 and self.has_session(name):
            raise CockpitError(f"tmux kill-session failed: {result.stderr.strip()}")

    def capture(self, name: str, lines: int = 0) -> list[str]:
        """The agent's current screen (and ``lines`` of scrollback), with colours as escapes."""
        args = ["capture-pane", "-p", "-e", "-t", f"={name}:"]
        if lines:
            args += ["-S", str(-lines)]
        return self.cmd(*args)

    def send_keys(self, name: str, *keys: str) -> None:
        self.cmd("send-keys", "-t", f"={name}:", *keys)

    # -- values held in the server's memory ------------------------------------------------------
    def hold(self, buffer: str, text: str) -> None:
        """Keep ``text`` in the server's memory as the named paste buffer ``buffer``: read from
        stdin (never on a command line, where other users can read it), inherited by no session,
        never pasted by a plain paste-buffer, gone when the server ends."""
        result = self._reach("load-buffer", "-b", buffer, "-", input=text)
        if result is None or result.returncode != 0:
            raise CockpitError(f"tmux load-buffer failed: {result.stderr.strip() if result else 'no server running'}")

    def held(self, buffer: str) -> str | None:
        """What :meth:`hold` kept under ``buffer``, or None."""
        result = self._reach("show-buffer", "-b", buffer)
        return result.stdout if result is not None and result.returncode == 0 else None

    def release(self, buffer: str) -> None:
        self._reach("delete-buffer", "-b", buffer)

    def stop_server(self, timeout: float = 5.0) -> bool:
        """End the server and remove its socket file (tmux leaves it behind). True when no
        server runs afterwards; raises :class:`ServerUnknown` when that cannot be told."""
        address = self.address
        pid = self._live_server(address)
        result = self._reach("kill-server")
        if result is not None and pid is None:
            pid = self._live_server(self.address)
        deadline = time.monotonic() + timeout
        while pid is not None and process_start(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        if pid is not None and process_start(pid) is not None:
            raise ServerUnknown(f"the fleet's tmux server (pid {pid}) did not exit after kill-server")
        try:
            if stat.S_ISSOCK(os.lstat(address.socket).st_mode):
                os.unlink(address.socket)
        except OSError:
            pass
        return True

    def attach_argv(self, name: str) -> list[str]:
        """The command that attaches a terminal to the agent's session."""
        return self._client_argv() + ["attach-session", "-t", f"={name}"]

    def attach_plan(self, name: str, environ: Mapping[str, str]) -> AttachPlan:
        """How to attach the user's terminal (whose environment is ``environ``) to the agent
        (:func:`cockpit.core.attach.plan`)."""
        return attach.plan(self.attach_argv(name), name, environ)
