"""What a running agent is doing right now, and why: ``working`` (with the tool it runs),
``waiting`` (for a permission, an answer, or its next prompt), ``compacting``, ``rate-limited``,
``error``, ``idle``, ``stalled`` or ``paused`` — known from the agent's own hooks, the kernel and,
last, the screen; never guessed from "the screen stopped changing" — or, before it starts,
``setup`` (its pane runs the worktree's setup commands: :mod:`cockpit.core.provision`).

In that order:

1. **Hooks** (presets that have them: ``claude-code``). What :mod:`cockpit.core.hook_state`
   folds from the agent's ``hooks.jsonl``, corrected by Claude Code's own status file, counts
   only while the process that fired the latest hook is alive in the agent's process tree:
   stale hook state never wins over a dead or restarted process. ``working`` with no output
   for ``stall_after`` is ``stalled``.
2. **The kernel.** ``waiting``: a process of the pane's foreground process group (``tpgid``,
   field 8 of ``/proc/<pane_pid>/stat``) sleeps in a read of the pane's terminal: its ``wchan``
   is ``wait_woken`` or ``n_tty_read`` and the fd of the read it is in (``/proc/<pid>/syscall``;
   its fd 0 when that file cannot be read) is the pane's tty. This holds under shell wrappers
   (``sh -c`` does not change the process group) and is what "blocked on ``input()``" looks like
   to the kernel.
3. **The screen.** Programs that watch the terminal with poll/select/epoll look the same thinking
   or asking; for them a preset's patterns (:mod:`cockpit.core.presets`) are matched on the
   screen: a prompt (``waiting`` with its reason) or a usage-limit message (``rate-limited``).

Otherwise the silence clock decides: output (the session.log's mtime) within ``idle_after``
seconds is ``working``, more is ``idle``, more than ``stall_after`` is ``stalled``. The clock
starts no earlier than the agent's last (re)start or resume, so a resumed agent is not stalled
by the time it spent frozen. Paused agents are ``paused``; agents not running have no activity.

Cost per agent and call: one ``stat`` per process of its tree, the ``children`` lists of its
threads, ``wchan`` for the sleeping members of the foreground group, the tail of its hooks file
when it changed, and one capture-pane for agents with a preset whose hooks say nothing.
No screen hashing, no history.
"""

from __future__ import annotations

import os
import stat as stat_mod
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cockpit.core import hook_state, processes, provision
from cockpit.core.agent import Agent, name_order
from cockpit.core.errors import CockpitError
from cockpit.core.presets import PRESETS, screen_says
from cockpit.core.repository import Repository
from cockpit.core.sessions import PaneState
from cockpit.core.spec import FleetConfig
from cockpit.core.state import Record

ACTIVITIES = ("setup", "waiting", "working", "compacting", "rate-limited", "error", "idle", "stalled", "paused")
NEEDS_USER = ("waiting", "rate-limited", "error")
"""Activities in which the agent sits at its prompt until someone acts: ``w`` focuses them,
notifications announce them, ``cockpit wait --for waiting`` returns on them."""

# Kernel functions a process sleeps in while it reads a terminal (n_tty_read sleeps in wait_woken).
TTY_READ_WCHANS = frozenset({"wait_woken", "n_tty_read"})

# Read-family syscall numbers per architecture (read, pread64, readv, preadv, preadv2). A sleep in
# wait_woken inside a *write* to the tty (a full output buffer) is not waiting for the user.
_READ_SYSCALLS = {
    "x86_64": frozenset({0, 17, 19, 295, 327}),
    "aarch64": frozenset({63, 65, 67, 69, 286}),
}.get(os.uname().machine)

_HAS_CHILDREN_FILES = os.path.exists(f"/proc/self/task/{os.getpid()}/children")


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/<pid>/stat`` activity detection needs."""

    pid: int
    state: str
    ppid: int
    pgrp: int
    tty_nr: int
    tpgid: int


def read_stat(pid: int) -> ProcStat | None:
    """``/proc/<pid>/stat`` parsed, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after the last ')'.
    rest = raw[raw.rfind(b")") + 2:].split()
    try:
        return ProcStat(pid, rest[0].decode(), int(rest[1]), int(rest[2]), int(rest[4]), int(rest[5]))
    except (IndexError, ValueError):
        return None


