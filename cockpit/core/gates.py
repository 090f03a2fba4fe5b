"""Merge gates: the shell commands (``[cockpit] gates``) a candidate must pass before it lands.

Each gate runs as ``/bin/sh -c GATE`` in the candidate's scratch worktree, in a process group
of its own, its output (stdout and stderr) appended to the agent's ``merge.log``. Guarantees:
a gate past its timeout, or asked to stop, has its whole process group killed (TERM, then KILL);
whatever a finished gate left running in its group is killed too, so nothing outlives the
candidate's scratch worktree.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

TAIL_LINES = 30
TAIL_CHARS = 4000
# Variables that would point git at another repository than the candidate's.
_GIT_REDIRECTS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_PREFIX",
                  "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES")


@dataclass(frozen=True)
class GateResult:
    command: str
    code: int | None   # the exit status; None when cockpit killed it
    timed_out: bool
    stopped: bool      # killed because the queue was asked to stop (not the candidate's fault)
    seconds: float
    tail: str          # the last lines of its output

    @property
    def passed(self) -> bool:
        return self.code == 0 and not self.timed_out and not self.stopped


def gate_environment(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _GIT_REDIRECTS}
    env.update(extra)
    return env


def kill_group(pgid: int, grace: float = 2.0) -> None:
    """TERM the process group, wait up to ``grace`` seconds for it to go, then KILL what is left."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_gate(command: str, cwd: Path, log: Path, timeout: float, env: dict[str, str],
             stop: threading.Event | None = None, on_start: Callable[[int], None] | None = None) -> GateResult:
    """Run one gate to completion, timeout or stop. ``on_start`` gets the process group id as
    soon as it exists (the queue records it, so a crashed runner's gate can be found)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log.open("ab") as handle:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        handle.write(f"\n[cockpit] {stamp} gate: {command}\n".encode())
        handle.flush()
        offset = handle.tell()
        process = subprocess.Popen(["/bin/sh", "-c", command], cwd=cwd, stdout=handle, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    timed_out = stopped = False
    try:
        if on_start is not None:
            on_start(process.pid)
        deadline = started + timeout
        while True:
            try:
                process.wait(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() >= deadline:
                timed_out = True
            elif stop is not None and stop.is_set():
                stopped = True
            if timed_out or stopped:
                kill_group(process.pid)
                process.wait()
                break
    except BaseException:  # KeyboardInterrupt and friends: never leave the gate running
        kill_group(process.pid, grace=0.5)
        process.wait()
        raise
    kill_group(process.pid, grace=0.5)  # anything the gate left behind in its group
    seconds = time.monotonic() - started
    code = None if (timed_out or stopped) else process.returncode
    with log.open("ab") as handle:
        if timed_out:
            note = f"timed out after {timeout:g}s: process group killed"
        elif stopped:
            note = "stopped: the merge queue was interrupted"
        else:
            note = f"exit {code} after {seconds:.1f}s"
        handle.write(f"\n[cockpit] gate {note}\n".encode())
    return GateResult(command, code, timed_out, stopped, seconds, _tail(log, offset))


def _tail(log: Path, offset: int) -> str:
    with log.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        end = handle.tell()
        start = max(offset, end - 64 * 1024)
        handle.seek(start)
        text = handle.read().decode("utf-8", "replace")
    lines = [line for line in text.splitlines() if not line.startswith("[cockpit] gate ")]
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines[-TAIL_LINES:])[-TAIL_CHARS:]
