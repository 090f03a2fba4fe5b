"""Run a list of the user's shell commands in a worktree: ``setup``, ``teardown`` and ``stop``.

Each command is run by ``/bin/sh -e -c`` in order, with stdin ``/dev/null`` and in a session
of its own (no controlling terminal: a command that reads its input gets end-of-file at once, one
that opens ``/dev/tty`` to ask something fails instead of waiting for nobody), its output going
where the caller says (the agent's pane for setup, its session.log for teardown and stop). The
list stops at the first command that fails; all of them together get ``timeout`` seconds, after
which the running command's whole process group gets SIGTERM, then SIGKILL.

This file is also the script an agent's pane runs before the agent's command (``python -I
setup_runner.py SETUP_JSON``, see :mod:`cockpit.core.provision`): it imports nothing from
cockpit, so it runs the same inside the write sandbox, and it reports its outcome as one line on
file descriptor 3 when the wrapper opened it (``ok``, or ``failed<TAB>reason``), because the
sandbox cannot write the agent's directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

KILL_GRACE = 3.0
"""Seconds a timed-out command's process group gets between SIGTERM and SIGKILL."""


@dataclass(frozen=True)
class Outcome:
    """How a list of commands went: ``reason`` is None when every command succeeded."""

    reason: str | None = None
    command: str | None = None  # the one that failed
    code: int = 0  # non-zero when one failed: its exit status, 124 on a timeout, 128+N for signal N

    @property
    def ok(self) -> bool:
        return self.reason is None


def shown(command: str, width: int = 80) -> str:
    """A command in one short line, for messages."""
    flat = " ".join(command.split())
    return flat if len(flat) <= width else flat[:width - 1] + "…"


def _say(out: BinaryIO, text: str) -> None:
    out.write(f"[cockpit] {text}\n".encode())
    out.flush()


def _end_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the command's process group, SIGKILL what is left after :data:`KILL_GRACE`."""
    for sig, grace in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


def run_commands(kind: str, commands: Sequence[str], timeout: float, cwd: Path, out: BinaryIO,
                 env: Mapping[str, str] | None = None, prefix: Sequence[str] = (),
                 guard: Path | None = None) -> Outcome:
    """Run ``commands`` (see the module), writing what happens and their output to ``out``.
    ``prefix`` goes before each command's argv (the write sandbox); ``guard`` is a file that must
    still exist after each command (the worktree's ``.git``: a setup that deletes its worktree
    has failed, whatever its exit status)."""
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    for index, command in enumerate(commands, start=1):
        _say(out, f"{kind} {index}/{len(commands)}: {shown(command)}")
        try:
            process = subprocess.Popen([*prefix, "/bin/sh", "-e", "-c", command], cwd=cwd,
                                       env=dict(env) if env is not None else None, stdin=subprocess.DEVNULL,
                                       stdout=out.fileno(), stderr=out.fileno(), start_new_session=True)
        except OSError as exc:
            reason = f"{kind}: {shown(command)} could not start: {exc.strerror or exc}"
            _say(out, reason)
            return Outcome(reason, command, 127)
        try:
            code = process.wait(max(deadline - time.monotonic(), 0.001))
        except subprocess.TimeoutExpired:
            _end_group(process)
            reason = f"{kind}: {shown(command)} timed out ({kind}_timeout = {timeout:g} s)"
            _say(out, reason)
            return Outcome(reason, command, 124)
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
            reason = f"{kind}: {shown(command)} was killed by {name}"
            _say(out, reason)
            return Outcome(reason, command, 128 - code)
        if code != 0:
            reason = f"{kind}: {shown(command)} exited {code}"
            _say(out, reason)
            return Outcome(reason, command, code)
        if guard is not None and not os.path.lexists(guard):
            reason = f"{kind}: {shown(command)} deleted the worktree ({guard} is gone)"
            _say(out, reason)
            return Outcome(reason, command, 1)
    if commands:
        _say(out, f"{kind} done ({len(commands)} command(s), {time.monotonic() - started:.1f} s)")
    return Outcome()


def _report(line: str) -> None:
    """The outcome on fd 3, when the wrapper opened it (outside the sandbox, onto setup-status)."""
    try:
        os.write(3, (line + "\n").encode())
    except OSError:
        pass


def main(argv: list[str]) -> int:
    """``setup_runner.py SETUP_JSON``: the agent's setup, in its pane (cwd: its worktree)."""
    try:
        plan = json.loads(Path(argv[0]).read_text())
        commands = [str(c) for c in plan["commands"]]
        timeout = float(plan["timeout"])
        worktree = Path(plan["worktree"])
    except (IndexError, OSError, ValueError, KeyError, TypeError) as exc:
        _report(f"failed\tsetup: cannot read the setup plan: {exc}")
        print(f"[cockpit] setup: cannot read the setup plan: {exc}", flush=True)
        return 1
    out = sys.stdout.buffer
    outcome = run_commands("setup", commands, timeout, Path.cwd(), out, guard=worktree / ".git")
    if outcome.ok:
        _report("ok")
        return 0
    _report(f"failed\t{outcome.reason}")
    _say(out, f"the agent was not started; its worktree is kept for inspection ({worktree})")
    return outcome.code or 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
