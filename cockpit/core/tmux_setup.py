"""What a fleet's tmux server and every agent's session start from: the tmux version cockpit
needs, the minimal environment the server runs with, the wrapper script an agent runs under,
and the server's scheduling priority. Used by :mod:`cockpit.core.sessions`, which starts them.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import subprocess

from cockpit.core.errors import CockpitError

MIN_TMUX = (3, 2)


def wrapper(on_exit: list[str] | None, setup: list[str] | None = None, setup_status: str | None = None) -> str:
    """The pane's own process, a ``/bin/sh -c`` script. It never execs, so pane_pid is this
    shell and the agent is its child: tmux re-continues a stopped direct child
    (server_child_stopped), so pause signals only the descendants. Its exit status is the
    agent's, kept by remain-on-exit for cockpit to read, and also written to
    $COCKPIT_EXIT_FILE: tmux 3.3 can report a pane dead (pty closed) before it has reaped the
    child, with pane_dead_status still empty. Its arguments, if any, are a prefix for the
    agent's command (the write sandbox's bwrap argv), so the wrapper itself stays outside it.

    ``setup`` (an argv: :mod:`cockpit.core.setup_runner` on the agent's plan) runs first, under
    the same prefix and with stdin ``/dev/null``; the wrapper writes ``running`` to
    ``setup_status`` and gives the runner that file as fd 3 for its outcome (the sandbox cannot
    write it). A failed setup ends the pane with its status, and the agent never starts.

    ``on_exit`` (an argv, quoted here for the shell) runs when the agent ends, to tell cockpit at
    once (the 2-failure rule must not wait for the next command), detached from the pane's
    hang-up, which follows as soon as this shell exits, and with ``COCKPIT_AGENT`` emptied
    (``cockpit down`` ends every process that carries an agent's name)."""
    script = ""
    if setup and setup_status:
        status = shlex.quote(setup_status)
        script += (f"printf 'running\\n' > {status}\n"
                   f'"$@" {shlex.join(setup)} 3>>{status} </dev/null\n'
                   "code=$?\n"
                   'if [ "$code" -eq 0 ]; then\n')
    script += ('"$@" /bin/sh -c "$COCKPIT_COMMAND"\n'
               "code=$?\n")
    if setup and setup_status:
        script += "fi\n"
    script += ('printf "%s\\n" "$code" > "$COCKPIT_EXIT_FILE" 2>/dev/null\n'
               "printf '\\n[cockpit] agent %s exited with status %s\\n' \"$COCKPIT_AGENT\" \"$code\"\n")
    if on_exit:
        script += ("trap '' HUP\n"
                   f'COCKPIT_AGENT= {shlex.join(on_exit)} >>"$COCKPIT_HOOK_LOG" 2>&1 </dev/null &\n')
    return script + "exit $code\n"


BASE_ENV_NAMES = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "TERM", "SHELL")


def base_environment() -> dict[str, str]:
    """The minimal environment the private tmux server (and so every agent) starts from."""
    env = {k: v for k, v in os.environ.items() if k in BASE_ENV_NAMES or k.startswith("LC_")}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("TERM", "xterm-256color")
    return env


def tmux_version() -> tuple[int, int] | None:
    binary = shutil.which("tmux")
    if not binary:
        return None
    return _version_of(binary)


@functools.lru_cache(maxsize=8)
def _version_of(binary: str) -> tuple[int, int] | None:
    """``tmux -V`` once per binary and process: every spawn checks the version, and a fork per
    spawn for an answer that does not change is not worth it."""
    out = subprocess.run([binary, "-V"], capture_output=True, text=True).stdout
    match = re.search(r"(\d+)\.(\d+)", out)
    return (int(match.group(1)), int(match.group(2))) if match else None


def check_tmux() -> None:
    """Refuse, with how to fix it, when tmux is missing or older than :data:`MIN_TMUX`."""
    version = tmux_version()
    if version is None:
        raise CockpitError("tmux is not installed: cockpit needs tmux >= 3.2 (apt-get install -y tmux)")
    if version < MIN_TMUX:
        raise CockpitError(
            f"tmux {version[0]}.{version[1]} is too old: cockpit needs tmux >= 3.2 (apt-get install -y tmux)"
        )


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
