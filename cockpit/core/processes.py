"""An agent's process tree, read from ``/proc``, and signals sent to all of it.

Pausing signals every descendant of the pane's shell (not the shell itself: tmux continues a
stopped direct child at once). The walk is repeated so processes forked meanwhile are caught.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def _stat(pid: int | str) -> tuple[int, str] | None:
    """(ppid, state) of ``pid``, or None if it is gone."""
    try:  # (os.open, not pathlib: a scan reads every process's file, hundreds of them)
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
        try:
            raw = os.read(fd, 4096)
        finally:
            os.close(fd)
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after the last ')'.
    rest = raw[raw.rfind(b")") + 2:].split()
    return int(rest[1]), rest[0].decode()


def children_map() -> dict[int, list[int]]:
    """Every process's children: one read of each ``/proc/PID/stat``."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _stat(entry)
            if info:
                tree.setdefault(info[0], []).append(int(entry))
    return tree


_recent: tuple[float, dict[int, list[int]]] = (-1e18, {})


def recent_children_map(max_age: float = 0.5) -> dict[int, list[int]]:
    """:func:`children_map`, shared by the calls of the next ``max_age`` seconds: for looking
    (an agent's activity, for every agent of a round), never for signalling."""
    global _recent
    at, tree = _recent
    now = time.monotonic()
    if now - at > max_age:
        tree = children_map()
        _recent = (now, tree)
    return tree


def descendants(pid: int, tree: dict[int, list[int]] | None = None) -> list[int]:
    """Every live descendant of ``pid`` (not ``pid`` itself), parents before children.
    Pass ``tree`` (from :func:`children_map`) to answer for many agents with one /proc scan."""
    tree = children_map() if tree is None else tree
    found: list[int] = []
    stack = list(tree.get(pid, []))
    while stack:
        child = stack.pop(0)
        found.append(child)
        stack.extend(tree.get(child, []))
    return found


def state(pid: int) -> str | None:
    info = _stat(pid)
    return info[1] if info else None


def signal_tree(pid: int, sig: int, rounds: int = 3, tree: dict[int, list[int]] | None = None) -> list[int]:
    """Send ``sig`` to every descendant of ``pid``, walking the tree up to ``rounds`` times: a
    walk that finds no process the walks before it did not ends it (each walk reads every
    process in ``/proc``: a pause or resume used to make four of them, now two). ``tree``, a
    :func:`children_map` just read, serves as the first walk."""
    signalled: list[int] = []
    for walk in range(rounds):
        found = descendants(pid, tree if walk == 0 else None)
        if walk and all(child in signalled for child in found):
            break  # nothing was forked before its parent got the signal: every process has it
        for child in found:
            if child in signalled and sig != signal.SIGSTOP:
                continue
            try:
                os.kill(child, sig)
                if child not in signalled:
                    signalled.append(child)
            except ProcessLookupError:
                pass
    return signalled


_STOP_BIT = 1 << (signal.SIGSTOP - 1)


def stop_pending(pid: int) -> bool:
    """True when ``pid`` has a SIGSTOP it has not acted on yet: it will stop before it runs another
    instruction of its own. A process just signalled still shows running until the scheduler gets
    to it; one blocked in the kernel (``D``) shows that until it leaves the kernel, which for the
    parent of a ``vfork`` (``/bin/sh`` is dash here, and it vforks) is when its stopped child
    goes on: never, while the agent is paused."""
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return False
    for line in lines:
        if line.startswith((b"SigPnd:", b"ShdPnd:")) and int(line.split()[1], 16) & _STOP_BIT:
            return True
    return False


def is_stopped(pid: int, tree: dict[int, list[int]] | None = None) -> bool:
    """True when the agent under pane shell ``pid`` has descendants and none of them can run:
    each is stopped, or has a stop signal pending (:func:`stop_pending`)."""
    kids = descendants(pid, tree)
    states = [(child, state(child)) for child in kids]
    # A child that ended just as its parent was stopped stays a zombie until the parent runs
    # again: it is no process of the agent's that could be running.
    states = [(child, s) for child, s in states if s is not None and s not in ("Z", "X")]
    if not any(s in ("T", "t") for _, s in states):
        return False  # (a running agent: no /proc/PID/status is read)
    return all(s in ("T", "t") or stop_pending(child) for child, s in states)


def carrying(variables: dict[str, str]) -> list[int]:
    """Every process (but this one) whose environment holds each ``NAME=value`` of ``variables``:
    an agent's processes, also those that left its process tree (a daemon that double-forked).
    Processes of other users cannot be read and are never listed."""
    wanted = [f"{key}={value}".encode() for key, value in variables.items()]
    found: list[int] = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if all(item in environ for item in wanted):
            found.append(int(entry))
    return found
