"""tmux: one private server per repository, one session per agent, its output piped to a log.

The server runs with ``-f /dev/null`` (the user's ``.tmux.conf`` cannot break it) and is started
with a minimal environment, so an agent sees only what cockpit hands it.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import libtmux
from libtmux import exc as tmux_exc

from cockpit.core.errors import CockpitError

MIN_TMUX = (3, 2)

# The pane's own process. It never execs, so pane_pid is this shell and the agent is its child:
# tmux re-continues a stopped direct child (server_child_stopped), so pause signals only the
# descendants. Its exit status is the agent's, kept by remain-on-exit for cockpit to read, and
# also written to $COCKPIT_EXIT_FILE: tmux 3.3 can report a pane dead (pty closed) before it has
# reaped the child, with pane_dead_status still empty. Its arguments, if any, are a prefix for the
# agent's command (the write sandbox's bwrap argv), so the wrapper itself stays outside it.
WRAPPER = (
    '"$@" /bin/sh -c "$COCKPIT_COMMAND"\n'
    "code=$?\n"
    'printf "%s\\n" "$code" > "$COCKPIT_EXIT_FILE" 2>/dev/null\n'
    "printf '\\n[cockpit] agent %s exited with status %s\\n' \"$COCKPIT_AGENT\" \"$code\"\n"
    # Tell cockpit now (the 2-failure rule must not wait for the next command). Detached from
    # the pane's hang-up, which follows as soon as this shell exits.
    "trap '' HUP\n"
    '"$COCKPIT_PYTHON" -m cockpit -C "$COCKPIT_REPO" _observe --agent "$COCKPIT_AGENT" '
    '>>"$COCKPIT_HOOK_LOG" 2>&1 </dev/null &\n'
    "exit $code\n"
)

BASE_ENV_NAMES = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "TERM", "SHELL")


def base_environment() -> dict[str, str]:
    """The minimal environment the private tmux server (and so every agent) starts from."""
    env = {k: v for k, v in os.environ.items() if k in BASE_ENV_NAMES or k.startswith("LC_")}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("TERM", "xterm-256color")
    return env


def _literal(arg: str) -> str:
    """tmux reads an argument ending in ``;`` as a command separator (``cmd ; cmd``); ``\\;``
    keeps it literal, and tmux removes the backslash. A task may well end in a semicolon."""
    return arg[:-1] + "\\;" if arg.endswith(";") else arg


def tmux_version() -> tuple[int, int] | None:
    binary = shutil.which("tmux")
    if not binary:
        return None
    return _version_of(binary)


@functools.lru_cache(maxsize=8)
def _version_of(binary: str) -> tuple[int, int] | None:
    """``tmux -V`` once per binary and process (every spawn checks it; bench/ showed the cost)."""
    out = subprocess.run([binary, "-V"], capture_output=True, text=True).stdout
    match = re.search(r"(\d+)\.(\d+)", out)
    return (int(match.group(1)), int(match.group(2))) if match else None


def check_tmux() -> None:
    version = tmux_version()
    if version is None:
        raise CockpitError("tmux is not installed: cockpit needs tmux >= 3.2 (apt-get install -y tmux)")
    if version < MIN_TMUX:
        raise CockpitError(
            f"tmux {version[0]}.{version[1]} is too old: cockpit needs tmux >= 3.2 (apt-get install -y tmux)"
        )


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
    "#{pane_pipe}", "#{window_index}.#{pane_index}"]))


def _parse_panes(lines: list[str]) -> dict[str, PaneState]:
    panes: dict[str, PaneState] = {}
    for line in lines:
        parts = line.split("\t")
        if len(parts) < 7 or parts[0] in panes:
            continue
        name, pid, dead, status, activity, piped, _ = parts
        panes[name] = PaneState(
            session=name,
            pid=int(pid) if pid.isdigit() else None,
            dead=dead == "1",
            exit_status=int(status) if status.lstrip("-").isdigit() else None,
            activity=float(activity) if activity.isdigit() else None,
            piped=piped == "1",
        )
    return panes


def lower_priority(pid: int, nice: int) -> None:
    """Give the tmux server ``pid`` a scheduling priority of ``nice`` (0-19), never raising it.

    The server is a daemon in a session of its own, and where Linux schedules by session
    (autogroups, ``/proc/<pid>/autogroup``) that session's nice value is what counts: under a
    flood of agent output it otherwise takes an equal share of the CPU with cockpit's UI, and
    keys wait. Agents run in sessions of their own (one per pane) and keep their priority; only
    the terminal work (the server, the log pipes, the exit hooks) yields. Where the kernel
    does not schedule by autogroup this changes nothing. Best effort: errors are ignored."""
    path = f"/proc/{pid}/autogroup"
    try:
        with open(path) as handle:
            current = int(handle.read().rsplit("nice", 1)[1])
        if current < nice:
            with open(path, "w") as handle:
                handle.write(str(nice))
    except (OSError, ValueError, IndexError):
        pass


class Tmux:
    """The fleet's private tmux server (``tmux -L <socket_name>``)."""

    def __init__(self, socket_name: str) -> None:
        self.socket_name = socket_name
        self.server = libtmux.Server(socket_name=socket_name, config_file="/dev/null")

    # -- raw commands -------------------------------------------------------------------------
    def cmd(self, *args: str) -> list[str]:
        """Run one tmux command (or several joined by ``";"``); return stdout lines or raise."""
        try:
            result = self.server.cmd(*args)
        except tmux_exc.TmuxCommandNotFound:
            raise CockpitError("tmux is not installed: cockpit needs tmux >= 3.2 (apt-get install -y tmux)") from None
        if result.returncode != 0:
            message = "; ".join(result.stderr) or f"exit {result.returncode}"
            raise CockpitError(f"tmux {args[0]} failed: {message}")
        return list(result.stdout)

    def _client_argv(self) -> list[str]:
        return ["tmux", "-L", self.socket_name, "-f", "/dev/null"]

    # -- queries --------------------------------------------------------------------------------
    def panes(self) -> dict[str, PaneState]:
        """Every session's first pane, in one tmux call. Empty when the server is not running."""
        result = self.server.cmd(*_LIST_PANES)
        if result.returncode != 0:
            return {}
        return _parse_panes(result.stdout)

    def pane(self, name: str) -> PaneState | None:
        return self.panes().get(name)

    def has_session(self, name: str) -> bool:
        return self.server.cmd("has-session", "-t", f"={name}").returncode == 0

    # -- actions --------------------------------------------------------------------------------
    def start(self, name: str, cwd: Path, env: dict[str, str], log: Path,
              width: int = 200, height: int = 50, hook: str | None = None,
              prefix: list[str] | None = None, nice: int = 0) -> dict[str, PaneState]:
        """Create the session running the agent, keep it on exit, and pipe it to ``log``.

        One tmux invocation: the pipe is in place before the agent's first byte, and
        remain-on-exit before it can exit. It ends by listing the panes, as :meth:`panes`
        does, and returns them (what the caller would otherwise ask tmux for next). ``nice``
        > 0 lowers the server's priority (:func:`lower_priority`).
        """
        argv = self._client_argv() + ["new-session", "-d", "-s", name, "-c", _literal(str(cwd)),
                                      "-x", str(width), "-y", str(height)]
        for key, value in env.items():
            argv += ["-e", _literal(f"{key}={value}")]
        argv += ["/bin/sh", "-c", WRAPPER]
        if prefix:
            argv += ["cockpit-agent", *prefix]  # $0, then "$@" in WRAPPER
        target = f"={name}:"
        argv += [";", "set-option", "-w", "-t", target, "remain-on-exit", "on",
                 ";", "set-option", "-t", target, "status-left", f"[cockpit:{name}] ",
                 ";", "set-option", "-t", target, "status-left-length", "60",
                 ";", "set-option", "-t", target, "status-right", "detach: C-b d ",
                 ";", "set-option", "-t", target, "history-limit", "10000",
                 ";", "pipe-pane", "-t", target, f"cat >> {shlex.quote(str(log))}"]
        if hook:
            # tmux single quotes take no escapes; the hook command holds none (Fleet.exit_hook).
            argv += [";", "set-hook", "-g", "pane-died", f"run-shell -b '{hook}'"]
        argv += [";", *_LIST_PANES, ";", "display-message", "-p", "server #{pid}"]
        for attempt in range(5):
            result = subprocess.run(argv, capture_output=True, text=True, env=base_environment(),
                                    stdin=subprocess.DEVNULL)
            # Killing the last session makes the server exit; a client that connects while it
            # is going away fails. Nothing was created then: wait for the socket and retry.
            if attempt == 0 and result.returncode != 0 and "duplicate session" in result.stderr:
                # (new-session checks this itself: no has-session call first, one process
                # less per spawn). Someone else's session: never killed here.
                raise CockpitError(f"tmux session {name!r} already exists on socket {self.socket_name}")
            dying = any(word in result.stderr for word in ("server exited", "lost server", "error connecting"))
            if result.returncode == 0 or not dying or self.has_session(name):
                break
            time.sleep(0.1 * (attempt + 1))
        if result.returncode != 0:
            if self.has_session(name):
                self.kill(name)
            message = result.stderr.strip().splitlines()
            raise CockpitError(f"tmux new-session failed: {message[-1] if message else result.returncode}")
        lines = result.stdout.splitlines()
        server = lines[-1].split() if lines else []
        if nice > 0 and len(server) == 2 and server[0] == "server" and server[1].isdigit():
            lower_priority(int(server[1]), nice)
        return _parse_panes(lines)

    def repipe(self, name: str, log: Path) -> None:
        """Re-open the log pipe (after the log was deleted or renamed). Without ``-o``: replaces."""
        self.cmd("pipe-pane", "-t", f"={name}:", f"cat >> {shlex.quote(str(log))}")

    def kill(self, name: str) -> None:
        result = self.server.cmd("kill-session", "-t", f"={name}")
        if result.returncode != 0 and self.has_session(name):
            raise CockpitError(f"tmux kill-session failed: {'; '.join(result.stderr)}")

    def capture(self, name: str, lines: int = 0) -> list[str]:
        """The agent's current screen (and ``lines`` of scrollback), with colours as escapes."""
        args = ["capture-pane", "-p", "-e", "-t", f"={name}:"]
        if lines:
            args += ["-S", str(-lines)]
        return self.cmd(*args)

    def send_keys(self, name: str, *keys: str) -> None:
        self.cmd("send-keys", "-t", f"={name}:", *keys)

    def kill_server(self) -> None:
        self.server.cmd("kill-server")

    def attach_argv(self, name: str) -> list[str]:
        """The command that attaches a terminal to the agent's session."""
        return self._client_argv() + ["attach-session", "-t", f"={name}"]