def children(pid: int) -> list[int]:
    """Direct children of ``pid``, from its threads' ``children`` files (cheap: no /proc scan)."""
    if not _HAS_CHILDREN_FILES:  # one /proc scan serves every agent of a round
        return processes.recent_children_map().get(pid, [])
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for task in tasks:
        try:
            found.extend(int(p) for p in Path(f"/proc/{pid}/task/{task}/children").read_text().split())
        except (OSError, ValueError):
            continue
    return found


def tree(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (not ``pid`` itself), parents first."""
    found: list[int] = []
    frontier = children(pid)
    while frontier:
        child = frontier.pop(0)
        if child in found:
            continue
        found.append(child)
        frontier.extend(children(child))
    return found


def _same_tty(path: str, tty_nr: int) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    if not stat_mod.S_ISCHR(st.st_mode):
        return False
    major = (tty_nr >> 8) & 0xFFF
    minor = (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)
    return os.major(st.st_rdev) == major and os.minor(st.st_rdev) == minor


def reads_tty(pid: int, tty_nr: int) -> bool:
    """Whether ``pid`` is asleep in a read of the terminal ``tty_nr``."""
    try:
        wchan = Path(f"/proc/{pid}/wchan").read_text().strip()
    except OSError:
        return False
    if wchan not in TTY_READ_WCHANS:
        return False
    try:
        fields = Path(f"/proc/{pid}/syscall").read_text().split()
    except OSError:  # no permission, or no CONFIG_HAVE_ARCH_TRACEHOOK: fall back to stdin
        fields = []
    if len(fields) >= 2 and fields[0].isdigit():
        number, fd = int(fields[0]), int(fields[1], 16)
        if _READ_SYSCALLS is not None and number not in _READ_SYSCALLS:
            return False
        return _same_tty(f"/proc/{pid}/fd/{fd}", tty_nr)
    return _same_tty(f"/proc/{pid}/fd/0", tty_nr)


@dataclass(frozen=True)
class TreeView:
    """What the kernel says about an agent's processes."""

    reading_tty: bool  # a foreground process sleeps in a read of the pane's tty
    stopped: bool  # the pane shell has descendants and every one is stopped (paused)
    pids: frozenset[int] = frozenset()  # the live descendants of the pane's shell


def probe(pane_pid: int) -> TreeView:
    """Look at the process tree under the pane's shell ``pane_pid``."""
    pane = read_stat(pane_pid)
    if pane is None:
        return TreeView(False, False)
    stats = [s for s in (read_stat(pid) for pid in tree(pane_pid)) if s is not None and s.state not in ("Z", "X")]
    stopped = bool(stats) and all(s.state in ("T", "t") for s in stats)
    reading = False
    if not stopped and pane.tty_nr and pane.tpgid > 0:
        reading = any(s.pgrp == pane.tpgid and s.state == "S" and reads_tty(s.pid, pane.tty_nr)
                      for s in [pane, *stats])
    return TreeView(reading, stopped, frozenset(s.pid for s in stats))


@dataclass(frozen=True)
class Activity:
    """An activity and, when known, why: ``waiting`` / ``permission: Bash: rm -rf build``,
    ``working`` / ``Bash: pytest -q``, ``rate-limited`` / ``resets 7:39pm (UTC)``."""

    name: str
    reason: str | None = None


def classify(state: str, waiting: bool, silence: float, idle_after: float, stall_after: float) -> str | None:
    """The activity of an agent in ``state``; ``silence`` is seconds since its last output (or
    its last start/resume, whichever is later). Waiting wins over recent output."""
    if state == "paused":
        return "paused"
    if state != "running":
        return None
    if waiting:
        return "waiting"
    if silence >= stall_after:
        return "stalled"
    if silence >= idle_after:
        return "idle"
    return "working"


def silence_start(log: Path, since: str | None) -> float:
    """Epoch seconds the silence clock starts from: the log's last write, or the agent's last
    (re)start or resume (``since``, ISO 8601), whichever is later."""
    times: list[float] = []
    try:
        times.append(log.stat().st_mtime)
    except OSError:
        pass
    if since:
        try:
            times.append(datetime.fromisoformat(since).timestamp())
        except ValueError:
            pass
    return max(times, default=0.0)


def settings(repo: Repository) -> FleetConfig:
    """The fleet's config, or the defaults when cockpit.toml is malformed (activity must not
    fail because of a typo: the operations report it)."""
    try:
        return repo.config
    except CockpitError:
        return FleetConfig()


def screen_text(repo: Repository, name: str) -> list[str]:
    """The visible screen of the agent's pane as plain text (no escapes), or [] if unreadable."""
    try:
        return repo.tmux.cmd("capture-pane", "-p", "-t", f"={name}:")
    except CockpitError:
        return []


def hooks_of(repo: Repository, record: Record) -> hook_state.HookState:
    """What the agent's own hooks said last (nothing for a preset without hooks)."""
    preset = PRESETS.get(record.spec.preset)
    if preset is None or not preset.hooks:
        return hook_state.HookState()
    return hook_state.read(hook_state.hooks_file(repo.layout.agent_dir(record.name)))


def from_hooks(repo: Repository, record: Record, view: TreeView, silence: float,
               config: FleetConfig) -> Activity | None:
    """The activity the agent's hooks report, or None when they say nothing that still holds
    (no hook yet, the session ended, or the process that fired them is gone)."""
    state = hooks_of(repo, record)
    if state.activity in (None, hook_state.ENDED) or state.pid is None or state.pid not in view.pids:
        return None
    status = hook_state.claude_status(state)
    name, reason = hook_state.reconcile(state, status)
    if name is None:
        return None
    if name == hook_state.WORKING:
        if status is None and record.spec.preset:  # no status file to correct silent hooks: the screen
            seen = screen_says(record.spec.preset, screen_text(repo, record.name))
            if seen is not None:
                return Activity(*seen)
        if silence >= config.stall_after:
            return Activity("stalled", reason)
    return Activity(name, reason)


def of_agent(repo: Repository, record: Record, pane: PaneState | None, state: str | None = None,
             now: float | None = None) -> Activity | None:
    """The activity of one agent, with its reason. ``state`` is its reconciled state when the
    caller knows it (:func:`cockpit.core.roster.snapshot`); otherwise it is derived here from the
    record and the pane."""
    if pane is None or not pane.pid or pane.dead or record.discarded:
        return None
    if state is None:
        if record.state not in ("running", "paused") or not repo.layout.worktree(record.name).is_dir():
            return None
    elif state == "paused":
        return Activity("paused", record.reason if record.state == "paused" else None)
    elif state != "running":
        return None
    view = probe(pane.pid)
    if state is None:
        state = "paused" if view.stopped else "running"
    if state == "paused":
        return Activity("paused", record.reason if record.state == "paused" else None)
    if provision.running(repo.layout, record.name):  # its pane runs the setup, not the agent yet
        return Activity("setup")
    config = settings(repo)
    if now is None:
        now = time.time()
    silence = now - silence_start(repo.layout.session_log(record.name), record.state_since)
    reported = from_hooks(repo, record, view, silence, config)
    if reported is not None:
        return reported
    if view.reading_tty:
        return Activity("waiting")
    if record.spec.preset:
        seen = screen_says(record.spec.preset, screen_text(repo, record.name))
        if seen is not None:
            return Activity(*seen)
    found = classify(state, False, silence, config.idle_after, config.stall_after)
    return Activity(found) if found else None


# -- for views: which agent needs the user next ---------------------------------------------------
ATTENTION_ORDER = ("waiting", "stalled", "failed")


def attention_rank(agent: Agent) -> int | None:
    """0 waiting (or rate-limited, or stopped by an error: at its prompt until someone acts),
    1 stalled, 2 failed or halted; None when the agent needs nobody."""
    if agent.activity in NEEDS_USER:
        return 0
    if agent.activity == "stalled":
        return 1
    if agent.process in ("failed", "halted"):  # (its state may show a merge state instead)
        return 2
    return None


def next_needing_attention(agents: Iterable[Agent], current: str | None = None) -> str | None:
    """The name of the agent the ``w`` key focuses: every agent needing the user, waiting ones
    first, then stalled, then failed (halted counts as failed), by name within each group; the
    one after ``current`` in that order (wrapping), or the first when ``current`` is not in it.
    None when nobody needs attention. Pure: no I/O."""
    ranked: Sequence[tuple[int, str]] = sorted(
        ((rank, agent.name) for agent in agents if (rank := attention_rank(agent)) is not None),
        key=lambda item: (item[0], name_order(item[1])))
    names = [name for _, name in ranked]
    if not names:
        return None
    if current in names:
        return names[(names.index(current) + 1) % len(names)]
    return names[0]
